//! `conflagent demo`: what it prints works as printed.

use conflagent::config::Deployment;
use conflagent::demo::Demo;
use tokio::sync::oneshot;

#[tokio::test]
async fn demo_serves_its_handbook_and_prints_working_instructions_on_cloud() {
    check_demo(Deployment::Cloud).await;
}

#[tokio::test]
async fn demo_serves_its_handbook_and_prints_working_instructions_on_data_center() {
    check_demo(Deployment::DataCenter).await;
}

async fn check_demo(deployment: Deployment) {
    let demo = Demo::start(
        "127.0.0.1:0".parse().expect("addr"),
        "127.0.0.1:0".parse().expect("addr"),
        120,
        deployment,
    )
    .await
    .expect("demo starts");
    let sim = demo.sim.clone();
    let base = demo.endpoint_url();
    let secret = demo.secret.clone();
    let instructions = demo.instructions();
    assert!(instructions.contains(&base));
    assert!(instructions.contains(&secret));
    assert!(instructions.contains(&format!("{base}/openapi.json")));
    assert_eq!(instructions.matches("curl -s").count(), 3);

    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let served = tokio::spawn(demo.serve(conflagent::RunSettings::default(), async move {
        let _ = stop_rx.await;
    }));
    let http = reqwest::Client::new();
    let list: serde_json::Value = http
        .get(format!("{base}/pages"))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let paths = list["data"].as_array().expect("paths");
    assert!(
        paths
            .iter()
            .any(|path| path == "Engineering/Release Process")
    );
    assert!(!list.to_string().contains("HR Confidential"));
    let read = http
        .get(format!(
            "{base}/pages/Engineering/Release%20Process?format=markdown"
        ))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), 200);
    if deployment == Deployment::Cloud {
        // A page in a folder is listed under the folder's page; the demo never touches v1 content.
        assert!(paths.iter().any(|path| path == "Travel Policy"), "{list}");
        assert_eq!(sim.v1_requests(), 0);
    }
    let _ = stop_tx.send(());
    served.await.expect("demo stops");
}
