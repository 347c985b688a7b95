//! The upstream call budget of every operation on a 155-page tree (3 levels × 5 children), counted
//! by the simulator: Data Center on REST v1, Cloud on REST v2 through the API gateway form. The
//! ceilings are the product's; each test names the operation it protects.
//!
//! v2 has no expansions, so Cloud figures depend on what the endpoint already knows:
//! - the space id is looked up once per endpoint and never counted here;
//! - breadcrumb titles of ancestors are cached for 30 s. The ceilings hold for an endpoint that has
//!   listed its pages (as a GPT does first): "warm". On a cold endpoint (only the space id known) an
//!   operation whose answer names a path pays one more call for the titles; those figures are
//!   asserted too, so the README's table stays true.

use conflagent::sim::Deployment;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::World;

/// Data Center lists breadth-first: pages with children in the tree (the root, 5 and 25), plus one.
const DC_LIST_CEILING: usize = 1 + 5 + 25 + 1;
/// Cloud lists with paged descendant sweeps.
const CLOUD_LIST_CEILING: usize = 8;

/// The calls one operation made: on Data Center, on a warm Cloud endpoint and on a cold one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    data_center: usize,
    cloud: usize,
    cloud_cold: usize,
}

/// Runs `setup` (not counted), then the operation; asserts it succeeds within `dc_ceiling` calls on
/// Data Center and `cloud_ceiling` on a warm Cloud endpoint, and at most one more on a cold one.
async fn check(
    setup: &[(Method, &str, Option<Value>)],
    (method, path, body): (Method, &str, Option<Value>),
    dc_ceiling: usize,
    cloud_ceiling: usize,
) -> Counts {
    let mut counts = [0; 3];
    let runs = [
        (Deployment::DataCenter, &[][..], dc_ceiling),
        // Warm: the endpoint has listed its pages (and looked up its space id).
        (
            Deployment::Cloud,
            &[(Method::GET, "/pages"), (Method::GET, "/pages/Handbook")][..],
            cloud_ceiling,
        ),
        // Cold: only the space id (and the root) are known.
        (
            Deployment::Cloud,
            &[(Method::GET, "/pages/Handbook")][..],
            cloud_ceiling + 1,
        ),
    ];
    for (slot, (deployment, warm_up, ceiling)) in runs.into_iter().enumerate() {
        let world = World::start_tree(deployment, "").await;
        let warm_up = warm_up
            .iter()
            .map(|(method, path)| (method.clone(), *path, None));
        for (setup_method, setup_path, setup_body) in warm_up.chain(setup.iter().cloned()) {
            let (status, response) = world.call(setup_method, setup_path, setup_body).await;
            assert_eq!(status, 200, "setup {setup_path}: {response}");
        }
        let (count, (status, response)) = world
            .upstream_calls(|| world.call(method.clone(), path, body.clone()))
            .await;
        assert_eq!(status, 200, "{deployment:?} {method} {path}: {response}");
        assert!(
            count <= ceiling,
            "{deployment:?} (run {slot}) {method} {path}: {count} upstream calls, ceiling {ceiling}"
        );
        if deployment == Deployment::Cloud {
            assert_eq!(world.sim.v1_requests(), 0, "{method} {path}: Cloud used v1");
        }
        counts[slot] = count;
        world.stop().await;
    }
    let counts = Counts {
        data_center: counts[0],
        cloud: counts[1],
        cloud_cold: counts[2],
    };
    println!("{method} {path}: {counts:?}");
    counts
}

fn get(path: &str) -> (Method, &str, Option<Value>) {
    (Method::GET, path, None)
}

#[tokio::test]
async fn read_by_title_costs_one_call_on_dc_and_three_on_cloud() {
    let counts = check(&[], get("/pages/P1.2.3"), 1, 3).await;
    // Cloud: the title lookup and the ancestor ids; titles come from the cache when warm.
    assert_eq!([counts.cloud, counts.cloud_cold], [2, 3]);
}

#[tokio::test]
async fn read_by_title_path_costs_one_call_on_dc_and_three_on_cloud() {
    check(&[], get("/pages/P1/P1.2/P1.2.3"), 1, 3).await;
}

#[tokio::test]
async fn parent_costs_one_call_on_dc_and_three_on_cloud() {
    check(&[], get("/pages/P1.2.3/parent"), 1, 3).await;
}

#[tokio::test]
async fn children_cost_two_calls_on_dc_and_three_on_cloud() {
    check(&[], get("/pages/P1.2/children"), 2, 3).await;
}

#[tokio::test]
async fn listing_never_costs_a_call_per_leaf() {
    let counts = check(&[], get("/pages"), DC_LIST_CEILING, CLOUD_LIST_CEILING).await;
    // Data Center: the root and the 25 second-level pages; Cloud: one descendant sweep.
    assert_eq!(
        [counts.data_center, counts.cloud, counts.cloud_cold],
        [26, 1, 1]
    );
}

#[tokio::test]
async fn tree_never_costs_a_call_per_leaf() {
    let counts = check(
        &[],
        get("/pages/tree?depth=3"),
        DC_LIST_CEILING,
        CLOUD_LIST_CEILING,
    )
    .await;
    // The listing as above, plus the root's title for the tree's top node, looked up alongside:
    // one call on Data Center; on Cloud the title cache knows the root, as both runs read it.
    assert_eq!(
        [counts.data_center, counts.cloud, counts.cloud_cold],
        [27, 1, 1]
    );
}

#[tokio::test]
async fn create_under_the_root_costs_one_call_on_dc_and_two_on_cloud() {
    let body = json!({"title": "New page", "body": "x"});
    let counts = check(&[], (Method::POST, "/pages", Some(body)), 1, 2).await;
    assert_eq!([counts.cloud, counts.cloud_cold], [1, 1]);
}

#[tokio::test]
async fn create_under_a_parent_title_costs_two_calls_on_dc_and_three_on_cloud() {
    let body = json!({"title": "New page", "body": "x", "parentTitle": "P2.3"});
    check(&[], (Method::POST, "/pages", Some(body)), 2, 3).await;
}

#[tokio::test]
async fn update_costs_two_calls_on_dc_and_three_on_cloud() {
    let body = json!({"body": "<p>y</p>", "expectedVersion": 1});
    check(&[], (Method::PUT, "/pages/P3.1", Some(body)), 2, 3).await;
}

#[tokio::test]
async fn rename_costs_two_calls_on_dc_and_three_on_cloud() {
    let body = json!({"old_title": "P3.1", "new_title": "Renamed"});
    check(&[], (Method::POST, "/pages/rename", Some(body)), 2, 3).await;
}

#[tokio::test]
async fn move_costs_three_calls_on_dc_and_five_on_cloud() {
    let body = json!({"newParentTitle": "P4"});
    check(&[], (Method::POST, "/pages/P1.1/move", Some(body)), 3, 5).await;
}

#[tokio::test]
async fn delete_costs_two_calls_on_dc_and_three_on_cloud() {
    let setup = [(
        Method::POST,
        "/pages",
        Some(json!({"title": "Doomed", "body": "x"})),
    )];
    check(&setup, (Method::DELETE, "/pages/Doomed", None), 2, 3).await;
}
