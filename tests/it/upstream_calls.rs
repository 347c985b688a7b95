//! The upstream call budget of every operation on a 155-page tree (3 levels × 5 children), counted
//! by the simulator. The ceilings are the product's; each test names the operation it protects.

use conflagent::sim::Deployment;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::World;

/// Runs one gateway call and returns how many upstream requests it made, asserting it succeeded.
async fn calls(world: &World, method: Method, path: &str, body: Option<Value>) -> usize {
    let (count, (status, response)) = world
        .upstream_calls(|| world.call(method.clone(), path, body.clone()))
        .await;
    assert_eq!(status, 200, "{method} {path}: {response}");
    count
}

/// Pages with children in the tree (the root, 5 and 25), plus one: the list ceiling.
const LIST_CEILING: usize = 1 + 5 + 25 + 1;

async fn check_every_operation(deployment: Deployment) -> Vec<(&'static str, usize, usize)> {
    let world = World::start_tree(deployment, "").await;
    let mut table = Vec::new();
    let mut record = |name: &'static str, measured: usize, ceiling: usize| {
        assert!(
            measured <= ceiling,
            "{deployment:?} {name}: {measured} upstream calls, ceiling {ceiling}"
        );
        table.push((name, measured, ceiling));
    };
    record(
        "read by title",
        calls(&world, Method::GET, "/pages/P1.2.3", None).await,
        1,
    );
    record(
        "read by title path",
        calls(&world, Method::GET, "/pages/P1/P1.2/P1.2.3", None).await,
        1,
    );
    record(
        "parent",
        calls(&world, Method::GET, "/pages/P1.2.3/parent", None).await,
        1,
    );
    record(
        "children",
        calls(&world, Method::GET, "/pages/P1.2/children", None).await,
        2,
    );
    record(
        "list (155 pages)",
        calls(&world, Method::GET, "/pages", None).await,
        LIST_CEILING,
    );
    record(
        "tree depth 3",
        calls(&world, Method::GET, "/pages/tree?depth=3", None).await,
        LIST_CEILING,
    );
    record(
        "create under the root",
        calls(
            &world,
            Method::POST,
            "/pages",
            Some(json!({"title": "New A", "body": "x"})),
        )
        .await,
        1,
    );
    record(
        "create under parentTitle",
        calls(
            &world,
            Method::POST,
            "/pages",
            Some(json!({"title": "New B", "body": "x", "parentTitle": "P2.3"})),
        )
        .await,
        2,
    );
    record(
        "update",
        calls(
            &world,
            Method::PUT,
            "/pages/P3.1",
            Some(json!({"body": "<p>y</p>"})),
        )
        .await,
        2,
    );
    record(
        "rename",
        calls(
            &world,
            Method::POST,
            "/pages/rename",
            Some(json!({"old_title": "New A", "new_title": "New C"})),
        )
        .await,
        2,
    );
    record(
        "move",
        calls(
            &world,
            Method::POST,
            "/pages/New%20C/move",
            Some(json!({"newParentTitle": "P4"})),
        )
        .await,
        3,
    );
    record(
        "delete",
        calls(&world, Method::DELETE, "/pages/New%20B", None).await,
        2,
    );
    world.stop().await;
    table
}

#[tokio::test]
async fn every_operation_stays_within_its_upstream_call_ceiling_on_data_center() {
    let table = check_every_operation(Deployment::DataCenter).await;
    println!("Data Center upstream calls: {table:?}");
}

#[tokio::test]
async fn every_operation_stays_within_its_upstream_call_ceiling_on_cloud() {
    let table = check_every_operation(Deployment::Cloud).await;
    // Cloud lists a subtree in one paged sweep: 155 pages fit one page of 200.
    assert!(
        table.contains(&("list (155 pages)", 1, LIST_CEILING)),
        "{table:?}"
    );
    println!("Cloud upstream calls: {table:?}");
}
