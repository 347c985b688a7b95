//! Outlines and section reads and updates through the gateway, on storage as Confluence's editors
//! save it (local ids, layouts, macros, tables, entities): nested, duplicate and missing headings,
//! byte-identical bytes outside an updated section, version checks, and the characters a
//! one-paragraph edit costs on a long page, section versus whole page.

use conflagent::sim::{Deployment, SimSettings, Simulator};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{SPACE, World};

/// A page as Cloud's editor stores it: headings with local ids, a two-column layout whose cells
/// hold their own headings, a panel, a table, a code macro, entities, and two `Linux` sections.
const GUIDE: &str = concat!(
    "<p local-id=\"p0\">Read this first.</p>",
    "<h1 local-id=\"h1\">Install</h1>",
    "<p local-id=\"p1\">Pick your system&nbsp;below.</p>",
    "<h2 local-id=\"h2\">Linux</h2>",
    "<p>Run <code>apt install tool</code>.</p>",
    "<ac:structured-macro ac:name=\"code\" ac:schema-version=\"1\" ac:macro-id=\"m1\">",
    "<ac:parameter ac:name=\"language\">bash</ac:parameter>",
    "<ac:plain-text-body><![CDATA[sudo apt install tool && tool --version]]></ac:plain-text-body>",
    "</ac:structured-macro>",
    "<h3>Troubleshooting</h3><p>Check <em>PATH</em>.</p>",
    "<h2 local-id=\"h3\">macOS</h2>",
    "<ac:structured-macro ac:name=\"info\" ac:schema-version=\"1\"><ac:rich-text-body>",
    "<p>Use Homebrew.</p></ac:rich-text-body></ac:structured-macro>",
    "\n",
    "<h1>Upgrade</h1>",
    "<ac:layout><ac:layout-section ac:type=\"two_equal\" ac:breakout-mode=\"default\">",
    "<ac:layout-cell><h2>Linux</h2><p>apt upgrade</p><h3>Rollback</h3><p>apt install tool=1.0</p>",
    "</ac:layout-cell>",
    "<ac:layout-cell><h2>Windows</h2><table data-layout=\"default\"><colgroup><col style=\"width: 200.0px;\"/>",
    "</colgroup><tbody><tr><th><p>Step</p></th></tr><tr><td><p>Run the MSI</p></td></tr></tbody></table>",
    "</ac:layout-cell></ac:layout-section></ac:layout>",
    "\n",
    "<h1>FAQ</h1><p>Q&amp;A &ndash; ask in #tools.</p>",
);

fn seed(sim: &Simulator, root_id: &str) {
    sim.add_page(SPACE, "Tool guide", Some(root_id), GUIDE);
}

async fn world(deployment: Deployment) -> World {
    World::start_custom(SimSettings::for_deployment(deployment), "", seed).await
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn read_section(world: &World, section: &str, format: &str) -> (u16, Value) {
    world
        .call(
            Method::GET,
            &format!(
                "/pages/Tool%20guide?section={}&format={format}",
                encode(section)
            ),
            None,
        )
        .await
}

async fn update_section(world: &World, section: &str, body: Value) -> (u16, Value) {
    world
        .call(
            Method::PUT,
            &format!("/pages/Tool%20guide?section={}", encode(section)),
            Some(body),
        )
        .await
}

fn stored(world: &World) -> (String, u32) {
    let page = world
        .sim
        .page_by_title(SPACE, "Tool guide")
        .expect("the page");
    (page.body, page.version)
}

#[tokio::test]
async fn outline_lists_every_heading_with_its_section_size_and_name() {
    let world = world(Deployment::DataCenter).await;
    let (status, body) = world
        .call(Method::GET, "/pages/Tool%20guide/outline", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["title"], "Tool guide");
    assert_eq!(body["data"]["version"], 1);
    assert_eq!(body["data"]["bodyLength"], GUIDE.chars().count());
    let rows: Vec<String> = body["data"]["headings"]
        .as_array()
        .expect("headings")
        .iter()
        .map(|heading| {
            format!(
                "{} {} | {}",
                heading["level"],
                heading["headingPath"].as_str().unwrap_or(""),
                heading["section"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "1 Install | Install",
            "2 Install/Linux | Install/Linux",
            "3 Install/Linux/Troubleshooting | Troubleshooting",
            "2 Install/macOS | macOS",
            "1 Upgrade | Upgrade",
            "2 Upgrade/Linux | Upgrade/Linux",
            "3 Upgrade/Linux/Rollback | Rollback",
            "2 Upgrade/Windows | Windows",
            "1 FAQ | FAQ",
        ]
    );
    let faq = &body["data"]["headings"][8];
    assert_eq!(faq["anchor"], "FAQ");
    assert_eq!(
        faq["chars"],
        "<h1>FAQ</h1><p>Q&amp;A &ndash; ask in #tools.</p>".len()
    );
    world.stop().await;
}

#[tokio::test]
async fn a_section_is_read_in_storage_or_markdown_by_text_or_path() {
    for deployment in [Deployment::DataCenter, Deployment::Cloud] {
        let world = world(deployment).await;
        let (status, body) = read_section(&world, "macOS", "storage").await;
        assert_eq!(status, 200, "{body}");
        let expected = "<h2 local-id=\"h3\">macOS</h2><ac:structured-macro ac:name=\"info\" \
            ac:schema-version=\"1\"><ac:rich-text-body><p>Use Homebrew.</p></ac:rich-text-body>\
            </ac:structured-macro>";
        assert_eq!(body["data"]["body"], expected);
        assert_eq!(body["data"]["section"]["headingPath"], "Install/macOS");
        assert_eq!(body["data"]["version"], 1);

        // A path picks the nested one; a heading in a layout cell ends with its cell.
        let (status, body) = read_section(&world, "Upgrade/Linux", "markdown").await;
        assert_eq!(status, 200, "{body}");
        let markdown = body["data"]["body"].as_str().expect("body");
        assert!(markdown.starts_with("## Linux"), "{markdown}");
        assert!(markdown.contains("apt upgrade") && markdown.contains("### Rollback"));
        assert!(!markdown.contains("Windows"), "{markdown}");
        assert_eq!(body["data"]["format"], "markdown");
        world.stop().await;
    }
}

#[tokio::test]
async fn duplicate_and_missing_headings_are_refused_with_the_choices() {
    let world = world(Deployment::DataCenter).await;
    let (status, body) = read_section(&world, "Linux", "storage").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "INVALID_INPUT");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("`Install/Linux`") && message.contains("`Upgrade/Linux`"),
        "{message}"
    );
    let (status, body) = update_section(&world, "linux", json!({"body": "## Linux\n\nx"})).await;
    assert_eq!(status, 400, "an ambiguous update writes nothing: {body}");

    let (status, body) = read_section(&world, "Solaris", "storage").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "NOT_FOUND");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains("`Rollback`") && message.contains("`FAQ`"),
        "{message}"
    );

    // A missing page stays indistinguishable from one outside the sandbox.
    let (status, body) = world
        .call(Method::GET, "/pages/Secret%20Plans?section=x", None)
        .await;
    assert_eq!((status, body["message"].as_str()), (404, Some("not found")));
    let (status, _) = world
        .call(Method::GET, "/pages/Secret%20Plans/outline", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(stored(&world).1, 1);
    world.stop().await;
}

/// The stored body around the section must be byte-identical before and after.
fn assert_outside_unchanged(before: &str, after: &str, section: &str, replacement: &str) {
    let start = before.find(section).expect("section in the stored body");
    let end = start + section.len();
    assert_eq!(
        &after[..start],
        &before[..start],
        "bytes before the section"
    );
    assert!(
        after.ends_with(&before[end..]),
        "bytes after the section changed:\n{after}"
    );
    assert_eq!(
        &after[start..after.len() - (before.len() - end)],
        replacement
    );
}

#[tokio::test]
async fn a_section_update_changes_no_byte_outside_the_section() {
    for deployment in [Deployment::DataCenter, Deployment::Cloud] {
        let world = world(deployment).await;
        let (before, _) = stored(&world);
        let (status, body) = update_section(
            &world,
            "Install/Linux",
            json!({"body": "## Linux\n\nRun the **installer**.", "expectedVersion": 1}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["version"], 2);
        assert_eq!(body["data"]["section"]["headingPath"], "Install/Linux");
        let (after, version) = stored(&world);
        assert_eq!(version, 2);
        let old_section = &before[before.find("<h2 local-id=\"h2\">").expect("h2")
            ..before.find("<h2 local-id=\"h3\">").expect("h3")];
        assert_outside_unchanged(
            &before,
            &after,
            old_section,
            // The unchanged heading keeps its stored form (its local id) through the block merge.
            "<h2 local-id=\"h2\">Linux</h2><p>Run the <strong>installer</strong>.</p>",
        );

        // Inside a layout cell, in storage: the cell's other content and the other cell stay.
        let (status, body) = update_section(
            &world,
            "Rollback",
            json!({"body": "<h3>Rollback</h3><p>apt install tool=0.9</p>", "expectedVersion": 2}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (third, _) = stored(&world);
        assert_outside_unchanged(
            &after,
            &third,
            "<h3>Rollback</h3><p>apt install tool=1.0</p>",
            "<h3>Rollback</h3><p>apt install tool=0.9</p>",
        );
        world.stop().await;
    }
}

#[tokio::test]
async fn a_section_read_as_markdown_and_written_back_unchanged_writes_nothing() {
    let world = world(Deployment::DataCenter).await;
    let (status, body) = read_section(&world, "Install", "markdown").await;
    assert_eq!(status, 200, "{body}");
    let markdown = body["data"]["body"].as_str().expect("body").to_owned();
    world.sim.reset_counts();
    let (status, body) = update_section(
        &world,
        "Install",
        json!({"body": markdown, "format": "markdown", "expectedVersion": 1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["version"], 1);
    assert_eq!(stored(&world), (GUIDE.to_owned(), 1));
    assert_eq!(world.sim.total_requests(), 1, "one read, no write");
    world.stop().await;
}

#[tokio::test]
async fn a_stale_expected_version_on_a_section_update_is_a_409() {
    let world = world(Deployment::DataCenter).await;
    let (status, _) = update_section(
        &world,
        "FAQ",
        json!({"body": "# FAQ\n\nFirst.", "expectedVersion": 1}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = update_section(
        &world,
        "Windows",
        json!({"body": "## Windows\n\nStale.", "expectedVersion": 1}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "VERSION_CONFLICT");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|message| message.contains("current version is 2"))
    );
    let (after, version) = stored(&world);
    assert_eq!(version, 2);
    assert!(after.contains("Run the MSI") && !after.contains("Stale"));
    world.stop().await;
}

#[tokio::test]
async fn a_section_update_is_checked_like_a_whole_body() {
    let world = world(Deployment::DataCenter).await;
    for (body, fragment) in [
        (
            json!({"body": "<h1>FAQ</h1><p>open", "format": "storage"}),
            "line 1",
        ),
        (
            json!({"body": "<h1>FAQ</h1><ac:structured-macro ac:name=\"html\"><ac:plain-text-body><![CDATA[<script>x</script>]]></ac:plain-text-body></ac:structured-macro>"}),
            "html macro",
        ),
    ] {
        let (status, response) = update_section(&world, "FAQ", body).await;
        assert_eq!(status, 400, "{response}");
        assert!(
            response["message"]
                .as_str()
                .is_some_and(|message| message.contains(fragment)),
            "{response}"
        );
    }
    assert_eq!(stored(&world), (GUIDE.to_owned(), 1));
    world.stop().await;
}

#[tokio::test]
async fn an_outline_too_long_for_one_answer_comes_in_slices() {
    let heading = "A rather long heading text that repeats itself".repeat(3);
    let page: String = (0..1500)
        .map(|index| format!("<h2>{heading} {index}</h2><p>x</p>"))
        .collect();
    let world = World::start_custom(SimSettings::default(), "", |sim, root| {
        sim.add_page(SPACE, "Many", Some(root), &page);
    })
    .await;
    let mut offset = 0;
    let mut seen = 0;
    loop {
        let response = world
            .gateway
            .http
            .get(world.gateway.url(&format!(
                "/endpoint/docs/pages/Many/outline?offset={offset}"
            )))
            .bearer_auth(crate::support::SECRET)
            .send()
            .await
            .expect("request");
        let text = response.text().await.expect("body");
        assert!(text.chars().count() < 100_000, "{} characters", text.len());
        let body: Value = serde_json::from_str(&text).expect("json");
        let headings = body["data"]["headings"].as_array().expect("headings");
        assert_eq!(body["data"]["headingCount"], 1500);
        assert_eq!(
            headings[0]["text"].as_str(),
            Some(format!("{heading} {offset}").as_str())
        );
        seen += headings.len();
        offset += headings.len();
        if body["data"]["truncated"] == false {
            break;
        }
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("offset={offset}")))
        );
    }
    assert_eq!(seen, 1500);
    assert!(offset > 0);
    world.stop().await;
}

/// A long page of `sections` sections, each a heading and a few paragraphs of storage.
fn long_page(sections: usize) -> String {
    let mut body = String::new();
    for index in 1..=sections {
        body.push_str(&format!("<h2>Part {index}</h2>"));
        for paragraph in 1..=4 {
            body.push_str(&format!(
                "<p>Paragraph {paragraph} of part {index}: {}</p>",
                "the quick brown fox jumps over the lazy dog. ".repeat(8)
            ));
        }
    }
    body
}

/// Characters a GPT receives and sends for a one-paragraph edit on an 80,000-character page,
/// whole page versus section; printed for the README and held to a ratio.
#[tokio::test]
async fn a_one_paragraph_edit_on_a_long_page_costs_a_fraction_by_section() {
    let page = long_page(51);
    assert!(
        (80_000..82_000).contains(&page.chars().count()),
        "{}",
        page.len()
    );
    let world = World::start_custom(SimSettings::default(), "", |sim, root| {
        sim.add_page(SPACE, "Long", Some(root), &page);
    })
    .await;
    // Whole page: read it all as Markdown, send it all back.
    let (status, read) = world
        .call(Method::GET, "/pages/Long?format=markdown", None)
        .await;
    assert_eq!(status, 200);
    let whole = read["data"]["body"].as_str().expect("body").to_owned();
    let edited = whole.replacen("Paragraph 2 of part 30", "Edited paragraph 2 of part 30", 1);
    let whole_request = json!({"body": edited, "expectedVersion": 1}).to_string();
    let (status, written) = world
        .call(
            Method::PUT,
            "/pages/Long",
            Some(serde_json::from_str(&whole_request).expect("json")),
        )
        .await;
    assert_eq!(status, 200, "{written}");
    let whole_received = read.to_string().len() + written.to_string().len();
    let whole_sent = whole_request.len();

    // By section: the outline, one section read, one section written.
    let (status, outline) = world.call(Method::GET, "/pages/Long/outline", None).await;
    assert_eq!(status, 200);
    let (status, section) = world
        .call(
            Method::GET,
            "/pages/Long?section=Part%2031&format=markdown",
            None,
        )
        .await;
    assert_eq!(status, 200);
    let text = section["data"]["body"].as_str().expect("body");
    let edited = text.replacen("Paragraph 2 of part 31", "Edited paragraph 2 of part 31", 1);
    let section_request = json!({"body": edited, "expectedVersion": 2}).to_string();
    let (status, written) = world
        .call(
            Method::PUT,
            "/pages/Long?section=Part%2031",
            Some(serde_json::from_str(&section_request).expect("json")),
        )
        .await;
    assert_eq!(status, 200, "{written}");
    let section_received =
        outline.to_string().len() + section.to_string().len() + written.to_string().len();
    let section_sent = section_request.len();
    let stored = world.sim.page_by_title(SPACE, "Long").expect("page");
    assert!(stored.body.contains("Edited paragraph 2 of part 31"));
    eprintln!(
        "one-paragraph edit on a {}-character page: whole page {whole_received} characters \
         received + {whole_sent} sent; by section {section_received} received + {section_sent} \
         sent (outline {}, section read {})",
        page.chars().count(),
        outline.to_string().len(),
        section.to_string().len(),
    );
    assert!(section_received + section_sent < (whole_received + whole_sent) / 5);
    world.stop().await;
}

mod properties {
    use conflagent::sections::{outline, replace_section};
    use proptest::prelude::*;

    /// A body of headings with few distinct texts (so duplicates and nesting are common),
    /// paragraphs, and layouts whose cells hold their own headings.
    fn body() -> impl Strategy<Value = String> {
        let heading = (
            1u8..=4,
            prop::sample::select(vec!["A", "B", "C", "A/B", "C#"]),
        )
            .prop_map(|(level, text)| format!("<h{level}>{text}</h{level}>"));
        let block = prop_oneof![
            3 => heading.clone(),
            2 => Just("<p>text &amp; more</p>".to_owned()),
            1 => Just("\n".to_owned()),
            1 => prop::collection::vec(heading.clone(), 0..3).prop_map(|cell| format!(
                "<ac:layout><ac:layout-section ac:type=\"single\"><ac:layout-cell>{}<p>x</p>\
                 </ac:layout-cell></ac:layout-section></ac:layout>",
                cell.concat()
            )),
        ];
        prop::collection::vec(block, 0..25).prop_map(|blocks| blocks.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Every section opens with its heading, sections nest or are disjoint, each heading's
        /// `section` name picks it back, and replacing a section keeps every other byte.
        #[test]
        fn sections_nest_names_pick_them_and_splices_keep_the_rest(storage in body()) {
            let outline = outline(&storage).expect("generated bodies are well-formed");
            let headings = outline.headings();
            for (index, heading) in headings.iter().enumerate() {
                let range = heading.section.clone();
                prop_assert!(storage[range.clone()].starts_with("<h"));
                for other in headings {
                    let inside = other.section.start >= range.start && other.section.end <= range.end;
                    let around = range.start >= other.section.start && range.end <= other.section.end;
                    let apart = other.section.end <= range.start || other.section.start >= range.end;
                    prop_assert!(inside || around || apart, "{storage}");
                }
                prop_assert_eq!(outline.find(&outline.selector(index)), Ok(index));
                let spliced = replace_section(&storage, range.clone(), "<p>new</p>");
                prop_assert_eq!(&spliced[..range.start], &storage[..range.start]);
                prop_assert!(spliced.ends_with(&storage[range.end..]));
            }
        }
    }
}
