//! Markdown to and from Confluence storage format (pure: no IO).
