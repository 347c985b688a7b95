//! Integration tests: one binary, one module per feature.

mod config_reload;
mod http_surface;
mod observability;
mod support;
