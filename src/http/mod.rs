//! The HTTP side: listeners, the public service, routing, and the response envelope.

pub mod body;
pub mod conn;
pub mod envelope;
pub mod private;
pub mod public_url;
pub mod router;
pub mod server;
pub mod service;
