//! Every page operation through the gateway against the simulator: success paths, documented
//! failures, the sandbox, and the upstream call budget of each operation.

use std::time::Duration;

use conflagent::sim::Deployment;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{DEPLOYMENTS, SPACE, World};

fn assert_ok(status: u16, body: &Value) {
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["code"], "OK", "{body}");
}

fn assert_error(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["data"], Value::Null, "{body}");
}

/// Percent-encodes one title for use as a path segment.
fn segment(title: &str) -> String {
    percent_encoding::utf8_percent_encode(title, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn list_returns_title_paths_in_tree_order() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let (status, body) = world.call(Method::GET, "/pages", None).await;
        assert_ok(status, &body);
        assert_eq!(
            body["data"],
            json!(["Guides", "Guides/Install", "Guides/Configure", "Notes"])
        );
        assert_eq!(body["message"], "Subpages retrieved. 4 pages.");
        world.stop().await;
    }
}

#[tokio::test]
async fn list_pages_with_offset_and_limit() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let (status, body) = world
            .call(Method::GET, "/pages?offset=1&limit=2", None)
            .await;
        assert_ok(status, &body);
        assert_eq!(body["data"], json!(["Guides/Install", "Guides/Configure"]));
        assert_eq!(
            body["message"],
            "Subpages retrieved. Pages 2–3 of 4; call again with offset=3 for the rest."
        );
        let (status, body) = world.call(Method::GET, "/pages?limit=0", None).await;
        assert_error(status, &body, 400, "INVALID_INPUT");
        world.stop().await;
    }
}

#[tokio::test]
async fn tree_is_one_node_with_nested_children_and_depth_limited() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let (status, body) = world.call(Method::GET, "/pages/tree?depth=1", None).await;
        assert_ok(status, &body);
        assert_eq!(
            body["message"],
            "Page tree retrieved. 2 pages below `Handbook`."
        );
        assert_eq!(
            body["data"],
            json!({
                "title": "Handbook",
                "path": ["Handbook"],
                "titlePath": "Handbook",
                "children": [
                    {"title": "Guides", "path": ["Handbook", "Guides"], "titlePath": "Guides", "children": []},
                    {"title": "Notes", "path": ["Handbook", "Notes"], "titlePath": "Notes", "children": []},
                ],
            })
        );
        let (status, body) = world.call(Method::GET, "/pages/tree", None).await;
        assert_ok(status, &body);
        assert_eq!(
            body["data"]["children"][0]["children"][1],
            json!({
                "title": "Configure",
                "path": ["Handbook", "Guides", "Configure"],
                "titlePath": "Guides/Configure",
                "children": [],
            })
        );
        let (status, body) = world
            .call(Method::GET, "/pages/tree?startTitle=Guides", None)
            .await;
        assert_ok(status, &body);
        assert_eq!(
            body["data"],
            json!({
                "title": "Guides",
                "path": ["Handbook", "Guides"],
                "titlePath": "Guides",
                "children": [
                    {"title": "Install", "path": ["Handbook", "Guides", "Install"], "titlePath": "Guides/Install", "children": []},
                    {"title": "Configure", "path": ["Handbook", "Guides", "Configure"], "titlePath": "Guides/Configure", "children": []},
                ],
            })
        );
        // Depth 0, as the original allows it: the start page alone.
        let (status, body) = world
            .call(Method::GET, "/pages/tree?depth=0&startTitle=Guides", None)
            .await;
        assert_ok(status, &body);
        assert_eq!(body["data"]["children"], json!([]));
        assert_eq!(body["data"]["title"], "Guides");
        for bad in ["depth=-1", "depth=11", "depth=two"] {
            let (status, body) = world
                .call(Method::GET, &format!("/pages/tree?{bad}"), None)
                .await;
            assert_error(status, &body, 400, "INVALID_INPUT");
        }
        world.stop().await;
    }
}

#[tokio::test]
async fn read_by_title_and_by_title_path() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        for path in [
            "/pages/Install",
            "/pages/Guides/Install",
            "/pages/Guides%2FInstall",
        ] {
            let (status, body) = world.call(Method::GET, path, None).await;
            assert_ok(status, &body);
            assert_eq!(body["message"], "Page retrieved.");
            assert_eq!(body["data"]["title"], "Install", "{path}");
            assert_eq!(
                body["data"]["path"],
                json!(["Handbook", "Guides", "Install"])
            );
            assert_eq!(body["data"]["titlePath"], "Guides/Install");
            assert_eq!(body["data"]["body"], "<p>Run the installer.</p>");
            assert_eq!(body["data"]["version"], 1);
            assert_eq!(body["data"]["truncated"], false);
        }
        // A path that does not match the page's real ancestors is not that page.
        let (status, body) = world.call(Method::GET, "/pages/Notes/Install", None).await;
        assert_error(status, &body, 404, "NOT_FOUND");
        // The root page itself is readable.
        let (status, body) = world.call(Method::GET, "/pages/Handbook", None).await;
        assert_ok(status, &body);
        assert_eq!(body["data"]["path"], json!(["Handbook"]));
        assert_eq!(body["data"]["titlePath"], "Handbook");
        // A title path may start with the root's title.
        let (status, body) = world
            .call(Method::GET, "/pages/Handbook/Guides/Install", None)
            .await;
        assert_ok(status, &body);
        assert_eq!(body["data"]["title"], "Install");
        world.stop().await;
    }
}

#[tokio::test]
async fn read_as_markdown_and_in_slices() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let (status, body) = world
            .call(Method::GET, "/pages/Install?format=markdown", None)
            .await;
        assert_ok(status, &body);
        assert_eq!(body["data"]["format"], "markdown");
        assert_eq!(
            body["data"]["body"].as_str().map(str::trim),
            Some("Run the installer.")
        );
        let (status, body) = world
            .call(Method::GET, "/pages/Install?offset=3&maxChars=4", None)
            .await;
        assert_ok(status, &body);
        assert_eq!(body["data"]["body"], "Run ");
        assert_eq!(body["data"]["truncated"], true);
        assert_eq!(body["data"]["bodyLength"], 25);
        assert_eq!(
            body["message"],
            "Page retrieved. Characters 3–7 of 25; call again with offset=7 for the rest."
        );
        let (status, body) = world
            .call(Method::GET, "/pages/Install?format=html", None)
            .await;
        assert_error(status, &body, 400, "INVALID_INPUT");
        world.stop().await;
    }
}

#[tokio::test]
async fn children_and_parent() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let (status, body) = world
            .call(Method::GET, "/pages/Guides/children", None)
            .await;
        assert_ok(status, &body);
        assert_eq!(body["message"], "Child pages retrieved. 2 children.");
        assert_eq!(
            body["data"],
            json!([
                {"title": "Install", "path": ["Handbook", "Guides", "Install"], "titlePath": "Guides/Install"},
                {"title": "Configure", "path": ["Handbook", "Guides", "Configure"], "titlePath": "Guides/Configure"},
            ])
        );
        let (status, body) = world.call(Method::GET, "/pages/Install/parent", None).await;
        assert_ok(status, &body);
        assert_eq!(body["message"], "Parent metadata retrieved.");
        // As the original: `title` is the parent's, `path` the breadcrumb of the page asked about.
        assert_eq!(
            body["data"],
            json!({
                "title": "Guides",
                "path": ["Handbook", "Guides", "Install"],
                "titlePath": "Guides/Install",
                "parentPath": ["Handbook", "Guides"],
                "parentTitlePath": "Guides",
            })
        );
        let (status, body) = world.call(Method::GET, "/pages/Notes/parent", None).await;
        assert_ok(status, &body);
        assert_eq!(
            body["data"],
            json!({
                "title": "Handbook",
                "path": ["Handbook", "Notes"],
                "titlePath": "Notes",
                "parentPath": ["Handbook"],
                "parentTitlePath": "Handbook",
            })
        );
        let (status, body) = world
            .call(Method::GET, "/pages/Handbook/parent", None)
            .await;
        assert_error(status, &body, 422, "INVALID_OPERATION");
        world.stop().await;
    }
}

#[tokio::test]
async fn create_under_the_root_and_under_a_parent_title() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let (status, body) = world
            .call(
                Method::POST,
                "/pages",
                Some(json!({"title": "Release 1.0", "body": "# Done\n\nSee [[Install]]."})),
            )
            .await;
        assert_ok(status, &body);
        assert_eq!(body["message"], "Page created.");
        let id = body["data"]["id"].as_str().expect("id").to_owned();
        assert_eq!(
            body["data"],
            json!({
                "id": id,
                "title": "Release 1.0",
                "version": 1,
                "path": ["Handbook", "Release 1.0"],
                "titlePath": "Release 1.0",
            })
        );
        let created = world
            .sim
            .page_by_title(SPACE, "Release 1.0")
            .expect("created upstream");
        assert_eq!(created.parent_id.as_deref(), Some(world.root_id.as_str()));
        assert!(
            created.body.contains("ri:content-title=\"Install\""),
            "{}",
            created.body
        );

        let (status, body) = world
            .call(
                Method::POST,
                "/pages",
                Some(json!({"title": "Upgrade", "body": "", "parentTitle": "Guides"})),
            )
            .await;
        assert_ok(status, &body);
        assert_eq!(
            body["data"]["path"],
            json!(["Handbook", "Guides", "Upgrade"])
        );
        assert_eq!(body["data"]["titlePath"], "Guides/Upgrade");
        world.stop().await;
    }
}

#[tokio::test]
async fn update_replaces_the_body_and_checks_expected_version() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let (status, body) = world
            .call(
                Method::PUT,
                "/pages/Guides/Install",
                Some(json!({"body": "<p>New steps</p>", "expectedVersion": 1})),
            )
            .await;
        assert_ok(status, &body);
        assert_eq!(body["message"], "Page updated.");
        assert_eq!(
            body["data"],
            json!({
                "title": "Install",
                "version": 2,
                "path": ["Handbook", "Guides", "Install"],
                "titlePath": "Guides/Install",
            })
        );
        let page = world.sim.page_by_title(SPACE, "Install").expect("page");
        assert_eq!(page.body, "<p>New steps</p>");

        let (status, body) = world
            .call(
                Method::PUT,
                "/pages/Install",
                Some(json!({"body": "<p>Stale</p>", "expectedVersion": 1})),
            )
            .await;
        assert_error(status, &body, 409, "VERSION_CONFLICT");
        assert!(
            body["message"]
                .as_str()
                .unwrap_or("")
                .contains("current version is 2")
        );
        let page = world.sim.page_by_title(SPACE, "Install").expect("page");
        assert_eq!(page.body, "<p>New steps</p>");
        world.stop().await;
    }
}

#[tokio::test]
async fn malformed_storage_is_refused_with_line_and_column_before_any_upstream_write() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        world.sim.reset_counts();
        let (status, body) = world
            .call(
                Method::PUT,
                "/pages/Install",
                Some(json!({"body": "<p>one\n<b>two</p>", "format": "storage"})),
            )
            .await;
        assert_error(status, &body, 400, "INVALID_INPUT");
        let message = body["message"].as_str().unwrap_or("");
        assert!(message.contains("line 2"), "{message}");
        assert_eq!(world.sim.request_count("PUT /rest/api/content/{id}"), 0);
        assert_eq!(world.sim.total_requests(), 0);
        world.stop().await;
    }
}

#[tokio::test]
async fn rename_and_move_and_delete() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let (status, body) = world
            .call(
                Method::POST,
                "/pages/rename",
                Some(json!({"old_title": "Notes", "new_title": "Journal"})),
            )
            .await;
        assert_ok(status, &body);
        assert_eq!(body["message"], "Page renamed.");
        assert_eq!(
            body["data"],
            json!({"oldTitle": "Notes", "newTitle": "Journal", "version": 2})
        );
        let journal = world.sim.page_by_title(SPACE, "Journal").expect("renamed");
        assert_eq!(journal.body, "<p>Loose notes</p>");

        let (status, body) = world
            .call(
                Method::POST,
                "/pages/rename",
                Some(json!({"oldTitle": "Journal", "newTitle": "Diary"})),
            )
            .await;
        assert_ok(status, &body);

        let (status, body) = world
            .call(
                Method::POST,
                "/pages/Configure/move",
                Some(json!({"newParentTitle": "Diary"})),
            )
            .await;
        assert_ok(status, &body);
        assert_eq!(body["message"], "Page moved.");
        assert_eq!(
            body["data"],
            json!({"title": "Configure", "oldParentTitle": "Guides", "newParentTitle": "Diary"})
        );
        let (status, body) = world
            .call(Method::GET, "/pages/Diary/Configure", None)
            .await;
        assert_ok(status, &body);

        let (status, body) = world
            .call(Method::DELETE, "/pages/Diary/Configure", None)
            .await;
        assert_ok(status, &body);
        assert_eq!(
            body["message"],
            "Page deleted. It is in Confluence's trash; its children moved up to its parent."
        );
        assert_eq!(body["data"], json!({"deletedTitle": "Configure"}));
        let (status, body) = world.call(Method::GET, "/pages/Configure", None).await;
        assert_error(status, &body, 404, "NOT_FOUND");
        world.stop().await;
    }
}

#[tokio::test]
async fn moving_to_the_root_uses_the_root_title() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let (status, body) = world
            .call(
                Method::POST,
                "/pages/Install/move",
                Some(json!({"newParentTitle": "Handbook"})),
            )
            .await;
        assert_ok(status, &body);
        let (_, body) = world.call(Method::GET, "/pages/Install", None).await;
        assert_eq!(body["data"]["path"], json!(["Handbook", "Install"]));
        world.stop().await;
    }
}

#[tokio::test]
async fn delete_of_a_page_with_children_leaves_the_children_reachable() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let (status, body) = world.call(Method::DELETE, "/pages/Guides", None).await;
        assert_ok(status, &body);
        for title in ["Install", "Configure"] {
            let (status, body) = world
                .call(Method::GET, &format!("/pages/{title}"), None)
                .await;
            assert_ok(status, &body);
            assert_eq!(body["data"]["path"], json!(["Handbook", title]));
        }
        world.stop().await;
    }
}

#[tokio::test]
async fn circular_move_is_refused() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        for target in ["Install", "Guides"] {
            let (status, body) = world
                .call(
                    Method::POST,
                    "/pages/Guides/move",
                    Some(json!({"newParentTitle": target})),
                )
                .await;
            assert_error(status, &body, 422, "INVALID_OPERATION");
        }
        world.stop().await;
    }
}

#[tokio::test]
async fn duplicate_title_on_create_and_on_rename() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        // Confluence compares titles case-insensitively, and outside the sandbox too.
        for title in ["Install", "install", "Secret Plans"] {
            let (status, body) = world
                .call(
                    Method::POST,
                    "/pages",
                    Some(json!({"title": title, "body": "x"})),
                )
                .await;
            assert_error(status, &body, 409, "INVALID_OPERATION");
        }
        let (status, body) = world
            .call(
                Method::POST,
                "/pages/rename",
                Some(json!({"old_title": "Notes", "new_title": "Guides"})),
            )
            .await;
        assert_error(status, &body, 409, "INVALID_OPERATION");
        let notes = world.sim.page_by_title(SPACE, "Notes").expect("unchanged");
        assert_eq!(notes.version, 1);
        world.stop().await;
    }
}

#[tokio::test]
async fn the_root_page_cannot_be_renamed_moved_or_deleted() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let attempts = [
            (
                Method::POST,
                "/pages/rename",
                Some(json!({"old_title": "Handbook", "new_title": "Other"})),
            ),
            (
                Method::POST,
                "/pages/Handbook/move",
                Some(json!({"newParentTitle": "Notes"})),
            ),
            (Method::DELETE, "/pages/Handbook", None),
        ];
        for (method, path, body) in attempts {
            let (status, response) = world.call(method, path, body).await;
            assert_error(status, &response, 422, "INVALID_OPERATION");
        }
        let root = world.sim.page(&world.root_id).expect("root");
        assert_eq!((root.title.as_str(), root.version), ("Handbook", 1));
        world.stop().await;
    }
}

#[tokio::test]
async fn nothing_outside_the_root_is_reachable_by_any_route() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let attempts = [
            (Method::GET, "/pages/Secret%20Plans", None),
            (Method::GET, "/pages/Outside/Secret%20Plans", None),
            (Method::GET, "/pages/Secret%20Plans/children", None),
            (Method::GET, "/pages/Outside/children", None),
            (Method::GET, "/pages/Secret%20Plans/parent", None),
            (Method::GET, "/pages/tree?startTitle=Outside", None),
            (
                Method::PUT,
                "/pages/Secret%20Plans",
                Some(json!({"body": "overwritten"})),
            ),
            (
                Method::POST,
                "/pages/rename",
                Some(json!({"old_title": "Secret Plans", "new_title": "Leaked"})),
            ),
            (
                Method::POST,
                "/pages/Secret%20Plans/move",
                Some(json!({"newParentTitle": "Notes"})),
            ),
            (
                Method::POST,
                "/pages/Notes/move",
                Some(json!({"newParentTitle": "Outside"})),
            ),
            (
                Method::POST,
                "/pages",
                Some(json!({"title": "Planted", "body": "x", "parentTitle": "Outside"})),
            ),
            (Method::DELETE, "/pages/Secret%20Plans", None),
            (Method::GET, "/pages/Does%20Not%20Exist", None),
        ];
        let mut messages = Vec::new();
        for (method, path, body) in attempts {
            let (status, response) = world.call(method.clone(), path, body).await;
            assert_error(status, &response, 404, "NOT_FOUND");
            assert!(
                !response.to_string().contains("classified"),
                "{method} {path}"
            );
            messages.push(response["message"].clone());
        }
        assert!(messages.windows(2).all(|pair| pair[0] == pair[1]));
        let secret = world
            .sim
            .page_by_title(SPACE, "Secret Plans")
            .expect("untouched");
        assert_eq!(secret.version, 1);
        assert!(world.sim.page_by_title(SPACE, "Planted").is_none());
        world.stop().await;
    }
}

#[tokio::test]
async fn titles_with_special_characters_round_trip() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let titles = [
            "Release notes 2026",
            "Café ☕ & Ünïcödé",
            "Quote \" and 'single'",
            "A+B = C",
            "Hash # and question ?",
            "100% done",
            "Either/Or",
            "Back\\slash",
        ];
        for title in titles {
            let (status, body) = world
                .call(
                    Method::POST,
                    "/pages",
                    Some(json!({"title": title, "body": "text", "parentTitle": "Notes"})),
                )
                .await;
            assert_ok(status, &body);
            let (status, body) = world
                .call(Method::GET, &format!("/pages/{}", segment(title)), None)
                .await;
            assert_ok(status, &body);
            assert_eq!(body["data"]["title"], title);
            assert_eq!(body["data"]["path"], json!(["Handbook", "Notes", title]));
            // The title path string comes back ready to use, raw, as `{title}`.
            let title_path = body["data"]["titlePath"]
                .as_str()
                .expect("titlePath")
                .to_owned();
            let raw = title_path
                .split('/')
                .map(|part| {
                    percent_encoding::utf8_percent_encode(part, percent_encoding::CONTROLS)
                        .to_string()
                        .replace(' ', "%20")
                        .replace('#', "%23")
                        .replace('?', "%3F")
                        .replace('"', "%22")
                        .replace('\\', "%5C")
                })
                .collect::<Vec<_>>()
                .join("/");
            let (status, again) = world
                .call(Method::GET, &format!("/pages/{raw}"), None)
                .await;
            assert_ok(status, &again);
            assert_eq!(again["data"]["title"], title, "{title_path}");
            // And as a client that percent-encodes the whole parameter sends it.
            let (status, again) = world
                .call(
                    Method::GET,
                    &format!("/pages/{}", segment(&title_path)),
                    None,
                )
                .await;
            assert_ok(status, &again);
            assert_eq!(again["data"]["title"], title, "{title_path}");
            let (status, body) = world
                .call(
                    Method::GET,
                    &format!("/pages/Notes/{}/parent", segment(title)),
                    None,
                )
                .await;
            assert_ok(status, &body);
            assert_eq!(body["data"]["title"], "Notes");
        }
        world.stop().await;
    }
}

/// On paused time: the wait Confluence asks for is measured on the clock the retry sleeps on.
#[tokio::test(start_paused = true)]
async fn upstream_429_then_success() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        world.sim.fail_next(1, 429, Some(1));
        let started = tokio::time::Instant::now();
        let (status, body) = world.call(Method::GET, "/pages/Install", None).await;
        assert_ok(status, &body);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        world.stop().await;
    }
}

/// On paused time: the deadline and the backoff run on the test's clock, not the machine's load.
#[tokio::test(start_paused = true)]
async fn upstream_503_throughout_is_an_upstream_error_within_the_deadline() {
    let world = World::start_with(Deployment::DataCenter, "upstream_timeout_seconds=2\n").await;
    world.sim.fail_always(Some(503));
    let started = tokio::time::Instant::now();
    let (status, body) = world.call(Method::GET, "/pages/Install", None).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(status, 502..=504), "{status}");
    assert_eq!(body["code"], "UPSTREAM_ERROR");
    world.stop().await;
}

#[tokio::test]
async fn refused_upstream_credentials_are_a_502_that_names_the_token() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let file = world.gateway.config_path("conflagent.docs.properties");
        let text = std::fs::read_to_string(&file).expect("read");
        world.gateway.write_config(
            "conflagent.docs.properties",
            &text.replace(
                "api_token=upstream-pat-0123456789",
                "api_token=revoked-token",
            ),
        );
        crate::support::eventually(Duration::from_secs(5), || async {
            world.call(Method::GET, "/pages/Install", None).await.0 == 502
        })
        .await;
        let (status, body) = world.call(Method::GET, "/pages/Install", None).await;
        assert_error(status, &body, 502, "UPSTREAM_ERROR");
        let message = body["message"].as_str().unwrap_or("");
        assert!(message.contains("token"), "{message}");
        assert!(!message.contains("revoked-token"));
        world.stop().await;
    }
}

#[tokio::test]
async fn a_cloud_token_revoked_after_the_space_lookup_is_a_502_not_a_missing_page() {
    let world = World::start_with(Deployment::Cloud, "").await;
    let (status, body) = world.call(Method::GET, "/pages/Install", None).await;
    assert_ok(status, &body);
    world
        .sim
        .remove_basic_user("bot@example.com", crate::support::UPSTREAM_TOKEN);
    for (method, path, body) in [
        (Method::GET, "/pages/Install", None),
        (Method::GET, "/pages", None),
        (Method::GET, "/pages/Guides/children", None),
        (Method::DELETE, "/pages/Notes", None),
        (
            Method::POST,
            "/pages",
            Some(json!({"title": "New", "body": "x"})),
        ),
    ] {
        let (status, response) = world.call(method.clone(), path, body).await;
        assert_error(status, &response, 502, "UPSTREAM_ERROR");
        let message = response["message"].as_str().unwrap_or("");
        assert!(message.contains("token"), "{method} {path}: {message}");
    }
    world.stop().await;
}

#[tokio::test]
async fn a_cloud_page_under_a_folder_is_inside_the_sandbox_and_folders_stay_out_of_paths() {
    let world = World::start_with(Deployment::Cloud, "").await;
    let folder = world
        .sim
        .add_folder(SPACE, "Team folder", Some(&world.root_id));
    let filed = world
        .sim
        .add_page(SPACE, "Filed", Some(&folder), "<p>in a folder</p>");
    world.sim.add_page(SPACE, "Filed child", Some(&filed), "");
    let outside_folder = world.sim.add_folder(SPACE, "Elsewhere", None);
    world
        .sim
        .add_page(SPACE, "Hidden", Some(&outside_folder), "<p>no</p>");

    let (status, body) = world.call(Method::GET, "/pages", None).await;
    assert_ok(status, &body);
    assert_eq!(
        body["data"],
        json!([
            "Guides",
            "Guides/Install",
            "Guides/Configure",
            "Notes",
            "Filed",
            "Filed/Filed child"
        ])
    );
    let (status, body) = world
        .call(Method::GET, "/pages/Handbook/Filed/Filed%20child", None)
        .await;
    assert_ok(status, &body);
    assert_eq!(
        body["data"]["path"],
        json!(["Handbook", "Filed", "Filed child"])
    );
    assert_eq!(body["data"]["titlePath"], "Filed/Filed child");
    let (status, body) = world.call(Method::GET, "/pages/Filed/parent", None).await;
    assert_ok(status, &body);
    assert_eq!(body["data"]["title"], "Handbook");
    let (status, body) = world
        .call(Method::GET, "/pages/Handbook/children", None)
        .await;
    assert_ok(status, &body);
    let titles: Vec<&str> = body["data"]
        .as_array()
        .map(|children| {
            children
                .iter()
                .filter_map(|c| c["title"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(titles, ["Guides", "Notes", "Filed"]);
    let (status, body) = world
        .call(
            Method::POST,
            "/pages",
            Some(json!({"title": "Under filed", "body": "x", "parentTitle": "Filed"})),
        )
        .await;
    assert_ok(status, &body);
    assert_eq!(
        body["data"]["path"],
        json!(["Handbook", "Filed", "Under filed"])
    );
    // A folder's title is not a page: not readable, and a page outside the root stays outside.
    for path in ["/pages/Team%20folder", "/pages/Hidden", "/pages/Elsewhere"] {
        let (status, body) = world.call(Method::GET, path, None).await;
        assert_error(status, &body, 404, "NOT_FOUND");
    }
    world.stop().await;
}

#[tokio::test]
async fn concurrent_updates_with_expected_version_lose_nothing() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        world.sim.set_latency(Duration::from_millis(30));
        let update = |text: &'static str| {
            world.call(
                Method::PUT,
                "/pages/Install",
                Some(json!({"body": format!("<p>{text}</p>"), "expectedVersion": 1})),
            )
        };
        let ((status_a, body_a), (status_b, body_b)) = tokio::join!(update("A"), update("B"));
        let mut statuses = [status_a, status_b];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "{body_a} {body_b}");
        let (winner, loser) = if status_a == 200 {
            ("A", &body_b)
        } else {
            ("B", &body_a)
        };
        assert_eq!(loser["code"], "VERSION_CONFLICT");
        let page = world.sim.page_by_title(SPACE, "Install").expect("page");
        assert_eq!(page.body, format!("<p>{winner}</p>"));
        assert_eq!(page.version, 2);
        world.stop().await;
    }
}

#[tokio::test]
async fn a_cloud_endpoint_makes_no_v1_call_for_any_page_operation() {
    let world = World::start_with(Deployment::Cloud, "").await;
    for (method, path, body) in [
        (Method::GET, "/pages", None),
        (Method::GET, "/pages/tree?depth=3", None),
        (Method::GET, "/pages/Guides/Install?format=markdown", None),
        (Method::GET, "/pages/Guides/children", None),
        (Method::GET, "/pages/Install/parent", None),
        (Method::GET, "/pages/nOtEs", None),
        (
            Method::POST,
            "/pages",
            Some(json!({"title": "Fresh", "body": "# Hi", "parentTitle": "Guides"})),
        ),
        (
            Method::PUT,
            "/pages/Fresh",
            Some(json!({"body": "<p>again</p>", "expectedVersion": 1})),
        ),
        (
            Method::POST,
            "/pages/rename",
            Some(json!({"old_title": "Fresh", "new_title": "Fresher"})),
        ),
        (
            Method::POST,
            "/pages/Install/move",
            Some(json!({"newParentTitle": "Notes"})),
        ),
        (Method::DELETE, "/pages/Fresher", None),
    ] {
        let (status, response) = world.call(method.clone(), path, body).await;
        assert_ok(status, &response);
    }
    let moved = world.sim.page_by_title(SPACE, "Install").expect("page");
    let notes = world.sim.page_by_title(SPACE, "Notes").expect("page");
    assert_eq!(moved.parent_id, Some(notes.id));
    assert_eq!(
        moved.body, "<p>Run the installer.</p>",
        "a v2 move keeps the body"
    );
    assert_eq!(world.sim.v1_requests(), 0, "{:#?}", world.sim.requests());
    world.stop().await;
}

#[tokio::test]
async fn titles_are_found_ignoring_case_as_confluence_compares_them() {
    // The simulated Data Center title lookup is case-sensitive, as real ones were reported to be.
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        for path in ["/pages/install", "/pages/GUIDES/iNsTaLl"] {
            let (count, (status, body)) = world
                .upstream_calls(|| world.call(Method::GET, path, None))
                .await;
            assert_ok(status, &body);
            assert_eq!(body["data"]["title"], "Install", "{path}");
            assert_eq!(
                body["data"]["path"],
                json!(["Handbook", "Guides", "Install"])
            );
            match deployment {
                Deployment::DataCenter => {
                    assert_eq!(count, 2, "exact lookup, then the case-insensitive one")
                }
                Deployment::Cloud => {
                    let title_lookups = world
                        .sim
                        .requests()
                        .iter()
                        .filter(|request| request.path_and_query.contains("title="))
                        .count();
                    assert_eq!(title_lookups, 1, "v2's title lookup ignores case itself");
                }
            }
        }
        // Outside the sandbox stays outside, whatever the case.
        let (status, body) = world.call(Method::GET, "/pages/secret%20plans", None).await;
        assert_error(status, &body, 404, "NOT_FOUND");
        world.stop().await;
    }
}

#[tokio::test]
async fn script_capable_storage_is_refused_unless_the_endpoint_allows_the_macro() {
    let html_macro = "<ac:structured-macro ac:name=\"html\"><ac:plain-text-body><![CDATA[<b>hi</b>]]>\
                      </ac:plain-text-body></ac:structured-macro>";
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        for body in [
            html_macro,
            "<p onclick=\"steal()\">x</p>",
            "<script>alert(1)</script>",
        ] {
            let (status, response) = world
                .call(
                    Method::POST,
                    "/pages",
                    Some(json!({"title": "Scripted", "body": body, "format": "storage"})),
                )
                .await;
            assert_error(status, &response, 400, "INVALID_INPUT");
            assert!(
                response["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("not allowed"),
                "{response}"
            );
        }
        assert!(world.sim.page_by_title(SPACE, "Scripted").is_none());
        world.stop().await;

        let world = World::start_with(Deployment::DataCenter, "allowed_macros=html\n").await;
        let (status, response) = world
            .call(
                Method::POST,
                "/pages",
                Some(json!({"title": "Scripted", "body": html_macro, "format": "storage"})),
            )
            .await;
        assert_ok(status, &response);
        let (status, response) = world
        .call(
            Method::POST,
            "/pages",
            Some(json!({"title": "Still no", "body": "<script>alert(1)</script>", "format": "storage"})),
        )
        .await;
        assert_error(status, &response, 400, "INVALID_INPUT");
        world.stop().await;
    }
}
