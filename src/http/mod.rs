//! The HTTP side: listeners, the public service, routing, the REST request and response types, the
//! envelope, and the one mapping from every domain error to a response.

pub mod auth;
pub mod body;
pub mod conn;
pub mod envelope;
pub mod error;
pub mod mcp;
pub mod openapi;
pub mod private;
pub mod public_url;
pub mod reply;
pub mod request;
pub mod router;
pub mod server;
pub mod service;
