//! The Confluence simulator over HTTP: documented Confluence behaviour as a client sees it.

use std::time::{Duration, Instant};

use conflagent::sim::{Deployment, PageStatus, SimSettings, Simulator};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const EMAIL: &str = "ada@example.com";
const TOKEN: &str = "token-1";

/// A running simulator with one space (`DOCS`) and a client holding valid credentials.
struct World {
    sim: Simulator,
    client: reqwest::Client,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl World {
    async fn start(settings: SimSettings) -> World {
        let sim = Simulator::start(settings)
            .await
            .expect("simulator binds loopback");
        sim.add_space("DOCS", "Documentation");
        sim.add_basic_user(EMAIL, TOKEN);
        World {
            sim,
            client: reqwest::Client::new(),
        }
    }

    async fn dc() -> World {
        World::start(SimSettings::default()).await
    }

    /// Cloud's v1, as Basic-auth-to-site callers were still served it (the v1 behaviour tests).
    async fn cloud() -> World {
        World::start(SimSettings {
            cloud_v1_content_gone: false,
            ..SimSettings::for_deployment(Deployment::Cloud)
        })
        .await
    }

    /// Cloud as it is by default: REST v2 for pages, v1 content CRUD gone.
    async fn cloud_v2() -> World {
        World::start(SimSettings::for_deployment(Deployment::Cloud)).await
    }

    /// Sends `method` to `base_url + path` (path may carry a query) with valid credentials.
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send_to(method, format!("{}{path}", self.sim.base_url()), body)
            .await
    }

    /// Sends `method` to `url` with valid credentials.
    async fn send_to(&self, method: Method, url: String, body: Option<Value>) -> Answer {
        let mut request = self
            .client
            .request(method, url)
            .basic_auth(EMAIL, Some(TOKEN));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("simulator answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body is readable");
        Answer {
            status,
            headers,
            text,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    async fn create(&self, title: &str, parent: Option<&str>, storage: &str) -> Answer {
        let mut body = json!({
            "type": "page",
            "title": title,
            "space": {"key": "DOCS"},
            "body": {"storage": {"value": storage, "representation": "storage"}},
        });
        if let Some(parent) = parent {
            body["ancestors"] = json!([{"id": parent}]);
        }
        self.send(Method::POST, "/rest/api/content", Some(body))
            .await
    }

    async fn update(&self, id: &str, body: Value) -> Answer {
        self.send(Method::PUT, &format!("/rest/api/content/{id}"), Some(body))
            .await
    }
}

/// Percent-encodes everything but unreserved characters, as a careful client would.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn duplicate_title_is_refused_ignoring_case_with_each_deployments_wording() {
    let dc = World::dc().await;
    assert_eq!(
        dc.create("Release Notes", None, "<p>x</p>").await.status,
        StatusCode::OK
    );
    let refused = dc.create("RELEASE notes", None, "").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.message(),
        "A page with this title already exists: A page already exists with the title RELEASE notes in the space with key DOCS"
    );
    assert_eq!(refused.json()["reason"], "Bad Request");
    assert_eq!(refused.json()["data"]["allowedInReadOnlyMode"], true);

    let cloud = World::cloud().await;
    cloud.create("Release Notes", None, "").await;
    let refused = cloud.create("release notes", None, "").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.message(),
        "com.atlassian.confluence.api.service.exceptions.BadRequestException: A page with this title already exists: A page already exists with the same TITLE in this space"
    );
}

#[tokio::test]
async fn create_answers_200_with_dc_default_write_expansions() {
    let world = World::dc().await;
    let parent = world.sim.add_page("DOCS", "Parent", None, "");
    let created = world.create("Child", Some(&parent), "<p>hello</p>").await;
    assert_eq!(created.status, StatusCode::OK);
    let page = created.json();
    assert!(page["id"].is_string(), "content ids are strings: {page}");
    assert_eq!(page["version"]["number"], 1);
    assert_eq!(page["body"]["storage"]["value"], "<p>hello</p>");
    assert_eq!(page["ancestors"][0]["id"], parent.as_str());
    assert_eq!(page["space"]["key"], "DOCS");
    let stored = world
        .sim
        .page(page["id"].as_str().unwrap_or_default())
        .expect("stored");
    assert_eq!(
        (stored.parent_id.as_deref(), stored.version),
        (Some(parent.as_str()), 1)
    );
}

#[tokio::test]
async fn title_limits_are_enforced() {
    let world = World::dc().await;
    assert_eq!(
        world.create("", None, "").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        world.create(&"x".repeat(256), None, "").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        world.create(&"ü".repeat(255), None, "").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn update_needs_exactly_the_next_version() {
    let world = World::dc().await;
    let id = world.sim.add_page("DOCS", "Guide", None, "<p>v1</p>");
    let stale = world
        .update(
            &id,
            json!({"type": "page", "title": "Guide", "version": {"number": 1}}),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(
        stale.message(),
        "Version must be incremented on update. Current version is: 1"
    );

    let missing = world
        .update(&id, json!({"type": "page", "title": "Guide"}))
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        missing.message(),
        "Must supply an incremented version when updating Content. No version supplied."
    );

    let renamed = world
        .update(
            &id,
            json!({"type": "page", "title": "guide", "version": {"number": 2}}),
        )
        .await;
    assert_eq!(
        renamed.status,
        StatusCode::OK,
        "a case-only rename of the same page passes: {}",
        renamed.text
    );
    let page = world.sim.page(&id).expect("stored");
    assert_eq!(
        (page.title.as_str(), page.version, page.body.as_str()),
        ("guide", 2, "<p>v1</p>")
    );
}

#[tokio::test]
async fn update_without_type_or_into_taken_title_is_refused() {
    let world = World::dc().await;
    let id = world.sim.add_page("DOCS", "One", None, "");
    world.sim.add_page("DOCS", "Two", None, "");
    let untyped = world
        .update(&id, json!({"title": "One", "version": {"number": 2}}))
        .await;
    assert_eq!(untyped.status, StatusCode::BAD_REQUEST);
    let clash = world
        .update(
            &id,
            json!({"type": "page", "title": "TWO", "version": {"number": 2}}),
        )
        .await;
    assert_eq!(clash.status, StatusCode::BAD_REQUEST);
    assert!(
        clash
            .message()
            .starts_with("A page with this title already exists"),
        "{}",
        clash.message()
    );
}

#[tokio::test]
async fn moving_a_page_under_its_own_descendant_is_refused() {
    let world = World::dc().await;
    let a = world.sim.add_page("DOCS", "A", None, "");
    let b = world.sim.add_page("DOCS", "B", Some(&a), "");
    let c = world.sim.add_page("DOCS", "C", Some(&b), "");
    let refused = world
        .update(&a, json!({"type": "page", "title": "A", "version": {"number": 2}, "ancestors": [{"id": c}]}))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.message().starts_with("Illegal move"),
        "{}",
        refused.message()
    );

    let other = world.sim.add_page("DOCS", "Other", None, "");
    let moved = world
        .update(&b, json!({"type": "page", "title": "B", "version": {"number": 2}, "ancestors": [{"id": other}]}))
        .await;
    assert_eq!(moved.status, StatusCode::OK);
    let leaf = world
        .get(&format!("/rest/api/content/{c}?expand=ancestors"))
        .await
        .json();
    let chain: Vec<&str> = leaf["ancestors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["title"].as_str())
        .collect();
    assert_eq!(
        chain,
        ["Other", "B"],
        "the subtree moves with its root; ancestors are root-first"
    );
}

#[tokio::test]
async fn delete_trashes_hides_and_reparents_children() {
    let world = World::dc().await;
    let root = world.sim.add_page("DOCS", "Root", None, "");
    let middle = world.sim.add_page("DOCS", "Middle", Some(&root), "");
    let leaf = world.sim.add_page("DOCS", "Leaf", Some(&middle), "");

    let deleted = world
        .send(Method::DELETE, &format!("/rest/api/content/{middle}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.text.is_empty());
    assert_eq!(
        world
            .get(&format!("/rest/api/content/{middle}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let trashed = world
        .get(&format!("/rest/api/content/{middle}?status=trashed"))
        .await;
    assert_eq!(trashed.json()["status"], "trashed");
    assert_eq!(
        world.sim.page(&leaf).and_then(|page| page.parent_id),
        Some(root.clone())
    );
    assert_eq!(
        world
            .sim
            .page(&middle)
            .map(|page| (page.status, page.parent_id)),
        Some((PageStatus::Trashed, None))
    );

    let again = world
        .send(Method::DELETE, &format!("/rest/api/content/{middle}"), None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let purged = world
        .send(
            Method::DELETE,
            &format!("/rest/api/content/{middle}?status=trashed"),
            None,
        )
        .await;
    assert_eq!(purged.status, StatusCode::NO_CONTENT);
    assert!(world.sim.page(&middle).is_none());
}

#[tokio::test]
async fn put_on_a_trashed_page_restores_it() {
    let world = World::dc().await;
    let id = world.sim.add_page("DOCS", "Phoenix", None, "");
    world
        .send(Method::DELETE, &format!("/rest/api/content/{id}"), None)
        .await;
    let restored = world
        .update(
            &id,
            json!({"type": "page", "title": "Phoenix", "version": {"number": 2}}),
        )
        .await;
    assert_eq!(restored.status, StatusCode::OK);
    assert_eq!(
        world.get(&format!("/rest/api/content/{id}")).await.json()["status"],
        "current"
    );
}

#[tokio::test]
async fn child_listing_pages_with_context_relative_next_until_done() {
    let world = World::cloud().await;
    let parent = world.sim.add_page("DOCS", "Parent", None, "");
    let mut expected = Vec::new();
    for n in 0..23 {
        let title = format!("Child {n:02}");
        world.sim.add_page("DOCS", &title, Some(&parent), "");
        expected.push(title);
    }
    let mut seen = Vec::new();
    let mut path = format!("/rest/api/content/{parent}/child/page?limit=10");
    let mut n_calls = 0;
    loop {
        n_calls += 1;
        let page = world.get(&path).await.json();
        assert_eq!(page["_links"]["context"], "/wiki");
        assert_eq!(page["limit"], 10);
        seen.extend(
            page["results"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["title"].as_str().map(str::to_owned)),
        );
        let Some(next) = page["_links"]["next"].as_str() else {
            break;
        };
        assert!(
            next.starts_with("/rest/api/content/"),
            "next is relative to the context: {next}"
        );
        assert_eq!(
            page["_links"]["base"],
            world.sim.base_url().as_str(),
            "next joins onto base"
        );
        path = next.to_owned();
    }
    assert_eq!(seen, expected, "tree order, every child once");
    assert_eq!(n_calls, 3);

    let capped = world
        .get(&format!("/rest/api/content/{parent}/child/page?limit=5000"))
        .await
        .json();
    assert_eq!(capped["limit"], 200, "the effective limit is echoed");
    assert_eq!(capped["size"], 23);
    assert!(capped["_links"].get("next").is_none());
}

#[tokio::test]
async fn title_lookup_round_trips_awkward_titles_through_the_query_string() {
    let world = World::dc().await;
    for title in ["a/b \"c\" & d + e # f ? g % h", "Ünïcødé 标题", "plus+sign"] {
        let id = world.sim.add_page("DOCS", title, None, "");
        let found = world
            .get(&format!(
                "/rest/api/content?spaceKey=DOCS&title={}&expand=version",
                encode(title)
            ))
            .await
            .json();
        assert_eq!(found["size"], 1, "{title}: {found}");
        assert_eq!(found["results"][0]["id"], id.as_str());
        assert_eq!(found["results"][0]["title"], title);
    }
    let spaced = world
        .get("/rest/api/content?spaceKey=DOCS&title=%C3%9Cn%C3%AFc%C3%B8d%C3%A9+%E6%A0%87%E9%A2%98")
        .await
        .json();
    assert_eq!(spaced["size"], 1, "`+` decodes to a space in query strings");
}

#[tokio::test]
async fn title_lookup_is_case_sensitive_by_default_and_expands_ancestors_root_first() {
    let world = World::dc().await;
    let a = world.sim.add_page("DOCS", "A", None, "");
    let b = world.sim.add_page("DOCS", "B", Some(&a), "");
    world.sim.add_page("DOCS", "Target", Some(&b), "");
    let miss = world
        .get("/rest/api/content?spaceKey=DOCS&title=target")
        .await
        .json();
    assert_eq!(miss["size"], 0);
    let hit = world
        .get("/rest/api/content?spaceKey=DOCS&title=Target&expand=ancestors,body.storage")
        .await
        .json();
    let ancestors: Vec<&str> = hit["results"][0]["ancestors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ancestors, [a.as_str(), b.as_str()]);
    assert!(hit["results"][0]["_expandable"].get("ancestors").is_none());
    assert!(hit["results"][0]["_expandable"].get("children").is_some());
}

#[tokio::test]
async fn cql_search_honours_escapes_and_refuses_unknown_fields() {
    let world = World::dc().await;
    let tricky = world.sim.add_page("DOCS", r#"Say "hi" \ bye"#, None, "");
    world.sim.add_page("DOCS", "Plain", None, "");
    let cql = r#"space = "DOCS" and type = page and title = "Say \"hi\" \\ bye""#;
    let found = world
        .get(&format!("/rest/api/content/search?cql={}", encode(cql)))
        .await
        .json();
    let ids: Vec<&str> = found["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [tricky.as_str()]);

    let refused = world
        .get(&format!(
            "/rest/api/content/search?cql={}",
            encode("status = current")
        ))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.message().contains("status"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn cql_ancestor_search_pages_by_cursor_on_cloud_and_by_offset_on_dc() {
    for world in [World::cloud().await, World::dc().await] {
        let root = world.sim.add_page("DOCS", "Root", None, "");
        let mid = world.sim.add_page("DOCS", "Mid", Some(&root), "");
        for n in 0..5 {
            world
                .sim
                .add_page("DOCS", &format!("Leaf {n}"), Some(&mid), "");
        }
        let mut path = format!(
            "/rest/api/content/search?cql={}&limit=4&start=0",
            encode(&format!("ancestor = {root}"))
        );
        let mut n_found = 0;
        let mut n_calls = 0;
        loop {
            n_calls += 1;
            let page = world.get(&path).await.json();
            n_found += page["results"].as_array().map_or(0, Vec::len);
            let Some(next) = page["_links"]["next"].as_str() else {
                break;
            };
            if world.sim.settings().deployment == Deployment::Cloud {
                assert!(next.contains("cursor="), "{next}");
            }
            path = next.to_owned();
        }
        assert_eq!((n_found, n_calls), (6, 2));
    }
}

#[tokio::test]
async fn malformed_storage_is_refused_with_row_and_column() {
    let world = World::dc().await;
    let refused = world
        .create("Broken", None, "<p>one</p>\n<p>two<br></p>")
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let message = refused.message();
    assert!(
        message.starts_with("Error parsing xhtml: ")
            && message.contains("</br>")
            && message.contains("\n at [row,col {unknown-source}]: [2,"),
        "{message}"
    );
    let fine = world
        .create("Fine", None, "<p>a&nbsp;b</p><ac:structured-macro ac:name=\"code\"><ac:plain-text-body><![CDATA[x < y]]></ac:plain-text-body></ac:structured-macro>")
        .await;
    assert_eq!(fine.status, StatusCode::OK, "{}", fine.text);
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let world = World::dc().await;
    let url = format!("{}/rest/api/content", world.sim.base_url());
    let response = world
        .client
        .post(url)
        .basic_auth(EMAIL, Some(TOKEN))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_credentials_fail_as_each_deployment_does() {
    let dc = World::dc().await;
    let url = format!("{}/rest/api/space/DOCS", dc.sim.base_url());
    let anonymous = dc.client.get(&url).send().await.expect("answers");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(
        anonymous.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/plain")
    );
    assert_eq!(
        anonymous.text().await.unwrap_or_default(),
        "Basic Authentication Failure - Reason : AUTHENTICATED_FAILED"
    );
    let wrong = dc
        .client
        .get(&url)
        .basic_auth(EMAIL, Some("nope"))
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    dc.sim.add_bearer_token("pat-123");
    let bearer = dc
        .client
        .get(&url)
        .bearer_auth("pat-123")
        .send()
        .await
        .expect("answers");
    assert_eq!(bearer.status(), StatusCode::OK);

    let cloud = World::cloud().await;
    let url = format!("{}/rest/api/space/DOCS", cloud.sim.base_url());
    let denied = cloud
        .client
        .get(&url)
        .basic_auth(EMAIL, Some("nope"))
        .send()
        .await
        .expect("answers");
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let body: Value = denied.json().await.unwrap_or(Value::Null);
    assert_eq!(body["statusCode"], 403);
}

#[tokio::test]
async fn injected_faults_answer_with_retry_headers_and_are_counted() {
    let world = World::cloud().await;
    world.sim.fail_next(2, 429, Some(7));
    for _ in 0..2 {
        let limited = world.get("/rest/api/space/DOCS").await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers["retry-after"], "7");
        assert_eq!(limited.headers["x-ratelimit-remaining"], "0");
        assert!(limited.headers.contains_key("x-ratelimit-reset"));
    }
    assert_eq!(
        world.get("/rest/api/space/DOCS").await.status,
        StatusCode::OK
    );
    assert_eq!(world.sim.request_count("GET /rest/api/space/{key}"), 3);

    world.sim.fail_always(Some(503));
    let unavailable = world.get("/rest/api/space/DOCS").await;
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        unavailable.text.starts_with("<html>"),
        "proxies answer 503 with HTML"
    );
    world.sim.fail_always(None);
    assert_eq!(
        world.get("/rest/api/space/DOCS").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let world = World::dc().await;
    world.sim.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    world.get("/rest/api/space/DOCS").await;
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn requests_are_counted_per_route_template() {
    let world = World::dc().await;
    let id = world.sim.add_page("DOCS", "Counted", None, "");
    assert_eq!(world.sim.total_requests(), 0, "seeding is not a request");
    world.get(&format!("/rest/api/content/{id}")).await;
    world
        .get(&format!("/rest/api/content/{id}?expand=version"))
        .await;
    world
        .get("/rest/api/content?spaceKey=DOCS&title=Counted")
        .await;
    world.get("/rest/api/nowhere").await;
    assert_eq!(world.sim.request_count("GET /rest/api/content/{id}"), 2);
    assert_eq!(world.sim.request_count("GET /rest/api/content"), 1);
    assert_eq!(world.sim.total_requests(), 4);
    let log = world.sim.requests();
    assert_eq!(
        log[1].path_and_query,
        format!("/rest/api/content/{id}?expand=version")
    );
    world.sim.reset_counts();
    assert_eq!(world.sim.total_requests(), 0);
}

#[tokio::test]
async fn unknown_routes_answer_404_in_confluence_shape() {
    let world = World::dc().await;
    let missing = world.get("/rest/api/nowhere").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["statusCode"], 404);
    let cloud = World::cloud().await;
    let no_context = cloud
        .client
        .get(cloud.sim.base_url().trim_end_matches("/wiki").to_owned() + "/rest/api/space/DOCS")
        .basic_auth(EMAIL, Some(TOKEN))
        .send()
        .await
        .expect("answers");
    assert_eq!(
        no_context.status(),
        StatusCode::NOT_FOUND,
        "Cloud serves v1 under /wiki only"
    );
}

#[tokio::test]
async fn descendants_list_the_subtree_on_cloud_and_are_unsupported_on_dc() {
    let cloud = World::cloud().await;
    let root = cloud.sim.add_page("DOCS", "Root", None, "");
    let child = cloud.sim.add_page("DOCS", "Child", Some(&root), "");
    cloud.sim.add_page("DOCS", "Grandchild", Some(&child), "");
    let listed = cloud
        .get(&format!(
            "/rest/api/content/{root}/descendant/page?expand=ancestors"
        ))
        .await
        .json();
    assert_eq!(listed["size"], 2);

    let dc = World::dc().await;
    let root = dc.sim.add_page("DOCS", "Root", None, "");
    assert_eq!(
        dc.get(&format!("/rest/api/content/{root}/descendant/page"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn cloud_move_endpoint_reorders_without_a_new_version() {
    let world = World::cloud().await;
    let root = world.sim.add_page("DOCS", "Root", None, "");
    let first = world.sim.add_page("DOCS", "First", Some(&root), "");
    let second = world.sim.add_page("DOCS", "Second", Some(&root), "");
    let moved = world
        .send(
            Method::PUT,
            &format!("/rest/api/content/{second}/move/before/{first}"),
            None,
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!(moved.json()["pageId"], second.as_str());
    let children = world
        .get(&format!("/rest/api/content/{root}/child/page"))
        .await
        .json();
    let order: Vec<&str> = children["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["title"].as_str())
        .collect();
    assert_eq!(order, ["Second", "First"]);
    assert_eq!(world.sim.page(&second).map(|page| page.version), Some(1));
    let loop_move = world
        .send(
            Method::PUT,
            &format!("/rest/api/content/{root}/move/append/{first}"),
            None,
        )
        .await;
    assert_eq!(loop_move.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn trashed_titles_are_reserved_on_cloud_but_not_on_dc() {
    for (world, reserved) in [(World::cloud().await, true), (World::dc().await, false)] {
        let id = world.sim.add_page("DOCS", "Old", None, "");
        world
            .send(Method::DELETE, &format!("/rest/api/content/{id}"), None)
            .await;
        let again = world.create("old", None, "").await;
        let expected = if reserved {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        assert_eq!(again.status, expected, "{}", again.text);
    }
}

#[tokio::test]
async fn children_expansion_carries_the_first_25_and_size() {
    let world = World::dc().await;
    let parent = world.sim.add_page("DOCS", "Parent", None, "");
    for n in 0..30 {
        world
            .sim
            .add_page("DOCS", &format!("Kid {n}"), Some(&parent), "");
    }
    let page = world
        .get(&format!("/rest/api/content/{parent}?expand=children.page"))
        .await
        .json();
    assert_eq!(page["children"]["page"]["size"], 25);
    assert!(page["children"]["page"]["_links"]["next"].is_string());
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let world = World::dc().await;
    let url = format!("{}/rest/api/space/DOCS", world.sim.base_url());
    world.sim.clone().shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(fresh.get(url).send().await.is_err());
}

#[tokio::test]
async fn cql_does_not_see_writes_within_the_index_lag() {
    let settings = SimSettings {
        cql_index_lag: Duration::from_secs(3600),
        ..SimSettings::default()
    };
    let world = World::start(settings).await;
    let fresh = world.create("Fresh", None, "").await;
    assert_eq!(fresh.status, StatusCode::OK);
    let cql = encode(r#"space = "DOCS" and title = "Fresh""#);
    let searched = world
        .get(&format!("/rest/api/content/search?cql={cql}"))
        .await
        .json();
    assert_eq!(searched["size"], 0, "the index has not caught up");
    let looked_up = world
        .get("/rest/api/content?spaceKey=DOCS&title=Fresh")
        .await
        .json();
    assert_eq!(looked_up["size"], 1, "the title lookup reads the database");
}

#[tokio::test]
async fn removed_cloud_v1_crud_is_gone_by_default_and_served_with_deprecation_headers_when_kept() {
    let world = World::cloud_v2().await;
    world.sim.add_bearer_token("oauth-access");
    let id = world.sim.add_page("DOCS", "Kept", None, "");
    let url = format!("{}/rest/api/content/{id}", world.sim.base_url());
    let oauth = world
        .client
        .get(&url)
        .bearer_auth("oauth-access")
        .send()
        .await
        .expect("answers");
    assert_eq!(oauth.status(), StatusCode::GONE);
    let body: Value = oauth.json().await.unwrap_or(Value::Null);
    assert_eq!(
        body["message"],
        "com.atlassian.confluence.api.service.exceptions.GoneException: This deprecated endpoint has been removed."
    );
    for path in [
        "/rest/api/content?spaceKey=DOCS&title=Kept".to_owned(),
        format!("/rest/api/content/{id}"),
        format!("/rest/api/content/{id}/child/page"),
    ] {
        assert_eq!(world.get(&path).await.status, StatusCode::GONE, "{path}");
    }
    assert_eq!(world.sim.v1_requests(), 4);
    let kept = World::cloud().await;
    let id = kept.sim.add_page("DOCS", "Kept", None, "");
    let basic = kept.get(&format!("/rest/api/content/{id}")).await;
    assert_eq!(basic.status, StatusCode::OK);
    assert!(basic.headers.contains_key("deprecation"));
}

#[tokio::test]
async fn an_injected_409_reads_like_a_transient_optimistic_lock() {
    let world = World::dc().await;
    let id = world.sim.add_page("DOCS", "Busy", None, "");
    world.sim.fail_next(1, 409, None);
    let conflict = world
        .update(
            &id,
            json!({"type": "page", "title": "Busy", "version": {"number": 2}}),
        )
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert!(
        conflict.message().contains("OptimisticLockException"),
        "{}",
        conflict.message()
    );
    assert_eq!(
        world.sim.page(&id).map(|page| page.version),
        Some(1),
        "the failed write changed nothing"
    );
    let retried = world
        .update(
            &id,
            json!({"type": "page", "title": "Busy", "version": {"number": 2}}),
        )
        .await;
    assert_eq!(retried.status, StatusCode::OK);
}

impl World {
    /// Sends `method` to the v2 API at `base` (the site or the gateway form) with valid credentials.
    async fn send_v2(&self, base: &str, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send_to(method, format!("{base}/api/v2{path}"), body)
            .await
    }

    async fn v2(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send_v2(&self.sim.base_url(), method, path, body).await
    }
}

#[tokio::test]
async fn v2_lookup_ignores_case_and_pages_by_cursor_with_site_relative_links_on_both_url_forms() {
    let world = World::cloud_v2().await;
    let spaces = world.v2(Method::GET, "/spaces?keys=docs", None).await;
    assert_eq!(spaces.status, StatusCode::OK, "{}", spaces.text);
    let space_id = spaces.json()["results"][0]["id"]
        .as_str()
        .expect("space ids are strings")
        .to_owned();
    let root = world.sim.add_page("DOCS", "Root", None, "<p>r</p>");
    for i in 0..5 {
        world
            .sim
            .add_page("DOCS", &format!("Child {i}"), Some(&root), "");
    }
    let found = world
        .v2(
            Method::GET,
            &format!("/pages?space-id={space_id}&title=ROOT&body-format=storage"),
            None,
        )
        .await;
    let page = &found.json()["results"][0];
    assert_eq!(page["title"], "Root", "whole title, compared ignoring case");
    assert_eq!(page["body"]["storage"]["value"], "<p>r</p>");
    assert_eq!(page["version"]["number"], 1);
    let prefix = world
        .v2(
            Method::GET,
            &format!("/pages?space-id={space_id}&title=Roo"),
            None,
        )
        .await;
    assert_eq!(prefix.json()["results"], json!([]), "never a prefix match");

    for base in [world.sim.base_url(), world.sim.gateway_base_url()] {
        let mut titles = Vec::new();
        let mut next = Some(format!("/pages/{root}/children?limit=2"));
        let mut pages = 0;
        while let Some(path) = next.take() {
            let answer = world.send_v2(&base, Method::GET, &path, None).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
            pages += 1;
            let body = answer.json();
            for child in body["results"].as_array().expect("results") {
                titles.push(child["title"].as_str().unwrap_or_default().to_owned());
            }
            if let Some(link) = body["_links"]["next"].as_str() {
                // Site-relative with the context, whichever form was asked, and also in `Link`.
                assert!(link.starts_with("/wiki/api/v2/pages/"), "{link}");
                let header = answer.headers["link"].to_str().expect("ascii");
                assert_eq!(header, format!("<{link}>; rel=\"next\""));
                next = Some(link.trim_start_matches("/wiki/api/v2").to_owned());
            } else {
                assert!(!answer.headers.contains_key("link"));
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(
            titles,
            (0..5).map(|i| format!("Child {i}")).collect::<Vec<_>>()
        );
    }
    let wrong_cloud = world
        .client
        .get(format!(
            "{}/ex/confluence/not-this-site/wiki/api/v2/spaces",
            world.sim.base_url().trim_end_matches("/wiki")
        ))
        .basic_auth(EMAIL, Some(TOKEN))
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong_cloud.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn v2_writes_version_rename_move_and_delete_with_v2_error_bodies() {
    let world = World::cloud_v2().await;
    let root = world.sim.add_page("DOCS", "Root", None, "");
    let spaces = world.v2(Method::GET, "/spaces?keys=DOCS", None).await;
    let space_id = spaces.json()["results"][0]["id"].clone();
    let created = world
        .v2(
            Method::POST,
            "/pages",
            Some(
                json!({"spaceId": space_id, "status": "current", "title": "Notes", "parentId": root,
                "body": {"representation": "storage", "value": "<p>v1</p>"}}),
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let duplicate = world
        .v2(
            Method::POST,
            "/pages",
            Some(
                json!({"spaceId": space_id, "status": "current", "title": "NOTES", "parentId": root,
                "body": {"representation": "storage", "value": ""}}),
            ),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::BAD_REQUEST);
    let error = &duplicate.json()["errors"][0];
    assert_eq!(
        (error["status"].clone(), error["code"].clone()),
        (json!(400), json!("BAD_REQUEST"))
    );
    assert!(
        error["title"]
            .as_str()
            .unwrap_or_default()
            .contains("already exists")
    );

    let stale = world
        .v2(
            Method::PUT,
            &format!("/pages/{id}"),
            Some(
                json!({"id": id, "status": "current", "title": "Notes", "version": {"number": 5},
                "body": {"representation": "storage", "value": "<p>v2</p>"}}),
            ),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(
        stale.json()["errors"][0]["title"],
        "Version must be incremented when updating a page. Current Version: [1]. Provided version: [5]"
    );
    let no_body = world
        .v2(
            Method::PUT,
            &format!("/pages/{id}"),
            Some(
                json!({"id": id, "status": "current", "title": "Notes", "version": {"number": 2}}),
            ),
        )
        .await;
    assert_eq!(
        no_body.status,
        StatusCode::BAD_REQUEST,
        "v2 updates need the body"
    );

    let renamed = world
        .v2(
            Method::PUT,
            &format!("/pages/{id}/title"),
            Some(json!({"status": "current", "title": "Renamed"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    assert_eq!(renamed.json()["version"]["number"], 2);

    let other = world.sim.add_page("DOCS", "Other", Some(&root), "");
    let moved = world
        .v2(
            Method::PUT,
            &format!("/pages/{id}"),
            Some(
                json!({"id": id, "status": "current", "title": "Renamed", "version": {"number": 3},
                "parentId": other, "body": {"representation": "storage", "value": "<p>v1</p>"}}),
            ),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    let ancestors = world
        .v2(Method::GET, &format!("/pages/{id}/ancestors"), None)
        .await;
    assert_eq!(
        ancestors.json()["results"],
        json!([{"id": root, "type": "page"}, {"id": other, "type": "page"}]),
        "ids and types only, top to bottom"
    );

    let deleted = world
        .v2(Method::DELETE, &format!("/pages/{id}"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = world.v2(Method::GET, &format!("/pages/{id}"), None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.json()["errors"][0]["code"], "NOT_FOUND");
    assert_eq!(world.sim.v1_requests(), 0);
}

#[tokio::test]
async fn v2_bad_credentials_look_like_404_and_faults_use_v2_bodies() {
    let world = World::cloud_v2().await;
    let root = world.sim.add_page("DOCS", "Root", None, "");
    let refused = world
        .client
        .get(format!(
            "{}/api/v2/pages/{root}",
            world.sim.gateway_base_url()
        ))
        .basic_auth(EMAIL, Some("wrong"))
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let body: Value = refused.json().await.unwrap_or(Value::Null);
    assert_eq!(body["errors"][0]["title"], "Not Found");

    world.sim.fail_next(1, 429, Some(2));
    let limited = world.v2(Method::GET, "/spaces", None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers["retry-after"], "2");
    assert_eq!(limited.json()["errors"][0]["status"], 429);

    let folder = world.sim.add_folder("DOCS", "Folder", Some(&root));
    let page_route = world
        .v2(Method::GET, &format!("/pages/{folder}"), None)
        .await;
    assert_eq!(
        page_route.status,
        StatusCode::NOT_FOUND,
        "page routes 404 on a folder"
    );
    let children = world
        .v2(Method::GET, &format!("/pages/{root}/children"), None)
        .await;
    assert_eq!(
        children.json()["results"],
        json!([]),
        "children leave folders out"
    );
    let direct = world
        .v2(Method::GET, &format!("/pages/{root}/direct-children"), None)
        .await;
    assert_eq!(direct.json()["results"][0]["type"], "folder");
}
