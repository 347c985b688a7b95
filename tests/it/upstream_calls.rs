//! The upstream call budget of every operation on a 155-page tree (3 levels × 5 children), counted
//! by the simulator on both deployments. The ceilings are the product's; each test names the
//! operation it protects.

use conflagent::sim::Deployment;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::World;

/// Pages with children in the tree (the root, 5 and 25), plus one: the listing ceiling.
const LIST_CEILING: usize = 1 + 5 + 25 + 1;

/// Runs `setup` (not counted), then the operation; asserts it succeeds within `ceiling` upstream
/// calls on Data Center and on Cloud, and returns the counts `[dc, cloud]`.
async fn check(
    setup: &[(Method, &str, Option<Value>)],
    method: Method,
    path: &str,
    body: Option<Value>,
    ceiling: usize,
) -> [usize; 2] {
    let mut counts = [0; 2];
    for (slot, deployment) in [Deployment::DataCenter, Deployment::Cloud]
        .into_iter()
        .enumerate()
    {
        let world = World::start_tree(deployment, "").await;
        for (setup_method, setup_path, setup_body) in setup {
            let (status, response) = world
                .call(setup_method.clone(), setup_path, setup_body.clone())
                .await;
            assert_eq!(status, 200, "setup {setup_path}: {response}");
        }
        let (count, (status, response)) = world
            .upstream_calls(|| world.call(method.clone(), path, body.clone()))
            .await;
        assert_eq!(status, 200, "{deployment:?} {method} {path}: {response}");
        assert!(
            count <= ceiling,
            "{deployment:?} {method} {path}: {count} upstream calls, ceiling {ceiling}"
        );
        counts[slot] = count;
        world.stop().await;
    }
    counts
}

#[tokio::test]
async fn read_by_title_costs_one_call() {
    check(&[], Method::GET, "/pages/P1.2.3", None, 1).await;
}

#[tokio::test]
async fn read_by_title_path_costs_one_call() {
    check(&[], Method::GET, "/pages/P1/P1.2/P1.2.3", None, 1).await;
}

#[tokio::test]
async fn parent_costs_one_call() {
    check(&[], Method::GET, "/pages/P1.2.3/parent", None, 1).await;
}

#[tokio::test]
async fn children_cost_two_calls() {
    check(&[], Method::GET, "/pages/P1.2/children", None, 2).await;
}

#[tokio::test]
async fn listing_never_costs_a_call_per_leaf() {
    let [dc, cloud] = check(&[], Method::GET, "/pages", None, LIST_CEILING).await;
    // Data Center: the root and the 25 second-level pages; Cloud: one paged descendant sweep.
    assert_eq!([dc, cloud], [26, 1]);
}

#[tokio::test]
async fn tree_never_costs_a_call_per_leaf() {
    let [dc, cloud] = check(&[], Method::GET, "/pages/tree?depth=3", None, LIST_CEILING).await;
    // The listing as above, plus the root's own lookup (run alongside it) for the tree's top node.
    assert_eq!([dc, cloud], [27, 2]);
}

#[tokio::test]
async fn create_under_the_root_costs_one_call() {
    let body = json!({"title": "New page", "body": "x"});
    check(&[], Method::POST, "/pages", Some(body), 1).await;
}

#[tokio::test]
async fn create_under_a_parent_title_costs_two_calls() {
    let body = json!({"title": "New page", "body": "x", "parentTitle": "P2.3"});
    check(&[], Method::POST, "/pages", Some(body), 2).await;
}

#[tokio::test]
async fn update_costs_two_calls() {
    let body = json!({"body": "<p>y</p>", "expectedVersion": 1});
    check(&[], Method::PUT, "/pages/P3.1", Some(body), 2).await;
}

#[tokio::test]
async fn rename_costs_two_calls() {
    let body = json!({"old_title": "P3.1", "new_title": "Renamed"});
    check(&[], Method::POST, "/pages/rename", Some(body), 2).await;
}

#[tokio::test]
async fn move_costs_three_calls() {
    let body = json!({"newParentTitle": "P4"});
    check(&[], Method::POST, "/pages/P1.1/move", Some(body), 3).await;
}

#[tokio::test]
async fn delete_costs_two_calls() {
    let setup = [(
        Method::POST,
        "/pages",
        Some(json!({"title": "Doomed", "body": "x"})),
    )];
    check(&setup, Method::DELETE, "/pages/Doomed", None, 2).await;
}
