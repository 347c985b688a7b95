//! The Confluence client against the simulator: results, upstream call counts, errors and retries,
//! on Data Center (REST v1) and on Cloud (REST v2, through the API gateway form).

use std::time::{Duration, Instant};

use std::num::NonZeroUsize;
use std::sync::Arc;

use conflagent::config::{BaseUrl, Deployment, UpstreamAuth};
use conflagent::confluence::{
    ConfluenceClient, PageUpdate, SubtreePage, UpstreamError, UpstreamSettings, http_client,
};
use conflagent::metrics::{self, RequestContext};
use conflagent::secret::Secret;
use conflagent::sim::{PageStatus, SimSettings, Simulator};

const SPACE: &str = "DOCS";
const EMAIL: &str = "bot@example.com";
const TOKEN: &str = "the-right-token";

/// A simulator with one space and a root page, and a client that may use it.
struct World {
    sim: Simulator,
    client: ConfluenceClient,
    root: String,
}

const BOTH: [Deployment; 2] = [Deployment::Cloud, Deployment::DataCenter];

async fn world(deployment: Deployment) -> World {
    world_with_deadline(deployment, Duration::from_secs(10)).await
}

async fn world_with_deadline(deployment: Deployment, deadline: Duration) -> World {
    world_with_settings(SimSettings::for_deployment(deployment), deadline).await
}

/// A world on `settings`. A Cloud client has already looked up its space id (which it does once)
/// and read the root, and the request counts start from zero.
async fn world_with_settings(settings: SimSettings, deadline: Duration) -> World {
    let deployment = settings.deployment;
    let sim = Simulator::start(settings).await.expect("simulator starts");
    sim.add_space(SPACE, "Documentation");
    sim.add_basic_user(EMAIL, TOKEN);
    sim.add_bearer_token(TOKEN);
    let root = sim.add_page(SPACE, "Root", None, "<p>root</p>");
    let client = client(&sim, deployment, right_credential(deployment), deadline);
    if deployment == Deployment::Cloud {
        client
            .page_by_title("Root", false)
            .await
            .expect("the space and the root are visible");
        sim.reset_counts();
    }
    World { sim, client, root }
}

fn right_credential(deployment: Deployment) -> UpstreamAuth {
    match deployment {
        Deployment::Cloud => UpstreamAuth::Basic {
            email: EMAIL.to_owned(),
            api_token: Secret::new(TOKEN),
        },
        Deployment::DataCenter => UpstreamAuth::Bearer {
            token: Secret::new(TOKEN),
        },
    }
}

fn client(
    sim: &Simulator,
    deployment: Deployment,
    auth: UpstreamAuth,
    deadline: Duration,
) -> ConfluenceClient {
    ConfluenceClient::new(
        http_client(),
        settings(&base_url(sim, deployment), deployment, auth, deadline),
    )
}

/// Cloud through the API gateway form (where a site-relative `next` link must not lose the
/// gateway prefix), Data Center at its context root.
fn base_url(sim: &Simulator, deployment: Deployment) -> String {
    match deployment {
        Deployment::Cloud => sim.gateway_base_url(),
        Deployment::DataCenter => sim.base_url(),
    }
}

/// The expected figure for each deployment.
fn per(deployment: Deployment, data_center: usize, cloud: usize) -> usize {
    match deployment {
        Deployment::DataCenter => data_center,
        Deployment::Cloud => cloud,
    }
}

fn settings(
    base_url: &str,
    deployment: Deployment,
    auth: UpstreamAuth,
    deadline: Duration,
) -> UpstreamSettings {
    UpstreamSettings {
        base_url: BaseUrl::parse(base_url).expect("valid base URL"),
        deployment,
        auth,
        space_key: SPACE.to_owned(),
        deadline,
        max_concurrent: NonZeroUsize::new(8).expect("not zero"),
    }
}

fn update(id: &str, title: &str, new_version: u64) -> PageUpdate {
    PageUpdate {
        id: id.to_owned(),
        title: title.to_owned(),
        new_version,
        body: None,
        parent_id: None,
    }
}

#[tokio::test]
async fn lookups_take_one_request_each_and_carry_version_ancestors_and_body() {
    for deployment in BOTH {
        let w = world(deployment).await;
        let parent = w.sim.add_page(SPACE, "Parent", Some(&w.root), "");
        let child = w
            .sim
            .add_page(SPACE, "Child", Some(&parent), "<p>hello</p>");

        let page = w
            .client
            .page_by_title("Child", true)
            .await
            .expect("lookup works")
            .expect("page exists");
        assert_eq!(
            (page.id.as_str(), page.title.as_str(), page.version),
            (child.as_str(), "Child", 1)
        );
        let ancestors: Vec<&str> = page.ancestors.iter().map(|a| a.title.as_str()).collect();
        assert_eq!(
            ancestors,
            ["Root", "Parent"],
            "{deployment:?}: root-first ancestors"
        );
        assert_eq!(page.body.as_deref(), Some("<p>hello</p>"));
        // Cloud: the lookup, the ancestor ids, and the one title not yet known ("Parent").
        assert_eq!(
            w.sim.total_requests(),
            per(deployment, 1, 3),
            "{deployment:?}: requests per title lookup"
        );

        let by_id = w
            .client
            .page_by_id(&child, false)
            .await
            .expect("read works")
            .expect("page exists");
        assert_eq!((by_id.title.as_str(), by_id.body), ("Child", None));
        assert_eq!(by_id.ancestors, page.ancestors);
        assert_eq!(
            w.sim.request_count("GET /rest/api/content/{id}")
                + w.sim.request_count("GET /api/v2/pages/{id}"),
            1,
            "{deployment:?}"
        );

        assert_eq!(
            w.client.page_by_title("No such page", false).await,
            Ok(None)
        );
        assert_eq!(w.client.page_by_id("987654321", true).await, Ok(None));
        // Cloud: the read by id is the page and its ancestors (titles now known); a 404 on a
        // page is believed only after a fresh space lookup shows the token still works.
        assert_eq!(
            w.sim.total_requests(),
            per(deployment, 4, 8),
            "{deployment:?}"
        );
        assert_eq!(w.sim.v1_requests(), per(deployment, 4, 0), "{deployment:?}");
    }
}

#[tokio::test]
async fn titles_with_special_characters_round_trip() {
    let titles = [
        "a/b",
        "Q&A: \"quotes\"",
        "C++ #1 ?",
        "100% sure",
        "x=1&y=2",
        "Ünïcødé 日本語 🚀",
        "back\\slash",
    ];
    for deployment in BOTH {
        let w = world(deployment).await;
        for title in titles {
            let created = w
                .client
                .create_page(title, &w.root, "<p>x</p>")
                .await
                .expect("create works");
            assert_eq!(created.title, title);
            let found = w
                .client
                .page_by_title(title, false)
                .await
                .expect("lookup works");
            assert_eq!(
                found.map(|p| p.id),
                Some(created.id),
                "{deployment:?}: {title}"
            );
        }
        // Cloud: each lookup also asks for the ancestor ids (the root's title is known).
        assert_eq!(
            w.sim.total_requests(),
            per(deployment, 2, 3) * titles.len(),
            "{deployment:?}"
        );
    }
}

#[tokio::test]
async fn children_are_listed_in_order_across_server_pages() {
    for deployment in BOTH {
        let w = world(deployment).await;
        let expected: Vec<String> = (0..450).map(|i| format!("Page {i:03}")).collect();
        for title in &expected {
            w.sim.add_page(SPACE, title, Some(&w.root), "");
        }
        let children = w.client.children(&w.root).await.expect("listing works");
        let titles: Vec<String> = children.into_iter().map(|c| c.title).collect();
        assert_eq!(titles, expected, "{deployment:?}");
        // The simulator caps pages at 200 children on v1 and 250 on v2.
        assert_eq!(
            w.sim.request_count("GET /rest/api/content/{id}/child/page")
                + w.sim
                    .request_count("GET /api/v2/pages/{id}/direct-children"),
            per(deployment, 3, 2),
            "{deployment:?}"
        );
        assert_eq!(
            w.client.children("987654321").await,
            Err(UpstreamError::NotFound)
        );
    }
}

#[tokio::test]
async fn writes_take_one_request_each_and_need_no_read_back() {
    for deployment in BOTH {
        let w = world(deployment).await;
        let other = w.sim.add_page(SPACE, "Other parent", Some(&w.root), "");

        let created = w
            .client
            .create_page("Notes", &w.root, "<p>v1</p>")
            .await
            .expect("create works");
        assert_eq!(created.version, 1);
        assert_eq!(
            w.sim.page(&created.id).and_then(|p| p.parent_id),
            Some(w.root.clone())
        );
        assert_eq!(
            w.sim.total_requests(),
            1,
            "{deployment:?}: create is one POST"
        );

        let edit = PageUpdate {
            body: Some("<p>v2</p>".to_owned()),
            ..update(&created.id, "Notes", 2)
        };
        let edited = w.client.update_page(&edit).await.expect("update works");
        assert_eq!(edited.version, 2);
        let renamed = w
            .client
            .update_page(&update(&created.id, "Notes renamed", 3))
            .await
            .expect("rename works");
        assert_eq!(
            (renamed.title.as_str(), renamed.version),
            ("Notes renamed", 3)
        );
        let moved = PageUpdate {
            parent_id: Some(other.clone()),
            ..update(&created.id, "Notes renamed", 4)
        };
        let moved = w.client.update_page(&moved).await.expect("move works");
        assert_eq!(moved.version, 4);
        assert_eq!(
            w.sim.page(&created.id).and_then(|p| p.parent_id),
            Some(other.clone()),
            "{deployment:?}"
        );
        // Cloud renames through `PUT /pages/{id}/title`; a move without a body reads it first.
        assert_eq!(
            w.sim.request_count("PUT /rest/api/content/{id}")
                + w.sim.request_count("PUT /api/v2/pages/{id}")
                + w.sim.request_count("PUT /api/v2/pages/{id}/title"),
            3
        );
        let stored = w.sim.page(&created.id).expect("page stored");
        assert_eq!(
            stored.body, "<p>v2</p>",
            "{deployment:?}: rename and move keep the body"
        );

        w.client
            .delete_page(&created.id)
            .await
            .expect("delete works");
        assert_eq!(
            w.sim.page(&created.id).map(|p| p.status),
            Some(PageStatus::Trashed)
        );
        assert_eq!(
            w.sim.total_requests(),
            per(deployment, 5, 6),
            "{deployment:?}"
        );
        assert_eq!(
            w.client.delete_page(&created.id).await,
            Err(UpstreamError::NotFound)
        );
        assert_eq!(w.sim.v1_requests(), per(deployment, 6, 0), "{deployment:?}");
    }
}

#[tokio::test]
async fn refusals_map_to_the_errors_the_gateway_branches_on() {
    for deployment in BOTH {
        let w = world(deployment).await;
        let page = w
            .client
            .create_page("Taken", &w.root, "")
            .await
            .expect("create works");
        let child = w
            .client
            .create_page("Below", &page.id, "")
            .await
            .expect("create works");

        let duplicate = w.client.create_page("Taken", &w.root, "").await;
        assert_eq!(duplicate, Err(UpstreamError::TitleTaken), "{deployment:?}");
        let duplicate_other_case = w.client.create_page("TAKEN", &w.root, "").await;
        assert_eq!(
            duplicate_other_case,
            Err(UpstreamError::TitleTaken),
            "{deployment:?}"
        );
        let rename_into_taken = w.client.update_page(&update(&child.id, "Taken", 2)).await;
        assert_eq!(
            rename_into_taken,
            Err(UpstreamError::TitleTaken),
            "{deployment:?}"
        );

        let stale_edit = PageUpdate {
            body: Some("<p>stale</p>".to_owned()),
            ..update(&page.id, "Taken", 7)
        };
        let stale = w.client.update_page(&stale_edit).await;
        assert_eq!(
            stale,
            Err(UpstreamError::VersionConflict { current: Some(1) }),
            "{deployment:?}"
        );

        let under_own_child = PageUpdate {
            parent_id: Some(child.id.clone()),
            ..update(&page.id, "Taken", 2)
        };
        assert_eq!(
            w.client.update_page(&under_own_child).await,
            Err(UpstreamError::IllegalMove),
            "{deployment:?}"
        );

        match w.client.create_page("Broken", &w.root, "<p>a</br>").await {
            Err(UpstreamError::InvalidStorage(message)) => {
                assert!(message.contains("[row,col"), "{message}")
            }
            other => panic!("{deployment:?}: malformed storage gave {other:?}"),
        }
    }
}

#[tokio::test]
async fn wrong_credentials_are_rejected_without_being_echoed() {
    for deployment in BOTH {
        let w = world(deployment).await;
        let wrong = match deployment {
            Deployment::Cloud => UpstreamAuth::Basic {
                email: EMAIL.to_owned(),
                api_token: Secret::new("wrong-token"),
            },
            Deployment::DataCenter => UpstreamAuth::Bearer {
                token: Secret::new("wrong-token"),
            },
        };
        let client = client(&w.sim, deployment, wrong, Duration::from_secs(5));
        let error = client
            .page_by_title("Root", false)
            .await
            .expect_err("credential refused");
        assert_eq!(error, UpstreamError::CredentialsRejected, "{deployment:?}");
        assert!(!format!("{error} {error:?}").contains("wrong-token"));
        assert_eq!(
            w.sim.total_requests(),
            1,
            "{deployment:?}: a refused credential is not retried"
        );
    }
}

#[tokio::test]
async fn a_rate_limited_read_waits_for_retry_after_and_succeeds() {
    let w = world(Deployment::Cloud).await;
    w.sim.fail_next(1, 429, Some(1));
    let started = Instant::now();
    let page = w
        .client
        .page_by_title("Root", false)
        .await
        .expect("second attempt succeeds");
    assert_eq!(page.map(|p| p.id), Some(w.root.clone()));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        started.elapsed()
    );
    assert_eq!(w.sim.request_count("GET /api/v2/pages"), 2);
    assert_eq!(w.sim.v1_requests(), 0);
}

#[tokio::test]
async fn a_rate_limited_write_is_sent_again_once() {
    let w = world(Deployment::DataCenter).await;
    w.sim.fail_next(1, 429, Some(1));
    let created = w
        .client
        .create_page("After the wait", &w.root, "")
        .await
        .expect("second attempt succeeds");
    assert_eq!(w.sim.request_count("POST /rest/api/content"), 2);
    assert_eq!(
        w.sim.page_by_title(SPACE, "After the wait").map(|p| p.id),
        Some(created.id)
    );
}

#[tokio::test]
async fn a_failed_write_without_retry_after_is_not_repeated() {
    let w = world(Deployment::DataCenter).await;
    w.sim.fail_next(1, 503, None);
    let result = w.client.create_page("Maybe", &w.root, "").await;
    assert!(
        matches!(result, Err(UpstreamError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(w.sim.request_count("POST /rest/api/content"), 1);
    // A 502 in front of Confluence may hide an applied write: its outcome is unknown, and it is
    // not repeated either.
    w.sim.fail_next(1, 502, None);
    let result = w.client.update_page(&update(&w.root, "Root", 2)).await;
    assert!(
        matches!(result, Err(UpstreamError::WriteOutcomeUnknown)),
        "{result:?}"
    );
    assert_eq!(w.sim.request_count("PUT /rest/api/content/{id}"), 1);
}

#[tokio::test]
async fn confluence_down_throughout_is_unavailable_within_the_deadline() {
    let w = world_with_deadline(Deployment::DataCenter, Duration::from_secs(2)).await;
    w.sim.fail_always(Some(503));
    let started = Instant::now();
    let result = w.client.page_by_title("Root", false).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(UpstreamError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "gave up after {elapsed:?}"
    );
    let attempts = w.sim.total_requests();
    assert!((2..=5).contains(&attempts), "{attempts} attempts");
}

#[tokio::test]
async fn an_unreachable_confluence_is_unavailable_within_the_deadline() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let address = listener.local_addr().expect("bound address");
    drop(listener);
    let auth = right_credential(Deployment::DataCenter);
    let deadline = Duration::from_secs(2);
    let settings = settings(
        &format!("http://{address}"),
        Deployment::DataCenter,
        auth,
        deadline,
    );
    let client = ConfluenceClient::new(http_client(), settings);
    let started = Instant::now();
    let result = client.page_by_title("Root", false).await;
    assert!(
        matches!(&result, Err(UpstreamError::Unavailable(message)) if message.contains("onnect")),
        "{result:?}"
    );
    assert!(
        started.elapsed() < deadline,
        "gave up after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn concurrent_calls_are_capped_per_endpoint() {
    let w = world(Deployment::DataCenter).await;
    let mut settings = settings(
        &w.sim.base_url(),
        Deployment::DataCenter,
        right_credential(Deployment::DataCenter),
        Duration::from_secs(10),
    );
    settings.max_concurrent = NonZeroUsize::new(2).expect("not zero");
    let capped = ConfluenceClient::new(http_client(), settings);
    w.sim.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    let reads = (0..6).map(|_| capped.page_by_id(&w.root, false));
    let results = futures_util::future::join_all(reads).await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(Some(_)))),
        "{results:?}"
    );
    // Six 200 ms calls, two at a time: three rounds.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "took only {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_confluence_hits_the_deadline() {
    let w = world_with_deadline(Deployment::DataCenter, Duration::from_millis(500)).await;
    w.sim.set_latency(Duration::from_secs(3));
    let started = Instant::now();
    assert_eq!(
        w.client.page_by_id(&w.root, false).await,
        Err(UpstreamError::Timeout)
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_request_context_counts_every_attempt_made_inside_it_only() {
    let w = world(Deployment::DataCenter).await;
    let context = Arc::new(RequestContext::new(metrics::endpoint_label_value(
        "counted",
    )));
    w.sim.fail_next(1, 503, Some(0));
    metrics::scope(Arc::clone(&context), async {
        w.client
            .page_by_id(&w.root, false)
            .await
            .expect("retry succeeds");
        w.client
            .page_by_title("Root", false)
            .await
            .expect("lookup works");
    })
    .await;
    w.client
        .page_by_title("Root", false)
        .await
        .expect("lookup works");
    assert_eq!(context.upstream_calls(), 3);
    assert_eq!(w.sim.total_requests(), 4);
}

/// Seeds `levels` levels of `fanout` children under `parent`; returns the pages as the client reports them.
fn seed_tree(
    sim: &Simulator,
    parent: &str,
    prefix: &str,
    levels: u32,
    fanout: u32,
) -> Vec<SubtreePage> {
    let mut seeded = Vec::new();
    if levels == 0 {
        return seeded;
    }
    for i in 0..fanout {
        let title = format!("{prefix}{i}");
        let id = sim.add_page(SPACE, &title, Some(parent), "");
        seeded.push(SubtreePage {
            id: id.clone(),
            title: title.clone(),
            parent_id: parent.to_owned(),
        });
        seeded.extend(seed_tree(
            sim,
            &id,
            &format!("{title}."),
            levels - 1,
            fanout,
        ));
    }
    seeded
}

fn sorted(mut pages: Vec<SubtreePage>) -> Vec<SubtreePage> {
    pages.sort_by(|a, b| a.id.cmp(&b.id));
    pages
}

#[tokio::test]
async fn subtree_lists_155_pages_with_few_requests() {
    for (deployment, expected_requests) in [(Deployment::Cloud, 1), (Deployment::DataCenter, 26)] {
        let expected_requests: usize = expected_requests;
        let w = world(deployment).await;
        let seeded = seed_tree(&w.sim, &w.root, "P", 3, 5);
        assert_eq!(seeded.len(), 155);
        w.sim.add_page(SPACE, "Outside", None, "");

        let listed = w
            .client
            .subtree(&w.root, None)
            .await
            .expect("listing works");
        let requests = w.sim.total_requests();
        println!("{deployment:?}: subtree of 155 pages in {requests} requests");
        assert_eq!(requests, expected_requests, "{deployment:?}");
        let position = |id: &str| listed.iter().position(|p| p.id == id);
        for page in &listed {
            if page.parent_id != w.root {
                assert!(
                    position(&page.parent_id) < position(&page.id),
                    "{deployment:?}: parents come first"
                );
            }
        }
        assert_eq!(sorted(listed), sorted(seeded.clone()), "{deployment:?}");

        let two_levels = w
            .client
            .subtree(&w.root, Some(2))
            .await
            .expect("listing works");
        let expected: Vec<SubtreePage> = seeded
            .iter()
            .filter(|p| p.title.len() <= 4)
            .cloned()
            .collect();
        assert_eq!(two_levels.len(), 30);
        assert_eq!(sorted(two_levels), sorted(expected), "{deployment:?}");

        let one_level = w
            .client
            .subtree(&w.root, Some(1))
            .await
            .expect("listing works");
        assert_eq!(one_level.len(), 5);
        assert_eq!(
            w.client.subtree("987654321", None).await,
            Err(UpstreamError::NotFound)
        );
    }
}

#[tokio::test]
async fn subtree_walks_wide_pages_on_data_center() {
    let w = world(Deployment::DataCenter).await;
    // 30 children under one page: more than a children.page expansion carries, so it is listed itself.
    let wide = w.sim.add_page(SPACE, "Wide", Some(&w.root), "");
    let mut seeded = vec![SubtreePage {
        id: wide.clone(),
        title: "Wide".to_owned(),
        parent_id: w.root.clone(),
    }];
    seeded.extend(seed_tree(&w.sim, &wide, "W", 1, 30));
    let listed = w
        .client
        .subtree(&w.root, None)
        .await
        .expect("listing works");
    assert_eq!(sorted(listed), sorted(seeded));
    assert_eq!(w.sim.total_requests(), 2);
}

#[tokio::test]
async fn cloud_follows_cursor_pages_through_the_gateway_on_children_descendants_and_lookups() {
    let settings = SimSettings {
        v2_max_page_limit: 2,
        ..SimSettings::for_deployment(Deployment::Cloud)
    };
    let w = world_with_settings(settings, Duration::from_secs(10)).await;
    // A chain five pages deep (its titles take three cursor pages to fetch) and seven children.
    let mut parent = w.root.clone();
    for level in 1..=5 {
        parent = w
            .sim
            .add_page(SPACE, &format!("Level {level}"), Some(&parent), "");
    }
    let seeded = seed_tree(&w.sim, &w.root, "K", 1, 7);

    let deepest = w
        .client
        .page_by_title("Level 5", false)
        .await
        .expect("lookup works")
        .expect("page exists");
    let chain: Vec<&str> = deepest.ancestors.iter().map(|a| a.title.as_str()).collect();
    assert_eq!(chain, ["Root", "Level 1", "Level 2", "Level 3", "Level 4"]);
    // Four unknown titles, two per cursor page.
    assert_eq!(w.sim.request_count("GET /api/v2/pages"), 1 + 2);

    let children = w.client.children(&w.root).await.expect("listing works");
    let titles: Vec<&str> = children.iter().map(|c| c.title.as_str()).collect();
    let mut expected = vec!["Level 1"];
    expected.extend(seeded.iter().map(|p| p.title.as_str()));
    assert_eq!(titles, expected);
    assert_eq!(
        w.sim
            .request_count("GET /api/v2/pages/{id}/direct-children"),
        4
    );

    let listed = w
        .client
        .subtree(&w.root, None)
        .await
        .expect("listing works");
    assert_eq!(listed.len(), 5 + 7);
    // Twelve pages two at a time, plus a sweep below "Level 5", which sits on the fifth level
    // (the deepest one sweep answers) and might have children.
    assert_eq!(
        w.sim.request_count("GET /api/v2/pages/{id}/descendants"),
        6 + 1
    );

    // `_links.next` is site-relative (`/wiki/api/v2/…`); every request still went through the
    // gateway, and none used v1.
    let requests = w.sim.requests();
    assert!(
        requests
            .iter()
            .all(|request| request.path_and_query.starts_with("/ex/confluence/")),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|request| request.path_and_query.contains("cursor="))
    );
    assert_eq!(w.sim.v1_requests(), 0);
}

#[tokio::test]
async fn cloud_subtrees_deeper_than_one_descendants_sweep_are_complete() {
    let w = world(Deployment::Cloud).await;
    let mut parent = w.root.clone();
    let mut expected = Vec::new();
    for level in 1..=8 {
        let id = w
            .sim
            .add_page(SPACE, &format!("Deep {level}"), Some(&parent), "");
        expected.push(SubtreePage {
            id: id.clone(),
            title: format!("Deep {level}"),
            parent_id: parent.clone(),
        });
        parent = id;
    }
    let listed = w
        .client
        .subtree(&w.root, None)
        .await
        .expect("listing works");
    assert_eq!(listed, expected);
    // One sweep of five levels, then one from the page on its last level.
    assert_eq!(w.sim.request_count("GET /api/v2/pages/{id}/descendants"), 2);
    let six = w
        .client
        .subtree(&w.root, Some(6))
        .await
        .expect("listing works");
    assert_eq!(six, expected[..6]);
}

#[tokio::test]
async fn cloud_folders_are_transparent_in_ancestors_children_and_subtrees() {
    let w = world(Deployment::Cloud).await;
    let before = w.sim.add_page(SPACE, "Before", Some(&w.root), "");
    let folder = w.sim.add_folder(SPACE, "Archive", Some(&w.root));
    let inner = w.sim.add_folder(SPACE, "Inner", Some(&folder));
    let filed = w.sim.add_page(SPACE, "Filed", Some(&inner), "<p>kept</p>");
    let below = w.sim.add_page(SPACE, "Below filed", Some(&filed), "");
    let after = w.sim.add_page(SPACE, "After", Some(&w.root), "");
    // Folders do not reserve titles: a page may share one with a folder.
    let namesake = w.sim.add_page(SPACE, "Archive", Some(&w.root), "");

    let page = w
        .client
        .page_by_title("Below filed", true)
        .await
        .expect("lookup works")
        .expect("page exists");
    let chain: Vec<(&str, &str)> = page
        .ancestors
        .iter()
        .map(|a| (a.id.as_str(), a.title.as_str()))
        .collect();
    assert_eq!(
        chain,
        [(w.root.as_str(), "Root"), (filed.as_str(), "Filed")]
    );
    let archive = w
        .client
        .page_by_title("archive", false)
        .await
        .expect("lookup works");
    assert_eq!(archive.map(|p| p.id), Some(namesake.clone()));

    let children = w.client.children(&w.root).await.expect("listing works");
    let ids: Vec<&str> = children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            before.as_str(),
            filed.as_str(),
            after.as_str(),
            namesake.as_str()
        ]
    );

    let listed = w
        .client
        .subtree(&w.root, None)
        .await
        .expect("listing works");
    let placed: Vec<(&str, &str)> = listed
        .iter()
        .map(|p| (p.id.as_str(), p.parent_id.as_str()))
        .collect();
    assert!(
        placed.contains(&(filed.as_str(), w.root.as_str())),
        "{placed:?}"
    );
    assert!(
        placed.contains(&(below.as_str(), filed.as_str())),
        "{placed:?}"
    );
    assert_eq!(listed.len(), 5);
    let one_level = w
        .client
        .subtree(&w.root, Some(1))
        .await
        .expect("listing works");
    assert_eq!(one_level.len(), 4, "{one_level:?}");
    // v2 page routes do not answer for a folder.
    assert_eq!(w.client.page_by_id(&folder, false).await, Ok(None));
}

#[tokio::test]
async fn cloud_tells_a_refused_token_or_missing_space_from_a_missing_page() {
    let w = world(Deployment::Cloud).await;
    // A page that does not exist, with a working token: not found.
    assert_eq!(w.client.page_by_id("987654321", false).await, Ok(None));
    // The token is revoked after the space id was cached: v2 answers 404 everywhere, and the
    // fresh space lookup shows it is the token.
    w.sim.remove_basic_user(EMAIL, TOKEN);
    assert_eq!(
        w.client.page_by_title("Root", false).await,
        Err(UpstreamError::CredentialsRejected)
    );
    assert_eq!(
        w.client.page_by_id(&w.root, false).await,
        Err(UpstreamError::CredentialsRejected)
    );
    assert_eq!(
        w.client.delete_page(&w.root).await,
        Err(UpstreamError::CredentialsRejected)
    );
    // A space key the token cannot see is the same operator problem.
    let mut wrong_space = settings(
        &w.sim.gateway_base_url(),
        Deployment::Cloud,
        right_credential(Deployment::Cloud),
        Duration::from_secs(5),
    );
    wrong_space.space_key = "NOPE".to_owned();
    w.sim.add_basic_user(EMAIL, TOKEN);
    let client = ConfluenceClient::new(http_client(), wrong_space);
    assert_eq!(
        client.page_by_title("Root", false).await,
        Err(UpstreamError::CredentialsRejected)
    );
    assert_eq!(w.sim.v1_requests(), 0);
}
