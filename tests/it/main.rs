//! Integration tests: one binary, one module per feature.

mod architecture;
mod cli;
mod compat;
mod config_reload;
mod confluence;
mod connections;
mod demo;
mod domain;
mod http_surface;
mod markdown;
mod mcp;
mod observability;
mod openapi;
mod pages;
mod redis;
mod request_limits;
mod search;
mod sections;
mod shutdown;
mod sim;
mod support;
mod upstream_calls;
mod upstream_retries;
mod write_outcome;
