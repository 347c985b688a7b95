//! The write operations: create, update, rename, move, delete. Each does the fewest upstream calls:
//! one lookup per named page (with its version and ancestors) and one write, never a read-back.

use serde::Deserialize;
use serde_json::json;

use crate::confluence::{PageUpdate, UpstreamError};
use crate::error::ApiError;
use crate::http::router::{TitlePath, check_title};
use crate::http::service::OperationRequest;
use crate::markdown::{self, BodyError, BodyFormat, WritePolicy};
use crate::pages::{Outcome, Pages, Resolved, child_path, upstream_error};

/// `POST /pages` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    title: String,
    body: String,
    #[serde(default, alias = "parent_title")]
    #[serde(rename = "parentTitle")]
    parent_title: Option<String>,
    #[serde(default)]
    format: Option<FormatField>,
}

/// `PUT /pages/{title}` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    body: String,
    #[serde(default, rename = "expectedVersion", alias = "expected_version")]
    expected_version: Option<u64>,
    #[serde(default)]
    format: Option<FormatField>,
}

/// `POST /pages/rename` body; snake_case as the original, camelCase accepted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    #[serde(alias = "oldTitle")]
    old_title: String,
    #[serde(alias = "newTitle")]
    new_title: String,
}

/// `POST /pages/{title}/move` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    #[serde(rename = "newParentTitle", alias = "new_parent_title")]
    new_parent_title: String,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum FormatField {
    Markdown,
    Storage,
}

impl From<FormatField> for BodyFormat {
    fn from(field: FormatField) -> BodyFormat {
        match field {
            FormatField::Markdown => BodyFormat::Markdown,
            FormatField::Storage => BodyFormat::Storage,
        }
    }
}

impl Pages<'_> {
    fn write_policy(&self) -> WritePolicy {
        WritePolicy {
            allowed_macros: self.tenant.allowed_macros.clone(),
        }
    }

    /// Converts and checks a body before anything is sent upstream.
    fn storage_body(&self, body: &str, format: Option<FormatField>) -> Result<String, ApiError> {
        markdown::prepare_body(body, format.map(BodyFormat::from), &self.write_policy()).map_err(
            |error| match error {
                BodyError::Malformed(xhtml) => ApiError::invalid_input(format!(
                    "body is not well-formed storage XHTML at line {}, column {}: {}",
                    xhtml.line, xhtml.column, xhtml.message
                )),
                BodyError::Unsafe { .. } | BodyError::Character(_) => {
                    ApiError::invalid_input(error.to_string())
                }
            },
        )
    }

    /// `POST /pages`: creates a page under the root or `parentTitle`.
    pub(super) async fn create(&self, request: &OperationRequest) -> Result<Outcome, ApiError> {
        let body: CreateBody = request.json()?;
        check_title(&body.title)?;
        let storage = self.storage_body(&body.body, body.format)?;
        let (parent_id, parent_path) = match body.parent_title.as_deref() {
            Some(parent) if !parent.trim().is_empty() => {
                let parent = self.resolve(&TitlePath::parse_body(parent)?, false).await?;
                (parent.page.id, parent.path)
            }
            _ => (self.root_id().to_owned(), String::new()),
        };
        let page = self
            .client
            .create_page(&body.title, &parent_id, &storage)
            .await
            .map_err(|error| title_error(error, &body.title))?;
        Ok(Outcome::new(
            "page created",
            json!({
                "id": page.id,
                "title": page.title,
                "version": page.version,
                "path": child_path(&parent_path, &page.title),
            }),
        ))
    }

    /// `PUT /pages/{title}`: replaces the whole body, refusing a stale `expectedVersion`.
    pub(super) async fn update(
        &self,
        request: &OperationRequest,
        title: &TitlePath,
    ) -> Result<Outcome, ApiError> {
        let body: UpdateBody = request.json()?;
        let mut storage = self.storage_body(&body.body, body.format)?;
        // Markdown is merged block by block into the current body: unchanged blocks stay as stored.
        let markdown = body
            .format
            .map(BodyFormat::from)
            .unwrap_or_else(|| markdown::detect_format(&body.body))
            == BodyFormat::Markdown;
        let resolved = self.resolve(title, markdown).await?;
        if let Some(expected) = body.expected_version
            && expected != resolved.page.version
        {
            return Err(ApiError::version_conflict(resolved.page.version));
        }
        if let (true, Some(current)) = (markdown, resolved.page.body.as_deref()) {
            storage = markdown::merge_markdown(current, &body.body, &self.write_policy())
                .map_err(|error| ApiError::invalid_input(error.to_string()))?;
        }
        let page = self
            .client
            .update_page(&PageUpdate {
                id: resolved.page.id.clone(),
                title: resolved.page.title.clone(),
                new_version: resolved.page.version + 1,
                body: Some(storage),
                parent_id: None,
            })
            .await
            .map_err(upstream_error)?;
        Ok(Outcome::new(
            "page updated",
            json!({"title": page.title, "version": page.version, "path": resolved.path}),
        ))
    }

    /// `POST /pages/rename`: changes a page's title, keeping its body.
    pub(super) async fn rename(&self, request: &OperationRequest) -> Result<Outcome, ApiError> {
        let body: RenameBody = request.json()?;
        check_title(&body.new_title)?;
        let resolved = self
            .resolve(&TitlePath::parse_body(&body.old_title)?, false)
            .await?;
        refuse_root(&resolved, "renamed")?;
        let page = self
            .client
            .update_page(&PageUpdate {
                id: resolved.page.id.clone(),
                title: body.new_title.clone(),
                new_version: resolved.page.version + 1,
                body: None,
                parent_id: None,
            })
            .await
            .map_err(|error| title_error(error, &body.new_title))?;
        Ok(Outcome::new(
            "page renamed",
            json!({"oldTitle": resolved.page.title, "newTitle": page.title, "version": page.version}),
        ))
    }

    /// `POST /pages/{title}/move`: makes the page (with its subtree) the last child of another page.
    pub(super) async fn move_page(
        &self,
        request: &OperationRequest,
        title: &TitlePath,
    ) -> Result<Outcome, ApiError> {
        let body: MoveBody = request.json()?;
        let target = TitlePath::parse_body(&body.new_parent_title)?;
        // The two lookups are independent: one round trip instead of two.
        let (resolved, new_parent) =
            tokio::try_join!(self.resolve(title, false), self.resolve(&target, false))?;
        refuse_root(&resolved, "moved")?;
        let circular = new_parent.page.id == resolved.page.id
            || new_parent
                .page
                .ancestors
                .iter()
                .any(|ancestor| ancestor.id == resolved.page.id);
        if circular {
            return Err(ApiError::invalid_operation(
                "a page cannot be moved under itself or one of its descendants",
            ));
        }
        let (old_parent_title, _) = resolved.parent().unwrap_or_default();
        let already_there = resolved
            .page
            .ancestors
            .last()
            .is_some_and(|parent| parent.id == new_parent.page.id);
        if !already_there {
            self.client
                .update_page(&PageUpdate {
                    id: resolved.page.id.clone(),
                    title: resolved.page.title.clone(),
                    new_version: resolved.page.version + 1,
                    body: None,
                    parent_id: Some(new_parent.page.id.clone()),
                })
                .await
                .map_err(|error| title_error(error, &resolved.page.title))?;
        }
        Ok(Outcome::new(
            if already_there {
                "page already under that parent"
            } else {
                "page moved"
            },
            json!({
                "title": resolved.page.title,
                "oldParentTitle": old_parent_title,
                "newParentTitle": new_parent.page.title,
            }),
        ))
    }

    /// `DELETE /pages/{title}`: moves the page to Confluence's trash; its children move up.
    pub(super) async fn delete(&self, title: &TitlePath) -> Result<Outcome, ApiError> {
        let resolved = self.resolve(title, false).await?;
        refuse_root(&resolved, "deleted")?;
        self.client
            .delete_page(&resolved.page.id)
            .await
            .map_err(upstream_error)?;
        Ok(Outcome::new(
            "page moved to the trash",
            json!({"deletedTitle": resolved.page.title}),
        ))
    }
}

fn refuse_root(resolved: &Resolved, verb: &str) -> Result<(), ApiError> {
    if resolved.is_root() {
        Err(ApiError::invalid_operation(format!(
            "the root page of this endpoint cannot be {verb}"
        )))
    } else {
        Ok(())
    }
}

/// Like `upstream_error`, naming the title when it is the one already taken.
fn title_error(error: UpstreamError, title: &str) -> ApiError {
    match error {
        UpstreamError::TitleTaken => ApiError::title_taken(title),
        other => upstream_error(other),
    }
}
