//! Full-text search inside the sandbox. CQL narrows the search to the root's subtree, but CQL alone
//! is never trusted: every hit is placed by its own ancestors, as every other page is, and hits
//! outside the subtree are dropped.

use crate::confluence::{plain_search_words, subtree_text_cql};
use crate::pages::{PageError, Pages, Reply, SearchHit};

/// Default number of hits a search returns.
pub const SEARCH_DEFAULT_LIMIT: usize = 10;
/// Largest number of hits a search returns at once.
pub const SEARCH_MAX_LIMIT: usize = 50;

impl Pages<'_> {
    /// The pages of the sandbox (the root included) whose title or body contains the words of
    /// `query`, `limit` of them from `offset`. One upstream call per window.
    pub(super) async fn search(
        &self,
        query: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Reply, PageError> {
        let words = plain_search_words(query);
        if words.is_empty() {
            return Err(PageError::NothingToSearch);
        }
        let cql = subtree_text_cql(self.root_id(), &words);
        let results = self.client.search_pages(&cql, offset, limit).await?;
        let found = results.hits.len();
        let hits: Vec<SearchHit> = results
            .hits
            .into_iter()
            .filter_map(|hit| {
                let version = hit.page.version;
                let placed = self.place(hit.page)?.placed();
                Some(SearchHit {
                    page: placed,
                    excerpt: hit.excerpt,
                    version,
                    last_modified: hit.last_modified,
                })
            })
            .collect();
        if hits.len() < found {
            tracing::warn!(
                dropped = found - hits.len(),
                "search returned pages outside the sandbox; they were dropped"
            );
        }
        Ok(Reply::Searched {
            hits,
            offset,
            next_offset: results.more.then(|| offset.saturating_add(limit)),
        })
    }
}
