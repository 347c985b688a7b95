//! The page domain: the operations of PRODUCT §3 with the sandbox rules of §5. Typed commands come
//! in, typed replies and a [`PageError`] go out; nothing here knows of HTTP. Titles and title paths
//! are resolved through Confluence's ancestors, and nothing outside the root page's subtree is
//! reachable.

mod read;
mod verify;
mod write;

use crate::config::Tenant;
use crate::confluence::{ConfluenceClient, Page, UpstreamError};
use crate::markdown::{BodyError, BodyFormat};
use crate::titles::{Title, TitlePath};

pub use read::{
    LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, READ_MAX_CHARS, TREE_DEFAULT_DEPTH, TREE_MAX_DEPTH,
};

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
    /// The nested tree below the root or `start`, `depth` levels deep (1 to [`TREE_MAX_DEPTH`]).
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
}

/// A page's title and its title path below the root (`""` for the root itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The title, as stored.
    pub title: String,
    /// The `/`-separated title path from below the root.
    pub path: String,
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

/// What a successful command answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// [`Command::List`]: one slice of the paths.
    Listed {
        /// The paths of the slice.
        paths: Vec<String>,
        /// Where the slice starts.
        offset: usize,
        /// How many paths there are in all.
        total: usize,
    },
    /// [`Command::Tree`]: the start page's children, nested.
    Tree {
        /// The nodes below the start page.
        nodes: Vec<TreeNode>,
        /// How many pages the tree holds.
        page_count: usize,
    },
    /// [`Command::Read`].
    Read(PageBody),
    /// [`Command::Children`].
    Children(Vec<Placed>),
    /// [`Command::Parent`]: the parent page.
    Parent(Placed),
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
}

/// Why a command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// No such page in the sandbox (missing, or outside the root page's subtree).
    #[error("not found")]
    NotFound,
    /// The title is already used in the space.
    #[error("title taken")]
    TitleTaken {
        /// The title, when known.
        title: Option<String>,
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
}

impl From<UpstreamError> for PageError {
    fn from(error: UpstreamError) -> PageError {
        match error {
            UpstreamError::NotFound => PageError::NotFound,
            UpstreamError::TitleTaken => PageError::TitleTaken { title: None },
            UpstreamError::VersionConflict { current } => PageError::VersionConflict { current },
            UpstreamError::IllegalMove => PageError::CircularMove,
            other => PageError::Upstream(other),
        }
    }
}

/// Runs `command` for the endpoint of `tenant` through its upstream `client`.
pub async fn run(
    client: &ConfluenceClient,
    tenant: &Tenant,
    command: Command,
) -> Result<Reply, PageError> {
    let pages = Pages { client, tenant };
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
    }
}

/// One endpoint's view of its space.
struct Pages<'a> {
    client: &'a ConfluenceClient,
    tenant: &'a Tenant,
}

/// A page found inside the sandbox.
struct Resolved {
    page: Page,
    /// The title path below the root (`""` for the root itself).
    path: String,
    /// The root page's title.
    root_title: String,
}

impl Resolved {
    fn is_root(&self) -> bool {
        self.path.is_empty()
    }

    fn placed(&self) -> Placed {
        Placed {
            title: self.page.title.clone(),
            path: self.path.clone(),
        }
    }

    /// The parent's title and path, or `None` for the root page.
    fn parent(&self) -> Option<Placed> {
        if self.is_root() {
            return None;
        }
        let parent = self.page.ancestors.last()?;
        let parent_path = match self.path.rfind('/') {
            Some(slash) => self.path[..slash].to_owned(),
            None => String::new(),
        };
        Some(Placed {
            title: parent.title.clone(),
            path: parent_path,
        })
    }
}

impl Pages<'_> {
    fn root_id(&self) -> &str {
        self.tenant.root_page_id()
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
        let chain = self.chain_titles(&resolved);
        // Compared ignoring case, as Confluence compares titles.
        let parents: Vec<String> = path
            .parents()
            .iter()
            .map(|title| title.as_str().to_lowercase())
            .collect();
        let chain: Vec<String> = chain.iter().map(|title| title.to_lowercase()).collect();
        let matches = parents.is_empty()
            || parents == chain
            || (parents.first() == Some(&resolved.root_title.to_lowercase())
                && parents[1..] == chain[..]);
        if matches {
            Ok(resolved)
        } else {
            Err(PageError::NotFound)
        }
    }

    /// The titles between the root (exclusive) and the page (exclusive).
    fn chain_titles<'r>(&self, resolved: &'r Resolved) -> Vec<&'r str> {
        if resolved.is_root() {
            return Vec::new();
        }
        let ancestors = &resolved.page.ancestors;
        let root_at = ancestors
            .iter()
            .position(|ancestor| ancestor.id == self.root_id())
            .unwrap_or(0);
        ancestors[root_at + 1..]
            .iter()
            .map(|ancestor| ancestor.title.as_str())
            .collect()
    }

    /// Places a page in the sandbox: `None` when it is neither the root nor below it.
    fn place(&self, page: Page) -> Option<Resolved> {
        if page.id == self.root_id() {
            return Some(Resolved {
                root_title: page.title.clone(),
                page,
                path: String::new(),
            });
        }
        let root_at = page
            .ancestors
            .iter()
            .position(|ancestor| ancestor.id == self.root_id())?;
        let root_title = page.ancestors[root_at].title.clone();
        let mut titles: Vec<&str> = page.ancestors[root_at + 1..]
            .iter()
            .map(|ancestor| ancestor.title.as_str())
            .collect();
        titles.push(&page.title);
        let path = titles.join("/");
        Some(Resolved {
            page,
            path,
            root_title,
        })
    }
}

/// Joins a parent path and a title into a child's path.
fn child_path(parent_path: &str, title: &str) -> String {
    if parent_path.is_empty() {
        title.to_owned()
    } else {
        format!("{parent_path}/{title}")
    }
}
