//! The page operations of PRODUCT §3 with the sandbox rules of §5: titles and title paths are
//! resolved through Confluence's ancestors, and nothing outside the root page's subtree is reachable.

mod read;
mod write;

use serde_json::Value;

use crate::config::Tenant;
use crate::confluence::{ConfluenceClient, Page, UpstreamError};
use crate::error::ApiError;
use crate::http::router::TitlePath;
use crate::http::service::OperationRequest;
use crate::routes::Operation;

/// A successful operation: the envelope's message and data.
pub struct Outcome {
    /// A short human-readable message.
    pub message: String,
    /// The `data` member.
    pub data: Value,
}

impl Outcome {
    fn new(message: impl Into<String>, data: Value) -> Outcome {
        Outcome {
            message: message.into(),
            data,
        }
    }
}

/// Runs a page operation. `client` is the endpoint's upstream client (possibly a counting handle).
pub async fn run(
    client: &ConfluenceClient,
    request: &OperationRequest,
) -> Result<Outcome, ApiError> {
    let pages = Pages {
        client,
        tenant: &request.endpoint.tenant,
    };
    match request.operation {
        Operation::ListPages => pages.list(request).await,
        Operation::PageTree => pages.tree(request).await,
        Operation::ReadPage => pages.read(request, required_title(request)?).await,
        Operation::ListChildren => pages.children(required_title(request)?).await,
        Operation::GetParent => pages.parent(required_title(request)?).await,
        Operation::CreatePage => pages.create(request).await,
        Operation::UpdatePage => pages.update(request, required_title(request)?).await,
        Operation::RenamePage => pages.rename(request).await,
        Operation::MovePage => pages.move_page(request, required_title(request)?).await,
        Operation::DeletePage => pages.delete(required_title(request)?).await,
        Operation::OpenApi | Operation::Health => Err(ApiError::internal()),
    }
}

fn required_title(request: &OperationRequest) -> Result<&TitlePath, ApiError> {
    request.title.as_ref().ok_or_else(ApiError::internal)
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

    /// The parent's title and path, or `None` for the root page.
    fn parent(&self) -> Option<(String, String)> {
        if self.is_root() {
            return None;
        }
        let parent = self.page.ancestors.last()?;
        let parent_path = match self.path.rfind('/') {
            Some(slash) => self.path[..slash].to_owned(),
            None => String::new(),
        };
        Some((parent.title.clone(), parent_path))
    }
}

impl Pages<'_> {
    fn root_id(&self) -> &str {
        &self.tenant.root_page_id
    }

    /// Finds the page a title path names, inside the sandbox. One upstream call: the leaf title is
    /// looked up with its ancestors, and the path above it must match them. A single title containing
    /// `/` (as clients that encode every slash send it) is tried whole first, then as a path.
    async fn resolve(&self, path: &TitlePath, with_body: bool) -> Result<Resolved, ApiError> {
        match self.resolve_exact(path, with_body).await {
            Err(error) if error.code == crate::error::ErrorCode::NotFound => {
                match split_single_title(path) {
                    Some(split) => self.resolve_exact(&split, with_body).await,
                    None => Err(error),
                }
            }
            other => other,
        }
    }

    async fn resolve_exact(&self, path: &TitlePath, with_body: bool) -> Result<Resolved, ApiError> {
        let leaf = path.leaf();
        let exact = self
            .client
            .page_by_title(leaf, with_body)
            .await
            .map_err(upstream_error)?;
        let page = match exact {
            Some(page) => page,
            // Titles are unique ignoring case, but some sites' title lookup is case-sensitive.
            None if leaf.to_lowercase() != leaf.to_uppercase() => self
                .client
                .page_by_title_ignoring_case(leaf, with_body)
                .await
                .map_err(upstream_error)?
                .ok_or_else(ApiError::not_found)?,
            None => return Err(ApiError::not_found()),
        };
        let resolved = self.place(page).ok_or_else(ApiError::not_found)?;
        let chain = self.chain_titles(&resolved);
        // Compared ignoring case, as Confluence compares titles.
        let parents: Vec<String> = path
            .parents()
            .iter()
            .map(|title| title.to_lowercase())
            .collect();
        let chain: Vec<String> = chain.iter().map(|title| title.to_lowercase()).collect();
        let matches = parents.is_empty()
            || parents == chain
            || (parents.first() == Some(&resolved.root_title.to_lowercase())
                && parents[1..] == chain[..]);
        if matches {
            Ok(resolved)
        } else {
            Err(ApiError::not_found())
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

/// `A/B` given as one title becomes the path `A` → `B`.
fn split_single_title(path: &TitlePath) -> Option<TitlePath> {
    match path.titles() {
        [only] if only.contains('/') => TitlePath::parse_body(only).ok(),
        _ => None,
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

/// Maps an upstream failure to what the client sees. Title clashes and version conflicts get
/// friendlier messages where the caller knows more.
fn upstream_error(error: UpstreamError) -> ApiError {
    match error {
        UpstreamError::NotFound => ApiError::not_found(),
        UpstreamError::TitleTaken => ApiError::title_taken(""),
        UpstreamError::VersionConflict { current } => match current {
            Some(current) => ApiError::version_conflict(current),
            None => ApiError::version_conflict_unknown(),
        },
        UpstreamError::IllegalMove => ApiError::invalid_operation(
            "a page cannot be moved under itself or one of its descendants",
        ),
        UpstreamError::InvalidStorage(message) => {
            ApiError::invalid_input(format!("Confluence rejected the body: {message}"))
        }
        UpstreamError::Rejected(message) => {
            ApiError::invalid_input(format!("Confluence rejected the request: {message}"))
        }
        UpstreamError::CredentialsRejected => ApiError::bad_gateway(
            "Confluence refused this endpoint's credentials; the operator must check the endpoint's \
             Confluence token (email/api_token)",
        ),
        UpstreamError::RateLimited { retry_after } => {
            ApiError::upstream_rate_limited(retry_after.map(|wait| wait.as_secs().max(1)))
        }
        UpstreamError::Unavailable(detail) => {
            tracing::warn!(%detail, "Confluence unavailable");
            ApiError::bad_gateway("Confluence is unreachable or failing; try again later")
        }
        UpstreamError::Timeout => ApiError::gateway_timeout(),
        UpstreamError::Protocol(detail) => {
            tracing::warn!(%detail, "unexpected response from Confluence");
            ApiError::bad_gateway("unexpected response from Confluence; try again later")
        }
    }
}
