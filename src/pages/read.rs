//! The read operations: list, tree, read, children, parent.

use std::collections::HashMap;

use crate::confluence::SubtreePage;
use crate::markdown::BodyFormat;
use crate::pages::{PageError, Pages, Placed, Reply, TreeNode};
use crate::titles::TitlePath;

/// Default number of paths a list returns at once.
pub const LIST_DEFAULT_LIMIT: usize = 500;
/// Largest number of paths a list returns at once.
pub const LIST_MAX_LIMIT: usize = 2000;
/// Default tree depth.
pub const TREE_DEFAULT_DEPTH: u32 = 2;
/// Largest tree depth.
pub const TREE_MAX_DEPTH: u32 = 10;
/// The most body characters one read returns: GPT Actions refuse responses of 100,000 characters.
pub const READ_MAX_CHARS: usize = 90_000;

impl Pages<'_> {
    /// Every page under the root as a title path, depth-first in tree order.
    pub(super) async fn list(&self, offset: usize, limit: usize) -> Result<Reply, PageError> {
        let pages = self.client.subtree(self.root_id(), None).await?;
        let paths = paths_depth_first(&pages, self.root_id());
        let total = paths.len();
        let paths: Vec<Vec<String>> = paths.into_iter().skip(offset).take(limit).collect();
        Ok(Reply::Listed {
            paths,
            offset,
            total,
        })
    }

    /// The root or `start` as one node, with the pages below it nested `depth` levels deep.
    pub(super) async fn tree(
        &self,
        depth: u32,
        start: Option<&TitlePath>,
    ) -> Result<Reply, PageError> {
        let (start_id, start, pages) = match start {
            Some(start) => {
                let start = self.resolve(start, false).await?;
                let pages = self.client.subtree(&start.page.id, Some(depth)).await?;
                (start.page.id.clone(), start.placed(), pages)
            }
            None => {
                // The root's own title heads the tree: looked up alongside the listing.
                let (root_title, pages) = tokio::try_join!(
                    self.client.page_title(self.root_id()),
                    self.client.subtree(self.root_id(), Some(depth)),
                )?;
                let root_title = root_title.ok_or(PageError::NotFound)?;
                (
                    self.root_id().to_owned(),
                    Placed::new(vec![root_title]),
                    pages,
                )
            }
        };
        let children_of = children_index(&pages);
        let root = TreeNode {
            children: tree_nodes(&children_of, &start_id, &start),
            page: start,
        };
        Ok(Reply::Tree {
            root,
            page_count: pages.len(),
        })
    }

    /// The page with its body in storage format or Markdown, sliced to fit a GPT's response limit.
    pub(super) async fn read(
        &self,
        title: &TitlePath,
        format: BodyFormat,
        offset: usize,
        max_chars: usize,
    ) -> Result<Reply, PageError> {
        let resolved = self.resolve(title, true).await?;
        let storage = resolved.page.body.as_deref().unwrap_or_default();
        let body = self.body_slice(&resolved, storage, format, offset, max_chars)?;
        Ok(Reply::Read(body))
    }

    /// Direct children.
    pub(super) async fn children(&self, title: &TitlePath) -> Result<Reply, PageError> {
        let resolved = self.resolve(title, false).await?;
        let children = self.client.children(&resolved.page.id).await?;
        let page = resolved.placed();
        Ok(Reply::Children(
            children
                .iter()
                .map(|child| page.child(&child.title))
                .collect(),
        ))
    }

    /// The page and its parent, each with its breadcrumb.
    pub(super) async fn parent(&self, title: &TitlePath) -> Result<Reply, PageError> {
        let resolved = self.resolve(title, false).await?;
        let parent = resolved.parent().ok_or(PageError::RootHasNoParent)?;
        Ok(Reply::Parent {
            page: resolved.placed(),
            parent,
        })
    }
}

/// The title paths (titles below `parent_id` down to the page) of the pages below `parent_id`,
/// depth-first in listing order.
fn paths_depth_first(pages: &[SubtreePage], parent_id: &str) -> Vec<Vec<String>> {
    let children_of = children_index(pages);
    let mut paths = Vec::with_capacity(pages.len());
    // An explicit stack instead of recursion: a pathological tree cannot overflow it.
    let mut stack: Vec<(&SubtreePage, Vec<String>)> = children_of
        .get(parent_id)
        .map(|children| {
            children
                .iter()
                .rev()
                .map(|page| (*page, vec![page.title.clone()]))
                .collect()
        })
        .unwrap_or_default();
    while let Some((page, path)) = stack.pop() {
        if let Some(children) = children_of.get(page.id.as_str()) {
            for child in children.iter().rev() {
                let mut child_path = path.clone();
                child_path.push(child.title.clone());
                stack.push((child, child_path));
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
    parent: &Placed,
) -> Vec<TreeNode> {
    children_of
        .get(parent_id)
        .map(|children| {
            children
                .iter()
                .map(|page| {
                    let placed = parent.child(&page.title);
                    TreeNode {
                        children: tree_nodes(children_of, &page.id, &placed),
                        page: placed,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}
