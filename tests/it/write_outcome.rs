//! Writes whose answer never arrives: the gateway finds out whether they were applied within the
//! deadline, and otherwise says the write may have been applied, never "try again later".

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::{DEPLOYMENTS, SPACE, World};

const UNKNOWN: &str = "Confluence did not confirm the write in time, and it may still have been \
                       applied; read the page before retrying";

#[tokio::test]
async fn a_write_applied_but_answered_by_a_gateway_error_is_reported_as_done() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;

        world.sim.lose_write_answers(1, 504);
        let (status, body) = world
            .call(
                Method::POST,
                "/pages",
                Some(json!({"title": "Lost answer", "body": "text"})),
            )
            .await;
        assert_eq!(status, 200, "{deployment:?} {body}");
        let created = world
            .sim
            .page_by_title(SPACE, "Lost answer")
            .expect("created once");
        assert_eq!(body["data"]["id"], created.id, "{body}");

        world.sim.lose_write_answers(1, 502);
        let (status, body) = world
            .call(
                Method::PUT,
                "/pages/Lost%20answer",
                Some(json!({"body": "<p>second</p>", "expectedVersion": 1})),
            )
            .await;
        assert_eq!(status, 200, "{deployment:?} {body}");
        assert_eq!(body["data"]["version"], 2, "{body}");

        world.sim.lose_write_answers(1, 504);
        let (status, body) = world
            .call(Method::DELETE, "/pages/Lost%20answer", None)
            .await;
        assert_eq!(status, 200, "{deployment:?} {body}");
        assert!(world.sim.page_by_title(SPACE, "Lost answer").is_none());
        world.stop().await;
    }
}

#[tokio::test]
async fn a_write_refused_by_a_gateway_error_is_an_unknown_outcome_not_a_retry_hint() {
    for deployment in DEPLOYMENTS {
        let world = World::start_with(deployment, "").await;
        // The gateway in front of Confluence answers 504 without passing the write on: the page is
        // unchanged, and nothing can tell the gateway so for certain.
        let (status, body) = world.call(Method::GET, "/pages/Notes", None).await;
        assert_eq!(status, 200, "{body}");
        world.sim.fail_next_writes(1, 504);
        let (status, body) = world
            .call(
                Method::PUT,
                "/pages/Notes",
                Some(json!({"body": "<p>changed</p>"})),
            )
            .await;
        assert_eq!(status, 504, "{deployment:?} {body}");
        assert_eq!(body["code"], "UPSTREAM_ERROR", "{body}");
        assert_eq!(body["message"], UNKNOWN, "{body}");
        let notes = world
            .sim
            .page_by_title(SPACE, "Notes")
            .expect("still there");
        assert_eq!(notes.version, 1, "the refused write was not applied");
        world.stop().await;
    }
}

#[tokio::test]
async fn a_create_without_an_answer_in_time_says_it_may_have_been_applied() {
    let world = World::start_with(DEPLOYMENTS[0], "upstream_timeout_seconds=1\n").await;
    world.sim.set_latency(Duration::from_millis(1500));
    let (status, body) = world
        .call(
            Method::POST,
            "/pages",
            Some(json!({"title": "Slow create", "body": "text"})),
        )
        .await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["message"], UNKNOWN, "{body}");
    assert!(
        !body["message"]
            .as_str()
            .unwrap_or("")
            .contains("try again later")
    );
    world.sim.set_latency(Duration::ZERO);
    let scrape = world.gateway.scrape().await;
    assert!(
        scrape.lines().any(|line| line.starts_with(
            "conflagent_upstream_requests_total{endpoint=\"docs\",operation=\"create_page\",outcome=\"timeout\"}"
        )),
        "the abandoned call is counted: {scrape}"
    );
    world.stop().await;
}
