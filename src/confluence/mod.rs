//! Talking to Confluence: the only module that sends requests upstream.
//!
//! [`ConfluenceClient`] talks to one space with one credential, through two backends behind the same
//! public methods: Data Center speaks REST v1 (`/rest/api/content…`; lookups fold `version` and
//! `ancestors` into `expand=`, writes ask for them in the response instead of reading back), and Cloud
//! speaks REST v2 (`/wiki/api/v2/pages…`, see `v2`), using v1 only where v2 has no equivalent (CQL).
//! Every public call is one operation with one deadline and makes the fewest requests its API allows.
//! All requests go through one private `send`, which holds the concurrency permit, retries what is
//! safe to retry, logs at debug level and feeds [`record`].

mod error;
mod retry;
mod search;
mod types;
mod v2;

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use tokio::time::Instant;

pub use error::UpstreamError;
use retry::{FailedAttempt, Failure, Idempotency, RetryPolicy};
pub use search::{SearchHit, SearchResults, plain_excerpt, plain_search_words, subtree_text_cql};
use types::{
    BodyRequest, Content, ContentArray, ContentRef, CreateRequest, IdRef, Links, SpaceKey,
};

use crate::config::{BaseUrl, Deployment, Tenant, UpstreamAuth};

/// Everything a client needs to reach one space of one Confluence. Built from a validated
/// [`Tenant`], so nothing here is checked again.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// The site or context root, e.g. `https://x.atlassian.net/wiki` or `https://host/ctx`.
    pub base_url: BaseUrl,
    /// Cloud or Data Center.
    pub deployment: Deployment,
    /// The credential.
    pub auth: UpstreamAuth,
    /// The space's canonical key (v1 lookups compare it case-sensitively on DC).
    pub space_key: String,
    /// How long one operation may take, retries and pagination included.
    pub deadline: Duration,
    /// How many requests this endpoint may have in flight at once.
    pub max_concurrent: NonZeroUsize,
}

impl UpstreamSettings {
    /// The settings of `tenant`'s space.
    pub fn of(tenant: &Tenant) -> UpstreamSettings {
        UpstreamSettings {
            base_url: tenant.base_url().clone(),
            deployment: tenant.deployment(),
            auth: tenant.credentials().clone(),
            space_key: tenant.space_key().to_owned(),
            deadline: tenant.upstream_timeout(),
            max_concurrent: tenant.upstream_max_concurrent(),
        }
    }
}

/// A page's id and title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRef {
    /// Confluence's content id.
    pub id: String,
    /// The title, as stored.
    pub title: String,
}

impl From<ContentRef> for PageRef {
    fn from(reference: ContentRef) -> PageRef {
        PageRef {
            id: reference.id,
            title: reference.title,
        }
    }
}

/// A page with its version and position in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Confluence's content id.
    pub id: String,
    /// The title, as stored.
    pub title: String,
    /// The current version number; an update must send this plus one.
    pub version: u64,
    /// The pages above this one, root-first: the last entry is the direct parent. Cloud folders
    /// between pages are left out. Empty in the answers of writes on Cloud (v2 writes name only the
    /// parent).
    pub ancestors: Vec<PageRef>,
    /// The storage-format body, when it was asked for.
    pub body: Option<String>,
}

/// One page of a subtree listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtreePage {
    /// Confluence's content id.
    pub id: String,
    /// The title, as stored.
    pub title: String,
    /// The id of the page's direct parent.
    pub parent_id: String,
}

/// A change to an existing page: new content, new title, new parent, or several at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageUpdate {
    /// The page's id.
    pub id: String,
    /// The title to keep (the current one) or to rename to.
    pub title: String,
    /// The current version plus one; anything else is a [`UpstreamError::VersionConflict`].
    pub new_version: u64,
    /// The new storage-format body; `None` renames or moves without touching the content. A Cloud
    /// move rewrites the page, body included: pass the current body to save the read it costs.
    pub body: Option<String>,
    /// `Some`: move the page (with its subtree) to be the last child of this page.
    pub parent_id: Option<String>,
}

/// The process-wide HTTP client: one connection pool shared by every endpoint.
///
/// Redirects are not followed: a redirect from Confluence means a wrong `base_url` (and following
/// one would turn a POST into a GET), so it surfaces as an error that says so.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("conflagent/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(32)
        .tcp_keepalive(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect(
            "a client built from constant settings and the bundled rustls backend always builds",
        )
}

/// A client for one endpoint's space. Cheap to clone: clones share the settings and the semaphore.
#[derive(Debug, Clone)]
pub struct ConfluenceClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// `https://host/ctx`, without a trailing slash: where context-relative links are resolved.
    site_root: String,
    /// `https://host/ctx/rest/api`.
    api_root: Url,
    authorization: HeaderValue,
    space_key: String,
    deadline: Duration,
    max_concurrent: usize,
    permits: Semaphore,
    retry: RetryPolicy,
    /// Cloud: the v2 backend's state (space id, title cache). `None` on Data Center.
    v2: Option<v2::V2State>,
}

/// v1 page size asked for in listings; servers cap it (DC child/page at 200) and echo what they used.
const PAGE_LIMIT: &str = "200";

/// Size of a collection-valued sub-expansion (`children.page`) when the server does not say.
const SUB_EXPANSION_LIMIT: u64 = 25;

/// Route templates, for logs and metrics (never raw paths: they hold ids and titles).
mod route {
    pub const CONTENT: &str = "/rest/api/content";
    pub const CONTENT_ID: &str = "/rest/api/content/{id}";
    pub const CHILD_PAGE: &str = "/rest/api/content/{id}/child/page";
    pub const CONTENT_SEARCH: &str = "/rest/api/content/search";
}

/// One upstream request, described well enough to be sent again.
struct Call {
    operation: &'static str,
    method: Method,
    route: &'static str,
    url: Url,
    body: Option<Bytes>,
}

impl ConfluenceClient {
    /// Builds a client that sends its requests through `http`, the process-wide client from
    /// [`http_client`].
    pub fn new(http: reqwest::Client, settings: UpstreamSettings) -> ConfluenceClient {
        let site_root = settings.base_url.as_str().to_owned();
        let api_root = Url::parse(&format!("{site_root}/rest/api"))
            .expect("a validated base URL plus a fixed path is a URL");
        let authorization = authorization_header(&settings.auth);
        let max_concurrent = settings.max_concurrent.get().min(Semaphore::MAX_PERMITS);
        let v2 = match settings.deployment {
            Deployment::Cloud => Some(v2::V2State::new(&site_root)),
            Deployment::DataCenter => None,
        };
        ConfluenceClient {
            inner: Arc::new(Inner {
                http,
                site_root,
                api_root,
                authorization,
                space_key: settings.space_key,
                deadline: settings.deadline,
                max_concurrent,
                permits: Semaphore::new(max_concurrent),
                retry: RetryPolicy::default(),
                v2,
            }),
        }
    }

    /// The current page with this title in the space, with its version and ancestors (and body when
    /// asked). DC: one request, `GET /rest/api/content?spaceKey&title&…&expand=…` (exact title).
    /// Cloud: `GET /api/v2/pages?space-id&title` (whole title, ignoring case) and the page's
    /// `/ancestors`, plus one `GET /pages?id=…` for ancestor titles not cached.
    pub async fn page_by_title(
        &self,
        title: &str,
        with_body: bool,
    ) -> Result<Option<Page>, UpstreamError> {
        if self.inner.v2.is_some() {
            return self.v2_page_by_title(title, with_body).await;
        }
        const OPERATION: &str = "page_by_title";
        if title.is_empty() {
            return Ok(None);
        }
        let url = self.url(
            &["content"],
            &[
                ("spaceKey", self.inner.space_key.as_str()),
                ("title", title),
                ("type", "page"),
                ("status", "current"),
                ("expand", page_expansions(with_body)),
            ],
        );
        let deadline = self.deadline();
        let found: ContentArray<Content> = within(
            deadline,
            self.get_json(OPERATION, route::CONTENT, url, deadline),
        )
        .await?;
        // Titles are unique per space (ignoring case), and some lookups ignore case too: take the
        // exact match when there is one, else the page that owns the title in another case.
        let mut results = found.results;
        if results.is_empty() {
            return Ok(None);
        }
        let exact = results
            .iter()
            .position(|content| content.title == title)
            .unwrap_or(0);
        page_from(results.swap_remove(exact), with_body).map(Some)
    }

    /// The current page whose title equals `title` ignoring case, or `None`. One CQL request
    /// (`/rest/api/content/search`), for after an exact lookup missed: the v1 title lookup is
    /// case-sensitive on some sites while titles are unique ignoring case. CQL is index-backed and
    /// can lag behind writes, so it is never the first lookup.
    pub async fn page_by_title_ignoring_case(
        &self,
        title: &str,
        with_body: bool,
    ) -> Result<Option<Page>, UpstreamError> {
        const OPERATION: &str = "page_by_title_ignoring_case";
        if self.inner.v2.is_some() {
            // The v2 title lookup already ignores case: a miss there is final.
            return Ok(None);
        }
        if title.is_empty() {
            return Ok(None);
        }
        let cql = format!(
            "space = \"{}\" and type = page and title = \"{}\"",
            cql_escape(&self.inner.space_key),
            cql_escape(title)
        );
        let url = self.url(
            &["content", "search"],
            &[
                ("cql", cql.as_str()),
                ("limit", "10"),
                ("expand", page_expansions(with_body)),
            ],
        );
        let deadline = self.deadline();
        let found: ContentArray<Content> = within(
            deadline,
            self.get_json(OPERATION, route::CONTENT_SEARCH, url, deadline),
        )
        .await?;
        let wanted = title.to_lowercase();
        found
            .results
            .into_iter()
            .find(|content| content.title.to_lowercase() == wanted)
            .map(|content| page_from(content, with_body))
            .transpose()
    }

    /// The title of page `id`, or `None` if there is no such page. At most one request: on Cloud
    /// from the short-lived title cache when it can, else one `GET /pages?id=`; on Data Center the
    /// page itself.
    pub async fn page_title(&self, id: &str) -> Result<Option<String>, UpstreamError> {
        const OPERATION: &str = "page_title";
        if self.inner.v2.is_none() {
            return Ok(self.page_by_id(id, false).await?.map(|page| page.title));
        }
        if id.is_empty() {
            return Ok(None);
        }
        let deadline = self.deadline();
        let ids = [id.to_owned()];
        let titles = within(deadline, self.v2_titles(OPERATION, &ids, deadline)).await?;
        Ok(titles.get(id).cloned())
    }

    /// The current page with this id, or `None` if it does not exist (or cannot be seen). DC: one
    /// request; Cloud: the page and its ancestors (plus titles not cached).
    pub async fn page_by_id(
        &self,
        id: &str,
        with_body: bool,
    ) -> Result<Option<Page>, UpstreamError> {
        const OPERATION: &str = "page_by_id";
        if self.inner.v2.is_some() {
            return self.v2_page_by_id(id, with_body).await;
        }
        if id.is_empty() {
            return Ok(None);
        }
        let url = self.url(&["content", id], &[("expand", page_expansions(with_body))]);
        let deadline = self.deadline();
        match within(
            deadline,
            self.get_json::<Content>(OPERATION, route::CONTENT_ID, url, deadline),
        )
        .await
        {
            Ok(content) => page_from(content, with_body).map(Some),
            Err(UpstreamError::NotFound) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// All direct child pages, in Confluence's order. DC: `⌈children / 200⌉` requests. Cloud:
    /// `⌈children / 250⌉` of `/direct-children`, plus a listing per folder among them (the pages in
    /// a folder count as children of the folder's page).
    pub async fn children(&self, id: &str) -> Result<Vec<PageRef>, UpstreamError> {
        const OPERATION: &str = "children";
        if self.inner.v2.is_some() {
            return self.v2_children(id).await;
        }
        require_id(id)?;
        let deadline = self.deadline();
        let children = within(deadline, self.child_listing(OPERATION, id, false, deadline)).await?;
        Ok(children
            .into_iter()
            .map(|child| PageRef {
                id: child.id,
                title: child.title,
            })
            .collect())
    }

    /// Every page below `root_id` (not the root itself) with its parent id, at most `max_depth` levels
    /// down when given. Parents come before their children; siblings keep Confluence's order.
    ///
    /// - `max_depth` 0: no request. 1 (DC): the children listing, `⌈children / 200⌉` requests.
    /// - Cloud: `GET /api/v2/pages/{root}/descendants?depth=…&limit=250`, paged: `⌈n / 250⌉`
    ///   requests for `n` pages within 5 levels, plus a sweep from each page on the fifth level
    ///   when the tree goes deeper. Folders are skipped over: their pages hang from the folder's page.
    /// - Data Center has no page descendants, and CQL `ancestor=` lags behind writes, so this walks
    ///   `/child/page?limit=200&expand=children.page` breadth-first. The expansion carries each
    ///   child's first 25 children: a child with fewer is fully known and not listed again, so only
    ///   every second level is requested. A tree of 3 levels × 5 children (155 pages) takes 26
    ///   requests (root + the 25 second-level pages) instead of 156; listings of one level run
    ///   concurrently up to the endpoint's cap.
    pub async fn subtree(
        &self,
        root_id: &str,
        max_depth: Option<u32>,
    ) -> Result<Vec<SubtreePage>, UpstreamError> {
        const OPERATION: &str = "subtree";
        if self.inner.v2.is_some() {
            return self.v2_subtree(root_id, max_depth).await;
        }
        require_id(root_id)?;
        let deadline = self.deadline();
        match max_depth {
            Some(0) => Ok(Vec::new()),
            Some(1) => {
                let children = within(
                    deadline,
                    self.child_listing(OPERATION, root_id, false, deadline),
                )
                .await?;
                Ok(children
                    .into_iter()
                    .map(|child| SubtreePage {
                        id: child.id,
                        title: child.title,
                        parent_id: root_id.to_owned(),
                    })
                    .collect())
            }
            _ => within(deadline, self.walk_children(root_id, max_depth, deadline)).await,
        }
    }

    /// Creates a page as the last child of `parent_id`. One request (Cloud: `POST /api/v2/pages`,
    /// after the space id is known): `POST /rest/api/content` with
    /// `expand=version,ancestors`, so the answer needs no read-back. The returned body is `None`.
    pub async fn create_page(
        &self,
        title: &str,
        parent_id: &str,
        storage: &str,
    ) -> Result<Page, UpstreamError> {
        const OPERATION: &str = "create_page";
        if self.inner.v2.is_some() {
            return self.v2_create_page(title, parent_id, storage).await;
        }
        require_id(parent_id)?;
        let request = CreateRequest {
            kind: "page",
            title,
            space: SpaceKey {
                key: &self.inner.space_key,
            },
            ancestors: [IdRef { id: parent_id }],
            body: BodyRequest::storage(storage),
        };
        let url = self.url(&["content"], &[("expand", "version,ancestors")]);
        self.write_page(OPERATION, Method::POST, route::CONTENT, url, &request)
            .await
    }

    /// Changes a page's body, title or parent. Cloud: a title change alone is `PUT
    /// /api/v2/pages/{id}/title`; anything else `PUT /api/v2/pages/{id}` with the body (read first
    /// when `body` is `None`). DC: one request, `PUT /rest/api/content/{id}` with
    /// `expand=version,ancestors`. Never retried once Confluence may have processed it. The
    /// returned body is `None`.
    pub async fn update_page(&self, update: &PageUpdate) -> Result<Page, UpstreamError> {
        const OPERATION: &str = "update_page";
        if self.inner.v2.is_some() {
            return self.v2_update_page(update).await;
        }
        require_id(&update.id)?;
        let request = types::UpdateRequest {
            id: &update.id,
            kind: "page",
            title: &update.title,
            version: types::VersionRequest {
                number: update.new_version,
            },
            ancestors: update.parent_id.as_deref().map(|id| [IdRef { id }]),
            body: update.body.as_deref().map(BodyRequest::storage),
        };
        let url = self.url(&["content", &update.id], &[("expand", "version,ancestors")]);
        self.write_page(OPERATION, Method::PUT, route::CONTENT_ID, url, &request)
            .await
    }

    /// Sends one page write (create or update) and reads the page it answers with; no read-back.
    async fn write_page(
        &self,
        operation: &'static str,
        method: Method,
        route: &'static str,
        url: Url,
        request: &impl serde::Serialize,
    ) -> Result<Page, UpstreamError> {
        let call = Call {
            operation,
            method,
            route,
            url,
            body: Some(json_body(request)?),
        };
        let deadline = self.deadline();
        let content: Content = within(deadline, async {
            parse(&self.send(&call, deadline).await?)
        })
        .await?;
        page_from(content, false)
    }

    /// Moves a page to the trash. Its children stay (Confluence re-parents them). One request.
    pub async fn delete_page(&self, id: &str) -> Result<(), UpstreamError> {
        const OPERATION: &str = "delete_page";
        if self.inner.v2.is_some() {
            return self.v2_delete_page(id).await;
        }
        require_id(id)?;
        let url = self.url(&["content", id], &[]);
        let call = Call {
            operation: OPERATION,
            method: Method::DELETE,
            route: route::CONTENT_ID,
            url,
            body: None,
        };
        let deadline = self.deadline();
        within(deadline, self.send(&call, deadline)).await.map(drop)
    }

    /// Data Center: breadth-first over child listings that carry the grandchildren (see `subtree`).
    async fn walk_children(
        &self,
        root_id: &str,
        max_depth: Option<u32>,
        deadline: Instant,
    ) -> Result<Vec<SubtreePage>, UpstreamError> {
        let max_depth = max_depth.unwrap_or(u32::MAX);
        let mut found = Vec::new();
        let mut seen = HashSet::from([root_id.to_owned()]);
        // Pages whose children are not known yet, with their depth below the root.
        let mut frontier = vec![(root_id.to_owned(), 0u32)];
        while !frontier.is_empty() {
            // Owned items: a closure over borrowed ones makes the future non-`Send` (its
            // higher-ranked lifetime cannot be proven), and the gateway runs it on a work-stealing runtime.
            let listings: Vec<Vec<Content>> = stream::iter(frontier.clone())
                .map(|(id, depth)| {
                    let with_grandchildren = depth.saturating_add(2) <= max_depth;
                    async move {
                        self.child_listing("subtree", &id, with_grandchildren, deadline)
                            .await
                    }
                })
                .buffered(self.inner.max_concurrent)
                .try_collect()
                .await?;
            let mut next = Vec::new();
            for ((parent_id, depth), children) in frontier.iter().zip(listings) {
                let child_depth = depth + 1;
                for child in children {
                    if !seen.insert(child.id.clone()) {
                        continue;
                    }
                    found.push(SubtreePage {
                        id: child.id.clone(),
                        title: child.title,
                        parent_id: parent_id.clone(),
                    });
                    if child_depth >= max_depth {
                        continue;
                    }
                    let known = child
                        .children
                        .and_then(|children| children.page)
                        .filter(is_complete);
                    let Some(grandchildren) = known else {
                        next.push((child.id, child_depth));
                        continue;
                    };
                    for grandchild in grandchildren.results {
                        if !seen.insert(grandchild.id.clone()) {
                            continue;
                        }
                        if child_depth + 1 < max_depth {
                            next.push((grandchild.id.clone(), child_depth + 1));
                        }
                        found.push(SubtreePage {
                            id: grandchild.id,
                            title: grandchild.title,
                            parent_id: child.id.clone(),
                        });
                    }
                }
            }
            frontier = next;
        }
        Ok(found)
    }

    /// All children of `id` via `/child/page`, with their own first children when asked.
    async fn child_listing(
        &self,
        operation: &'static str,
        id: &str,
        with_grandchildren: bool,
        deadline: Instant,
    ) -> Result<Vec<Content>, UpstreamError> {
        let mut query = vec![("limit", PAGE_LIMIT)];
        if with_grandchildren {
            query.push(("expand", "children.page"));
        }
        let url = self.url(&["content", id, "child", "page"], &query);
        self.collect_pages(operation, route::CHILD_PAGE, url, deadline)
            .await
    }

    /// Follows `_links.next` from `first` until it is absent or a page comes back empty.
    async fn collect_pages<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        route: &'static str,
        first: Url,
        deadline: Instant,
    ) -> Result<Vec<T>, UpstreamError> {
        let mut all = Vec::new();
        let mut visited = HashSet::new();
        let mut url = first;
        loop {
            let mut page: ContentArray<T> = self
                .get_json(operation, route, url.clone(), deadline)
                .await?;
            let empty = page.results.is_empty();
            all.extend(page.results);
            // An empty page ends the listing even when `next` claims more (CONFSERVER-95396).
            let Some(next) = page.links.next.take().filter(|_| !empty) else {
                return Ok(all);
            };
            visited.insert(url.to_string());
            url = self.resolve_next(&next, &page.links)?;
            if visited.contains(url.as_str()) {
                return Err(UpstreamError::Protocol(
                    "pagination links go round in a circle".to_owned(),
                ));
            }
        }
    }

    /// Resolves a `_links.next` against the configured site. v1 links are context-relative
    /// (`/rest/api/…`); absolute links and links that repeat the context path are accepted too.
    /// The result always points at the configured site, so credentials never follow a link elsewhere.
    fn resolve_next(&self, next: &str, links: &Links) -> Result<Url, UpstreamError> {
        let leaves_site =
            || UpstreamError::Protocol("a pagination link leaves the configured site".to_owned());
        let mut relative = next;
        if Url::parse(next).is_ok() {
            let bases = [links.base.as_deref(), Some(self.inner.site_root.as_str())];
            relative = bases
                .into_iter()
                .flatten()
                .find_map(|base| next.strip_prefix(base.trim_end_matches('/')))
                .ok_or_else(leaves_site)?;
        }
        let own_context = self.inner.api_root.path().trim_end_matches("/rest/api");
        for context in [links.context.as_deref().unwrap_or(""), own_context] {
            if context.is_empty() || context == "/" {
                continue;
            }
            if let Some(rest) = relative
                .strip_prefix(context)
                .filter(|rest| rest.starts_with("/rest/"))
            {
                relative = rest;
                break;
            }
        }
        if !relative.starts_with("/rest/") {
            return Err(UpstreamError::Protocol(format!(
                "unexpected pagination link {relative:?}"
            )));
        }
        Url::parse(&format!("{}{relative}", self.inner.site_root))
            .map_err(|e| UpstreamError::Protocol(format!("unusable pagination link: {e}")))
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        route: &'static str,
        url: Url,
        deadline: Instant,
    ) -> Result<T, UpstreamError> {
        let call = Call {
            operation,
            method: Method::GET,
            route,
            url,
            body: None,
        };
        parse(&self.send(&call, deadline).await?)
    }

    /// Sends `call`, retrying what the policy allows before `deadline`, and returns a 2xx body.
    async fn send(&self, call: &Call, deadline: Instant) -> Result<Bytes, UpstreamError> {
        let mut attempts = 0u32;
        let mut attempt = || {
            attempts += 1;
            if attempts > 1 {
                crate::metrics::upstream_retry(call.operation);
            }
            self.attempt(call)
        };
        if call.method == Method::GET {
            return retry::run(
                &self.inner.retry,
                Idempotency::Idempotent,
                deadline,
                attempt,
            )
            .await;
        }
        // A write stops early enough to leave the caller a reserve for finding out whether a write
        // that got no answer was applied; past that point its outcome is unknown, not failed.
        let write_deadline = deadline
            .checked_sub(self.verification_reserve())
            .unwrap_or(deadline)
            .max(Instant::now());
        let sent = tokio::time::timeout_at(
            write_deadline,
            retry::run(
                &self.inner.retry,
                Idempotency::Write,
                write_deadline,
                &mut attempt,
            ),
        )
        .await;
        match sent {
            Ok(Err(UpstreamError::Timeout)) | Err(_) => Err(UpstreamError::WriteOutcomeUnknown),
            Ok(answer) => answer,
        }
    }

    /// The part of an operation's deadline a write leaves for verifying an unknown outcome: a
    /// quarter of it, at most 5 s.
    pub fn verification_reserve(&self) -> Duration {
        (self.inner.deadline / 4).min(Duration::from_secs(5))
    }

    async fn attempt(&self, call: &Call) -> Result<Bytes, FailedAttempt> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .expect("the semaphore is owned by the client and never closed");
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), call.url.clone())
            .header(AUTHORIZATION, self.inner.authorization.clone())
            .header(ACCEPT, "application/json");
        if call.method != Method::GET {
            request = request.header("X-Atlassian-Token", "no-check");
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let sent = crate::metrics::UpstreamCall::start(call.operation);
        let (status, mut outcome) = exchange(request).await;
        if call.method != Method::GET
            && let Err(failed) = &mut outcome
            && outcome_unknown(failed)
        {
            failed.error = UpstreamError::WriteOutcomeUnknown;
        }
        let outcome_label = match &outcome {
            Ok(_) => "ok",
            Err(failed) => outcome_label(&failed.error),
        };
        let elapsed = sent.finish(outcome_label);
        tracing::debug!(
            operation = call.operation,
            method = %call.method,
            route = call.route,
            status,
            elapsed_ms = elapsed.as_millis() as u64,
            outcome = outcome_label,
            "upstream call"
        );
        outcome
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.inner.deadline
    }

    /// `api_root` + the path segments (each percent-encoded) + the query (form-encoded).
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.inner.api_root.clone();
        url.path_segments_mut()
            .expect("api_root was checked to be an http(s) URL")
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }
}

/// Sends one request and reads the whole answer: the status (if one came) and a 2xx body or the
/// classified failure.
async fn exchange(request: reqwest::RequestBuilder) -> (Option<u16>, Result<Bytes, FailedAttempt>) {
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            let cause = if e.is_connect() {
                Failure::Connect
            } else {
                Failure::Lost
            };
            return (
                None,
                Err(FailedAttempt {
                    error: transport_error(e),
                    cause,
                }),
            );
        }
    };
    let status = response.status().as_u16();
    let headers = response.headers();
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(error::parse_retry_after);
    // DC names the user it served; "anonymous" means the credential was ignored, so answers
    // would silently lack every restricted page.
    let anonymous = headers
        .get("x-ausername")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|user| user.eq_ignore_ascii_case("anonymous"));
    let cause = Failure::Status {
        status,
        retry_after,
    };
    let outcome = match response.bytes().await {
        Err(e) => Err(FailedAttempt {
            error: transport_error(e),
            cause: Failure::Lost,
        }),
        Ok(_) if anonymous => Err(FailedAttempt {
            error: UpstreamError::CredentialsRejected,
            cause,
        }),
        Ok(body) if (200..300).contains(&status) => Ok(body),
        Ok(body) => Err(FailedAttempt {
            error: error::from_response(status, &body, retry_after),
            cause,
        }),
    };
    (Some(status), outcome)
}

/// Whether a failed write may still have been applied: the connection broke after the request
/// went out, or a gateway in front of Confluence gave up waiting for it (502, 504).
fn outcome_unknown(failed: &FailedAttempt) -> bool {
    matches!(
        failed.cause,
        Failure::Lost
            | Failure::Status {
                status: 502 | 504,
                ..
            }
    )
}

fn outcome_label(error: &UpstreamError) -> &'static str {
    match error {
        UpstreamError::NotFound => "not_found",
        UpstreamError::TitleTaken
        | UpstreamError::VersionConflict { .. }
        | UpstreamError::IllegalMove
        | UpstreamError::InvalidStorage(_)
        | UpstreamError::Rejected(_) => "rejected",
        UpstreamError::CredentialsRejected => "credentials_rejected",
        UpstreamError::PermissionDenied(_) => "permission_denied",
        UpstreamError::Gone(_) => "gone",
        UpstreamError::RateLimited { .. } => "rate_limited",
        UpstreamError::Unavailable(_) | UpstreamError::WriteOutcomeUnknown => "unavailable",
        UpstreamError::Timeout => "timeout",
        UpstreamError::Protocol(_) => "protocol_error",
    }
}

/// No page has an empty id; asking Confluence would address a different route.
fn require_id(id: &str) -> Result<(), UpstreamError> {
    if id.is_empty() {
        Err(UpstreamError::NotFound)
    } else {
        Ok(())
    }
}

/// Runs one operation under its deadline.
async fn within<T>(
    deadline: Instant,
    operation: impl Future<Output = Result<T, UpstreamError>>,
) -> Result<T, UpstreamError> {
    tokio::time::timeout_at(deadline, operation)
        .await
        .unwrap_or(Err(UpstreamError::Timeout))
}

/// Quotes-safe CQL string content: backslashes first, then double quotes.
fn cql_escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

fn page_expansions(with_body: bool) -> &'static str {
    if with_body {
        "version,ancestors,body.storage"
    } else {
        "version,ancestors"
    }
}

fn page_from(content: Content, with_body: bool) -> Result<Page, UpstreamError> {
    let version = content.version.ok_or_else(|| {
        UpstreamError::Protocol(format!("page {} came without its version", content.id))
    })?;
    let body = if with_body {
        let storage = content.body.and_then(|body| body.storage);
        let storage = storage.ok_or_else(|| {
            UpstreamError::Protocol(format!("page {} came without its body", content.id))
        })?;
        Some(storage.value)
    } else {
        None
    };
    let ancestors = content.ancestors.unwrap_or_default();
    Ok(Page {
        id: content.id,
        title: content.title,
        version: version.number,
        ancestors: ancestors.into_iter().map(PageRef::from).collect(),
        body,
    })
}

/// Whether a `children.page` sub-expansion lists every child: no `next`, and fewer items than its limit.
fn is_complete(children: &ContentArray<ContentRef>) -> bool {
    let limit = children.limit.unwrap_or(SUB_EXPANSION_LIMIT);
    children.links.next.is_none() && (children.results.len() as u64) < limit
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, UpstreamError> {
    serde_json::from_slice(body)
        .map_err(|e| UpstreamError::Protocol(format!("unreadable response body: {e}")))
}

fn json_body<T: serde::Serialize>(value: &T) -> Result<Bytes, UpstreamError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| UpstreamError::Protocol(format!("cannot encode request: {e}")))
}

/// A transport failure, described by its cause chain without the URL (it holds titles).
fn transport_error(error: reqwest::Error) -> UpstreamError {
    // Only the connect phase has a timeout of its own; a connect timeout is unavailability.
    if error.is_timeout() && !error.is_connect() {
        return UpstreamError::Timeout;
    }
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    UpstreamError::Unavailable(text)
}

/// Builds the `Authorization` value once, marked sensitive so it is never printed.
fn authorization_header(auth: &UpstreamAuth) -> HeaderValue {
    let text = match auth {
        UpstreamAuth::Basic { email, api_token } => {
            let pair = format!("{email}:{}", api_token.expose());
            format!("Basic {}", BASE64_STANDARD.encode(pair))
        }
        UpstreamAuth::Bearer { token } => format!("Bearer {}", token.expose()),
    };
    let mut value = HeaderValue::from_str(&text)
        .expect("base64 and tokens validated as visible ASCII are valid header values");
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests;
