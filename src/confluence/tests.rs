//! Unit tests of the client's pure parts: settings, URL building, pagination links.

use super::*;

fn settings(base_url: &str, auth: UpstreamAuth) -> UpstreamSettings {
    UpstreamSettings {
        base_url: BaseUrl::parse(base_url).expect("valid base URL"),
        deployment: Deployment::DataCenter,
        auth,
        space_key: "DOCS".to_owned(),
        deadline: Duration::from_secs(30),
        max_concurrent: NonZeroUsize::new(4).expect("not zero"),
    }
}

fn bearer() -> UpstreamAuth {
    UpstreamAuth::Bearer {
        token: crate::secret::Secret::new("pat-secret-value"),
    }
}

fn client(base_url: &str) -> ConfluenceClient {
    ConfluenceClient::new(http_client(), settings(base_url, bearer()))
}

#[test]
fn the_client_never_prints_its_credential() {
    let basic = UpstreamAuth::Basic {
        email: "me@example.com".to_owned(),
        api_token: crate::secret::Secret::new("tok-123-secret"),
    };
    let client = ConfluenceClient::new(http_client(), settings("https://h/wiki", basic));
    let printed = format!("{client:?}");
    assert!(!printed.contains("tok-123-secret"), "{printed}");
    // base64("me@example.com:tok-123-secret") must not leak either.
    assert!(
        !printed.contains("bWVAZXhhbXBsZS5jb206dG9rLTEyMy1zZWNyZXQ"),
        "{printed}"
    );
    assert_eq!(
        client.inner.authorization.to_str().ok(),
        Some("Basic bWVAZXhhbXBsZS5jb206dG9rLTEyMy1zZWNyZXQ=")
    );
}

#[test]
fn titles_and_ids_are_encoded_in_urls() {
    let client = client("https://host/ctx/");
    let url = client.url(
        &["content"],
        &[
            ("spaceKey", "DOCS"),
            ("title", "a/b \"c\" & d+e #f ?g %h é"),
        ],
    );
    assert_eq!(
        url.as_str(),
        "https://host/ctx/rest/api/content?spaceKey=DOCS&title=a%2Fb+%22c%22+%26+d%2Be+%23f+%3Fg+%25h+%C3%A9"
    );
    let round_trip: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(round_trip[1].1, "a/b \"c\" & d+e #f ?g %h é");
    let url = client.url(&["content", "12/34?x", "child", "page"], &[]);
    assert_eq!(
        url.as_str(),
        "https://host/ctx/rest/api/content/12%2F34%3Fx/child/page"
    );
}

#[test]
fn next_links_resolve_against_the_configured_site() {
    fn check(
        base_url: &str,
        next: &str,
        links_base: Option<&str>,
        context: Option<&str>,
        expected: Result<&str, ()>,
    ) {
        let links = Links {
            next: Some(next.to_owned()),
            base: links_base.map(str::to_owned),
            context: context.map(str::to_owned),
        };
        let got = client(base_url).resolve_next(next, &links);
        assert_eq!(
            got.as_ref().map(Url::as_str).map_err(drop),
            expected,
            "{base_url} + {next}"
        );
    }
    let next = "/rest/api/content/1/child/page?limit=200&start=200";
    check(
        "https://s.atlassian.net/wiki",
        next,
        Some("https://s.atlassian.net/wiki"),
        Some("/wiki"),
        Ok("https://s.atlassian.net/wiki/rest/api/content/1/child/page?limit=200&start=200"),
    );
    check(
        "http://127.0.0.1:9/",
        next,
        Some("http://127.0.0.1:9"),
        Some(""),
        Ok("http://127.0.0.1:9/rest/api/content/1/child/page?limit=200&start=200"),
    );
    // Behind a proxy the site's own idea of its base differs from ours: ours wins.
    check(
        "https://proxy.example/confluence",
        next,
        Some("http://internal:8090/confluence"),
        Some("/confluence"),
        Ok("https://proxy.example/confluence/rest/api/content/1/child/page?limit=200&start=200"),
    );
    check(
        "https://s.atlassian.net/wiki",
        "/wiki/rest/api/content?start=25",
        None,
        Some("/wiki"),
        Ok("https://s.atlassian.net/wiki/rest/api/content?start=25"),
    );
    check(
        "https://s.atlassian.net/wiki",
        "https://s.atlassian.net/wiki/rest/api/content?start=25",
        Some("https://s.atlassian.net/wiki"),
        Some("/wiki"),
        Ok("https://s.atlassian.net/wiki/rest/api/content?start=25"),
    );
    check(
        "https://s.atlassian.net/wiki",
        "https://evil.example/rest/api/content?start=25",
        Some("https://s.atlassian.net/wiki"),
        Some("/wiki"),
        Err(()),
    );
    check(
        "https://s.atlassian.net/wiki",
        "//evil.example/rest/api/x",
        None,
        None,
        Err(()),
    );
}

#[test]
fn a_child_expansion_is_complete_only_below_its_limit_and_without_next() {
    fn check(json: &str, expected: bool) {
        let array: ContentArray<ContentRef> = serde_json::from_str(json).expect("valid fixture");
        assert_eq!(is_complete(&array), expected, "{json}");
    }
    check(r#"{"results":[],"size":0,"limit":25,"_links":{}}"#, true);
    check(
        r#"{"results":[{"id":"1","title":"a"}],"size":1,"limit":25,"_links":{}}"#,
        true,
    );
    check(
        r#"{"results":[{"id":"1","title":"a"}],"size":1,"limit":1,"_links":{}}"#,
        false,
    );
    check(
        r#"{"results":[{"id":"1","title":"a"}],"size":1,"limit":25,"_links":{"next":"/rest/api/x"}}"#,
        false,
    );
    check(r#"{"results":[{"id":"1","title":"a"}]}"#, true);
}

#[test]
fn cql_strings_escape_backslashes_before_quotes() {
    let check = |raw: &str, expected: &str| assert_eq!(super::cql_escape(raw), expected, "{raw}");
    check("plain", "plain");
    check(r#"a "quoted" b"#, r#"a \"quoted\" b"#);
    check(r"back\slash", r"back\\slash");
    check(r#"\""#, r#"\\\""#);
    check(
        r#"x" or type = page or title = "y"#,
        r#"x\" or type = page or title = \"y"#,
    );
}
