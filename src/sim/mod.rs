//! An in-memory Confluence simulator on loopback, for tests and `conflagent demo`.
//!
//! Data Center mode serves the REST v1 subset the gateway uses (title lookup, read, children, CQL
//! search, create, update, delete, space). Cloud mode serves REST v2 for pages (spaces, pages by
//! title or id, a page, ancestors, children, direct children, descendants, folders, create, update,
//! rename, delete) with cursor pagination (`_links.next` and a `Link` header) and v2 error bodies, at
//! the site form (`/wiki/…`) and the API gateway form (`/ex/confluence/<cloudId>/wiki/…`); its v1
//! content CRUD answers 410 `GoneException` (CHANGE-2520), so an accidental v1 dependency fails.
//! Both follow CONFLUENCE.md: case-insensitive title uniqueness, strict version increments, trash on
//! delete, root-first ancestors, capped pagination, storage well-formedness and per-API error
//! bodies. Tests seed it directly, inject faults and count requests per route.
//!
//! Codemap: [`store`] is the pure state machine, [`cql`] the query parser, and `http` the hyper
//! service that turns requests into store operations and JSON (`http::v2` for REST v2). Storage
//! bodies are checked with the product's own checker ([`crate::markdown::check_storage`]); the
//! simulator uses no other part of the product than such pure leaves and the config's [`Deployment`].
//!
//! Every request must carry a known credential ([`Simulator::add_basic_user`],
//! [`Simulator::add_bearer_token`]); a request is logged and counted before faults and auth apply.
//! A bad credential gets what each API sends: DC a plain-text 401, Cloud v1 a 403, v2 a 404.
//!
//! Choices where CONFLUENCE.md leaves the behaviour open (marked [I] there):
//! - requested expansions are added to the deployment's defaults rather than replacing them;
//! - CQL `title =` and `space =` compare case-insensitively; results come in creation order;
//! - an XHTML error points at the start of the offending token;
//! - a PUT that restores a trashed page re-checks title uniqueness and, without `ancestors`,
//!   restores it as a top-level page;
//! - the wording for empty or over-long titles and a few validation errors is the simulator's own;
//! - with `cql_index_lag`, a page written within the lag is missing from search entirely (the real
//!   index may instead show its previous state);
//! - v2: `/descendants` answers at most 5 levels; `/ancestors` answers the nearest `limit` ancestors;
//!   lists come in id order (title lookups) or tree order (children, descendants); a space has no
//!   homepage, so a page created without `parentId` is top-level.

pub mod cql;
mod http;
pub mod store;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::config::Deployment;
pub use store::PageStatus;
use store::{NewPage, Store, StoreRules};

/// How the simulator behaves; `Default` is Data Center with the CONFLUENCE.md §9 defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSettings {
    /// Cloud or Data Center; decides the context path, wording and available routes.
    pub deployment: Deployment,
    /// Whether `GET /rest/api/content?title=` compares titles case-sensitively (CONFLUENCE.md §3.1).
    pub v1_title_lookup_case_sensitive: bool,
    /// Whether trashed pages keep their title reserved (CONFLUENCE.md §8).
    pub trashed_reserves_title: bool,
    /// Whether deleting a page moves its children up to its parent (CONFLUENCE.md §3.6).
    pub delete_reparents_children: bool,
    /// Whether the Cloud move endpoint creates a new version (CONFLUENCE.md §3.7).
    pub move_bumps_version: bool,
    /// Server cap on `limit` for title lookups and child/descendant listings.
    pub max_page_limit: u32,
    /// Server cap on `limit` of REST v2 collections (Confluence: 250).
    pub v2_max_page_limit: u32,
    /// Data Center sites that block the bare `GET /rest/api/content` collection answer it with 403
    /// (CONFLUENCE.md §1, CONFSERVER-57639).
    pub content_collection_blocked: bool,
    /// Cloud only: answer the deprecated v1 content CRUD routes (`/rest/api/content`,
    /// `/rest/api/content/{id}`, `/rest/api/content/{id}/child/page`) with 410 `GoneException`, as
    /// the API gateway and OAuth do since CHANGE-2520 (CONFLUENCE.md §0). On by default, so that a
    /// Cloud client depending on v1 content fails; off serves them as Basic-auth-to-site still was.
    pub cloud_v1_content_gone: bool,
    /// How long a write stays invisible to CQL search, imitating the search index (CONFLUENCE.md §3.3).
    /// Zero (the default) makes writes searchable at once.
    pub cql_index_lag: Duration,
}

impl SimSettings {
    /// The defaults for `deployment` (trashed pages reserve titles on Cloud only).
    pub fn for_deployment(deployment: Deployment) -> SimSettings {
        SimSettings {
            deployment,
            v1_title_lookup_case_sensitive: true,
            trashed_reserves_title: deployment == Deployment::Cloud,
            delete_reparents_children: true,
            move_bumps_version: false,
            max_page_limit: 200,
            v2_max_page_limit: 250,
            content_collection_blocked: false,
            cloud_v1_content_gone: deployment == Deployment::Cloud,
            cql_index_lag: Duration::ZERO,
        }
    }

    fn store_rules(&self) -> StoreRules {
        StoreRules {
            v1_title_lookup_case_sensitive: self.v1_title_lookup_case_sensitive,
            trashed_reserves_title: self.trashed_reserves_title,
            delete_reparents_children: self.delete_reparents_children,
            move_bumps_version: self.move_bumps_version,
        }
    }
}

impl Default for SimSettings {
    fn default() -> SimSettings {
        SimSettings::for_deployment(Deployment::DataCenter)
    }
}

/// A snapshot of one page as the simulator stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPage {
    /// Content id (a decimal string, as on the wire).
    pub id: String,
    /// Title.
    pub title: String,
    /// Current or trashed.
    pub status: PageStatus,
    /// Parent id, `None` for a top-level or trashed page.
    pub parent_id: Option<String>,
    /// Version number.
    pub version: u32,
    /// Storage-format body.
    pub body: String,
    /// Key of the space holding the page.
    pub space_key: String,
}

/// One request the simulator received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRequest {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Route template key, e.g. `GET /rest/api/content/{id}`; `GET (unrouted)` for unknown paths.
    pub route: String,
    /// Raw path and query as received (including the context path).
    pub path_and_query: String,
}

#[derive(Debug, Default)]
struct Faults {
    latency: Duration,
    /// Remaining count, status and optional `Retry-After` for `fail_next`.
    fail_next: Option<(usize, u16, Option<u64>)>,
    fail_always: Option<u16>,
    /// Remaining count, status and whether the write is applied first, for `lose_write_answers`
    /// and `fail_next_writes`.
    write_fault: Option<(usize, u16, bool)>,
}

/// An injected failure the service must answer instead of handling the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InjectedFault {
    status: u16,
    retry_after_seconds: Option<u64>,
}

impl Faults {
    /// The status that answers the next write instead of its real answer, if one is due, and
    /// whether the write is applied first.
    fn take_write_fault(&mut self) -> Option<(InjectedFault, bool)> {
        let (remaining, status, applied) = self.write_fault.as_mut()?;
        let fault = InjectedFault {
            status: *status,
            retry_after_seconds: None,
        };
        let applied = *applied;
        *remaining -= 1;
        if *remaining == 0 {
            self.write_fault = None;
        }
        Some((fault, applied))
    }

    fn take(&mut self) -> Option<InjectedFault> {
        if let Some((remaining, status, retry_after_seconds)) = self.fail_next.as_mut() {
            let fault = InjectedFault {
                status: *status,
                retry_after_seconds: *retry_after_seconds,
            };
            *remaining -= 1;
            if *remaining == 0 {
                self.fail_next = None;
            }
            return Some(fault);
        }
        self.fail_always.map(|status| InjectedFault {
            status,
            retry_after_seconds: None,
        })
    }
}

#[derive(Debug, Default)]
struct Credentials {
    /// Accepted `Basic` credentials as they appear on the wire (base64), with the user they name.
    basic: Vec<(String, String)>,
    bearer: Vec<String>,
}

/// The user behind an accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Caller {
    /// What Data Center reports in `X-AUSERNAME`.
    username: String,
}

/// The cloudId of the simulated Cloud site, used in the API gateway form of its URLs.
pub const CLOUD_ID: &str = "5b2c1e0a-51a7-4d2e-9f3c-5ac1d0c1d00d";

/// The user name Data Center reports for a personal access token (its owner).
const TOKEN_OWNER: &str = "token-owner";

impl Credentials {
    /// The caller a known credential in an `Authorization` header value names, `None` if unknown.
    fn check(&self, authorization: &str) -> Option<Caller> {
        let (scheme, credential) = authorization.trim().split_once(' ')?;
        let credential = credential.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            self.basic
                .iter()
                .find(|(known, _)| known == credential)
                .map(|(_, username)| Caller {
                    username: username.clone(),
                })
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.bearer
                .iter()
                .any(|known| known == credential)
                .then(|| Caller {
                    username: TOKEN_OWNER.to_owned(),
                })
        } else {
            None
        }
    }
}

struct State {
    store: Store,
    faults: Faults,
    credentials: Credentials,
    log: Vec<SimRequest>,
}

/// What the HTTP service shares with the handle.
struct Shared {
    settings: SimSettings,
    /// `_links.base`: scheme, host, port and context path (the site form on Cloud).
    base: String,
    /// `http://127.0.0.1:PORT`, for the gateway form.
    origin: String,
    /// `/ex/confluence/<cloudId>/wiki`: the API gateway's context for this site.
    gateway_context: String,
    /// `_links.context`: `/wiki` on Cloud, empty on Data Center.
    context: &'static str,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Server {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Handle on a running simulator. Cloning is cheap; all clones drive the same server.
///
/// The server runs until [`Simulator::shutdown`] is called or the tokio runtime that started it stops.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
    server: Arc<Server>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Simulator")
            .field("base", &self.shared.base)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Binds `127.0.0.1:0` and serves in a spawned task.
    pub async fn start(settings: SimSettings) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let context = match settings.deployment {
            Deployment::Cloud => "/wiki",
            Deployment::DataCenter => "",
        };
        let shared = Arc::new(Shared {
            base: format!("http://{address}{context}"),
            origin: format!("http://{address}"),
            gateway_context: format!("/ex/confluence/{CLOUD_ID}/wiki"),
            context,
            state: Mutex::new(State {
                store: Store::new(settings.store_rules()),
                faults: Faults::default(),
                credentials: Credentials::default(),
                log: Vec::new(),
            }),
            settings,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(http::serve(listener, Arc::clone(&shared), stopped));
        Ok(Simulator {
            shared,
            server: Arc::new(Server {
                stop,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// The URL an operator would configure: `http://127.0.0.1:PORT` (DC) or `…/wiki` (Cloud).
    pub fn base_url(&self) -> String {
        self.shared.base.clone()
    }

    /// Cloud: the API gateway form of the same site, `http://127.0.0.1:PORT/ex/confluence/<cloudId>/wiki`
    /// (what `https://api.atlassian.com/ex/confluence/<cloudId>/wiki` is on the real service).
    pub fn gateway_base_url(&self) -> String {
        format!("{}/ex/confluence/{CLOUD_ID}/wiki", self.shared.origin)
    }

    /// The settings the simulator runs with.
    pub fn settings(&self) -> &SimSettings {
        &self.shared.settings
    }

    /// Adds a space (or renames an existing key).
    pub fn add_space(&self, key: &str, name: &str) {
        self.shared.lock().store.add_space(key, name);
    }

    /// Seeds a page (last among its siblings) and returns its id; not counted as a request.
    /// A missing space is created on the fly.
    ///
    /// # Panics
    /// If Confluence would refuse the page (title taken, empty or too long; parent missing): a
    /// seeded world that Confluence could not hold would make the test meaningless.
    pub fn add_page(
        &self,
        space_key: &str,
        title: &str,
        parent_id: Option<&str>,
        body: &str,
    ) -> String {
        let mut state = self.shared.lock();
        if state.store.space(space_key).is_none() {
            state.store.add_space(space_key, space_key);
        }
        let parent_id = parent_id.map(|id| id.parse::<u64>().unwrap_or(u64::MAX));
        let new_page = NewPage {
            space_key,
            title,
            parent_id,
            body,
        };
        match state.store.create(&new_page, SystemTime::now()) {
            Ok(id) => id.to_string(),
            Err(error) => panic!("add_page({space_key:?}, {title:?}) refused: {error}"),
        }
    }

    /// Seeds a Cloud folder under `parent_id` (a page or folder) and returns its id; not counted.
    ///
    /// # Panics
    /// If the parent does not exist or the title is empty or too long.
    pub fn add_folder(&self, space_key: &str, title: &str, parent_id: Option<&str>) -> String {
        let mut state = self.shared.lock();
        if state.store.space(space_key).is_none() {
            state.store.add_space(space_key, space_key);
        }
        let parent_id = parent_id.map(|id| id.parse::<u64>().unwrap_or(u64::MAX));
        match state
            .store
            .create_folder(space_key, title, parent_id, SystemTime::now())
        {
            Ok(id) => id.to_string(),
            Err(error) => panic!("add_folder({space_key:?}, {title:?}) refused: {error}"),
        }
    }

    /// A snapshot of the page with `id`, whatever its status.
    pub fn page(&self, id: &str) -> Option<SimPage> {
        let id = id.parse::<u64>().ok()?;
        self.shared.lock().store.page(id).map(snapshot)
    }

    /// The current page titled `title` in the space, compared case-insensitively.
    pub fn page_by_title(&self, space_key: &str, title: &str) -> Option<SimPage> {
        self.shared
            .lock()
            .store
            .page_by_title(space_key, title)
            .map(snapshot)
    }

    /// Accepts `Authorization: Basic base64(email:token)` from now on.
    pub fn add_basic_user(&self, email: &str, token: &str) {
        let encoded = BASE64_STANDARD.encode(format!("{email}:{token}"));
        self.shared
            .lock()
            .credentials
            .basic
            .push((encoded, email.to_owned()));
    }

    /// Stops accepting a `Basic` credential (a revoked API token).
    pub fn remove_basic_user(&self, email: &str, token: &str) {
        let encoded = BASE64_STANDARD.encode(format!("{email}:{token}"));
        self.shared
            .lock()
            .credentials
            .basic
            .retain(|(known, _)| *known != encoded);
    }

    /// Accepts `Authorization: Bearer token` from now on.
    pub fn add_bearer_token(&self, token: &str) {
        self.shared.lock().credentials.bearer.push(token.to_owned());
    }

    /// Delays every request by `latency` before it is handled.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().faults.latency = latency;
    }

    /// Answers the next `n` requests with `status` (plus `Retry-After` when given); they are counted.
    pub fn fail_next(&self, n: usize, status: u16, retry_after_seconds: Option<u64>) {
        self.shared.lock().faults.fail_next = (n > 0).then_some((n, status, retry_after_seconds));
    }

    /// Applies the next `n` writes (any method but GET) and then answers each with `status` instead
    /// of its real answer, as a gateway in front of Confluence that gave up waiting would (use 502 or
    /// 504): the write happened, the caller cannot tell.
    pub fn lose_write_answers(&self, n: usize, status: u16) {
        self.shared.lock().faults.write_fault = (n > 0).then_some((n, status, true));
    }

    /// Answers the next `n` writes (any method but GET) with `status` without applying them; reads
    /// are served as usual.
    pub fn fail_next_writes(&self, n: usize, status: u16) {
        self.shared.lock().faults.write_fault = (n > 0).then_some((n, status, false));
    }

    /// Answers every request with `status` until called with `None`.
    pub fn fail_always(&self, status: Option<u16>) {
        self.shared.lock().faults.fail_always = status;
    }

    /// How many requests hit `route` (a template key such as `GET /rest/api/content/{id}`).
    pub fn request_count(&self, route: &str) -> usize {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|request| request.route == route)
            .count()
    }

    /// How many requests went to REST v1 (`/rest/api/…`), whatever their outcome: a Cloud client
    /// on v2 makes none for page operations.
    pub fn v1_requests(&self) -> usize {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|request| request.route.contains(" /rest/api/"))
            .count()
    }

    /// How many requests arrived, whatever their route or outcome.
    pub fn total_requests(&self) -> usize {
        self.shared.lock().log.len()
    }

    /// Every request received since the last [`Simulator::reset_counts`], oldest first.
    pub fn requests(&self) -> Vec<SimRequest> {
        self.shared.lock().log.clone()
    }

    /// Forgets the request log.
    pub fn reset_counts(&self) {
        self.shared.lock().log.clear();
    }

    /// Stops accepting connections, lets open ones finish (up to a second) and waits for the server.
    pub async fn shutdown(self) {
        self.server.stop.send_replace(true);
        let task = self
            .server
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            // A panicked server task has nothing left to clean up.
            let _ = task.await;
        }
    }
}

fn snapshot(page: &store::Page) -> SimPage {
    SimPage {
        id: page.id.to_string(),
        title: page.title.clone(),
        status: page.status,
        parent_id: page.parent_id.map(|id| id.to_string()),
        version: page.version,
        body: page.body.clone(),
        space_key: page.space_key.clone(),
    }
}
