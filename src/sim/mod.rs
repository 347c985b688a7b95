//! An in-memory Confluence simulator on loopback, for tests and `conflagent demo`.
