//! The `conflagent` binary: parses the command line, sets up logging, loads config, binds the
//! listeners and hands over to the library.

use std::future::Future;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tokio::net::TcpListener;

use conflagent::config::table::check_dir;
use conflagent::demo::Demo;
use conflagent::endpoint::{DEFAULT_RENDER_CACHE_MIB, Shared, initial_load};
use conflagent::http::server::ServerSettings;
use conflagent::http::service::ServiceSettings;
use conflagent::logging::{BatchWriter, FlushGuard, TextFormat};
use conflagent::markdown::RenderCache;
use conflagent::ratelimit::redis::{DEFAULT_DEADLINE_MS, RedisBudgets, RedisSettings};
use conflagent::{RunSettings, run};

/// A multi-tenant gateway between Custom GPTs (or any HTTP agent) and Confluence.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every endpoint of the config directory (the default).
    Serve(ServeArgs),
    /// Validate every endpoint file of DIR; print one `file:line: problem` per problem.
    Check {
        /// The config directory.
        dir: PathBuf,
    },
    /// Start a simulated Confluence with a small handbook and the gateway with one endpoint on it.
    Demo {
        /// Public listener address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Private listener for /metrics, /healthz and /readyz.
        #[arg(long, default_value = "127.0.0.1:9464")]
        metrics_listen: SocketAddr,
        /// The demo endpoint's rate limit (0: none).
        #[arg(long, default_value_t = 120)]
        rate_limit_per_minute: u32,
        /// The simulated Confluence: cloud (REST v2) or datacenter (REST v1).
        #[arg(long, value_enum, default_value_t = DemoDeployment::Cloud)]
        deployment: DemoDeployment,
    },
}

#[derive(clap::Args, Clone)]
struct ServeArgs {
    /// Directory of `conflagent.<name>.properties` files, watched for changes.
    #[arg(long, default_value = "config.d")]
    config_dir: PathBuf,
    /// Public listener address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Private listener for /metrics, /healthz and /readyz; keep it off the public network.
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics_listen: SocketAddr,
    /// Public https base URL advertised in OpenAPI `servers` (an endpoint's `public_url` wins).
    /// Plain http only for a loopback host.
    #[arg(long, value_parser = conflagent::http::public_url::parse)]
    public_url: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Seconds in-flight requests get to finish after SIGTERM or SIGINT (both listeners together).
    #[arg(long, default_value_t = 20)]
    shutdown_grace: u64,
    /// Seconds the listeners keep serving after SIGTERM or SIGINT while /readyz already fails, so
    /// that load balancers stop routing before the port closes.
    #[arg(long, default_value_t = 5)]
    drain_delay: u64,
    /// Most connections served at once on the public listener; at the cap the idlest is closed.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Share every endpoint's rate-limit budgets with the other replicas through this Redis or
    /// Valkey: redis://[[user]:password@]host[:port][/db], or rediss://... for TLS. Without it,
    /// budgets are per process.
    #[arg(long, env = "CONFLAGENT_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Milliseconds one Redis budget check may take; past that (or on any Redis error) the request
    /// uses this replica's own budget.
    #[arg(long, env = "CONFLAGENT_REDIS_DEADLINE_MS", default_value_t = DEFAULT_DEADLINE_MS, value_parser = clap::value_parser!(u64).range(1..=1000))]
    redis_deadline_ms: u64,
    /// MiB of stored page bodies and their Markdown kept rendered for Markdown reads and writes,
    /// for all endpoints together; 0 renders every time.
    #[arg(long, env = "CONFLAGENT_MARKDOWN_CACHE_MIB", default_value_t = DEFAULT_RENDER_CACHE_MIB, value_parser = clap::value_parser!(u64).range(0..=65536))]
    markdown_cache_mib: u64,
}

#[derive(Clone, Copy, ValueEnum)]
enum DemoDeployment {
    Cloud,
    Datacenter,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check { dir }) => check(&dir),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Demo {
            listen,
            metrics_listen,
            rate_limit_per_minute,
            deployment,
        }) => {
            let deployment = match deployment {
                DemoDeployment::Cloud => conflagent::config::Deployment::Cloud,
                DemoDeployment::Datacenter => conflagent::config::Deployment::DataCenter,
            };
            demo(listen, metrics_listen, rate_limit_per_minute, deployment)
        }
        None => serve(cli.serve),
    }
}

/// Sets up logging to stdout through a writer thread that writes lines in batches, so a request
/// never waits on the write of its log line (see `conflagent::logging`). Keep the returned guard
/// until exit; dropping it writes what is queued.
fn init_logging(format: LogFormat) -> std::io::Result<FlushGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = BatchWriter::new(std::io::stdout())?;
    // Colour codes only for a terminal: a journal or a log collector would store them verbatim.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.event_format(TextFormat::default()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(guard)
}

fn check(dir: &Path) -> ExitCode {
    match check_dir(dir) {
        Ok(files) => {
            let mut failed = false;
            for file in &files {
                failed |= file.has_errors();
                for line in file.lines() {
                    println!("{line}");
                }
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("{}: cannot read directory: {error}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let _log_writer = match init_logging(args.log_format) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("cannot start the log writer thread: {error}");
            return ExitCode::FAILURE;
        }
    };
    block_on(async move {
        let Some(render_metrics) = start_metrics() else {
            return ExitCode::FAILURE;
        };
        let mut shared = Shared::default();
        let cache_bytes = usize::try_from(args.markdown_cache_mib.saturating_mul(1024 * 1024))
            .unwrap_or(usize::MAX);
        shared.renders = Arc::new(RenderCache::new(cache_bytes));
        if let Some(url) = &args.redis_url {
            let settings = RedisSettings {
                deadline: Duration::from_millis(args.redis_deadline_ms),
                ..RedisSettings::default()
            };
            match RedisBudgets::connect(url, settings).await {
                Ok(redis) => shared.redis = Some(redis),
                Err(error) => {
                    tracing::error!(%error, "cannot use --redis-url");
                    return ExitCode::FAILURE;
                }
            }
        }
        // Config is loaded and validated completely before any port is bound.
        let store = match initial_load(&args.config_dir, shared) {
            Ok(store) => store,
            Err(error) => {
                tracing::error!(dir = %args.config_dir.display(), %error, "cannot read the config directory");
                return ExitCode::FAILURE;
            }
        };
        let public = match TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(addr = %args.listen, %error, "cannot bind the public listener");
                return ExitCode::FAILURE;
            }
        };
        let private = match TcpListener::bind(args.metrics_listen).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(addr = %args.metrics_listen, %error, "cannot bind the metrics listener");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(listen = %args.listen, metrics_listen = %args.metrics_listen, endpoints = store.table().len(), "conflagent serving");
        let settings = RunSettings {
            service: ServiceSettings {
                public_url: args.public_url.clone(),
                ..ServiceSettings::default()
            },
            server: ServerSettings {
                grace_period: Duration::from_secs(args.shutdown_grace),
                drain_delay: Duration::from_secs(args.drain_delay),
                max_connections: args.max_connections,
                ..ServerSettings::default()
            },
            render_metrics: Some(render_metrics),
            ..RunSettings::default()
        };
        run(
            public,
            private,
            Arc::new(store),
            settings,
            shutdown_signal(),
        )
        .await;
        ExitCode::SUCCESS
    })
}

fn demo(
    listen: SocketAddr,
    metrics_listen: SocketAddr,
    rate_limit_per_minute: u32,
    deployment: conflagent::config::Deployment,
) -> ExitCode {
    let _log_writer = match init_logging(LogFormat::Text) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("cannot start the log writer thread: {error}");
            return ExitCode::FAILURE;
        }
    };
    block_on(async move {
        let Some(render_metrics) = start_metrics() else {
            return ExitCode::FAILURE;
        };
        let demo = match Demo::start(listen, metrics_listen, rate_limit_per_minute, deployment)
            .await
        {
            Ok(demo) => demo,
            Err(error) => {
                tracing::error!(%error, %listen, %metrics_listen, "cannot start the demo (is the port taken? try --listen 127.0.0.1:0)");
                return ExitCode::FAILURE;
            }
        };
        println!("{}", demo.instructions());
        let settings = RunSettings {
            render_metrics: Some(render_metrics),
            ..RunSettings::default()
        };
        demo.serve(settings, shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

/// Runs `future` on a new multi-threaded runtime.
fn block_on(future: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(future),
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            ExitCode::FAILURE
        }
    }
}

/// Installs the Prometheus recorder and its upkeep task (inside the runtime); returns what renders
/// the scrape, or `None` after logging why it could not be installed.
fn start_metrics() -> Option<Arc<dyn Fn() -> String + Send + Sync>> {
    let handle = match conflagent::metrics::install() {
        Ok(handle) => handle,
        Err(error) => {
            tracing::error!(%error, "cannot install the metrics recorder");
            return None;
        }
    };
    let upkeep = handle.clone();
    tokio::spawn(async move {
        // Histogram samples are folded in at scrape time; upkeep bounds them between scrapes.
        let mut interval = tokio::time::interval(Duration::from_secs(5));
        loop {
            interval.tick().await;
            upkeep.run_upkeep();
        }
    });
    Some(Arc::new(move || handle.render()))
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
