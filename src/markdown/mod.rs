//! Markdown to and from Confluence storage format (pure: no IO).
//!
//! Writes go through [`prepare_body`]: detect or take the format, convert Markdown with
//! [`markdown_to_storage`], check well-formedness and safety. A Markdown update of an existing page
//! goes through [`merge_markdown`] instead, which keeps every block the client did not change byte
//! for byte. Reads use [`storage_to_markdown`]: what Markdown cannot say is written as a directive
//! (`:name[label]{key=value}`, `::name{…}`, `:::name{…}` … `:::`) or, as a last resort, verbatim.

mod cache;
mod directive;
mod entities;
mod from_storage;
mod merge;
mod normalize;
mod safety;
mod to_storage;
mod xml;

use std::fmt;
use std::sync::Arc;

pub use cache::RenderCache;
pub use normalize::normalize_storage;

/// The info string of a fenced block whose content is storage XHTML carried through verbatim.
pub const VERBATIM_BLOCK_INFO: &str = "confluence-storage";
/// The prefix of an inline code span whose remainder is storage XHTML carried through verbatim.
pub const VERBATIM_INLINE_PREFIX: &str = "confluence-storage:";

/// The format of a page body sent by a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// CommonMark with the GFM extensions and the `[[Page Title]]` link syntax.
    Markdown,
    /// Confluence storage format (an XHTML fragment).
    Storage,
}

/// A well-formedness error in storage XHTML, located by line and column (both from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct XhtmlError {
    /// Line of the problem, counted from 1.
    pub line: u32,
    /// Column of the problem in characters, counted from 1.
    pub column: u32,
    /// What is wrong, lowercase.
    pub message: String,
}

/// What a write may contain beyond the default, which refuses every script-capable construct.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WritePolicy {
    /// Macro names (such as `html`) allowed although they can run script; compared case-insensitively.
    pub allowed_macros: Vec<String>,
}

/// Why a body cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The storage XHTML is not well-formed.
    #[error("malformed storage format at {0}")]
    Malformed(XhtmlError),
    /// The body contains a construct that could run script in Confluence.
    #[error("the body contains {construct}, which is not allowed here")]
    Unsafe {
        /// The construct, for example `the html macro` or `an onclick attribute`.
        construct: String,
    },
    /// The Markdown contains a character storage cannot hold (a control character, U+FFFE, U+FFFF).
    #[error("the body contains a character storage cannot hold at {0}")]
    Character(XhtmlError),
}

impl fmt::Display for BodyFormat {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            BodyFormat::Markdown => "markdown",
            BodyFormat::Storage => "storage",
        })
    }
}

/// Detects the format of a body: storage when, after leading whitespace, it starts with an element
/// and the whole body parses as a well-formed storage fragment; Markdown otherwise.
pub fn detect_format(body: &str) -> BodyFormat {
    let trimmed = body.trim_start();
    let starts_with_element = trimmed
        .strip_prefix('<')
        .and_then(|rest| rest.chars().next())
        .is_some_and(|c| c.is_alphabetic() || c == '_');
    if starts_with_element && xml::parse_fragment(body).is_ok() {
        BodyFormat::Storage
    } else {
        BodyFormat::Markdown
    }
}

/// Checks that `xhtml` is a well-formed storage fragment: elements closed and nested, attributes quoted,
/// only known entities (XML's and HTML's named ones), and only the `ac:`, `ri:` or declared prefixes.
pub fn check_storage(xhtml: &str) -> Result<(), XhtmlError> {
    xml::parse_fragment(xhtml).map(|_| ())
}

/// Converts Markdown to storage XHTML, which is always well-formed; each top-level block on its own,
/// with a blank line between blocks. Raw HTML in the Markdown passes through only when it is
/// well-formed and refused by no part of the default [`WritePolicy`]. Characters XML cannot hold
/// become U+FFFD here; [`prepare_body`] and [`merge_markdown`] refuse them instead.
pub fn markdown_to_storage(markdown: &str) -> String {
    to_storage::convert(markdown, &WritePolicy::default())
}

/// Merges a Markdown update into the stored body block by block: every top-level block whose
/// Markdown the update leaves unchanged keeps its stored storage byte for byte; changed and new
/// blocks are converted and checked against `policy`. Reading a page as Markdown and writing it back
/// unchanged gives the stored body back.
pub fn merge_markdown(
    stored_storage: &str,
    incoming_markdown: &str,
    policy: &WritePolicy,
) -> Result<String, BodyError> {
    let stored_blocks = || from_storage::blocks_of(stored_storage).ok().map(Arc::new);
    merge::merge(stored_storage, stored_blocks, incoming_markdown, policy)
}

/// Refuses the first character XML cannot hold, with its line and column.
fn check_markdown_characters(markdown: &str) -> Result<(), BodyError> {
    let suspicious = markdown
        .bytes()
        .any(|b| b == 0xEF || (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')));
    if !suspicious {
        return Ok(());
    }
    match markdown.char_indices().find(|(_, c)| !xml::is_xml_char(*c)) {
        Some((offset, bad)) => Err(BodyError::Character(xml::error_at(
            markdown,
            offset,
            &format!("character U+{:04X} is not allowed", u32::from(bad)),
        ))),
        None => Ok(()),
    }
}
/// Converts storage XHTML to Markdown; what Markdown cannot express is carried through verbatim
/// (see [`VERBATIM_BLOCK_INFO`] and [`VERBATIM_INLINE_PREFIX`]).
pub fn storage_to_markdown(xhtml: &str) -> Result<String, XhtmlError> {
    Ok(from_storage::join_blocks(&from_storage::blocks_of(xhtml)?))
}

impl RenderCache {
    /// [`storage_to_markdown`], rendering a body only when this cache has not rendered it for
    /// `scope` already.
    pub fn storage_to_markdown(&self, scope: &str, xhtml: &str) -> Result<String, XhtmlError> {
        let blocks = self.blocks(scope, xhtml)?;
        Ok(from_storage::join_blocks(&blocks))
    }

    /// [`merge_markdown`], rendering the stored body only when this cache has not rendered it for
    /// `scope` already (a write after a read of the same body finds it rendered).
    pub fn merge_markdown(
        &self,
        scope: &str,
        stored_storage: &str,
        incoming_markdown: &str,
        policy: &WritePolicy,
    ) -> Result<String, BodyError> {
        let stored_blocks = || self.blocks(scope, stored_storage).ok();
        merge::merge(stored_storage, stored_blocks, incoming_markdown, policy)
    }
}

/// The one entry point for writes: detect (or take the explicit format), convert Markdown, check
/// well-formedness and safety; returns the storage XHTML to send upstream.
pub fn prepare_body(
    body: &str,
    format: Option<BodyFormat>,
    policy: &WritePolicy,
) -> Result<String, BodyError> {
    let format = format.unwrap_or_else(|| detect_format(body));
    let storage = match format {
        BodyFormat::Storage => body.to_owned(),
        BodyFormat::Markdown => {
            check_markdown_characters(body)?;
            to_storage::convert(body, policy)
        }
    };
    let nodes = xml::parse_fragment(&storage).map_err(BodyError::Malformed)?;
    safety::check(&nodes, policy)?;
    Ok(storage)
}
