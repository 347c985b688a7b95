//! Hot reload of the config directory: endpoints appear, change, survive bad edits and disappear
//! as files do, including Kubernetes volume swaps and editors' save patterns.

use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use crate::support::{Gateway, SECRET, endpoint_file, eventually};

const BASE: &str = "http://127.0.0.1:9";
const DEADLINE: Duration = Duration::from_secs(5);

async fn health_status(gateway: &Gateway, name: &str) -> u16 {
    gateway
        .get(&format!("/endpoint/{name}/health"), None)
        .await
        .0
}

/// The status an authenticated route gives with `secret`: 401 means the secret was refused. Past the
/// endpoint's budget for failed authentications a refused secret is answered 429, reported as 401.
async fn auth_status(gateway: &Gateway, name: &str, secret: &str) -> u16 {
    match gateway
        .get(&format!("/endpoint/{name}/pages"), Some(secret))
        .await
        .0
    {
        429 => 401,
        status => status,
    }
}

#[tokio::test]
async fn endpoint_appears_after_its_file_is_written() {
    let gateway = Gateway::start(&[]).await;
    assert_eq!(health_status(&gateway, "fresh").await, 404);
    gateway.write_config("conflagent.fresh.properties", &endpoint_file(SECRET, BASE));
    eventually(DEADLINE, || async {
        health_status(&gateway, "fresh").await == 200
    })
    .await;
    gateway.stop().await;
}

#[tokio::test]
async fn invalid_edit_keeps_the_last_good_config() {
    let gateway =
        Gateway::start(&[("conflagent.docs.properties", &endpoint_file(SECRET, BASE))]).await;
    assert_ne!(auth_status(&gateway, "docs", SECRET).await, 401);
    // Break the file and, in the same edit, change the secret: neither may take effect.
    gateway.write_config(
        "conflagent.docs.properties",
        "base_url=not a url\ngpt_shared_secret=another-secret-0123456789\n",
    );
    // A valid sibling written after the bad edit proves the rescan happened.
    gateway.write_config("conflagent.marker.properties", &endpoint_file(SECRET, BASE));
    eventually(DEADLINE, || async {
        health_status(&gateway, "marker").await == 200
    })
    .await;
    assert_ne!(auth_status(&gateway, "docs", SECRET).await, 401);
    assert_eq!(
        auth_status(&gateway, "docs", "another-secret-0123456789").await,
        401
    );
    gateway.stop().await;
}

#[tokio::test]
async fn removed_file_gives_404() {
    let gateway =
        Gateway::start(&[("conflagent.gone.properties", &endpoint_file(SECRET, BASE))]).await;
    assert_eq!(health_status(&gateway, "gone").await, 200);
    std::fs::remove_file(gateway.config_path("conflagent.gone.properties")).expect("remove");
    eventually(DEADLINE, || async {
        health_status(&gateway, "gone").await == 404
    })
    .await;
    gateway.stop().await;
}

#[tokio::test]
async fn kubernetes_data_swap_switches_the_secret() {
    let gateway = Gateway::start(&[]).await;
    let dir = gateway.dir.path();
    // The kubelet's layout: a timestamped dir, `..data` pointing at it, and per-key links.
    let first = dir.join("..2026_11_29_08_00_00.1");
    std::fs::create_dir(&first).expect("mkdir");
    std::fs::write(
        first.join("conflagent.k8s.properties"),
        endpoint_file("old-secret-0123456789abc", BASE),
    )
    .expect("write");
    symlink("..2026_11_29_08_00_00.1", dir.join("..data")).expect("link ..data");
    symlink(
        "..data/conflagent.k8s.properties",
        dir.join("conflagent.k8s.properties"),
    )
    .expect("link file");
    eventually(DEADLINE, || async {
        auth_status(&gateway, "k8s", "old-secret-0123456789abc").await != 401
            && health_status(&gateway, "k8s").await == 200
    })
    .await;

    // An update: new timestamped dir, `..data_tmp` link, renamed over `..data`, old dir removed.
    let second = dir.join("..2026_11_29_09_00_00.2");
    std::fs::create_dir(&second).expect("mkdir");
    std::fs::write(
        second.join("conflagent.k8s.properties"),
        endpoint_file("new-secret-0123456789abc", BASE),
    )
    .expect("write");
    symlink("..2026_11_29_09_00_00.2", dir.join("..data_tmp")).expect("link tmp");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
    std::fs::remove_dir_all(&first).expect("remove old");

    eventually(DEADLINE, || async {
        auth_status(&gateway, "k8s", "new-secret-0123456789abc").await != 401
    })
    .await;
    assert_eq!(
        auth_status(&gateway, "k8s", "old-secret-0123456789abc").await,
        401
    );
    gateway.stop().await;
}

/// The exact status of `GET /pages` with `secret` on an endpoint of flavor `upload`: 403 means the
/// endpoint exists and accepted the secret (the flavor refuses the listing before any upstream
/// call), 401 that it refused the secret, 404 that there is no such endpoint.
async fn upload_endpoint_status(gateway: &Gateway, name: &str, secret: &str) -> u16 {
    gateway
        .get(&format!("/endpoint/{name}/pages"), Some(secret))
        .await
        .0
}

fn upload_file(secret: &str) -> String {
    format!("{}flavor=upload\n", endpoint_file(secret, BASE))
}

#[tokio::test]
async fn vim_style_save_serves_the_new_file_as_soon_as_it_is_written() {
    let file = "conflagent.vim.properties";
    let gateway = Gateway::start(&[(file, &upload_file(SECRET))]).await;
    let path = gateway.config_path(file);
    let backup = gateway.config_path("conflagent.vim.properties~");
    assert_eq!(upload_endpoint_status(&gateway, "vim", SECRET).await, 403);

    // vim's default `backupcopy=auto` on a plain file: rename away, write anew, delete the backup.
    // Here the editor is slow: the gateway sees the file gone before the new one is written, so
    // the 404 window opens for certain.
    std::fs::rename(&path, &backup).expect("rename away");
    eventually(DEADLINE, || async {
        health_status(&gateway, "vim").await == 404
    })
    .await;
    let written = Instant::now();
    std::fs::write(&path, upload_file("edited-secret-0123456789")).expect("write new");
    std::fs::remove_file(&backup).expect("delete backup");

    // The new file is picked up by its own event, not by the 30 s safety rescan.
    eventually(DEADLINE, || async {
        health_status(&gateway, "vim").await == 200
    })
    .await;
    let window = written.elapsed();
    assert!(
        window < Duration::from_secs(5),
        "404 for {window:?} after the new file was written"
    );
    assert_eq!(
        upload_endpoint_status(&gateway, "vim", "edited-secret-0123456789").await,
        403,
        "the new secret is accepted"
    );
    assert_eq!(
        upload_endpoint_status(&gateway, "vim", SECRET).await,
        401,
        "the old secret is refused"
    );

    // The usual quick save: the new file is there before the vanished one has stayed gone for a
    // debounce, so the endpoint answers throughout with one secret or the other, never 404.
    let watch_until = Instant::now() + Duration::from_millis(1000);
    let poller = {
        let http = gateway.http.clone();
        let url = gateway.url("/endpoint/vim/health");
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while Instant::now() < watch_until {
                statuses.push(
                    http.get(&url)
                        .send()
                        .await
                        .expect("request")
                        .status()
                        .as_u16(),
                );
            }
            statuses
        })
    };
    std::fs::rename(&path, &backup).expect("rename away");
    std::fs::write(&path, upload_file("third-secret-0123456789")).expect("write new");
    std::fs::remove_file(&backup).expect("delete backup");
    let statuses = poller.await.expect("poller");
    assert!(!statuses.is_empty());
    let missing = statuses.iter().filter(|status| **status == 404).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} polls answered 404 during a quick save",
        statuses.len()
    );
    eventually(DEADLINE, || async {
        upload_endpoint_status(&gateway, "vim", "third-secret-0123456789").await == 403
    })
    .await;
    gateway.stop().await;
}

#[tokio::test]
async fn a_thousand_endpoint_files_load() {
    let contents: Vec<(String, String)> = (0..1000)
        .map(|index| {
            (
                format!("conflagent.team-{index}.properties"),
                endpoint_file(&format!("secret-of-team-{index}-0123456789"), BASE),
            )
        })
        .collect();
    let files: Vec<(&str, &str)> = contents
        .iter()
        .map(|(name, content)| (name.as_str(), content.as_str()))
        .collect();
    let gateway = Gateway::start(&files).await;
    for index in [0, 499, 999] {
        assert_eq!(health_status(&gateway, &format!("team-{index}")).await, 200);
        assert_ne!(
            auth_status(
                &gateway,
                &format!("team-{index}"),
                &format!("secret-of-team-{index}-0123456789")
            )
            .await,
            401
        );
    }
    assert_eq!(health_status(&gateway, "team-1000").await, 404);
    gateway.stop().await;
}

#[tokio::test]
async fn ignored_file_names_never_become_endpoints() {
    let content = endpoint_file(SECRET, BASE);
    let gateway = Gateway::start(&[
        ("conflagent.example.properties.example", content.as_str()),
        (".conflagent.hidden.properties.swp", content.as_str()),
        ("conflagent.tilde.properties~", content.as_str()),
        ("4913", content.as_str()),
    ])
    .await;
    for name in ["example", "hidden", "tilde"] {
        assert_eq!(health_status(&gateway, name).await, 404, "{name}");
    }
    gateway.stop().await;
}
