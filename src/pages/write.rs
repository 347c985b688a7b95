//! The write operations: create, update, rename, move, delete. Each does the fewest upstream calls:
//! one lookup per named page (with its version and ancestors) and one write, never a read-back.

use crate::config::Deployment;
use crate::confluence::{PageUpdate, UpstreamError};
use crate::markdown::{self, BodyFormat, WritePolicy};
use crate::pages::{PageError, Pages, Placed, Reply, Resolved};
use crate::titles::{Title, TitlePath};

impl Pages<'_> {
    pub(super) fn write_policy(&self) -> WritePolicy {
        WritePolicy {
            allowed_macros: self.tenant.allowed_macros().to_vec(),
        }
    }

    /// Converts and checks a body before anything is sent upstream.
    pub(super) fn storage_body(
        &self,
        body: &str,
        format: Option<BodyFormat>,
    ) -> Result<String, PageError> {
        markdown::prepare_body(body, format, &self.write_policy()).map_err(PageError::InvalidBody)
    }

    /// Merges a Markdown `body` into `stored` block by block, through the render cache.
    pub(super) fn merged_body(&self, stored: &str, body: &str) -> Result<String, PageError> {
        self.renders
            .merge_markdown(self.tenant.name(), stored, body, &self.write_policy())
            .map_err(PageError::InvalidBody)
    }

    /// Creates a page under the root or `parent`.
    pub(super) async fn create(
        &self,
        title: Title,
        body: &str,
        parent: Option<&TitlePath>,
        format: Option<BodyFormat>,
    ) -> Result<Reply, PageError> {
        let storage = self.storage_body(body, format)?;
        let parent = match parent {
            Some(parent) => Some(self.resolve(parent, false).await?),
            None => None,
        };
        let parent_id = parent.as_ref().map_or_else(
            || self.root_id().to_owned(),
            |parent| parent.page.id.clone(),
        );
        let page = self
            .create_verified(title.as_str(), &parent_id, &storage)
            .await
            .map_err(|error| title_error(error, title.as_str()))?;
        let (id, version, new_title) = (page.id.clone(), page.version, page.title.clone());
        let placed = match parent {
            Some(parent) => parent.placed().child(&new_title),
            // Under the root, the answer's ancestors name the root (v1); v2 answers name only the
            // parent, so the root's title comes from the title cache or one lookup.
            None => match self.place(page) {
                Some(created) => created.placed(),
                None => {
                    let root_title = self
                        .client
                        .page_title(self.root_id())
                        .await?
                        .ok_or(PageError::NotFound)?;
                    Placed::new(vec![root_title]).child(&new_title)
                }
            },
        };
        Ok(Reply::Created {
            id,
            page: placed,
            version,
        })
    }

    /// Replaces the whole body, refusing a stale `expected_version`.
    pub(super) async fn update(
        &self,
        title: &TitlePath,
        body: &str,
        expected_version: Option<u64>,
        format: Option<BodyFormat>,
    ) -> Result<Reply, PageError> {
        let mut storage = self.storage_body(body, format)?;
        // Markdown is merged block by block into the current body: unchanged blocks stay as stored.
        let markdown =
            format.unwrap_or_else(|| markdown::detect_format(body)) == BodyFormat::Markdown;
        let resolved = self.resolve(title, markdown).await?;
        if let Some(expected) = expected_version
            && expected != resolved.page.version
        {
            return Err(PageError::VersionConflict {
                current: Some(resolved.page.version),
            });
        }
        if let (true, Some(current)) = (markdown, resolved.page.body.as_deref()) {
            storage = self.merged_body(current, body)?;
        }
        let page = self
            .update_verified(&PageUpdate {
                id: resolved.page.id.clone(),
                title: resolved.page.title.clone(),
                new_version: resolved.page.version + 1,
                body: Some(storage),
                parent_id: None,
            })
            .await
            .map_err(|error| title_error(error, &resolved.page.title))?;
        Ok(Reply::Updated {
            page: Placed {
                title: page.title,
                breadcrumb: resolved.breadcrumb,
            },
            version: page.version,
        })
    }

    /// Changes a page's title, keeping its body.
    pub(super) async fn rename(
        &self,
        page: &TitlePath,
        new_title: Title,
    ) -> Result<Reply, PageError> {
        let resolved = self.resolve(page, false).await?;
        refuse_root(&resolved, "renamed")?;
        let page = self
            .update_verified(&PageUpdate {
                id: resolved.page.id.clone(),
                title: new_title.as_str().to_owned(),
                new_version: resolved.page.version + 1,
                body: None,
                parent_id: None,
            })
            .await
            .map_err(|error| title_error(error, new_title.as_str()))?;
        Ok(Reply::Renamed {
            old_title: resolved.page.title,
            new_title: page.title,
            version: page.version,
        })
    }

    /// Makes the page (with its subtree) the last child of another page.
    pub(super) async fn move_page(
        &self,
        title: &TitlePath,
        new_parent: &TitlePath,
    ) -> Result<Reply, PageError> {
        // The two lookups are independent: one round trip instead of two. On Cloud the page comes
        // with its body because v2 can only move a page by rewriting it (body included); Data
        // Center's v1 moves without it, so its body is neither read nor sent again.
        let with_body = self.tenant.deployment() == Deployment::Cloud;
        let (resolved, new_parent) = tokio::try_join!(
            self.resolve(title, with_body),
            self.resolve(new_parent, false)
        )?;
        refuse_root(&resolved, "moved")?;
        let circular = new_parent.page.id == resolved.page.id
            || new_parent
                .page
                .ancestors
                .iter()
                .any(|ancestor| ancestor.id == resolved.page.id);
        if circular {
            return Err(PageError::CircularMove);
        }
        let old_parent_title = resolved
            .parent()
            .map(|parent| parent.title)
            .unwrap_or_default();
        let already_there = resolved
            .page
            .ancestors
            .last()
            .is_some_and(|parent| parent.id == new_parent.page.id);
        if !already_there {
            self.update_verified(&PageUpdate {
                id: resolved.page.id.clone(),
                title: resolved.page.title.clone(),
                new_version: resolved.page.version + 1,
                body: resolved.page.body.clone(),
                parent_id: Some(new_parent.page.id.clone()),
            })
            .await
            .map_err(|error| title_error(error, &resolved.page.title))?;
        }
        Ok(Reply::Moved {
            title: resolved.page.title,
            old_parent_title,
            new_parent_title: new_parent.page.title,
            already_there,
        })
    }

    /// Moves the page to Confluence's trash; its children move up.
    pub(super) async fn delete(&self, title: &TitlePath) -> Result<Reply, PageError> {
        let resolved = self.resolve(title, false).await?;
        refuse_root(&resolved, "deleted")?;
        self.delete_verified(&resolved.page.id).await?;
        Ok(Reply::Deleted {
            title: resolved.page.title,
        })
    }
}

fn refuse_root(resolved: &Resolved, verb: &'static str) -> Result<(), PageError> {
    if resolved.is_root() {
        Err(PageError::RootProtected { verb })
    } else {
        Ok(())
    }
}

/// The error of a write that sent `title`: a title clash names it.
fn title_error(error: UpstreamError, title: &str) -> PageError {
    match error {
        UpstreamError::TitleTaken => PageError::TitleTaken {
            title: title.to_owned(),
        },
        other => PageError::from(other),
    }
}
