//! Outline and section operations: one read of the page gives its headings, one section, or the
//! body a section update is merged into. A section update goes through the same checks and the same
//! versioned write as a whole-page update, and changes no byte outside the section.

use crate::confluence::PageUpdate;
use crate::markdown::{self, BodyFormat};
use crate::pages::{PageBody, PageError, Pages, Reply};
use crate::sections::{self, Outline, SectionError};
use crate::titles::TitlePath;

/// The most characters of heading data one outline answer carries (GPT Actions refuse answers of
/// 100,000 characters); the rest comes with `offset`.
const OUTLINE_MAX_CHARS: usize = 80_000;

/// The characters of one outline entry besides its strings (field names, numbers, punctuation).
const OUTLINE_ENTRY_OVERHEAD: usize = 100;

/// One heading of [`Reply::Outline`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutlineEntry {
    /// The heading and where it sits.
    pub section: SectionRef,
    /// The characters of the section in storage format, heading included.
    pub chars: usize,
}

/// A section of a page, named so that it can be asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionRef {
    /// 1 to 6.
    pub level: u8,
    /// The heading's text.
    pub text: String,
    /// The anchor that links to the heading.
    pub anchor: String,
    /// The texts of the enclosing headings and this one, `/`-separated.
    pub path: String,
    /// The shortest `section` value that picks this section alone.
    pub selector: String,
}

/// A section read, sliced like a page body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionBody {
    /// The page and the requested slice of the section (in `body`).
    pub body: PageBody,
    /// The section.
    pub section: SectionRef,
}

impl From<SectionError> for PageError {
    fn from(error: SectionError) -> PageError {
        match error {
            SectionError::NotFound { wanted, available } => {
                PageError::SectionNotFound { wanted, available }
            }
            SectionError::Ambiguous { wanted, choices } => {
                PageError::SectionAmbiguous { wanted, choices }
            }
        }
    }
}

fn outline_of(storage: &str) -> Result<Outline, PageError> {
    sections::outline(storage).map_err(|error| {
        tracing::warn!(%error, "stored body is not well-formed storage");
        PageError::StoredBodyNotSectionable
    })
}

fn section_ref(outline: &Outline, index: usize) -> SectionRef {
    let heading = &outline.headings()[index];
    SectionRef {
        level: heading.level,
        text: heading.text.clone(),
        anchor: heading.anchor.clone(),
        path: outline.path(index).join("/"),
        selector: outline.selector(index),
    }
}

impl Pages<'_> {
    /// The page's headings with the size of each section, from one read, from the `offset`-th
    /// heading on and as many as keep the answer within a GPT's response limit.
    pub(super) async fn outline(
        &self,
        title: &TitlePath,
        offset: usize,
    ) -> Result<Reply, PageError> {
        let resolved = self.resolve(title, true).await?;
        let storage = resolved.page.body.as_deref().unwrap_or_default();
        let outline = outline_of(storage)?;
        let total = outline.headings().len();
        let mut budget = OUTLINE_MAX_CHARS;
        let mut headings = Vec::new();
        for index in offset.min(total)..total {
            let section = section_ref(&outline, index);
            // The JSON of one entry: its strings plus field names and punctuation.
            let cost = section.text.len()
                + section.anchor.len()
                + section.path.len()
                + section.selector.len()
                + OUTLINE_ENTRY_OVERHEAD;
            if cost > budget && !headings.is_empty() {
                break;
            }
            budget = budget.saturating_sub(cost);
            headings.push(OutlineEntry {
                section,
                chars: storage[outline.headings()[index].section.clone()]
                    .chars()
                    .count(),
            });
        }
        Ok(Reply::Outline {
            page: resolved.placed(),
            version: resolved.page.version,
            body_length: storage.chars().count(),
            headings,
            offset,
            total,
        })
    }

    /// One section in storage format or Markdown, sliced to fit a GPT's response limit.
    pub(super) async fn read_section(
        &self,
        title: &TitlePath,
        section: &str,
        format: BodyFormat,
        offset: usize,
        max_chars: usize,
    ) -> Result<Reply, PageError> {
        let resolved = self.resolve(title, true).await?;
        let storage = resolved.page.body.as_deref().unwrap_or_default();
        let outline = outline_of(storage)?;
        let index = outline.find(section)?;
        let stored = &storage[outline.headings()[index].section.clone()];
        Ok(Reply::Section(SectionBody {
            body: self.body_slice(&resolved, stored, format, offset, max_chars)?,
            section: section_ref(&outline, index),
        }))
    }

    /// Replaces one section, refusing a stale `expected_version`: the new section is converted and
    /// checked like a whole body, spliced between the stored bytes before and after the section,
    /// and written with the next version number (so a write that raced it fails with a conflict).
    /// Markdown is merged block by block into the stored section: blocks it leaves unchanged keep
    /// their stored bytes.
    pub(super) async fn update_section(
        &self,
        title: &TitlePath,
        section: &str,
        body: &str,
        expected_version: Option<u64>,
        format: Option<BodyFormat>,
    ) -> Result<Reply, PageError> {
        let resolved = self.resolve(title, true).await?;
        if let Some(expected) = expected_version
            && expected != resolved.page.version
        {
            return Err(PageError::VersionConflict {
                current: Some(resolved.page.version),
            });
        }
        let storage = resolved.page.body.as_deref().unwrap_or_default();
        let outline = outline_of(storage)?;
        let index = outline.find(section)?;
        let range = outline.headings()[index].section.clone();
        let stored = &storage[range.clone()];
        let format = format.unwrap_or_else(|| markdown::detect_format(body));
        // Checked like a whole body first; Markdown is then merged block by block into the stored
        // section, as a whole-page update merges into the stored page: unchanged blocks stay as
        // stored, byte for byte.
        let converted = self.storage_body(body, Some(format))?;
        let replacement = match format {
            BodyFormat::Storage => converted,
            BodyFormat::Markdown => self.merged_body(stored, body)?.trim_end().to_owned(),
        };
        let start = range.start;
        let spliced = sections::replace_section(storage, range, &replacement);
        markdown::check_storage(&spliced)
            .map_err(|error| PageError::InvalidBody(markdown::BodyError::Malformed(error)))?;
        // The section as it is now, named after its (maybe new) heading.
        let written = outline_of(&spliced).ok().and_then(|after| {
            after
                .headings()
                .iter()
                .position(|heading| heading.section.start == start)
                .map(|found| section_ref(&after, found))
        });
        let section_ref = written.unwrap_or_else(|| section_ref(&outline, index));
        let placed = resolved.placed();
        if spliced == storage {
            return Ok(Reply::SectionUpdated {
                page: placed,
                version: resolved.page.version,
                section: section_ref,
                changed: false,
            });
        }
        let page = self
            .update_verified(&PageUpdate {
                id: resolved.page.id.clone(),
                title: resolved.page.title.clone(),
                new_version: resolved.page.version + 1,
                body: Some(spliced),
                parent_id: None,
            })
            .await?;
        // A section update never renames the page: the page as resolved is the page written.
        Ok(Reply::SectionUpdated {
            page: placed,
            version: page.version,
            section: section_ref,
            changed: true,
        })
    }
}
