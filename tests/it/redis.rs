//! Budgets shared through Redis (`--redis-url`): replicas on one Redis grant an endpoint's quota once
//! between them, and a Redis that stops, pauses or restarts never fails a request. Each test starts
//! its own `redis-server`; without one installed they print a notice and pass, unless
//! `CONFLAGENT_REQUIRE_CHECKERS=1`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use conflagent::ratelimit::redis::{RedisBudgets, RedisSettings};

use crate::support::{Gateway, Options, RedisServer, SECRET, endpoint_file, eventually};

/// An endpoint whose authenticated writes are refused by its flavor after the quota is spent: 403
/// means the quota granted the request, 429 that it was spent. No call reaches Confluence.
fn read_only_file(per_minute: u32, burst: u32) -> String {
    format!(
        "{}flavor=read\nrate_limit_per_minute={per_minute}\nrate_limit_burst={burst}\n",
        endpoint_file(SECRET, "http://127.0.0.1:9")
    )
}

fn settings() -> RedisSettings {
    RedisSettings {
        // Generous for a busy test machine, where a late answer would make a replica use its own
        // budget; the paused-Redis test sets its own.
        deadline: Duration::from_millis(1000),
        probe_interval: Duration::from_millis(50),
        connect_timeout: Duration::from_secs(1),
    }
}

/// A gateway ("replica") with its own connection to `server`, serving `files`.
async fn replica(server: &RedisServer, settings: RedisSettings, files: &[(&str, &str)]) -> Replica {
    let redis = RedisBudgets::connect(&server.url(), settings)
        .await
        .expect("valid url");
    assert!(redis.is_up(), "connected at start");
    let gateway = Gateway::start_with(
        files,
        Options {
            redis: Some(redis.clone()),
            ..Options::default()
        },
    )
    .await;
    Replica { gateway, redis }
}

/// Two replicas sharing `server`, each serving the read-only endpoint `name` with this quota.
async fn two_replicas(
    server: &RedisServer,
    name: &str,
    per_minute: u32,
    burst: u32,
) -> (Replica, Replica) {
    let file = read_only_file(per_minute, burst);
    let file_name = format!("conflagent.{name}.properties");
    let files = [(file_name.as_str(), file.as_str())];
    let a = replica(server, settings(), &files).await;
    let b = replica(server, settings(), &files).await;
    (a, b)
}

struct Replica {
    gateway: Gateway,
    redis: RedisBudgets,
}

impl Replica {
    /// POST `/endpoint/<name>/pages` with `secret`: status and `Retry-After`.
    async fn write(&self, name: &str, secret: &str) -> (u16, Option<u64>) {
        let response = self
            .gateway
            .http
            .post(self.gateway.url(&format!("/endpoint/{name}/pages")))
            .bearer_auth(secret)
            .json(&serde_json::json!({"title": "T", "body": "b"}))
            .send()
            .await
            .expect("request");
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        (response.status().as_u16(), retry_after)
    }
}

/// The value of `conflagent_ratelimit_backend_fallbacks_total{reason}` in the (process-wide) scrape.
async fn fallbacks(gateway: &Gateway, reason: &str) -> u64 {
    let prefix = format!("conflagent_ratelimit_backend_fallbacks_total{{reason=\"{reason}\"}} ");
    gateway
        .scrape()
        .await
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

fn keys(server: &RedisServer, pattern: &str) -> Vec<String> {
    ::redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut server.connection())
        .expect("KEYS")
}

#[tokio::test]
async fn two_replicas_grant_one_quota_between_them() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let (a, b) = two_replicas(&server, "r-quota", 1, 4).await;

    let mut granted = 0;
    for round in 0..6 {
        for replica in [&a, &b] {
            let (status, retry_after) = replica.write("r-quota", SECRET).await;
            match status {
                403 => granted += 1,
                429 => {
                    let retry_after = retry_after.expect("Retry-After on 429");
                    assert!(
                        (1..=60).contains(&retry_after),
                        "one request a minute: {retry_after}"
                    );
                }
                other => panic!("round {round}: unexpected status {other}"),
            }
        }
        if round == 1 {
            // A flushed script cache costs one EVAL, not a fallback.
            let _: () = ::redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query(&mut server.connection())
                .expect("SCRIPT FLUSH");
        }
    }
    assert_eq!(
        granted, 4,
        "the burst of 4 is granted once, not per replica"
    );
    assert!(a.redis.is_up() && b.redis.is_up(), "no fallback happened");
    a.gateway.stop().await;
    b.gateway.stop().await;
}

#[tokio::test]
async fn the_failed_authentication_budget_is_shared() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let (a, b) = two_replicas(&server, "r-auth", 120, 20).await;

    let mut statuses = Vec::new();
    for _ in 0..5 {
        for replica in [&a, &b] {
            statuses.push(replica.write("r-auth", "wrong-secret-0123456789").await.0);
        }
    }
    let unauthorized = statuses.iter().filter(|status| **status == 401).count();
    assert_eq!(unauthorized, 5, "5 failures a burst in all: {statuses:?}");
    assert!(
        statuses[5..].iter().all(|status| *status == 429),
        "{statuses:?}"
    );
    assert_eq!(
        a.write("r-auth", SECRET).await.0,
        403,
        "the right secret is still served"
    );
    a.gateway.stop().await;
    b.gateway.stop().await;
}

#[tokio::test]
async fn a_stopped_redis_fails_no_request_and_sharing_resumes_after_a_restart() {
    let Some(mut server) = RedisServer::start(None) else {
        return;
    };
    let (a, b) = two_replicas(&server, "r-outage", 1, 2).await;
    assert_eq!(a.write("r-outage", SECRET).await.0, 403);
    assert_eq!(b.write("r-outage", SECRET).await.0, 403);
    assert_eq!(
        a.write("r-outage", SECRET).await.0,
        429,
        "shared burst spent"
    );

    server.stop();
    let before = fallbacks(&a.gateway, "error").await + fallbacks(&a.gateway, "down").await;
    // Each replica falls back to its own budget, untouched so far: a burst of 2 each.
    for replica in [&a, &b] {
        let statuses = [
            replica.write("r-outage", SECRET).await.0,
            replica.write("r-outage", SECRET).await.0,
            replica.write("r-outage", SECRET).await.0,
        ];
        assert_eq!(
            statuses,
            [403, 403, 429],
            "local budgets while Redis is down"
        );
    }
    assert!(!a.redis.is_up() && !b.redis.is_up());
    let after = fallbacks(&a.gateway, "error").await + fallbacks(&a.gateway, "down").await;
    assert!(
        after >= before + 6,
        "fallbacks counted: {before} -> {after}"
    );

    server.restart();
    eventually(Duration::from_secs(10), || async {
        a.redis.is_up() && b.redis.is_up()
    })
    .await;
    // The restarted Redis starts with full buckets, shared again.
    let statuses = [
        a.write("r-outage", SECRET).await.0,
        b.write("r-outage", SECRET).await.0,
        a.write("r-outage", SECRET).await.0,
        b.write("r-outage", SECRET).await.0,
    ];
    assert_eq!(statuses, [403, 403, 429, 429]);
    a.gateway.stop().await;
    b.gateway.stop().await;
}

#[tokio::test]
async fn a_paused_redis_costs_a_request_at_most_its_deadline() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let deadline = Duration::from_millis(100);
    let file = read_only_file(600, 100);
    let files = [("conflagent.r-paused.properties", file.as_str())];
    let a = replica(
        &server,
        RedisSettings {
            deadline,
            ..settings()
        },
        &files,
    )
    .await;
    assert_eq!(a.write("r-paused", SECRET).await.0, 403);

    server.pause(true);
    let timeouts = fallbacks(&a.gateway, "timeout").await;
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(a.write("r-paused", SECRET).await.0, 403);
        let elapsed = started.elapsed();
        // The deadline plus the request itself; a paused Redis would otherwise hold it forever.
        assert!(
            elapsed < deadline + Duration::from_millis(900),
            "{elapsed:?}"
        );
    }
    assert!(fallbacks(&a.gateway, "timeout").await > timeouts);
    assert!(!a.redis.is_up());

    server.pause(false);
    eventually(Duration::from_secs(10), || async { a.redis.is_up() }).await;
    a.gateway.stop().await;
}

#[tokio::test]
async fn keys_expire_and_follow_quota_changes_and_removed_endpoints() {
    let Some(server) = RedisServer::start(None) else {
        return;
    };
    let a = replica(
        &server,
        settings(),
        &[("conflagent.r-keys.properties", &read_only_file(60, 3))],
    )
    .await;
    for _ in 0..3 {
        assert_eq!(a.write("r-keys", SECRET).await.0, 403);
    }
    assert_eq!(a.write("r-keys", SECRET).await.0, 429);
    a.write("r-keys", "wrong-secret-0123456789").await;
    let names = keys(&server, "conflagent:ratelimit:r-keys:*");
    assert_eq!(names.len(), 2, "quota and failures: {names:?}");
    let mut connection = server.connection();
    for name in &names {
        assert!(!name.contains(SECRET), "{name}");
        let ttl: i64 = ::redis::cmd("PTTL")
            .arg(name)
            .query(&mut connection)
            .expect("PTTL");
        // Until the bucket is full again: 3 s for the quota, 6 s for one failure.
        assert!((1..=6_000).contains(&ttl), "{name}: {ttl} ms");
    }

    // A new quota is a new bucket, full at once.
    a.gateway
        .write_config("conflagent.r-keys.properties", &read_only_file(60, 1));
    eventually(Duration::from_secs(10), || async {
        a.write("r-keys", SECRET).await.0 == 403
    })
    .await;
    assert_eq!(a.write("r-keys", SECRET).await.0, 429);
    assert_eq!(
        keys(&server, "conflagent:ratelimit:r-keys:quota:60:1").len(),
        1,
        "the new quota's bucket"
    );

    // A removed endpoint touches Redis no more; its keys expire (here within 6 s).
    std::fs::remove_file(a.gateway.config_path("conflagent.r-keys.properties")).expect("remove");
    eventually(Duration::from_secs(10), || async {
        a.write("r-keys", SECRET).await.0 == 404
    })
    .await;
    eventually(Duration::from_secs(10), || async {
        keys(&server, "conflagent:ratelimit:r-keys:*").is_empty()
    })
    .await;
    assert_eq!(a.write("r-keys", SECRET).await.0, 404);
    assert!(keys(&server, "conflagent:ratelimit:r-keys:*").is_empty());
    a.gateway.stop().await;
}

#[tokio::test]
async fn the_redis_password_never_appears_in_the_log() {
    const PASSWORD: &str = "redis-pass-9f8e7d6c5b4a";
    let Some(mut server) = RedisServer::start(Some(PASSWORD)) else {
        return;
    };
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port()
    };
    let (listen, metrics) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("conflagent.r-log.properties"),
        read_only_file(120, 20),
    )
    .expect("write");
    let log_path = dir.path().join("gateway.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_conflagent"))
        .arg("serve")
        .arg("--config-dir")
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{listen}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .env("CONFLAGENT_REDIS_URL", server.url())
        .env("RUST_LOG", "trace")
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn()
        .expect("start the gateway");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let http = reqwest::Client::new();
    let write = || async {
        http.post(format!("http://127.0.0.1:{listen}/endpoint/r-log/pages"))
            .bearer_auth(SECRET)
            .send()
            .await
            .map(|response| response.status().as_u16())
            .ok()
    };
    eventually(Duration::from_secs(10), || async {
        write().await.is_some()
    })
    .await;
    server.stop();
    assert_eq!(write().await, Some(403), "served while Redis is down");
    server.restart();
    eventually(Duration::from_secs(10), || async {
        log().contains("Redis answers again")
    })
    .await;
    assert_eq!(write().await, Some(403));
    let _ = Command::new("kill")
        .args(["-TERM", &gateway.id().to_string()])
        .status();
    let _ = gateway.wait();
    let log = log();
    assert!(log.contains("Redis stopped answering"), "{log}");
    assert!(!log.contains(PASSWORD), "the password leaked into the log");

    // A URL that does not parse is refused at start, without repeating it.
    let output = Command::new(env!("CARGO_BIN_EXE_conflagent"))
        .arg("serve")
        .arg("--config-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args([
            "--redis-url",
            &format!("redis://:{PASSWORD}@127.0.0.1:notaport"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run the gateway");
    assert!(!output.status.success());
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(log.contains("Redis URL is not valid"), "{log}");
    assert!(!log.contains(PASSWORD), "the password leaked: {log}");
}

#[tokio::test]
async fn rediss_urls_share_budgets_over_tls() {
    let Some(_) = RedisServer::start(None) else {
        return;
    };
    // `openssl` answers `version`, not `--version`: only a missing one goes to the checker notice.
    let openssl = "openssl";
    let found = Command::new(openssl)
        .arg("version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !found && crate::support::find_checker(openssl, "apt-get install -y openssl").is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let run = |args: &[&str]| {
        let output = Command::new(openssl)
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("openssl");
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    // A throwaway CA and a certificate for localhost, trusted by the gateway through SSL_CERT_FILE.
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(path("ext.cnf"), "subjectAltName=DNS:localhost\n").expect("write");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--tls-cert-file",
            &path("server.pem"),
            "--tls-key-file",
            &path("server.key"),
        ])
        .args([
            "--tls-ca-cert-file",
            &path("ca.pem"),
            "--tls-auth-clients",
            "no",
        ])
        .args([
            "--requirepass",
            "tls-password-0123",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server with TLS");
    eventually(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;

    let config = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        config.path().join("conflagent.r-tls.properties"),
        read_only_file(1, 1),
    )
    .expect("write");
    let http = reqwest::Client::new();
    // Two gateway processes one after the other: the second finds the first's bucket spent.
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut gateway = Command::new(env!("CARGO_BIN_EXE_conflagent"))
            .arg("serve")
            .arg("--config-dir")
            .arg(config.path())
            .args(["--listen", &format!("127.0.0.1:{listen}")])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--redis-deadline-ms", "1000"])
            .env(
                "CONFLAGENT_REDIS_URL",
                format!("rediss://:tls-password-0123@localhost:{port}"),
            )
            .env("SSL_CERT_FILE", path("ca.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the gateway");
        let url = format!("http://127.0.0.1:{listen}/endpoint/r-tls/pages");
        let write = || async {
            http.post(&url)
                .bearer_auth(SECRET)
                .send()
                .await
                .map(|response| response.status().as_u16())
                .ok()
        };
        eventually(Duration::from_secs(10), || async {
            http.get(format!("http://127.0.0.1:{listen}/health"))
                .send()
                .await
                .is_ok()
        })
        .await;
        statuses.push(write().await);
        let _ = gateway.kill();
        let _ = gateway.wait();
    }
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(
        statuses,
        [Some(403), Some(429)],
        "one request a minute, kept in Redis over TLS across processes"
    );
}
