//! The page domain on its own: typed commands in, typed replies and `PageError` out, against the
//! simulator, with no HTTP type anywhere in between.

use conflagent::config::tenant::validate;
use conflagent::config::{Deployment, Tenant};
use conflagent::confluence::{ConfluenceClient, UpstreamSettings, http_client};
use conflagent::markdown::{BodyFormat, RenderCache};
use conflagent::pages::{self, Command, PageError, Placed, Reply};
use conflagent::sim::{self, SimSettings, Simulator};
use conflagent::titles::{Title, TitlePath};

/// A simulator with a sandbox (`Root` → `Guides` → `Install`) and a decoy page outside it, and the
/// endpoint's tenant and client.
struct Domain {
    sim: Simulator,
    tenant: Tenant,
    client: ConfluenceClient,
    renders: RenderCache,
}

impl Domain {
    async fn start() -> Domain {
        let sim = Simulator::start(SimSettings::for_deployment(sim::Deployment::DataCenter))
            .await
            .expect("simulator starts");
        sim.add_space("DOC", "Docs");
        sim.add_bearer_token("upstream-token");
        let root = sim.add_page("DOC", "Root", None, "<p>root</p>");
        let guides = sim.add_page("DOC", "Guides", Some(&root), "<p>guides</p>");
        sim.add_page(
            "DOC",
            "Install",
            Some(&guides),
            "<h1>Install</h1><p>steps</p>",
        );
        sim.add_page("DOC", "Decoy", None, "<p>outside</p>");
        let text = format!(
            "base_url={}\nspace_key=DOC\nroot_page_id={root}\n\
             gpt_shared_secret=domain-secret-0123456789\napi_token=upstream-token\n",
            sim.base_url()
        );
        let tenant = validate("domain", &text).tenant.expect("valid tenant");
        assert_eq!(tenant.deployment(), Deployment::DataCenter);
        let client = ConfluenceClient::new(http_client(), UpstreamSettings::of(&tenant));
        Domain {
            sim,
            tenant,
            client,
            renders: RenderCache::new(1024 * 1024),
        }
    }

    async fn run(&self, command: Command) -> Result<Reply, PageError> {
        pages::run(&self.client, &self.tenant, &self.renders, command).await
    }
}

fn path(text: &str) -> TitlePath {
    TitlePath::parse(text).expect("valid title path")
}

fn title(text: &str) -> Title {
    Title::parse(text).expect("valid title")
}

#[tokio::test]
async fn read_returns_the_page_placed_in_the_sandbox() {
    let domain = Domain::start().await;
    let reply = domain
        .run(Command::Read {
            title: path("Guides/Install"),
            format: BodyFormat::Markdown,
            offset: 0,
            max_chars: 5,
        })
        .await
        .expect("read");
    let Reply::Read(read) = reply else {
        panic!("not a read reply: {reply:?}");
    };
    assert_eq!(
        read.page,
        Placed {
            title: "Install".to_owned(),
            breadcrumb: vec!["Root".to_owned(), "Guides".to_owned(), "Install".to_owned()],
        }
    );
    assert_eq!(read.body, "# Ins");
    assert!(read.truncated);
    domain.sim.shutdown().await;
}

/// The Markdown of `title` as an agent reads it.
async fn read_markdown(domain: &Domain, title: &str) -> String {
    let reply = domain
        .run(Command::Read {
            title: path(title),
            format: BodyFormat::Markdown,
            offset: 0,
            max_chars: 100_000,
        })
        .await
        .expect("read");
    let Reply::Read(read) = reply else {
        panic!("not a read reply: {reply:?}");
    };
    read.body
}

fn update(title: &str, body: &str, format: BodyFormat) -> Command {
    Command::Update {
        title: path(title),
        body: body.to_owned(),
        expected_version: None,
        format: Some(format),
    }
}

#[tokio::test]
async fn a_markdown_write_merges_into_the_body_as_it_is_now_not_as_it_was_read() {
    let domain = Domain::start().await;
    let read = read_markdown(&domain, "Install").await;
    assert_eq!(read, "# Install\n\nsteps\n");
    // Someone else rewrites the page after the read: a heading with an id and another paragraph.
    let upstream = r#"<h1 id="install-1">Install</h1><p>changed upstream</p><p>steps</p>"#;
    domain
        .run(update("Install", upstream, BodyFormat::Storage))
        .await
        .expect("storage update");
    // The agent writes back what it read: merged against the current body, whose heading and last
    // paragraph it leaves as stored.
    domain
        .run(update("Install", &read, BodyFormat::Markdown))
        .await
        .expect("markdown update");
    let stored = domain
        .sim
        .page_by_title("DOC", "Install")
        .expect("page")
        .body;
    assert_eq!(stored, r#"<h1 id="install-1">Install</h1><p>steps</p>"#);
    assert_eq!(read_markdown(&domain, "Install").await, read);
    domain.sim.shutdown().await;
}

#[tokio::test]
async fn a_page_outside_the_sandbox_is_not_found() {
    let domain = Domain::start().await;
    for command in [
        Command::Read {
            title: path("Decoy"),
            format: BodyFormat::Storage,
            offset: 0,
            max_chars: 100,
        },
        Command::Delete {
            title: path("Decoy"),
        },
        Command::Move {
            title: path("Install"),
            new_parent: path("Decoy"),
        },
        Command::Read {
            title: path("Notes/Install"),
            format: BodyFormat::Storage,
            offset: 0,
            max_chars: 100,
        },
    ] {
        assert_eq!(
            domain.run(command.clone()).await,
            Err(PageError::NotFound),
            "{command:?}"
        );
    }
    assert!(domain.sim.page_by_title("DOC", "Decoy").is_some());
    domain.sim.shutdown().await;
}

#[tokio::test]
async fn writes_refuse_what_the_domain_forbids() {
    let domain = Domain::start().await;
    assert_eq!(
        domain
            .run(Command::Delete {
                title: path("Root")
            })
            .await,
        Err(PageError::RootProtected { verb: "deleted" })
    );
    assert_eq!(
        domain
            .run(Command::Move {
                title: path("Guides"),
                new_parent: path("Guides/Install"),
            })
            .await,
        Err(PageError::CircularMove)
    );
    assert_eq!(
        domain
            .run(Command::Create {
                title: title("Decoy"),
                body: "text".to_owned(),
                parent: None,
                format: None,
            })
            .await,
        Err(PageError::TitleTaken {
            title: "Decoy".to_owned()
        })
    );
    assert_eq!(
        domain
            .run(Command::Update {
                title: path("Install"),
                body: "new".to_owned(),
                expected_version: Some(7),
                format: None,
            })
            .await,
        Err(PageError::VersionConflict { current: Some(1) })
    );
    assert_eq!(
        domain
            .run(Command::Parent {
                title: path("Root")
            })
            .await,
        Err(PageError::RootHasNoParent)
    );
    domain.sim.shutdown().await;
}

#[tokio::test]
async fn create_then_list_and_rename() {
    let domain = Domain::start().await;
    let created = domain
        .run(Command::Create {
            title: title("Upgrade"),
            body: "# Upgrade\n\nSteps.".to_owned(),
            parent: Some(path("Guides")),
            format: Some(BodyFormat::Markdown),
        })
        .await
        .expect("created");
    assert!(
        matches!(&created, Reply::Created { page, version: 1, .. }
            if page.breadcrumb == ["Root", "Guides", "Upgrade"]),
        "{created:?}"
    );
    let listed = domain
        .run(Command::List {
            offset: 0,
            limit: 10,
        })
        .await
        .expect("listed");
    assert_eq!(
        listed,
        Reply::Listed {
            paths: vec![
                vec!["Guides".to_owned()],
                vec!["Guides".to_owned(), "Install".to_owned()],
                vec!["Guides".to_owned(), "Upgrade".to_owned()],
            ],
            offset: 0,
            total: 3,
        }
    );
    let renamed = domain
        .run(Command::Rename {
            page: path("Guides/Upgrade"),
            new_title: title("Upgrading"),
        })
        .await
        .expect("renamed");
    assert_eq!(
        renamed,
        Reply::Renamed {
            old_title: "Upgrade".to_owned(),
            new_title: "Upgrading".to_owned(),
            version: 2,
        }
    );
    domain.sim.shutdown().await;
}

#[tokio::test]
async fn search_places_hits_in_the_sandbox_and_sections_update_in_place() {
    let domain = Domain::start().await;
    let reply = domain
        .run(Command::Search {
            query: "steps outside".to_owned(),
            offset: 0,
            limit: 10,
        })
        .await;
    assert!(
        matches!(&reply, Ok(Reply::Searched { hits, next_offset: None, .. }) if hits.is_empty()),
        "{reply:?}"
    );
    let reply = domain
        .run(Command::Search {
            query: "steps".to_owned(),
            offset: 0,
            limit: 10,
        })
        .await;
    let Ok(Reply::Searched { hits, .. }) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(
        hits.iter().map(|hit| hit.page.clone()).collect::<Vec<_>>(),
        [Placed {
            title: "Install".to_owned(),
            breadcrumb: vec!["Root".to_owned(), "Guides".to_owned(), "Install".to_owned()],
        }]
    );
    assert_eq!(
        domain
            .run(Command::Search {
                query: "()".to_owned(),
                offset: 0,
                limit: 10,
            })
            .await,
        Err(PageError::NothingToSearch)
    );

    let reply = domain
        .run(Command::UpdateSection {
            title: path("Install"),
            section: "install".to_owned(),
            body: "# Install\n\nnew steps".to_owned(),
            expected_version: Some(1),
            format: Some(BodyFormat::Markdown),
        })
        .await;
    assert!(
        matches!(
            &reply,
            Ok(Reply::SectionUpdated {
                version: 2,
                changed: true,
                ..
            })
        ),
        "{reply:?}"
    );
    let stored = domain.sim.page_by_title("DOC", "Install").expect("page");
    assert_eq!(stored.body, "<h1>Install</h1><p>new steps</p>");
    let missing = domain
        .run(Command::ReadSection {
            title: path("Install"),
            section: "Usage".to_owned(),
            format: BodyFormat::Storage,
            offset: 0,
            max_chars: 100,
        })
        .await;
    assert_eq!(
        missing,
        Err(PageError::SectionNotFound {
            wanted: "Usage".to_owned(),
            available: vec!["Install".to_owned()],
        })
    );
}
