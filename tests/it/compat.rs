//! Drop-in compatibility with the original Conflagent, as one of its clients meets this gateway:
//! the original's messages and shapes on every route, title path strings that round-trip, merged
//! slashes, and Confluence refusals reported to the operator rather than blamed on the client.

use conflagent::sim::Deployment;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{DEPLOYMENTS, SPACE, World};

/// Each route, called as a client of the original calls it, and the sentence its message starts
/// with in the original.
#[tokio::test]
async fn every_route_answers_200_with_the_original_message() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let calls: [(Method, &str, Option<Value>, &str); 10] = [
            (Method::GET, "/pages", None, "Subpages retrieved."),
            (Method::GET, "/pages/tree", None, "Page tree retrieved."),
            (
                Method::GET,
                "/pages/Guides/Install",
                None,
                "Page retrieved.",
            ),
            (
                Method::GET,
                "/pages/Guides/children",
                None,
                "Child pages retrieved.",
            ),
            (
                Method::GET,
                "/pages/Install/parent",
                None,
                "Parent metadata retrieved.",
            ),
            (
                Method::POST,
                "/pages",
                Some(json!({"title": "Fresh", "body": "# Fresh\nText", "parentTitle": "Notes"})),
                "Page created.",
            ),
            (
                Method::PUT,
                "/pages/Notes/Fresh",
                Some(json!({"body": "Updated text"})),
                "Page updated.",
            ),
            (
                Method::POST,
                "/pages/rename",
                Some(json!({"old_title": "Fresh", "new_title": "Renamed"})),
                "Page renamed.",
            ),
            (
                Method::POST,
                "/pages/Renamed/move",
                Some(json!({"newParentTitle": "Guides"})),
                "Page moved.",
            ),
            (
                Method::DELETE,
                "/pages/Guides/Renamed",
                None,
                "Page deleted.",
            ),
        ];
        for (method, path, body, sentence) in calls {
            let (status, response) = world.call(method.clone(), path, body).await;
            assert_eq!(status, 200, "{deployment:?} {method} {path}: {response}");
            assert_eq!(response["success"], true);
            assert_eq!(response["code"], "OK");
            let message = response["message"].as_str().expect("message");
            assert!(
                message.starts_with(sentence),
                "{method} {path}: `{message}` does not start with `{sentence}`"
            );
        }
        world.stop().await;
    }
}

/// The fields the original's clients read, with the types they expect, on every route.
#[tokio::test]
async fn every_route_keeps_the_original_fields_and_types() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        let is_breadcrumb = |value: &Value| {
            value
                .as_array()
                .is_some_and(|titles| !titles.is_empty() && titles.iter().all(Value::is_string))
        };
        let (_, tree) = world.call(Method::GET, "/pages/tree?depth=2", None).await;
        let mut nodes = vec![&tree["data"]];
        while let Some(node) = nodes.pop() {
            assert!(node["title"].is_string(), "{node}");
            assert!(is_breadcrumb(&node["path"]), "{node}");
            assert_eq!(
                node["path"].as_array().and_then(|p| p.last()),
                Some(&node["title"])
            );
            let children = node["children"].as_array().expect("children array");
            nodes.extend(children);
        }
        let (_, children) = world
            .call(Method::GET, "/pages/Guides/children", None)
            .await;
        for child in children["data"].as_array().expect("array") {
            assert!(
                child["title"].is_string() && is_breadcrumb(&child["path"]),
                "{child}"
            );
        }
        let (_, parent) = world
            .call(Method::GET, "/pages/Configure/parent", None)
            .await;
        assert_eq!(parent["data"]["title"], "Guides");
        assert_eq!(
            parent["data"]["path"],
            json!(["Handbook", "Guides", "Configure"])
        );
        let (_, read) = world.call(Method::GET, "/pages/Configure", None).await;
        assert!(read["data"]["title"].is_string() && read["data"]["body"].is_string());
        let (_, list) = world.call(Method::GET, "/pages", None).await;
        assert!(
            list["data"]
                .as_array()
                .expect("array")
                .iter()
                .all(Value::is_string)
        );
        let (_, created) = world
            .call(
                Method::POST,
                "/pages",
                Some(json!({"title": "Shaped", "body": "x"})),
            )
            .await;
        assert!(created["data"]["id"].is_string());
        assert_eq!(created["data"]["title"], "Shaped");
        assert_eq!(created["data"]["version"], 1);
        let (_, updated) = world
            .call(Method::PUT, "/pages/Shaped", Some(json!({"body": "y"})))
            .await;
        assert_eq!(updated["data"]["version"], 2);
        world.stop().await;
    }
}

#[tokio::test]
async fn a_slash_inside_a_title_is_encoded_alike_in_the_list_and_in_title_paths() {
    let world = World::start_with(conflagent::config::Deployment::DataCenter, "").await;
    let (status, body) = world
        .call(
            Method::POST,
            "/pages",
            Some(json!({"title": "CI/CD", "body": "x", "parentTitle": "Notes"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["path"], json!(["Handbook", "Notes", "CI/CD"]));
    assert_eq!(body["data"]["titlePath"], "Notes/CI%2FCD");
    world.sim.add_page(
        SPACE,
        "100% done",
        Some(&world.sim.page_by_title(SPACE, "CI/CD").expect("created").id),
        "<p>y</p>",
    );
    let (_, list) = world.call(Method::GET, "/pages", None).await;
    let paths: Vec<&str> = list["data"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(paths.contains(&"Notes/CI%2FCD"), "{paths:?}");
    assert!(paths.contains(&"Notes/CI%2FCD/100%25 done"), "{paths:?}");
    // Each listed path works as `{title}` as it is (spaces aside) and in JSON bodies.
    for path in ["Notes/CI%2FCD", "Notes/CI%2FCD/100%25 done"] {
        let (status, body) = world
            .call(
                Method::GET,
                &format!("/pages/{}", path.replace(' ', "%20")),
                None,
            )
            .await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["data"]["titlePath"], path);
    }
    let (status, body) = world
        .call(
            Method::POST,
            "/pages",
            Some(json!({"title": "Pipelines", "body": "z", "parentTitle": "Notes/CI%2FCD"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["path"],
        json!(["Handbook", "Notes", "CI/CD", "Pipelines"])
    );
    let (status, body) = world
        .call(
            Method::GET,
            "/pages/tree?startTitle=Notes%2FCI%252FCD",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["title"], "CI/CD");
    world.stop().await;
}

#[tokio::test]
async fn repeated_slashes_in_a_request_path_are_merged() {
    let world = World::start_with(conflagent::config::Deployment::DataCenter, "").await;
    let response = world
        .gateway
        .http
        .get(world.gateway.url("/endpoint/docs//openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.expect("json");
    assert_eq!(document["openapi"], "3.1.0");
    for path in [
        "//endpoint//docs///pages//Guides//Install",
        "/endpoint/docs/pages/Guides//Install",
    ] {
        let (status, body) = world.gateway.call(Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["data"]["title"], "Install");
    }
    let (status, body) = world.gateway.call(Method::GET, "//health", None).await;
    assert_eq!((status, &body["data"]["status"]), (200, &json!("ok")));
    world.stop().await;
}

#[tokio::test]
async fn a_confluence_403_is_the_operators_permissions_not_the_clients_input() {
    let world = World::start_with(conflagent::config::Deployment::DataCenter, "").await;
    world.sim.fail_next(1, 403, None);
    let (status, body) = world.call(Method::GET, "/pages/Install", None).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "UPSTREAM_ERROR");
    let message = body["message"].as_str().expect("message");
    assert!(message.contains("operator"), "{message}");
    assert!(message.contains("permissions"), "{message}");
    assert!(!message.contains("Injected fault"), "{message}");
    world.stop().await;
}

#[tokio::test]
async fn a_confluence_410_says_the_api_is_gone_for_these_credentials() {
    let world = World::start_with(Deployment::Cloud, "").await;
    world.sim.fail_next(1, 410, None);
    let (status, body) = world.call(Method::GET, "/pages/Install", None).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "UPSTREAM_ERROR");
    let message = body["message"].as_str().expect("message");
    assert!(message.contains("410 Gone"), "{message}");
    assert!(message.contains("token type"), "{message}");
    assert!(!message.contains("try again later"), "{message}");
    world.stop().await;
}

#[tokio::test]
async fn operations_add_to_a_narrow_flavor() {
    let world = World::start_with(
        Deployment::DataCenter,
        "flavor=read\noperations=createPage\n",
    )
    .await;
    let (status, body) = world.call(Method::GET, "/pages/Install", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = world
        .call(
            Method::POST,
            "/pages",
            Some(json!({"title": "Added", "body": "x"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = world.call(Method::DELETE, "/pages/Added", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "UNAUTHORIZED");
    assert_eq!(
        body["message"],
        "this operation is not available on this endpoint (flavor `read` plus createPage)"
    );
    let document: Value = world
        .gateway
        .http
        .get(world.gateway.url("/endpoint/docs/openapi.json"))
        .send()
        .await
        .expect("document")
        .json()
        .await
        .expect("json");
    let mut listed: Vec<&str> = document["paths"]
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|ops| ops.values()))
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            "createPage",
            "getHealth",
            "getOpenApiDocument",
            "getPageTree",
            "getParentPage",
            "listChildPages",
            "listSubpages",
            "readPageByTitle"
        ]
    );
    world.stop().await;
}
