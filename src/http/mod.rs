//! The HTTP side: listeners, the public service, routing, and the response envelope.

pub mod envelope;
pub mod private;
pub mod router;
pub mod server;
pub mod service;
