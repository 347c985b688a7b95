//! Integration tests: one binary, one module per feature.

mod config_reload;
mod http_surface;
mod openapi;
mod support;
