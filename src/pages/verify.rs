//! Writes whose outcome is unknown. A write that went out but got no answer (no answer in time, a
//! broken connection, a gateway that gave up) may or may not have been applied, and retrying it
//! blindly could apply it twice. Each write here runs through a wrapper that, in that case, looks
//! the page up within the reserve of the deadline the client kept for it: when the page shows the
//! write, the write succeeded; otherwise the outcome stays unknown and the client is told to read
//! the page before retrying.

use crate::confluence::{Page, PageUpdate, UpstreamError};
use crate::pages::Pages;

impl Pages<'_> {
    /// Creates a page; an unknown outcome is settled by looking the title up under the parent.
    pub(super) async fn create_verified(
        &self,
        title: &str,
        parent_id: &str,
        storage: &str,
    ) -> Result<Page, UpstreamError> {
        match self.client.create_page(title, parent_id, storage).await {
            Err(UpstreamError::WriteOutcomeUnknown) => {
                let found = self
                    .within_reserve(self.client.page_by_title(title, false))
                    .await;
                match found {
                    Ok(Some(page))
                        if page.title == title
                            && page
                                .ancestors
                                .last()
                                .is_some_and(|parent| parent.id == parent_id) =>
                    {
                        tracing::info!("a create without an answer was applied");
                        Ok(page)
                    }
                    _ => Err(UpstreamError::WriteOutcomeUnknown),
                }
            }
            other => other,
        }
    }

    /// Updates a page (body, title or parent); an unknown outcome is settled by reading the page:
    /// it was applied when the page has the new version with the new title and parent.
    pub(super) async fn update_verified(&self, update: &PageUpdate) -> Result<Page, UpstreamError> {
        match self.client.update_page(update).await {
            Err(UpstreamError::WriteOutcomeUnknown) => {
                let found = self
                    .within_reserve(self.client.page_by_id(&update.id, false))
                    .await;
                match found {
                    Ok(Some(page))
                        if page.version == update.new_version
                            && page.title == update.title
                            && update.parent_id.as_ref().is_none_or(|parent_id| {
                                page.ancestors
                                    .last()
                                    .is_some_and(|parent| &parent.id == parent_id)
                            }) =>
                    {
                        tracing::info!("an update without an answer was applied");
                        Ok(page)
                    }
                    _ => Err(UpstreamError::WriteOutcomeUnknown),
                }
            }
            other => other,
        }
    }

    /// Deletes a page; an unknown outcome is settled by looking for it: gone means deleted.
    pub(super) async fn delete_verified(&self, id: &str) -> Result<(), UpstreamError> {
        match self.client.delete_page(id).await {
            Err(UpstreamError::WriteOutcomeUnknown) => {
                match self.within_reserve(self.client.page_by_id(id, false)).await {
                    Ok(None) | Err(UpstreamError::NotFound) => {
                        tracing::info!("a delete without an answer was applied");
                        Ok(())
                    }
                    _ => Err(UpstreamError::WriteOutcomeUnknown),
                }
            }
            other => other,
        }
    }

    /// Runs a verification lookup within the reserve the client kept for it.
    async fn within_reserve<T>(
        &self,
        lookup: impl Future<Output = Result<T, UpstreamError>>,
    ) -> Result<T, UpstreamError> {
        tokio::time::timeout(self.client.verification_reserve(), lookup)
            .await
            .unwrap_or(Err(UpstreamError::Timeout))
    }
}
