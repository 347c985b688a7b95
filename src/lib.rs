//! Conflagent: one process, many sandboxed Confluence endpoints for Custom GPTs and other agents.
#![forbid(unsafe_code)]

pub mod confluence;
pub mod markdown;
pub mod secret;
pub mod sim;
