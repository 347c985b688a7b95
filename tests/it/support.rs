//! The test world: a temp config dir, a gateway on ephemeral ports, and small helpers to wait for
//! what the gateway should eventually do.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conflagent::config::watch::WatchSettings;
use conflagent::endpoint::{self, Shared};
use conflagent::http::server::ServerSettings;
use conflagent::{RunSettings, run};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The secret every test endpoint accepts unless a test says otherwise.
pub const SECRET: &str = "test-secret-0123456789abcdef";

/// The text of a valid endpoint file. Its upstream deadline is short (2 s): reads are retried until
/// the deadline, and many tests point at an unreachable Confluence.
pub fn endpoint_file(secret: &str, base_url: &str) -> String {
    format!(
        "base_url={base_url}\nspace_key=DOC\nroot_page_id=1000\ngpt_shared_secret={secret}\n\
         api_token=upstream-token\nupstream_timeout_seconds=2\n"
    )
}

/// A running gateway over a temp config dir.
pub struct Gateway {
    /// The public listener's address.
    pub addr: SocketAddr,
    /// The private (metrics) listener's address.
    pub private_addr: SocketAddr,
    /// The config dir (kept alive with the gateway).
    pub dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// A client for talking to it.
    pub http: reqwest::Client,
}

/// Gateway options for tests that need more than the defaults.
#[derive(Clone, Default)]
pub struct Options {
    /// Connection settings.
    pub server: ServerSettings,
    /// Request body limit, when not the default.
    pub body_limit: Option<usize>,
    /// The global `--public-url`.
    pub public_url: Option<String>,
    /// Body read deadline and budget, when not the defaults.
    pub body: Option<conflagent::http::body::BodySettings>,
    /// The Redis the rate-limit budgets live in.
    pub redis: Option<conflagent::ratelimit::redis::RedisBudgets>,
}

impl Gateway {
    /// Starts a gateway whose config dir holds `files` (file name, content).
    pub async fn start(files: &[(&str, &str)]) -> Gateway {
        Gateway::start_with(files, Options::default()).await
    }

    /// Starts a gateway with `options`.
    pub async fn start_with(files: &[(&str, &str)], options: Options) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("write config file");
        }
        let shared = Shared {
            redis: options.redis.clone(),
            ..Shared::default()
        };
        let (store, _report) = endpoint::load(dir.path(), shared).expect("load config dir");
        let public = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let private = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = public.local_addr().expect("addr");
        let private_addr = private.local_addr().expect("addr");
        // One recorder per test process: tests assert on labels of their own endpoints.
        let metrics = conflagent::metrics::install().expect("install the metrics recorder");
        let mut settings = RunSettings {
            render_metrics: Some(Arc::new(move || metrics.render())),
            server: options.server,
            watch: WatchSettings {
                debounce: Duration::from_millis(100),
                rescan_interval: Duration::from_secs(30),
            },
            ..RunSettings::default()
        };
        if let Some(limit) = options.body_limit {
            settings.service.body_limit = limit;
        }
        settings.service.public_url = options.public_url;
        if let Some(body) = options.body {
            settings.service.body = body;
        }
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(run(
            public,
            private,
            Arc::new(store),
            settings,
            async move {
                let _ = shutdown_rx.await;
            },
        ));
        Gateway {
            addr,
            private_addr,
            dir,
            shutdown: Some(shutdown_tx),
            task: Some(task),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
        }
    }

    /// `http://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The path of a file in the config dir.
    pub fn config_path(&self, file_name: &str) -> PathBuf {
        self.dir.path().join(file_name)
    }

    /// Writes a config file (atomically, by rename, as careful tools do).
    pub fn write_config(&self, file_name: &str, content: &str) {
        write_atomically(self.dir.path(), file_name, content);
    }

    /// GET `path` with an optional Bearer secret; returns status and parsed JSON body.
    pub async fn get(&self, path: &str, secret: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(secret) = secret {
            request = request.bearer_auth(secret);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body = response.json().await.expect("json body");
        (status, body)
    }

    /// The private listener's `/metrics` scrape.
    pub async fn scrape(&self) -> String {
        let response = self
            .http
            .get(format!("http://{}/metrics", self.private_addr))
            .send()
            .await
            .expect("scrape");
        assert_eq!(response.status(), 200);
        response.text().await.expect("scrape text")
    }

    /// Starts graceful shutdown and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("run task");
        }
    }

    /// Starts graceful shutdown without waiting; returns the task to await.
    pub fn begin_stop(&mut self) -> JoinHandle<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.task.take().expect("gateway still running")
    }
}

/// Writes `content` to `dir/file_name` through a temp file and a rename.
pub fn write_atomically(dir: &Path, file_name: &str, content: &str) {
    let temp = dir.join(format!(".{file_name}.tmp"));
    std::fs::write(&temp, content).expect("write temp file");
    std::fs::rename(&temp, dir.join(file_name)).expect("rename into place");
}

/// Polls `condition` until it holds or `deadline` passes; returns how long it took.
pub async fn eventually<F, Fut>(deadline: Duration, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if condition().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "condition not met within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Gateway {
    /// Sends `method path` with the endpoint secret and an optional JSON body; returns status and
    /// the parsed envelope.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(SECRET);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {text}"));
        (status, json)
    }
}

/// A simulator seeded with a space and a sandbox, and a gateway with one endpoint `docs` on it.
pub struct World {
    /// The simulated Confluence.
    pub sim: conflagent::sim::Simulator,
    /// The gateway.
    pub gateway: Gateway,
    /// The id of the endpoint's root page.
    pub root_id: String,
}

/// The Data Center PAT the world's endpoint sends upstream.
pub const UPSTREAM_TOKEN: &str = "upstream-pat-0123456789";

/// The space of the world.
pub const SPACE: &str = "DOC";

/// Both backends: Data Center on REST v1, Cloud on REST v2 (through the API gateway form).
pub const DEPLOYMENTS: [conflagent::sim::Deployment; 2] = [
    conflagent::sim::Deployment::DataCenter,
    conflagent::sim::Deployment::Cloud,
];

impl World {
    /// A world on `deployment`, with `extra` appended to the endpoint file: root "Handbook" with
    /// "Guides" (children "Install", "Configure") and "Notes"; outside the sandbox, "Outside"
    /// with child "Secret Plans".
    pub async fn start_with(deployment: conflagent::sim::Deployment, extra: &str) -> World {
        World::start_seeded(deployment, extra, |sim, root_id| {
            let guides = sim.add_page(SPACE, "Guides", Some(root_id), "<p>All guides</p>");
            sim.add_page(SPACE, "Install", Some(&guides), "<p>Run the installer.</p>");
            sim.add_page(SPACE, "Configure", Some(&guides), "<p>Edit the file.</p>");
            sim.add_page(SPACE, "Notes", Some(root_id), "<p>Loose notes</p>");
        })
        .await
    }

    /// A world whose sandbox holds 155 pages: 3 levels of 5 children, titled `P1`, `P1.2`, `P1.2.3`.
    pub async fn start_tree(deployment: conflagent::sim::Deployment, extra: &str) -> World {
        World::start_seeded(deployment, extra, |sim, root_id| {
            for a in 1..=5 {
                let first = sim.add_page(SPACE, &format!("P{a}"), Some(root_id), "<p>level 1</p>");
                for b in 1..=5 {
                    let second =
                        sim.add_page(SPACE, &format!("P{a}.{b}"), Some(&first), "<p>level 2</p>");
                    for c in 1..=5 {
                        sim.add_page(
                            SPACE,
                            &format!("P{a}.{b}.{c}"),
                            Some(&second),
                            "<p>level 3</p>",
                        );
                    }
                }
            }
        })
        .await
    }

    async fn start_seeded(
        deployment: conflagent::sim::Deployment,
        extra: &str,
        seed: impl FnOnce(&conflagent::sim::Simulator, &str),
    ) -> World {
        World::start_custom(
            conflagent::sim::SimSettings::for_deployment(deployment),
            extra,
            seed,
        )
        .await
    }

    /// A world on a simulator with `settings`: the root "Handbook", the pages `seed` adds under it
    /// (it gets the root id), and outside the sandbox "Outside" with child "Secret Plans".
    pub async fn start_custom(
        settings: conflagent::sim::SimSettings,
        extra: &str,
        seed: impl FnOnce(&conflagent::sim::Simulator, &str),
    ) -> World {
        let deployment = settings.deployment;
        let sim = conflagent::sim::Simulator::start(settings)
            .await
            .expect("simulator");
        sim.add_space(SPACE, "Documentation");
        let root_id = sim.add_page(SPACE, "Handbook", None, "<p>Welcome</p>");
        seed(&sim, &root_id);
        let outside = sim.add_page(SPACE, "Outside", None, "<p>Not for GPTs</p>");
        sim.add_page(
            SPACE,
            "Secret Plans",
            Some(&outside),
            "<p>classified-content</p>",
        );
        let (auth, credentials) = match deployment {
            conflagent::sim::Deployment::DataCenter => {
                sim.add_bearer_token(UPSTREAM_TOKEN);
                ("bearer", format!("api_token={UPSTREAM_TOKEN}\n"))
            }
            conflagent::sim::Deployment::Cloud => {
                sim.add_basic_user("bot@example.com", UPSTREAM_TOKEN);
                (
                    "basic",
                    format!("email=bot@example.com\napi_token={UPSTREAM_TOKEN}\n"),
                )
            }
        };
        // Cloud goes through the API gateway form, where pagination links are easiest to get wrong.
        let (deployment_name, base_url) = match deployment {
            conflagent::sim::Deployment::DataCenter => ("datacenter", sim.base_url()),
            conflagent::sim::Deployment::Cloud => ("cloud", sim.gateway_base_url()),
        };
        let file = format!(
            "base_url={base_url}\nspace_key={SPACE}\nroot_page_id={root_id}\ngpt_shared_secret={SECRET}\n\
             auth={auth}\n{credentials}deployment={deployment_name}\nrate_limit_per_minute=0\n{extra}"
        );
        let gateway = Gateway::start(&[("conflagent.docs.properties", &file)]).await;
        World {
            sim,
            gateway,
            root_id,
        }
    }

    /// Calls `method /endpoint/docs{path}`.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.gateway
            .call(method, &format!("/endpoint/docs{path}"), body)
            .await
    }

    /// Upstream requests made by `operation` (counted from a reset).
    pub async fn upstream_calls<F, Fut, T>(&self, operation: F) -> (usize, T)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.sim.reset_counts();
        let result = operation().await;
        (self.sim.total_requests(), result)
    }

    /// Stops the gateway and the simulator.
    pub async fn stop(self) {
        self.gateway.stop().await;
        self.sim.shutdown().await;
    }
}

/// Finds an external checker; `None` (after a loud notice) when it is missing and checkers are not
/// required, a failure when `CONFLAGENT_REQUIRE_CHECKERS=1`.
pub fn find_checker(program: &str, install: &str) -> Option<String> {
    let found = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if found {
        return Some(program.to_owned());
    }
    let required = std::env::var("CONFLAGENT_REQUIRE_CHECKERS").is_ok_and(|value| value == "1");
    assert!(
        !required,
        "{program} is missing and CONFLAGENT_REQUIRE_CHECKERS=1; install it with `{install}`"
    );
    // Written to the real stderr: the test harness captures `eprintln!` of passing tests, and a
    // skipped check must not pass silently.
    let notice = format!(
        "\n!!!!! NOTICE: {program} is not installed; this check was SKIPPED. \
         Install it with `{install}`. !!!!!\n"
    );
    let _ = std::io::stderr().write_all(notice.as_bytes());
    None
}

/// Finds `python3` with `module` importable, as [`find_checker`] finds a program: `None` (after a
/// loud notice) when missing and checkers are not required, a failure when
/// `CONFLAGENT_REQUIRE_CHECKERS=1`.
pub fn find_python_module(module: &str, install: &str) -> Option<String> {
    let found = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|output| output.status.success());
    if found {
        return Some("python3".to_owned());
    }
    let required = std::env::var("CONFLAGENT_REQUIRE_CHECKERS").is_ok_and(|value| value == "1");
    assert!(
        !required,
        "python3 with `{module}` is missing and CONFLAGENT_REQUIRE_CHECKERS=1; install it with \
         `{install}`"
    );
    let notice = format!(
        "\n!!!!! NOTICE: python3 with `{module}` is not installed; this check was SKIPPED. \
         Install it with `{install}`. !!!!!\n"
    );
    let _ = std::io::stderr().write_all(notice.as_bytes());
    None
}

/// Sends `request` on a new connection and reads until the server closes it (at most 5 s); returns
/// the status and the envelope of the answer.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before the whole request is written.
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .expect("the server answers and closes within 5 s")
        .expect("read");
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 answer: {text}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let envelope = serde_json::from_str(body)
        .unwrap_or_else(|error| panic!("not an envelope ({error}): {text}"));
    (status, envelope)
}

/// Connects and sends `bytes`, then leaves the connection as it is: a client that stalls.
pub async fn stalled_client(addr: SocketAddr, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;

    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    stream
}

/// Waits (at most 5 s) until the server closes `stream`; panics if it stays open.
pub async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;

    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the connection is still open after 5 s");
    received
}

/// A create request to `endpoint` whose body is still on its way: the head and the first bytes are
/// sent. Returns the stream and the bytes still to send, which keep the request in flight until
/// they are written.
pub async fn start_slow_create(
    addr: SocketAddr,
    endpoint: &str,
) -> (tokio::net::TcpStream, &'static [u8]) {
    use tokio::io::AsyncWriteExt;

    let body: &'static [u8] = br#"{"title":"Written while in flight","body":"text"}"#;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /endpoint/{endpoint}/pages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(&body[..10]).await.expect("write part");
    (stream, &body[10..])
}

/// A `redis-server` of its own on a free loopback port, without persistence; killed when dropped.
pub struct RedisServer {
    /// The port it listens on (kept across restarts).
    pub port: u16,
    password: Option<String>,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts one, or returns `None` (after the checker notice) when `redis-server` is missing.
    pub fn start(password: Option<&str>) -> Option<RedisServer> {
        find_checker("redis-server", "apt-get install -y redis-server")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut server = RedisServer {
            port,
            password: password.map(str::to_owned),
            child: None,
        };
        server.restart();
        Some(server)
    }

    /// The URL to reach it, password included.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Starts the server (again, empty) on its port and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        self.child = Some(command.spawn().expect("start redis-server"));
        let client = redis::Client::open(self.url()).expect("redis url");
        let start = Instant::now();
        while client
            .get_connection()
            .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection))
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server; its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Pauses (`SIGSTOP`) or resumes (`SIGCONT`) the server: connections stay open, nothing answers.
    pub fn pause(&self, paused: bool) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let signal = if paused { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// A blocking connection for inspecting keys.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .expect("connect to redis-server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
