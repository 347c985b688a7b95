//! `conflagent demo`: the simulator with a small realistic space, and the gateway with one endpoint
//! on it, ready to try with `curl`. Cloud by default (REST v2 through the API gateway form, Basic
//! email + API token, a folder in the tree); Data Center (REST v1, a personal access token) on request.

use std::net::SocketAddr;
use std::sync::Arc;

use tempfile::TempDir;
use tokio::net::TcpListener;

use crate::endpoint::{EndpointStore, Shared, initial_load};
use crate::sim::{Deployment, SimSettings, Simulator};
use crate::{RunSettings, run};

/// The demo's endpoint name.
pub const ENDPOINT: &str = "demo";
const SPACE: &str = "TEAM";
const UPSTREAM_TOKEN: &str = "demo-api-token";
const UPSTREAM_EMAIL: &str = "demo@example.com";

/// A running demo: the simulator, and the gateway's addresses and secret.
pub struct Demo {
    /// The simulated Confluence.
    pub sim: Simulator,
    /// The gateway's public listener.
    pub public: TcpListener,
    /// The gateway's private listener.
    pub private: TcpListener,
    /// The loaded config (a temporary directory holding one endpoint file).
    pub store: Arc<EndpointStore>,
    /// The endpoint's Bearer secret.
    pub secret: String,
    /// Keeps the temporary config directory alive.
    config_dir: TempDir,
}

impl Demo {
    /// Starts the simulator, seeds it, writes the endpoint file (with `rate_limit_per_minute`, 0 for
    /// none) and binds both listeners. `deployment` picks the simulated Confluence: Cloud speaks
    /// REST v2 (reached through the API gateway form), Data Center REST v1.
    pub async fn start(
        listen: SocketAddr,
        metrics_listen: SocketAddr,
        rate_limit_per_minute: u32,
        deployment: Deployment,
    ) -> std::io::Result<Demo> {
        let sim = Simulator::start(SimSettings::for_deployment(deployment)).await?;
        let root_id = seed(&sim);
        let (base_url, upstream) = match deployment {
            Deployment::Cloud => {
                sim.add_basic_user(UPSTREAM_EMAIL, UPSTREAM_TOKEN);
                (
                    sim.gateway_base_url(),
                    format!(
                        "deployment=cloud\nauth=basic\nemail={UPSTREAM_EMAIL}\napi_token={UPSTREAM_TOKEN}\n"
                    ),
                )
            }
            Deployment::DataCenter => {
                sim.add_bearer_token(UPSTREAM_TOKEN);
                (
                    sim.base_url(),
                    format!("deployment=datacenter\nauth=bearer\napi_token={UPSTREAM_TOKEN}\n"),
                )
            }
        };
        let secret = demo_secret()?;
        let config_dir = tempfile::Builder::new()
            .prefix("conflagent-demo-")
            .tempdir()?;
        let file = format!(
            "# Written by `conflagent demo`.\nbase_url={base_url}\nspace_key={SPACE}\nroot_page_id={root_id}\n\
             gpt_shared_secret={secret}\n{upstream}\
             rate_limit_per_minute={rate_limit_per_minute}\n\
             description=A demo team handbook served by the built-in Confluence simulator.\n"
        );
        std::fs::write(
            config_dir
                .path()
                .join(format!("conflagent.{ENDPOINT}.properties")),
            file,
        )?;
        let store = initial_load(config_dir.path(), Shared::default())?;
        let public = TcpListener::bind(listen).await?;
        let private = TcpListener::bind(metrics_listen).await?;
        Ok(Demo {
            sim,
            public,
            private,
            store: Arc::new(store),
            secret,
            config_dir,
        })
    }

    /// The endpoint's base URL.
    pub fn endpoint_url(&self) -> String {
        let addr = self
            .public
            .local_addr()
            .map_or_else(|_| "127.0.0.1:8080".to_owned(), |addr| addr.to_string());
        format!("http://{addr}/endpoint/{ENDPOINT}")
    }

    /// What the demo prints: where to go and what to try.
    pub fn instructions(&self) -> String {
        let base = self.endpoint_url();
        let secret = &self.secret;
        let metrics = self
            .private
            .local_addr()
            .map_or_else(|_| "127.0.0.1:9464".to_owned(), |addr| addr.to_string());
        let confluence = match self.sim.settings().deployment {
            Deployment::Cloud => "Confluence Cloud (REST v2, through the API gateway form)",
            Deployment::DataCenter => "Confluence Data Center (REST v1)",
        };
        format!(
            "Conflagent demo: a simulated {confluence} with a small team handbook, and one endpoint.\n\n\
             Endpoint:  {base}\n\
             Secret:    {secret}\n\
             OpenAPI:   {base}/openapi.json\n\
             MCP:       {base}/mcp\n\
             Metrics:   http://{metrics}/metrics\n\
             Config:    {config}\n\n\
             Try:\n\
             \x20 curl -s -H 'Authorization: Bearer {secret}' {base}/pages\n\
             \x20 curl -s -H 'Authorization: Bearer {secret}' '{base}/pages/Engineering/Release%20Process?format=markdown'\n\
             \x20 curl -s -X POST -H 'Authorization: Bearer {secret}' -H 'Content-Type: application/json' \\\n\
             \x20      -d '{{\"title\":\"Retro notes\",\"parentTitle\":\"Meeting Notes\",\"body\":\"# Retro\\n\\n- [x] ship it\\n\\nSee [[Release Process]].\"}}' {base}/pages\n\n\
             Or from an MCP client, e.g. Claude Code:\n\
             \x20 claude mcp add --transport http conflagent-demo {base}/mcp --header 'Authorization: Bearer {secret}'\n\n\
             Press Ctrl-C to stop.\n",
            config = self.config_dir.path().display(),
        )
    }

    /// Serves with `settings` until `shutdown` completes, then stops the gateway and the simulator.
    pub async fn serve(
        self,
        settings: RunSettings,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let Demo {
            sim,
            public,
            private,
            store,
            config_dir,
            ..
        } = self;
        run(public, private, store, settings, shutdown).await;
        sim.shutdown().await;
        drop(config_dir);
    }
}

/// A fresh secret from the operating system's CSPRNG: 128 random bits as hex. The demo may listen
/// beyond loopback, so its secret must not be guessable from a predictable generator.
fn demo_secret() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!("demo-{hex}"))
}

/// Seeds the space; returns the root page's id.
fn seed(sim: &Simulator) -> String {
    sim.add_space(SPACE, "Team");
    let root = sim.add_page(
        SPACE,
        "Team Handbook",
        None,
        "<p>How we work. Start with <ac:link><ri:page ri:content-title=\"First Week\"/></ac:link>.</p>",
    );
    let onboarding = sim.add_page(
        SPACE,
        "Onboarding",
        Some(&root),
        "<h1>Onboarding</h1><p>Everything a new team member needs.</p>",
    );
    sim.add_page(
        SPACE,
        "First Week",
        Some(&onboarding),
        "<h2>Day one</h2><ul><li><p>Get your laptop</p></li><li><p>Read the \
         <ac:link><ri:page ri:content-title=\"On-call Runbook\"/>\
         <ac:plain-text-link-body><![CDATA[runbook]]></ac:plain-text-link-body></ac:link></p></li></ul>",
    );
    sim.add_page(
        SPACE,
        "Accounts & Access",
        Some(&onboarding),
        "<ac:structured-macro ac:name=\"info\"><ac:rich-text-body><p>Request access in the \
         service desk.</p></ac:rich-text-body></ac:structured-macro>",
    );
    let engineering = sim.add_page(
        SPACE,
        "Engineering",
        Some(&root),
        "<p>Architecture, releases and operations.</p>",
    );
    sim.add_page(
        SPACE,
        "Architecture",
        Some(&engineering),
        "<table><tbody><tr><th><p>Service</p></th><th><p>Owner</p></th></tr>\
         <tr><td><p>gateway</p></td><td><p>Platform</p></td></tr></tbody></table>",
    );
    sim.add_page(
        SPACE,
        "Release Process",
        Some(&engineering),
        "<ol><li><p>Tag the release</p></li><li><p>Run the pipeline</p></li></ol>\
         <ac:structured-macro ac:name=\"code\"><ac:parameter ac:name=\"language\">bash</ac:parameter>\
         <ac:plain-text-body><![CDATA[git tag -s v1.2.0 && git push --tags]]></ac:plain-text-body>\
         </ac:structured-macro>",
    );
    sim.add_page(
        SPACE,
        "On-call Runbook",
        Some(&engineering),
        "<p>Page the secondary after 15 minutes.</p>",
    );
    let meetings = sim.add_page(SPACE, "Meeting Notes", Some(&root), "<p>Weekly notes.</p>");
    if sim.settings().deployment == Deployment::Cloud {
        // Cloud folders are transparent: "Travel Policy" shows as a child of the handbook.
        let policies = sim.add_folder(SPACE, "Policies", Some(&root));
        sim.add_page(
            SPACE,
            "Travel Policy",
            Some(&policies),
            "<p>Book through the travel desk.</p>",
        );
    }
    sim.add_page(
        SPACE,
        "2026-11-23 Weekly",
        Some(&meetings),
        "<ac:task-list><ac:task><ac:task-id>1</ac:task-id><ac:task-status>complete</ac:task-status>\
         <ac:task-body>Ship 1.2</ac:task-body></ac:task></ac:task-list>",
    );
    // Outside the sandbox: the demo endpoint can never see it.
    sim.add_page(
        SPACE,
        "HR Confidential",
        None,
        "<p>Salaries. Not reachable through the demo endpoint.</p>",
    );
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_comes_from_the_os_not_from_a_seedable_generator() {
        // A generator seeded alike gives the same secret twice; the OS generator never does.
        fastrand::seed(7);
        let first = demo_secret().expect("OS randomness");
        fastrand::seed(7);
        let second = demo_secret().expect("OS randomness");
        assert_ne!(first, second);
        assert_eq!(first.len(), "demo-".len() + 32);
    }
}
