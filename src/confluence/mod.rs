//! Talking to Confluence: the only module that sends requests upstream.
