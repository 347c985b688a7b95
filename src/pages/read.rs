//! The read operations: list, tree, read, children, parent.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::confluence::SubtreePage;
use crate::error::ApiError;
use crate::http::router::TitlePath;
use crate::http::service::OperationRequest;
use crate::markdown;
use crate::pages::{Outcome, Pages, child_path, upstream_error};

/// Default and largest number of paths `GET /pages` returns at once.
const LIST_DEFAULT_LIMIT: usize = 500;
const LIST_MAX_LIMIT: usize = 2000;
/// Default and largest tree depth.
const TREE_DEFAULT_DEPTH: u32 = 2;
const TREE_MAX_DEPTH: u32 = 10;
/// The most body characters one read returns: GPT Actions refuse responses of 100,000 characters.
pub const READ_MAX_CHARS: usize = 90_000;

impl Pages<'_> {
    /// `GET /pages`: every page under the root as a title path, depth-first in tree order.
    pub(super) async fn list(&self, request: &OperationRequest) -> Result<Outcome, ApiError> {
        let offset = number_param(request, "offset", 0, usize::MAX)?.unwrap_or(0);
        let limit =
            number_param(request, "limit", 1, LIST_MAX_LIMIT)?.unwrap_or(LIST_DEFAULT_LIMIT);
        let pages = self
            .client
            .subtree(self.root_id(), None)
            .await
            .map_err(upstream_error)?;
        let paths = paths_depth_first(&pages, self.root_id());
        let total = paths.len();
        let shown: Vec<String> = paths.into_iter().skip(offset).take(limit).collect();
        let end = offset.saturating_add(shown.len());
        let message = if end < total {
            format!(
                "pages {}–{end} of {total}; call again with offset={end} for the rest",
                offset + 1
            )
        } else {
            format!("{total} pages")
        };
        Ok(Outcome::new(message, json!(shown)))
    }

    /// `GET /pages/tree`: nested `{title, path, children}` nodes below the root or `startTitle`.
    pub(super) async fn tree(&self, request: &OperationRequest) -> Result<Outcome, ApiError> {
        let depth = number_param(request, "depth", 1, TREE_MAX_DEPTH as usize)?
            .map_or(TREE_DEFAULT_DEPTH, |depth| depth as u32);
        let (start_id, start_path) = match request.query_param("startTitle") {
            Some(start) if !start.trim().is_empty() => {
                let start = self.resolve(&TitlePath::parse_body(start)?, false).await?;
                (start.page.id.clone(), start.path)
            }
            _ => (self.root_id().to_owned(), String::new()),
        };
        let pages = self
            .client
            .subtree(&start_id, Some(depth))
            .await
            .map_err(upstream_error)?;
        let nodes = tree_nodes(&children_index(&pages), &start_id, &start_path);
        Ok(Outcome::new(format!("{} pages", pages.len()), json!(nodes)))
    }

    /// `GET /pages/{title}`: the page with its body in storage format or Markdown, sliced to fit a
    /// GPT's response limit.
    pub(super) async fn read(
        &self,
        request: &OperationRequest,
        title: &TitlePath,
    ) -> Result<Outcome, ApiError> {
        let format = match request.query_param("format").unwrap_or("storage") {
            "storage" => markdown::BodyFormat::Storage,
            "markdown" => markdown::BodyFormat::Markdown,
            other => {
                return Err(ApiError::invalid_input(format!(
                    "format must be storage or markdown, not `{other}`"
                )));
            }
        };
        let offset = number_param(request, "offset", 0, usize::MAX)?.unwrap_or(0);
        let max_chars =
            number_param(request, "maxChars", 1, READ_MAX_CHARS)?.unwrap_or(READ_MAX_CHARS);
        let resolved = self.resolve(title, true).await?;
        let storage = resolved.page.body.clone().unwrap_or_default();
        let body = match format {
            markdown::BodyFormat::Storage => storage,
            markdown::BodyFormat::Markdown => {
                markdown::storage_to_markdown(&storage).map_err(|error| {
                    tracing::warn!(%error, "stored body is not well-formed storage");
                    ApiError::bad_gateway(
                        "the stored body could not be converted to Markdown; read it with format=storage",
                    )
                })?
            }
        };
        let body_length = body.chars().count();
        let slice: String = body.chars().skip(offset).take(max_chars).collect();
        let end = offset.saturating_add(slice.chars().count());
        let truncated = end < body_length;
        let message = if truncated {
            format!(
                "characters {offset}–{end} of {body_length}; call again with offset={end} for the rest"
            )
        } else {
            "page read".to_owned()
        };
        Ok(Outcome::new(
            message,
            json!({
                "title": resolved.page.title,
                "path": resolved.path,
                "version": resolved.page.version,
                "format": format.to_string(),
                "body": slice,
                "bodyLength": body_length,
                "offset": offset,
                "truncated": truncated,
            }),
        ))
    }

    /// `GET /pages/{title}/children`: direct children as `{title, path}`.
    pub(super) async fn children(&self, title: &TitlePath) -> Result<Outcome, ApiError> {
        let resolved = self.resolve(title, false).await?;
        let children = self
            .client
            .children(&resolved.page.id)
            .await
            .map_err(upstream_error)?;
        let data: Vec<Value> = children
            .iter()
            .map(|child| json!({"title": child.title, "path": child_path(&resolved.path, &child.title)}))
            .collect();
        Ok(Outcome::new(
            format!("{} children", data.len()),
            json!(data),
        ))
    }

    /// `GET /pages/{title}/parent`: the parent's title and path (the root has path `""`).
    pub(super) async fn parent(&self, title: &TitlePath) -> Result<Outcome, ApiError> {
        let resolved = self.resolve(title, false).await?;
        let (parent_title, parent_path) = resolved.parent().ok_or_else(|| {
            ApiError::invalid_operation("the root page has no parent inside this endpoint")
        })?;
        Ok(Outcome::new(
            "parent found",
            json!({"title": parent_title, "path": parent_path}),
        ))
    }
}

/// The title paths of the pages below `parent_id`, depth-first in listing order.
fn paths_depth_first(pages: &[SubtreePage], parent_id: &str) -> Vec<String> {
    let children_of = children_index(pages);
    let mut paths = Vec::with_capacity(pages.len());
    // An explicit stack instead of recursion: a pathological tree cannot overflow it.
    let mut stack: Vec<(&SubtreePage, String)> = children_of
        .get(parent_id)
        .map(|children| {
            children
                .iter()
                .rev()
                .map(|page| (*page, page.title.clone()))
                .collect()
        })
        .unwrap_or_default();
    while let Some((page, path)) = stack.pop() {
        if let Some(children) = children_of.get(page.id.as_str()) {
            for child in children.iter().rev() {
                stack.push((child, child_path(&path, &child.title)));
            }
        }
        paths.push(path);
    }
    paths
}

/// Each parent id's children, in listing order.
fn children_index(pages: &[SubtreePage]) -> HashMap<&str, Vec<&SubtreePage>> {
    let mut children_of: HashMap<&str, Vec<&SubtreePage>> = HashMap::new();
    for page in pages {
        children_of
            .entry(page.parent_id.as_str())
            .or_default()
            .push(page);
    }
    children_of
}

fn tree_nodes(
    children_of: &HashMap<&str, Vec<&SubtreePage>>,
    parent_id: &str,
    parent_path: &str,
) -> Vec<Value> {
    children_of
        .get(parent_id)
        .map(|children| {
            children
                .iter()
                .map(|page| {
                    let path = child_path(parent_path, &page.title);
                    json!({
                        "title": page.title,
                        "children": tree_nodes(children_of, &page.id, &path),
                        "path": path,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An optional whole-number query parameter within `min..=max`.
fn number_param(
    request: &OperationRequest,
    name: &str,
    min: usize,
    max: usize,
) -> Result<Option<usize>, ApiError> {
    let Some(raw) = request.query_param(name) else {
        return Ok(None);
    };
    match raw.trim().parse::<usize>() {
        Ok(value) if (min..=max).contains(&value) => Ok(Some(value)),
        _ if max == usize::MAX => Err(ApiError::invalid_input(format!(
            "{name} must be a whole number of at least {min}"
        ))),
        _ => Err(ApiError::invalid_input(format!(
            "{name} must be a whole number from {min} to {max}"
        ))),
    }
}
