//! The Cloud backend: every page operation on REST v2 (`/wiki/api/v2/…`), behind the same public
//! methods of [`ConfluenceClient`] as the v1 backend.
//!
//! v2 has no expansions, so what v1 folds into one request takes several here (CONFLUENCE.md §6):
//! - the space id is looked up once per client (`GET /spaces?keys=`) and kept;
//! - a page's ancestors come from `/pages/{id}/ancestors`, ids and types only, always fresh (the
//!   sandbox check relies on them); their titles come from a short-lived per-client cache, filled by
//!   every answer that names a page, and otherwise from one batched `GET /pages?id=…`;
//! - bad credentials look like a 404. A 404 from a collection means the space or the token, never a
//!   page; a 404 from `/pages/{id}…` is checked against a fresh space lookup before it is believed.
//!
//! Cloud folders (`type: folder`) may sit between pages. They are transparent: they never appear in
//! ancestors, paths or listings, and the pages inside a folder count as children of the folder's
//! nearest page ancestor.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::types::{
    V2BodyRequest, V2CreateRequest, V2List, V2Node, V2Page, V2Space, V2TitleRequest,
    V2UpdateRequest, VersionRequest,
};
use super::{
    Call, ConfluenceClient, Page, PageRef, PageUpdate, SubtreePage, UpstreamError, json_body,
    parse, require_id, within,
};

/// How long a page title learned from an answer may stand in for a fresh one in breadcrumbs.
const TITLE_TTL: Duration = Duration::from_secs(30);
/// Titles kept at most; the cache is cleared when it would grow beyond this.
const TITLE_CACHE_MAX: usize = 10_000;
/// v2's largest page size (`limit` 1–250), and the most ids one `GET /pages?id=` takes.
const V2_LIMIT: usize = 250;
/// The deepest `/descendants` answers in one sweep; deeper pages are fetched from the boundary.
const DESCENDANT_DEPTH: u32 = 5;

/// Route templates of v2, for logs and metrics.
mod route {
    pub const SPACES: &str = "/api/v2/spaces";
    pub const PAGES: &str = "/api/v2/pages";
    pub const PAGE: &str = "/api/v2/pages/{id}";
    pub const PAGE_TITLE: &str = "/api/v2/pages/{id}/title";
    pub const ANCESTORS: &str = "/api/v2/pages/{id}/ancestors";
    pub const DIRECT_CHILDREN: &str = "/api/v2/pages/{id}/direct-children";
    pub const FOLDER_CHILDREN: &str = "/api/v2/folders/{id}/direct-children";
    pub const DESCENDANTS: &str = "/api/v2/pages/{id}/descendants";
    pub const FOLDER_DESCENDANTS: &str = "/api/v2/folders/{id}/descendants";
}

/// What the v2 backend keeps per client.
#[derive(Debug)]
pub(super) struct V2State {
    /// `<base>/api/v2`.
    api_root: Url,
    /// The path of the configured base (`/wiki`, or `/ex/confluence/<cloudId>/wiki` through the gateway).
    base_path: String,
    space_id: OnceCell<String>,
    titles: Mutex<HashMap<String, (String, Instant)>>,
}

impl V2State {
    /// The state for a client whose configured base (ending in `/wiki`) is `site_root`.
    pub(super) fn new(site_root: &str) -> V2State {
        let api_root = Url::parse(&format!("{site_root}/api/v2"))
            .expect("a validated base URL plus a fixed path is a URL");
        let base_path = api_root.path().trim_end_matches("/api/v2").to_owned();
        V2State {
            api_root,
            base_path,
            space_id: OnceCell::new(),
            titles: Mutex::new(HashMap::new()),
        }
    }

    fn remember(&self, id: &str, title: &str) {
        let mut titles = self.titles.lock().unwrap_or_else(PoisonError::into_inner);
        if titles.len() >= TITLE_CACHE_MAX && !titles.contains_key(id) {
            titles.clear();
        }
        titles.insert(id.to_owned(), (title.to_owned(), Instant::now()));
    }

    fn forget(&self, id: &str) {
        self.titles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    fn cached_title(&self, id: &str) -> Option<String> {
        let titles = self.titles.lock().unwrap_or_else(PoisonError::into_inner);
        titles
            .get(id)
            .filter(|(_, learned)| learned.elapsed() < TITLE_TTL)
            .map(|(title, _)| title.clone())
    }
}

/// What a 404 from a v2 request means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// A collection of the space: it exists whenever the space does, so the token or space is wrong.
    SpaceOrToken,
    /// One page: missing, or the token was refused; a fresh space lookup tells which.
    PageOrToken,
}

impl ConfluenceClient {
    fn v2(&self) -> &V2State {
        self.inner
            .v2
            .as_ref()
            .expect("v2 methods are only called on Cloud clients, which always have v2 state")
    }

    /// `<base>/api/v2` + segments + query.
    fn v2_url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.v2().api_root.clone();
        url.path_segments_mut()
            .expect("the v2 root was checked to be an http(s) URL")
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    pub(super) async fn v2_page_by_title(
        &self,
        title: &str,
        with_body: bool,
    ) -> Result<Option<Page>, UpstreamError> {
        const OPERATION: &str = "page_by_title";
        if title.is_empty() {
            return Ok(None);
        }
        let deadline = self.deadline();
        within(deadline, async {
            let space_id = self.v2_space_id(deadline).await?;
            let mut query = vec![
                ("space-id", space_id.as_str()),
                ("title", title),
                ("status", "current"),
            ];
            if with_body {
                query.push(("body-format", "storage"));
            }
            let url = self.v2_url(&["pages"], &query);
            let found: V2List<V2Page> = self
                .v2_get(
                    OPERATION,
                    route::PAGES,
                    url,
                    deadline,
                    Missing::SpaceOrToken,
                )
                .await?;
            // v2 matches the whole title ignoring case; prefer the exact spelling if both came back.
            let wanted = title.to_lowercase();
            let mut results: Vec<V2Page> = found
                .results
                .into_iter()
                .filter(|page| page.title.to_lowercase() == wanted)
                .collect();
            let Some(exact) = results
                .iter()
                .position(|page| page.title == title)
                .or((!results.is_empty()).then_some(0))
            else {
                return Ok(None);
            };
            let page = results.swap_remove(exact);
            self.v2_complete(OPERATION, page, with_body, deadline)
                .await
                .map(Some)
        })
        .await
    }

    pub(super) async fn v2_page_by_id(
        &self,
        id: &str,
        with_body: bool,
    ) -> Result<Option<Page>, UpstreamError> {
        const OPERATION: &str = "page_by_id";
        if id.is_empty() {
            return Ok(None);
        }
        let deadline = self.deadline();
        within(deadline, async {
            let query: &[(&str, &str)] = if with_body {
                &[("body-format", "storage")]
            } else {
                &[]
            };
            let url = self.v2_url(&["pages", id], query);
            match self
                .v2_get::<V2Page>(OPERATION, route::PAGE, url, deadline, Missing::PageOrToken)
                .await
            {
                Ok(page) => self
                    .v2_complete(OPERATION, page, with_body, deadline)
                    .await
                    .map(Some),
                Err(UpstreamError::NotFound) => Ok(None),
                Err(other) => Err(other),
            }
        })
        .await
    }

    /// Turns a v2 page into a [`Page`]: fresh ancestor ids, titles from the cache or one batch.
    async fn v2_complete(
        &self,
        operation: &'static str,
        page: V2Page,
        with_body: bool,
        deadline: Instant,
    ) -> Result<Page, UpstreamError> {
        let version = page.version.ok_or_else(|| {
            UpstreamError::Protocol(format!("page {} came without its version", page.id))
        })?;
        let body = if with_body {
            let storage = page.body.and_then(|body| body.storage).ok_or_else(|| {
                UpstreamError::Protocol(format!("page {} came without its body", page.id))
            })?;
            Some(storage.value)
        } else {
            None
        };
        self.v2().remember(&page.id, &page.title);
        let url = self.v2_url(
            &["pages", &page.id, "ancestors"],
            &[("limit", &V2_LIMIT.to_string())],
        );
        let ancestors: V2List<V2Node> = self
            .v2_get(
                operation,
                route::ANCESTORS,
                url,
                deadline,
                Missing::PageOrToken,
            )
            .await?;
        // Folders are transparent: only pages make up the chain.
        let ids: Vec<String> = ancestors
            .results
            .into_iter()
            .filter(V2Node::is_page)
            .map(|node| node.id)
            .collect();
        let titles = self.v2_titles(operation, &ids, deadline).await?;
        let ancestors = ids
            .into_iter()
            .map(|id| {
                let title = titles.get(&id).cloned().ok_or_else(|| {
                    UpstreamError::Protocol(format!("ancestor {id} came without its title"))
                })?;
                Ok(PageRef { id, title })
            })
            .collect::<Result<Vec<_>, UpstreamError>>()?;
        Ok(Page {
            id: page.id,
            title: page.title,
            version: version.number,
            ancestors,
            body,
        })
    }

    /// The titles of `ids`: cached ones as they are, the rest in batches of `GET /pages?id=…`.
    pub(super) async fn v2_titles(
        &self,
        operation: &'static str,
        ids: &[String],
        deadline: Instant,
    ) -> Result<HashMap<String, String>, UpstreamError> {
        let mut titles = HashMap::new();
        let mut missing = Vec::new();
        for id in ids {
            match self.v2().cached_title(id) {
                Some(title) => {
                    titles.insert(id.clone(), title);
                }
                None => missing.push(id.as_str()),
            }
        }
        for batch in missing.chunks(V2_LIMIT) {
            let joined = batch.join(",");
            let limit = V2_LIMIT.to_string();
            let url = self.v2_url(&["pages"], &[("id", joined.as_str()), ("limit", &limit)]);
            let pages: Vec<V2Page> = self
                .v2_collect(
                    operation,
                    route::PAGES,
                    url,
                    deadline,
                    Missing::SpaceOrToken,
                )
                .await?;
            for page in pages {
                self.v2().remember(&page.id, &page.title);
                titles.insert(page.id, page.title);
            }
        }
        Ok(titles)
    }

    pub(super) async fn v2_children(&self, id: &str) -> Result<Vec<PageRef>, UpstreamError> {
        const OPERATION: &str = "children";
        require_id(id)?;
        let deadline = self.deadline();
        within(deadline, async {
            let mut children = Vec::new();
            // Folders are opened in place, so their pages keep the folder's position.
            let mut pending = vec![(id.to_owned(), false)];
            let mut seen = HashSet::new();
            let mut listing = Vec::new();
            while let Some((parent, is_folder)) = pending.pop() {
                let (segment, route) = if is_folder {
                    ("folders", route::FOLDER_CHILDREN)
                } else {
                    ("pages", route::DIRECT_CHILDREN)
                };
                let url = self.v2_url(
                    &[segment, &parent, "direct-children"],
                    &[("limit", &V2_LIMIT.to_string())],
                );
                let nodes: Vec<V2Node> = self
                    .v2_collect(OPERATION, route, url, deadline, Missing::PageOrToken)
                    .await?;
                listing.push((parent, nodes));
                // Children of this listing are expanded before later siblings: depth-first.
                let (_, nodes) = listing.last().expect("just pushed");
                for node in nodes.iter().rev().filter(|node| node.is_folder()) {
                    pending.push((node.id.clone(), true));
                }
            }
            let by_parent: HashMap<String, Vec<V2Node>> = listing.into_iter().collect();
            let mut stack: Vec<&V2Node> = by_parent
                .get(id)
                .map(|nodes| nodes.iter().rev().collect())
                .unwrap_or_default();
            while let Some(node) = stack.pop() {
                if !seen.insert(node.id.clone()) {
                    continue;
                }
                if node.is_folder() {
                    if let Some(inside) = by_parent.get(&node.id) {
                        stack.extend(inside.iter().rev());
                    }
                } else if node.is_page() {
                    let title = node.title.clone().unwrap_or_default();
                    self.v2().remember(&node.id, &title);
                    children.push(PageRef {
                        id: node.id.clone(),
                        title,
                    });
                }
            }
            Ok(children)
        })
        .await
    }

    /// The subtree from paged `/descendants` sweeps of up to [`DESCENDANT_DEPTH`] levels; the pages
    /// (and folders) on a sweep's last level that may have more below start sweeps of their own.
    pub(super) async fn v2_subtree(
        &self,
        root_id: &str,
        max_depth: Option<u32>,
    ) -> Result<Vec<SubtreePage>, UpstreamError> {
        const OPERATION: &str = "subtree";
        require_id(root_id)?;
        let max_depth = max_depth.unwrap_or(u32::MAX);
        if max_depth == 0 {
            return Ok(Vec::new());
        }
        let deadline = self.deadline();
        within(deadline, async {
            // Every node seen: id → (parent id, is folder, title), in listing order.
            let mut nodes: Vec<V2Node> = Vec::new();
            let mut known: HashMap<String, usize> = HashMap::new();
            // Page depth below the root, counting pages only (folders are transparent).
            let mut page_depth: HashMap<String, u32> = HashMap::from([(root_id.to_owned(), 0)]);
            let mut sweeps = vec![(root_id.to_owned(), false)];
            let levels = max_depth.min(DESCENDANT_DEPTH);
            while !sweeps.is_empty() {
                let depth = levels.to_string();
                let answers: Vec<(String, Vec<V2Node>)> = stream::iter(sweeps.clone())
                    .map(|(from, is_folder)| {
                        let depth = depth.clone();
                        async move {
                            let (segment, route) = if is_folder {
                                ("folders", route::FOLDER_DESCENDANTS)
                            } else {
                                ("pages", route::DESCENDANTS)
                            };
                            let limit = V2_LIMIT.to_string();
                            let url = self.v2_url(
                                &[segment, &from, "descendants"],
                                &[("depth", depth.as_str()), ("limit", limit.as_str())],
                            );
                            let found = self
                                .v2_collect(OPERATION, route, url, deadline, Missing::PageOrToken)
                                .await?;
                            Ok::<_, UpstreamError>((from, found))
                        }
                    })
                    .buffered(self.inner.max_concurrent)
                    .try_collect()
                    .await?;
                let mut next = Vec::new();
                for (from, found) in answers {
                    // Depth of each node below this sweep's start, from the parent links.
                    let mut sweep_depth: HashMap<String, u32> = HashMap::from([(from.clone(), 0)]);
                    for node in found {
                        if known.contains_key(&node.id) || node.id == root_id {
                            continue;
                        }
                        let Some(parent) = node.parent_id.clone() else {
                            continue;
                        };
                        // A node whose parent is not (yet) placed moved during the sweep: skip it.
                        let Some(&parent_sweep_depth) = sweep_depth.get(&parent) else {
                            continue;
                        };
                        let Some(&parent_pages) = page_depth.get(&parent) else {
                            continue;
                        };
                        let own_sweep_depth = parent_sweep_depth + 1;
                        let own_pages = parent_pages + u32::from(node.is_page());
                        sweep_depth.insert(node.id.clone(), own_sweep_depth);
                        page_depth.insert(node.id.clone(), own_pages);
                        let on_boundary = own_sweep_depth >= levels;
                        if on_boundary
                            && own_pages < max_depth
                            && (node.is_page() || node.is_folder())
                        {
                            next.push((node.id.clone(), node.is_folder()));
                        }
                        if node.is_page() || node.is_folder() {
                            known.insert(node.id.clone(), nodes.len());
                            nodes.push(node);
                        }
                    }
                }
                sweeps = next;
            }
            // Each page's parent is its nearest page ancestor: folders are skipped over.
            let page_parent = |node: &V2Node| -> Option<String> {
                let mut parent = node.parent_id.clone()?;
                loop {
                    if parent == root_id {
                        return Some(parent);
                    }
                    let above = &nodes[*known.get(&parent)?];
                    if above.is_page() {
                        return Some(parent);
                    }
                    parent = above.parent_id.clone()?;
                }
            };
            let mut placed: Vec<(u32, SubtreePage)> = Vec::new();
            for node in nodes.iter().filter(|node| node.is_page()) {
                let depth = page_depth.get(&node.id).copied().unwrap_or(u32::MAX);
                let Some(parent_id) = page_parent(node) else {
                    continue;
                };
                if depth > max_depth {
                    continue;
                }
                let title = node.title.clone().unwrap_or_default();
                self.v2().remember(&node.id, &title);
                placed.push((
                    depth,
                    SubtreePage {
                        id: node.id.clone(),
                        title,
                        parent_id,
                    },
                ));
            }
            placed.sort_by_key(|(depth, _)| *depth);
            Ok(placed.into_iter().map(|(_, page)| page).collect())
        })
        .await
    }

    pub(super) async fn v2_create_page(
        &self,
        title: &str,
        parent_id: &str,
        storage: &str,
    ) -> Result<Page, UpstreamError> {
        const OPERATION: &str = "create_page";
        require_id(parent_id)?;
        let deadline = self.deadline();
        within(deadline, async {
            let space_id = self.v2_space_id(deadline).await?;
            let request = V2CreateRequest {
                space_id: &space_id,
                status: "current",
                title,
                parent_id,
                body: V2BodyRequest::storage(storage),
            };
            let url = self.v2_url(&["pages"], &[]);
            self.v2_write(
                OPERATION,
                Method::POST,
                route::PAGES,
                url,
                &request,
                deadline,
            )
            .await
        })
        .await
    }

    /// A v2 update. A title-only change (no body, no parent) is `PUT /pages/{id}/title`, which takes
    /// no version; anything else is `PUT /pages/{id}`, which needs the body: when the caller has none
    /// (a move), the current body is read first (one more request).
    pub(super) async fn v2_update_page(&self, update: &PageUpdate) -> Result<Page, UpstreamError> {
        const OPERATION: &str = "update_page";
        require_id(&update.id)?;
        let deadline = self.deadline();
        within(deadline, async {
            if update.body.is_none() && update.parent_id.is_none() {
                let request = V2TitleRequest {
                    status: "current",
                    title: &update.title,
                };
                let url = self.v2_url(&["pages", &update.id, "title"], &[]);
                let mut page = self
                    .v2_write(
                        OPERATION,
                        Method::PUT,
                        route::PAGE_TITLE,
                        url,
                        &request,
                        deadline,
                    )
                    .await?;
                // An answer without a version still means the title changed.
                if page.version == 0 {
                    page.version = update.new_version;
                }
                return Ok(page);
            }
            let body = match &update.body {
                Some(body) => body.clone(),
                None => {
                    let url = self.v2_url(&["pages", &update.id], &[("body-format", "storage")]);
                    let current: V2Page = self
                        .v2_get(OPERATION, route::PAGE, url, deadline, Missing::PageOrToken)
                        .await?;
                    current
                        .body
                        .and_then(|body| body.storage)
                        .map(|storage| storage.value)
                        .unwrap_or_default()
                }
            };
            let request = V2UpdateRequest {
                id: &update.id,
                status: "current",
                title: &update.title,
                body: V2BodyRequest::storage(&body),
                version: VersionRequest {
                    number: update.new_version,
                },
                parent_id: update.parent_id.as_deref(),
            };
            let url = self.v2_url(&["pages", &update.id], &[]);
            self.v2_write(OPERATION, Method::PUT, route::PAGE, url, &request, deadline)
                .await
        })
        .await
    }

    pub(super) async fn v2_delete_page(&self, id: &str) -> Result<(), UpstreamError> {
        const OPERATION: &str = "delete_page";
        require_id(id)?;
        let deadline = self.deadline();
        within(deadline, async {
            let call = Call {
                operation: OPERATION,
                method: Method::DELETE,
                route: route::PAGE,
                url: self.v2_url(&["pages", id], &[]),
                body: None,
            };
            match self.send(&call, deadline).await {
                Ok(_) => {
                    self.v2().forget(id);
                    Ok(())
                }
                Err(UpstreamError::NotFound) => Err(self
                    .v2_explain_404(OPERATION, Missing::PageOrToken, deadline)
                    .await),
                Err(other) => Err(other),
            }
        })
        .await
    }

    /// Sends a page write and reads the page it answers with (v2 answers writes with the page).
    /// The returned page has no ancestors: v2 writes name only the parent.
    async fn v2_write(
        &self,
        operation: &'static str,
        method: Method,
        route: &'static str,
        url: Url,
        request: &impl serde::Serialize,
        deadline: Instant,
    ) -> Result<Page, UpstreamError> {
        let call = Call {
            operation,
            method,
            route,
            url,
            body: Some(json_body(request)?),
        };
        let answer = match self.send(&call, deadline).await {
            Ok(answer) => answer,
            Err(UpstreamError::NotFound) => {
                return Err(self
                    .v2_explain_404(operation, Missing::PageOrToken, deadline)
                    .await);
            }
            Err(other) => return Err(other),
        };
        let page: V2Page = parse(&answer)?;
        self.v2().remember(&page.id, &page.title);
        Ok(Page {
            version: page.version.map_or(0, |version| version.number),
            id: page.id,
            title: page.title,
            ancestors: Vec::new(),
            body: None,
        })
    }

    /// The endpoint's space id, looked up once (`GET /spaces?keys=`) and kept for the client's life.
    async fn v2_space_id(&self, deadline: Instant) -> Result<String, UpstreamError> {
        self.v2()
            .space_id
            .get_or_try_init(|| async {
                self.v2_lookup_space("space_id", deadline)
                    .await?
                    .ok_or(UpstreamError::CredentialsRejected)
            })
            .await
            .cloned()
    }

    /// A fresh space lookup: `Some(id)` when the token can see the space, `None` when it cannot (a
    /// refused token and a missing space look alike on v2).
    async fn v2_lookup_space(
        &self,
        operation: &'static str,
        deadline: Instant,
    ) -> Result<Option<String>, UpstreamError> {
        let key = self.inner.space_key.as_str();
        let url = self.v2_url(&["spaces"], &[("keys", key)]);
        let call = Call {
            operation,
            method: Method::GET,
            route: route::SPACES,
            url,
            body: None,
        };
        let spaces: V2List<V2Space> = match self.send(&call, deadline).await {
            Ok(answer) => parse(&answer)?,
            Err(UpstreamError::NotFound) => return Ok(None),
            Err(other) => return Err(other),
        };
        Ok(spaces
            .results
            .into_iter()
            .find(|space| space.key.eq_ignore_ascii_case(key) || space.key.is_empty())
            .map(|space| space.id))
    }

    /// What a v2 404 means: a missing page only if the token still sees the space.
    async fn v2_explain_404(
        &self,
        operation: &'static str,
        missing: Missing,
        deadline: Instant,
    ) -> UpstreamError {
        match missing {
            Missing::SpaceOrToken => UpstreamError::CredentialsRejected,
            Missing::PageOrToken => match self.v2_lookup_space(operation, deadline).await {
                Ok(Some(_)) => UpstreamError::NotFound,
                Ok(None) => UpstreamError::CredentialsRejected,
                Err(other) => other,
            },
        }
    }

    async fn v2_get<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        route: &'static str,
        url: Url,
        deadline: Instant,
        missing: Missing,
    ) -> Result<T, UpstreamError> {
        match self.get_json(operation, route, url, deadline).await {
            Err(UpstreamError::NotFound) => {
                Err(self.v2_explain_404(operation, missing, deadline).await)
            }
            other => other,
        }
    }

    /// Follows `_links.next` from `first` until it is absent (v2's reliable end signal).
    async fn v2_collect<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        route: &'static str,
        first: Url,
        deadline: Instant,
        missing: Missing,
    ) -> Result<Vec<T>, UpstreamError> {
        let mut all = Vec::new();
        let mut visited = HashSet::new();
        let mut url = first;
        loop {
            let page: V2List<T> = self
                .v2_get(operation, route, url.clone(), deadline, missing)
                .await?;
            all.extend(page.results);
            let Some(next) = page.links.next else {
                return Ok(all);
            };
            visited.insert(url.to_string());
            url = self.v2_resolve_next(&next, page.links.base.as_deref())?;
            if visited.contains(url.as_str()) {
                return Err(UpstreamError::Protocol(
                    "pagination links go round in a circle".to_owned(),
                ));
            }
        }
    }

    /// Resolves a v2 `_links.next`. It is site-relative and already holds the context
    /// (`/wiki/api/v2/pages?cursor=…`): joined to the host root it would miss the API gateway's
    /// `/ex/confluence/<cloudId>` prefix, so only the part from `/api/v2/` on is kept and joined to
    /// the configured base. Absolute links must point at the configured base or the site's `base`.
    fn v2_resolve_next(&self, next: &str, links_base: Option<&str>) -> Result<Url, UpstreamError> {
        let unexpected = || UpstreamError::Protocol(format!("unexpected pagination link {next:?}"));
        let relative = if Url::parse(next).is_ok() {
            [links_base, Some(self.inner.site_root.as_str())]
                .into_iter()
                .flatten()
                .find_map(|base| next.strip_prefix(base.trim_end_matches('/')))
                .map(|rest| format!("/wiki{rest}"))
                .ok_or_else(|| {
                    UpstreamError::Protocol(
                        "a pagination link leaves the configured site".to_owned(),
                    )
                })?
        } else {
            next.to_owned()
        };
        let at = relative.find("/api/v2/").ok_or_else(unexpected)?;
        let prefix = &relative[..at];
        let v2 = self.v2();
        if !(prefix.is_empty() || prefix == "/wiki" || prefix == v2.base_path) {
            return Err(unexpected());
        }
        Url::parse(&format!("{}{}", self.inner.site_root, &relative[at..]))
            .map_err(|e| UpstreamError::Protocol(format!("unusable pagination link: {e}")))
    }
}
