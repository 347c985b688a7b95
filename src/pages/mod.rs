//! The page domain: the operations of PRODUCT §3 with the sandbox rules of §5. Typed commands come
//! in, typed replies and a [`PageError`] go out; nothing here knows of HTTP. Titles and title paths
//! are resolved through Confluence's ancestors, and nothing outside the root page's subtree is
//! reachable.

mod read;
mod search;
mod sections;
mod verify;
mod write;

use std::borrow::Cow;

use crate::config::Tenant;
use crate::confluence::{ConfluenceClient, Page, UpstreamError};
use crate::markdown::{BodyError, BodyFormat, RenderCache};
use crate::titles::{Title, TitlePath};

pub use read::{
    LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, READ_MAX_CHARS, TREE_DEFAULT_DEPTH, TREE_MAX_DEPTH,
};
pub use search::{SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT};
pub use sections::{OutlineEntry, SectionBody, SectionRef};

/// One operation on the pages of an endpoint, with its inputs parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Every page under the root as title paths, depth-first, `limit` of them from `offset`.
    List {
        /// Paths to skip.
        offset: usize,
        /// Paths to return at most (1 to [`LIST_MAX_LIMIT`]).
        limit: usize,
    },
    /// The root or `start` with the pages below it, `depth` levels deep (0 to [`TREE_MAX_DEPTH`]).
    Tree {
        /// Levels below the start page.
        depth: u32,
        /// The page to start from; the root when `None`.
        start: Option<TitlePath>,
    },
    /// One page, its body sliced to `max_chars` characters from `offset`.
    Read {
        /// The page.
        title: TitlePath,
        /// The format of the returned body.
        format: BodyFormat,
        /// Characters of the body to skip.
        offset: usize,
        /// Characters of the body to return at most (1 to [`READ_MAX_CHARS`]).
        max_chars: usize,
    },
    /// The direct children of a page.
    Children {
        /// The page.
        title: TitlePath,
    },
    /// The parent of a page.
    Parent {
        /// The page.
        title: TitlePath,
    },
    /// A new page under the root or `parent`.
    Create {
        /// The new page's title.
        title: Title,
        /// Its body, Markdown or storage.
        body: String,
        /// The parent; the root when `None`.
        parent: Option<TitlePath>,
        /// The body's format; detected when `None`.
        format: Option<BodyFormat>,
    },
    /// A page's whole body replaced.
    Update {
        /// The page.
        title: TitlePath,
        /// The new body, Markdown or storage.
        body: String,
        /// The version the client read; a stale one is refused.
        expected_version: Option<u64>,
        /// The body's format; detected when `None`.
        format: Option<BodyFormat>,
    },
    /// A page's title changed.
    Rename {
        /// The page.
        page: TitlePath,
        /// Its new title.
        new_title: Title,
    },
    /// A page (with its subtree) moved under another parent.
    Move {
        /// The page.
        title: TitlePath,
        /// The new parent.
        new_parent: TitlePath,
    },
    /// A page moved to Confluence's trash; its children move up to its parent.
    Delete {
        /// The page.
        title: TitlePath,
    },
    /// Full-text search inside the sandbox: `limit` hits from `offset`.
    Search {
        /// The words searched for, as the client typed them.
        query: String,
        /// Hits to skip.
        offset: usize,
        /// Hits to return at most (1 to [`SEARCH_MAX_LIMIT`]).
        limit: usize,
    },
    /// The headings of a page with the size of each section, from the `offset`-th heading on.
    Outline {
        /// The page.
        title: TitlePath,
        /// Headings to skip.
        offset: usize,
    },
    /// One section of a page (a heading and what follows it up to the next heading of the same or
    /// a higher level), sliced like [`Command::Read`].
    ReadSection {
        /// The page.
        title: TitlePath,
        /// The heading's text, or a path of heading texts (`Install/Linux`).
        section: String,
        /// The format of the returned section.
        format: BodyFormat,
        /// Characters of the section to skip.
        offset: usize,
        /// Characters of the section to return at most (1 to [`READ_MAX_CHARS`]).
        max_chars: usize,
    },
    /// One section replaced; every byte outside it stays as stored.
    UpdateSection {
        /// The page.
        title: TitlePath,
        /// The heading's text, or a path of heading texts.
        section: String,
        /// The new section, heading included, Markdown or storage.
        body: String,
        /// The version the client read; a stale one is refused.
        expected_version: Option<u64>,
        /// The body's format; detected when `None`.
        format: Option<BodyFormat>,
    },
}

/// A page's title and its breadcrumb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The title, as stored.
    pub title: String,
    /// The titles from the root page's own down to this page's (just the root's for the root).
    pub breadcrumb: Vec<String>,
}

impl Placed {
    fn new(breadcrumb: Vec<String>) -> Placed {
        Placed {
            title: breadcrumb.last().cloned().unwrap_or_default(),
            breadcrumb,
        }
    }

    /// The breadcrumb of a child of this page titled `title`.
    fn child(&self, title: &str) -> Placed {
        let mut breadcrumb = self.breadcrumb.clone();
        breadcrumb.push(title.to_owned());
        Placed::new(breadcrumb)
    }
}

/// A node of [`Reply::Tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    /// The page.
    pub page: Placed,
    /// Its children, when within the depth asked for.
    pub children: Vec<TreeNode>,
}

/// A page read, with its body sliced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageBody {
    /// The page.
    pub page: Placed,
    /// Its current version.
    pub version: u64,
    /// The format of `body`.
    pub format: BodyFormat,
    /// The requested slice of the body.
    pub body: String,
    /// The whole body's length in characters.
    pub body_length: usize,
    /// Where the slice starts, in characters.
    pub offset: usize,
    /// Whether characters follow the slice.
    pub truncated: bool,
}

/// One hit of [`Reply::Searched`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// The page, placed in the sandbox.
    pub page: Placed,
    /// Plain text around the match; matched words as Markdown `**emphasis**`.
    pub excerpt: String,
    /// The page's current version.
    pub version: u64,
    /// When the page last changed (ISO 8601), when Confluence said.
    pub last_modified: Option<String>,
}

/// What a successful command answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// [`Command::List`]: one slice of the paths.
    Listed {
        /// The paths of the slice: each the titles below the root down to the page.
        paths: Vec<Vec<String>>,
        /// Where the slice starts.
        offset: usize,
        /// How many paths there are in all.
        total: usize,
    },
    /// [`Command::Tree`]: the start page with its children, nested.
    Tree {
        /// The start page (the root, or the page asked for).
        root: TreeNode,
        /// How many pages the tree holds below the start page.
        page_count: usize,
    },
    /// [`Command::Read`].
    Read(PageBody),
    /// [`Command::Children`].
    Children(Vec<Placed>),
    /// [`Command::Parent`].
    Parent {
        /// The page asked about.
        page: Placed,
        /// Its parent.
        parent: Placed,
    },
    /// [`Command::Create`].
    Created {
        /// Confluence's id of the new page.
        id: String,
        /// The page.
        page: Placed,
        /// Its version (1).
        version: u64,
    },
    /// [`Command::Update`].
    Updated {
        /// The page.
        page: Placed,
        /// Its new version.
        version: u64,
    },
    /// [`Command::Rename`].
    Renamed {
        /// The title before.
        old_title: String,
        /// The title now.
        new_title: String,
        /// The page's new version.
        version: u64,
    },
    /// [`Command::Move`].
    Moved {
        /// The page.
        title: String,
        /// Its parent before.
        old_parent_title: String,
        /// Its parent now.
        new_parent_title: String,
        /// Whether it already was under that parent (nothing was written).
        already_there: bool,
    },
    /// [`Command::Delete`].
    Deleted {
        /// The page's title.
        title: String,
    },
    /// [`Command::Search`].
    Searched {
        /// The hits inside the sandbox.
        hits: Vec<SearchHit>,
        /// Where the window started.
        offset: usize,
        /// The offset of the next window, when Confluence has more results.
        next_offset: Option<usize>,
    },
    /// [`Command::Outline`].
    Outline {
        /// The page.
        page: Placed,
        /// Its current version.
        version: u64,
        /// The whole body's length in characters (storage).
        body_length: usize,
        /// The headings in document order, from `offset` on, as many as fit in one answer.
        headings: Vec<OutlineEntry>,
        /// Where `headings` starts among all the page's headings.
        offset: usize,
        /// How many headings the page has.
        total: usize,
    },
    /// [`Command::ReadSection`].
    Section(SectionBody),
    /// [`Command::UpdateSection`].
    SectionUpdated {
        /// The page.
        page: Placed,
        /// Its version now (unchanged when the section was already as sent).
        version: u64,
        /// The section written.
        section: SectionRef,
        /// Whether anything was written.
        changed: bool,
    },
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// No such page in the sandbox (missing, or outside the root page's subtree).
    #[error("not found")]
    NotFound,
    /// The title is already used in the space.
    #[error("title `{title}` taken")]
    TitleTaken {
        /// The title.
        title: String,
    },
    /// The page changed since the client read it.
    #[error("version conflict")]
    VersionConflict {
        /// The current version, when known.
        current: Option<u64>,
    },
    /// A move under the page itself or one of its descendants.
    #[error("circular move")]
    CircularMove,
    /// The root page cannot be renamed, moved or deleted.
    #[error("the root page cannot be {verb}")]
    RootProtected {
        /// `renamed`, `moved` or `deleted`.
        verb: &'static str,
    },
    /// The root page has no parent inside the endpoint.
    #[error("the root page has no parent")]
    RootHasNoParent,
    /// The body cannot be written (malformed storage or a refused construct).
    #[error("invalid body: {0}")]
    InvalidBody(BodyError),
    /// The stored body is not well-formed storage, so it cannot be shown as Markdown.
    #[error("the stored body cannot be converted to Markdown")]
    StoredBodyNotConvertible,
    /// Confluence failed or refused the request.
    #[error("upstream: {0}")]
    Upstream(UpstreamError),
    /// A search query with no word left to search for.
    #[error("nothing to search for")]
    NothingToSearch,
    /// The stored body is not well-formed storage, so it cannot be cut into sections.
    #[error("the stored body cannot be cut into sections")]
    StoredBodyNotSectionable,
    /// No heading of the page has this text or path.
    #[error("no such section")]
    SectionNotFound {
        /// The name asked for.
        wanted: String,
        /// Names of the page's sections that can be asked for instead.
        available: Vec<String>,
    },
    /// Several sections have this heading; each choice picks one.
    #[error("ambiguous section")]
    SectionAmbiguous {
        /// The name asked for.
        wanted: String,
        /// Names that each pick one of the matching sections.
        choices: Vec<String>,
    },
}

impl From<UpstreamError> for PageError {
    fn from(error: UpstreamError) -> PageError {
        match error {
            UpstreamError::NotFound => PageError::NotFound,
            // A title clash is named by the write that sent the title (`write::title_error`); one
            // reaching this point came from a call that sets no title and stays an upstream error.
            UpstreamError::VersionConflict { current } => PageError::VersionConflict { current },
            UpstreamError::IllegalMove => PageError::CircularMove,
            other => PageError::Upstream(other),
        }
    }
}

/// Runs `command` for the endpoint of `tenant` through its upstream `client`; stored bodies are
/// rendered to Markdown through `renders`.
pub async fn run(
    client: &ConfluenceClient,
    tenant: &Tenant,
    renders: &RenderCache,
    command: Command,
) -> Result<Reply, PageError> {
    let pages = Pages {
        client,
        tenant,
        renders,
    };
    match command {
        Command::List { offset, limit } => pages.list(offset, limit).await,
        Command::Tree { depth, start } => pages.tree(depth, start.as_ref()).await,
        Command::Read {
            title,
            format,
            offset,
            max_chars,
        } => pages.read(&title, format, offset, max_chars).await,
        Command::Children { title } => pages.children(&title).await,
        Command::Parent { title } => pages.parent(&title).await,
        Command::Create {
            title,
            body,
            parent,
            format,
        } => pages.create(title, &body, parent.as_ref(), format).await,
        Command::Update {
            title,
            body,
            expected_version,
            format,
        } => pages.update(&title, &body, expected_version, format).await,
        Command::Rename { page, new_title } => pages.rename(&page, new_title).await,
        Command::Move { title, new_parent } => pages.move_page(&title, &new_parent).await,
        Command::Delete { title } => pages.delete(&title).await,
        Command::Search {
            query,
            offset,
            limit,
        } => pages.search(&query, offset, limit).await,
        Command::Outline { title, offset } => pages.outline(&title, offset).await,
        Command::ReadSection {
            title,
            section,
            format,
            offset,
            max_chars,
        } => {
            pages
                .read_section(&title, &section, format, offset, max_chars)
                .await
        }
        Command::UpdateSection {
            title,
            section,
            body,
            expected_version,
            format,
        } => {
            pages
                .update_section(&title, &section, &body, expected_version, format)
                .await
        }
    }
}

/// One endpoint's view of its space.
struct Pages<'a> {
    client: &'a ConfluenceClient,
    tenant: &'a Tenant,
    renders: &'a RenderCache,
}

/// A page found inside the sandbox.
struct Resolved {
    page: Page,
    /// The titles from the root page's down to the page's own.
    breadcrumb: Vec<String>,
}

impl Resolved {
    fn is_root(&self) -> bool {
        self.breadcrumb.len() == 1
    }

    fn root_title(&self) -> &str {
        self.breadcrumb.first().map_or("", String::as_str)
    }

    fn placed(&self) -> Placed {
        Placed {
            title: self.page.title.clone(),
            breadcrumb: self.breadcrumb.clone(),
        }
    }

    /// The parent's title and breadcrumb, or `None` for the root page.
    fn parent(&self) -> Option<Placed> {
        if self.is_root() {
            return None;
        }
        Some(Placed::new(
            self.breadcrumb[..self.breadcrumb.len() - 1].to_vec(),
        ))
    }
}

impl Pages<'_> {
    fn root_id(&self) -> &str {
        self.tenant.root_page_id()
    }

    /// `stored` (the page's body or a part of it) in `format`, sliced to fit a GPT's response
    /// limit. Markdown is rendered through the render cache.
    fn body_slice(
        &self,
        resolved: &Resolved,
        stored: &str,
        format: BodyFormat,
        offset: usize,
        max_chars: usize,
    ) -> Result<PageBody, PageError> {
        let body = match format {
            BodyFormat::Storage => Cow::Borrowed(stored),
            BodyFormat::Markdown => Cow::Owned(
                self.renders
                    .storage_to_markdown(self.tenant.name(), stored)
                    .map_err(|error| {
                        tracing::warn!(%error, "stored body is not well-formed storage");
                        PageError::StoredBodyNotConvertible
                    })?,
            ),
        };
        let body_length = body.chars().count();
        let slice: String = body.chars().skip(offset).take(max_chars).collect();
        let end = offset.saturating_add(slice.chars().count());
        Ok(PageBody {
            page: resolved.placed(),
            version: resolved.page.version,
            format,
            body: slice,
            body_length,
            offset,
            truncated: end < body_length,
        })
    }

    /// Finds the page a title path names, inside the sandbox. One upstream call: the leaf title is
    /// looked up with its ancestors, and the path above it must match them. A single title containing
    /// `/` (as clients that encode every slash send it) is tried whole first, then as a path.
    async fn resolve(&self, path: &TitlePath, with_body: bool) -> Result<Resolved, PageError> {
        match self.resolve_exact(path, with_body).await {
            Err(PageError::NotFound) => match path.split_single_title() {
                Some(split) => self.resolve_exact(&split, with_body).await,
                None => Err(PageError::NotFound),
            },
            other => other,
        }
    }

    async fn resolve_exact(
        &self,
        path: &TitlePath,
        with_body: bool,
    ) -> Result<Resolved, PageError> {
        let leaf = path.leaf();
        let exact = self.client.page_by_title(leaf, with_body).await?;
        let page = match exact {
            Some(page) => page,
            // Titles are unique ignoring case, but some sites' title lookup is case-sensitive.
            None if leaf.to_lowercase() != leaf.to_uppercase() => self
                .client
                .page_by_title_ignoring_case(leaf, with_body)
                .await?
                .ok_or(PageError::NotFound)?,
            None => return Err(PageError::NotFound),
        };
        let resolved = self.place(page).ok_or(PageError::NotFound)?;
        // The titles between the root (exclusive) and the page (exclusive), compared ignoring
        // case, as Confluence compares titles.
        let chain: Vec<String> = if resolved.is_root() {
            Vec::new()
        } else {
            resolved.breadcrumb[1..resolved.breadcrumb.len() - 1]
                .iter()
                .map(|title| title.to_lowercase())
                .collect()
        };
        let parents: Vec<String> = path
            .parents()
            .iter()
            .map(|title| title.as_str().to_lowercase())
            .collect();
        let matches = parents.is_empty()
            || parents == chain
            || (parents.first() == Some(&resolved.root_title().to_lowercase())
                && parents[1..] == chain[..]);
        if matches {
            Ok(resolved)
        } else {
            Err(PageError::NotFound)
        }
    }

    /// Places a page in the sandbox: `None` when it is neither the root nor below it.
    fn place(&self, page: Page) -> Option<Resolved> {
        if page.id == self.root_id() {
            return Some(Resolved {
                breadcrumb: vec![page.title.clone()],
                page,
            });
        }
        let root_at = page
            .ancestors
            .iter()
            .position(|ancestor| ancestor.id == self.root_id())?;
        let mut breadcrumb: Vec<String> = page.ancestors[root_at..]
            .iter()
            .map(|ancestor| ancestor.title.clone())
            .collect();
        breadcrumb.push(page.title.clone());
        Some(Resolved { page, breadcrumb })
    }
}
