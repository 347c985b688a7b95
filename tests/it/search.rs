//! Search inside the sandbox through the gateway: hits come only from the root's subtree (even when
//! the best match is outside, and even when Confluence's CQL lets outside pages through), the query
//! cannot be turned into other CQL, excerpts are plain text, and the index lag is what it says.

use std::time::Duration;

use conflagent::confluence::{plain_search_words, subtree_text_cql};
use conflagent::sim::cql::{self, Cql, Field};
use conflagent::sim::{Deployment, SimSettings, Simulator};
use reqwest::Method;
use serde_json::Value;

use crate::support::{SPACE, World};

/// The pages of the search tests: a few under the root and a decoy outside that matches best.
fn seed(sim: &Simulator, root_id: &str) {
    let guides = sim.add_page(SPACE, "Guides", Some(root_id), "<p>All guides</p>");
    sim.add_page(
        SPACE,
        "Backups",
        Some(&guides),
        "<h2 ac:local-id=\"a1\">Nightly</h2><p>The <strong>backup</strong> runs at 02:00 &amp; \
         keeps 7 days.</p><ac:structured-macro ac:name=\"info\"><ac:rich-text-body><p>Restore \
         with the restore tool.</p></ac:rich-text-body></ac:structured-macro>",
    );
    sim.add_page(SPACE, "Restore backup", Some(root_id), "<p>Steps.</p>");
    sim.add_page(SPACE, "Notes", Some(root_id), "<p>Nothing here</p>");
    let decoy_parent = sim.add_page(SPACE, "Archive", None, "<p>old</p>");
    sim.add_page(
        SPACE,
        "Backup backup backup",
        Some(&decoy_parent),
        "<p>backup backup backup: the decoy outside the sandbox</p>",
    );
}

async fn search(world: &World, query: &str) -> (u16, Value) {
    let encoded: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
    world
        .call(Method::GET, &format!("/pages/search?q={encoded}"), None)
        .await
}

fn hit_titles(body: &Value) -> Vec<String> {
    body["data"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|hit| hit["title"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Titles that only exist outside the sandbox.
const OUTSIDE: [&str; 4] = ["Outside", "Secret Plans", "Archive", "Backup backup backup"];

fn assert_inside(body: &Value) {
    for title in hit_titles(body) {
        assert!(!OUTSIDE.contains(&title.as_str()), "{title} leaked: {body}");
    }
}

#[tokio::test]
async fn search_finds_only_sandbox_pages_with_plain_excerpts_on_both_deployments() {
    for deployment in [Deployment::DataCenter, Deployment::Cloud] {
        let world = World::start_custom(SimSettings::for_deployment(deployment), "", seed).await;
        let (status, body) = search(&world, "backup").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            hit_titles(&body),
            ["Backups", "Restore backup"],
            "{deployment:?}: the decoy outside matches best but is not returned"
        );
        let hit = &body["data"]["hits"][0];
        assert_eq!(
            hit["path"],
            serde_json::json!(["Handbook", "Guides", "Backups"])
        );
        assert_eq!(hit["titlePath"], "Guides/Backups");
        assert_eq!(hit["version"], 1);
        assert!(
            hit["lastModified"]
                .as_str()
                .is_some_and(|when| when.contains('T'))
        );
        let excerpt = hit["excerpt"].as_str().expect("excerpt");
        assert!(excerpt.contains("**backup**"), "{excerpt}");
        assert!(excerpt.contains("02:00 & keeps"), "{excerpt}");
        for markup in ['<', '>', '@'] {
            assert!(!excerpt.contains(markup), "{excerpt}");
        }
        assert!(!excerpt.contains("&amp;"), "{excerpt}");

        // The root itself is searched too.
        let (status, body) = search(&world, "welcome").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(hit_titles(&body), ["Handbook"]);
        assert_eq!(
            body["data"]["hits"][0]["path"],
            serde_json::json!(["Handbook"])
        );
        world.stop().await;
    }
}

#[tokio::test]
async fn hits_outside_the_sandbox_are_dropped_even_when_cql_lets_them_through() {
    let settings = SimSettings {
        cql_ignores_ancestor: true,
        ..SimSettings::default()
    };
    let world = World::start_custom(settings, "", seed).await;
    let (status, body) = search(&world, "classified").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hit_titles(&body), Vec::<String>::new(), "{body}");
    let (status, body) = search(&world, "backup").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hit_titles(&body), ["Backups", "Restore backup"]);
    world.stop().await;
}

/// Attempts to leave the quoted string or the sandbox clause.
const INJECTIONS: [&str; 8] = [
    r#"x" or space = "DOC"#,
    r#"backup" OR title = "Secret Plans"#,
    r#"\" or type = page or text ~ \""#,
    r"classified\",
    "classified) OR (ancestor = 1",
    "classified OR NOT backup",
    r#"classified"))) or ((id > 0"#,
    "* OR title ~ Secret*",
];

#[tokio::test]
async fn cql_injection_in_q_stays_inside_the_sandbox() {
    let world = World::start_custom(SimSettings::default(), "", seed).await;
    for query in INJECTIONS {
        world.sim.reset_counts();
        let (status, body) = search(&world, query).await;
        assert!(
            status == 200 || (status == 400 && body["code"] == "INVALID_INPUT"),
            "{query}: {status} {body}"
        );
        assert_inside(&body);
        // The CQL that reached Confluence keeps its shape: the sandbox clauses, then one text
        // clause holding everything the client sent.
        for request in world.sim.requests() {
            let Some((_, cql_text)) =
                request
                    .path_and_query
                    .split_once('?')
                    .and_then(|(_, query)| {
                        form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "cql")
                    })
            else {
                continue;
            };
            assert_sandbox_shape(&cql_text, &world.root_id);
        }
    }
    world.stop().await;
}

/// `(id = ROOT or ancestor = ROOT) and type = page and text ~ "…"`, whatever the words.
fn assert_sandbox_shape(cql_text: &str, root_id: &str) {
    let parsed = cql::parse(cql_text).unwrap_or_else(|error| panic!("{cql_text}: {error}"));
    let sandbox = Cql::Or(
        Box::new(Cql::Clause {
            field: Field::Id,
            values: vec![root_id.to_owned()],
        }),
        Box::new(Cql::Clause {
            field: Field::Ancestor,
            values: vec![root_id.to_owned()],
        }),
    );
    let page_type = Cql::Clause {
        field: Field::Type,
        values: vec!["page".to_owned()],
    };
    match parsed {
        Cql::And(left, text) => {
            assert_eq!(
                *left,
                Cql::And(Box::new(sandbox), Box::new(page_type)),
                "{cql_text}"
            );
            assert!(matches!(*text, Cql::Contains { .. }), "{cql_text}");
        }
        other => panic!("{cql_text}: {other:?}"),
    }
}

#[test]
fn escaping_alone_keeps_quotes_backslashes_and_operators_inside_the_string() {
    for words in INJECTIONS.iter().chain(&[r"\", r#"""#, r#"\\""\"#]) {
        let cql_text = subtree_text_cql("1000", words);
        assert_sandbox_shape(&cql_text, "1000");
        let parsed = cql::parse(&cql_text).expect("parses");
        let Cql::And(_, text) = parsed else {
            panic!("{cql_text}")
        };
        assert_eq!(
            *text,
            Cql::Contains {
                words: (*words).to_owned()
            },
            "the words come back exactly as sent"
        );
    }
    assert_eq!(plain_search_words(r#"a "b" (c) OR d\"#), "a b c or d");
}

#[tokio::test]
async fn search_pages_with_offset_and_limit_and_refuses_an_empty_query() {
    let world = World::start_custom(SimSettings::default(), "", seed).await;
    let (status, body) = world
        .call(Method::GET, "/pages/search?q=backup&limit=1", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hit_titles(&body), ["Backups"]);
    assert_eq!(body["data"]["nextOffset"], 1);
    let (status, body) = world
        .call(Method::GET, "/pages/search?q=backup&limit=1&offset=1", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hit_titles(&body), ["Restore backup"]);
    assert!(body["data"].get("nextOffset").is_none(), "{body}");
    for bad in [
        "/pages/search",
        "/pages/search?q=%20",
        "/pages/search?q=%22%22",
    ] {
        let (status, body) = world.call(Method::GET, bad, None).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["code"], "INVALID_INPUT");
    }
    let (status, _) = world
        .call(Method::GET, "/pages/search?q=x&limit=51", None)
        .await;
    assert_eq!(status, 400);
    world.stop().await;
}

#[tokio::test]
async fn cloud_search_follows_cursors_to_reach_an_offset() {
    let settings = SimSettings {
        max_page_limit: 2,
        ..SimSettings::for_deployment(Deployment::Cloud)
    };
    let world = World::start_custom(settings, "", |sim, root| {
        for index in 1..=7 {
            sim.add_page(
                SPACE,
                &format!("Match {index}"),
                Some(root),
                "<p>needle</p>",
            );
        }
    })
    .await;
    let (count, (status, body)) = world
        .upstream_calls(|| world.call(Method::GET, "/pages/search?q=needle&offset=3&limit=2", None))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hit_titles(&body), ["Match 4", "Match 5"]);
    assert_eq!(body["data"]["nextOffset"], 5);
    assert_eq!(
        count, 3,
        "Cloud has no start: three pages of two to reach hits 4 and 5"
    );
    world.stop().await;
}

#[tokio::test]
async fn a_new_page_is_found_once_the_index_has_caught_up() {
    let settings = SimSettings {
        cql_index_lag: Duration::from_secs(3600),
        ..SimSettings::default()
    };
    let world = World::start_custom(settings, "", seed).await;
    let (status, body) = world
        .call(
            Method::POST,
            "/pages",
            Some(serde_json::json!({"title": "Fresh", "body": "zebra crossing"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = search(&world, "zebra").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hit_titles(&body), Vec::<String>::new(), "not indexed yet");
    let (status, _) = world.call(Method::GET, "/pages/Fresh", None).await;
    assert_eq!(status, 200, "reads do not depend on the index");
    world.stop().await;
}

#[tokio::test]
async fn search_and_outline_are_read_operations_of_the_read_flavor() {
    let world = World::start_custom(SimSettings::default(), "flavor=read\n", seed).await;
    let (status, body) = search(&world, "backup").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = world
        .call(Method::GET, "/pages/Backups/outline", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = world
        .call(
            Method::PUT,
            "/pages/Backups?section=Nightly",
            Some(serde_json::json!({"body": "## Nightly\n\nx"})),
        )
        .await;
    assert_eq!(status, 403, "a section update is a write: {body}");
    world.stop().await;
}
