//! The MCP route: the official Python SDK as a real client per flavor, and the protocol's edges
//! (secrets, flavor, budgets, malformed messages, tool errors, revisions, Origin) over plain HTTP.

use conflagent::sim::Deployment;
use serde_json::{Value, json};

use crate::support::{Options, SECRET, World, find_python_module};

/// The Python SDK version `.ci/run` installs.
const MCP_SDK: &str = "mcp==2.3.0";

/// What a POST to the MCP route answered.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    /// The JSON body, `Null` when empty.
    body: Value,
}

/// POSTs `body` to `/endpoint/docs/mcp` with `secret` (when given) and extra `headers`.
async fn post(world: &World, secret: Option<&str>, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut request = world
        .gateway
        .http
        .post(world.gateway.url("/endpoint/docs/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_owned());
    if let Some(secret) = secret {
        request = request.bearer_auth(secret);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Sends the request `method` with `params` and the endpoint secret.
async fn request(world: &World, method: &str, params: Value) -> Answer {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    post(world, Some(SECRET), &[], &body.to_string()).await
}

/// Calls tool `name` with `arguments`; returns the JSON-RPC response.
async fn call_tool(world: &World, name: &str, arguments: Value) -> Value {
    let answer = request(
        world,
        "tools/call",
        json!({"name": name, "arguments": arguments}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_connects_lists_and_calls_every_tool_of_each_flavor() {
    let Some(python) = find_python_module("mcp", &format!("python3 -m pip install {MCP_SDK}"))
    else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_client.py");
    for (deployment, flavor) in [
        (Deployment::DataCenter, "default"),
        (Deployment::DataCenter, "read"),
        (Deployment::DataCenter, "upload"),
        (Deployment::Cloud, "default"),
    ] {
        let world = World::start_with(deployment, &format!("flavor={flavor}\n")).await;
        let url = world.gateway.url("/endpoint/docs/mcp");
        let output = tokio::process::Command::new(&python)
            .args([script, &url, SECRET, flavor])
            .output()
            .await
            .expect("run the MCP client");
        assert!(
            output.status.success(),
            "{deployment:?} {flavor}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        world.stop().await;
    }
}

#[tokio::test]
async fn a_missing_or_wrong_secret_is_401_with_www_authenticate_and_the_previous_one_works() {
    let world = World::start_with(
        Deployment::DataCenter,
        "gpt_shared_secret_previous=previous-secret-0123456789\n",
    )
    .await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    for secret in [None, Some("wrong-secret-0123456789")] {
        let answer = post(&world, secret, &[], &ping).await;
        assert_eq!(answer.status, 401, "{secret:?}");
        assert!(
            answer.headers["www-authenticate"]
                .to_str()
                .expect("ascii")
                .starts_with("Bearer"),
        );
        assert_eq!(answer.body["error"]["data"]["code"], "UNAUTHORIZED");
        assert_eq!(answer.body["id"], Value::Null);
    }
    for secret in [SECRET, "previous-secret-0123456789"] {
        let answer = post(&world, Some(secret), &[], &ping).await;
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.body,
            json!({"jsonrpc": "2.0", "id": 1, "result": {}})
        );
    }
    world.stop().await;
}

#[tokio::test]
async fn a_read_flavor_lists_only_reads_and_refuses_a_write_tool_as_a_protocol_error() {
    let world = World::start_with(Deployment::DataCenter, "flavor=read\n").await;
    let listed = request(&world, "tools/list", json!({})).await;
    let names: Vec<&str> = listed.body["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|tool| tool["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "listSubpages",
            "getPageTree",
            "searchPages",
            "readPageByTitle",
            "getPageOutline",
            "listChildPages",
            "getParentPage"
        ]
    );
    let refused = call_tool(&world, "createPage", json!({"title": "New", "body": "x"})).await;
    assert_eq!(refused["error"]["code"], -32602);
    assert_eq!(
        refused["error"]["message"],
        "this operation is not available on this endpoint (flavor `read`)"
    );
    assert!(world.sim.page_by_title("DOC", "New").is_none());
    world.stop().await;
}

#[tokio::test]
async fn a_spent_quota_is_429_with_retry_after() {
    let world = World::start_with(
        Deployment::DataCenter,
        "rate_limit_per_minute=1\nrate_limit_burst=1\n",
    )
    .await;
    assert_eq!(request(&world, "ping", json!({})).await.status, 200);
    let limited = request(&world, "ping", json!({})).await;
    assert_eq!(limited.status, 429);
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    assert_eq!(limited.body["error"]["data"]["code"], "RATE_LIMITED");
    world.stop().await;
}

#[tokio::test]
async fn malformed_messages_and_batches_are_json_rpc_errors() {
    let world = World::start_with(Deployment::DataCenter, "").await;
    let cases: [(&str, u16, i64); 7] = [
        ("{not json", 400, -32700),
        ("", 400, -32700),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#,
            400,
            -32600,
        ),
        ("42", 400, -32600),
        (r#"{"id":1,"method":"ping"}"#, 400, -32600),
        (
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            400,
            -32600,
        ),
        (
            r#"{"jsonrpc":"2.0","id":3,"method":"resources/list"}"#,
            200,
            -32601,
        ),
    ];
    for (body, status, code) in cases {
        let answer = post(&world, Some(SECRET), &[], body).await;
        assert_eq!(answer.status, status, "{body}");
        assert_eq!(
            answer.body["error"]["code"], code,
            "{body}: {}",
            answer.body
        );
        assert_eq!(answer.headers["content-type"], "application/json", "{body}");
    }
    world.stop().await;
}

#[tokio::test]
async fn notifications_and_client_responses_are_accepted_with_202_and_no_body() {
    let world = World::start_with(Deployment::DataCenter, "").await;
    for body in [
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
        r#"{"jsonrpc":"2.0","id":"s-1","result":{}}"#,
    ] {
        let answer = post(&world, Some(SECRET), &[], body).await;
        assert_eq!(answer.status, 202, "{body}");
        assert_eq!(answer.body, Value::Null, "{body}");
    }
    world.stop().await;
}

#[tokio::test]
async fn unknown_tools_and_invalid_arguments_are_json_rpc_errors_naming_the_problem() {
    let world = World::start_with(Deployment::DataCenter, "").await;
    let cases = [
        (
            "deleteEverything",
            json!({}),
            "unknown tool `deleteEverything`",
        ),
        ("getHealth", json!({}), "unknown tool `getHealth`"),
        (
            "getPageTree",
            json!({"depth": 99}),
            "depth must be a whole number from 0 to 10",
        ),
        ("readPageByTitle", json!({}), "missing argument `title`"),
        (
            "readPageByTitle",
            json!({"title": "Guides", "colour": "red"}),
            "unknown argument `colour`",
        ),
        (
            "listChildPages",
            json!({"title": ""}),
            "title must not be empty",
        ),
    ];
    for (tool, arguments, message) in cases {
        let answer = call_tool(&world, tool, arguments).await;
        assert_eq!(answer["error"]["code"], -32602, "{tool}: {answer}");
        assert_eq!(answer["error"]["message"], message, "{tool}");
    }
    let answer = call_tool(&world, "createPage", json!({"title": "X", "bdy": "typo"})).await;
    assert_eq!(answer["error"]["code"], -32602);
    assert!(
        answer["error"]["message"]
            .as_str()
            .expect("message")
            .contains("bdy"),
        "{answer}"
    );
    world.stop().await;
}

#[tokio::test]
async fn a_domain_failure_is_a_tool_result_with_is_error_and_the_envelope_code() {
    let world = World::start_with(Deployment::DataCenter, "").await;
    let mut texts = Vec::new();
    for title in ["No Such Page", "Secret Plans"] {
        let answer = call_tool(&world, "readPageByTitle", json!({"title": title})).await;
        let result = &answer["result"];
        assert_eq!(result["isError"], true, "{answer}");
        assert!(result.get("structuredContent").is_none());
        texts.push(result["content"][0]["text"].clone());
    }
    // A page outside the sandbox is indistinguishable from one that does not exist.
    assert_eq!(texts[0], "NOT_FOUND: not found");
    assert_eq!(texts[0], texts[1]);
    let root = call_tool(&world, "deletePageByTitle", json!({"title": "Handbook"})).await;
    assert_eq!(root["result"]["isError"], true);
    assert!(
        root["result"]["content"][0]["text"]
            .as_str()
            .expect("text")
            .starts_with("INVALID_OPERATION: "),
        "{root}"
    );
    world.stop().await;
}

#[tokio::test]
async fn a_call_answers_data_as_structured_content_and_arrays_wrapped_in_items() {
    let world = World::start_with(Deployment::DataCenter, "").await;
    let read = call_tool(
        &world,
        "readPageByTitle",
        json!({"title": "Guides/Install", "maxChars": "5"}),
    )
    .await;
    let page = &read["result"]["structuredContent"];
    assert_eq!(page["body"], "<p>Ru");
    assert_eq!(page["truncated"], true);
    let text = read["result"]["content"][0]["text"].as_str().expect("text");
    assert!(text.contains("call again with offset=5"), "{text}");
    let listed = call_tool(&world, "listSubpages", json!({})).await;
    assert_eq!(
        listed["result"]["structuredContent"],
        json!({"items": ["Guides", "Guides/Install", "Guides/Configure", "Notes"]})
    );
    let slash = world
        .sim
        .add_page("DOC", "CI/CD", Some(&world.root_id), "<p>pipes</p>");
    assert!(!slash.is_empty());
    let escaped = call_tool(&world, "readPageByTitle", json!({"title": "CI%2FCD"})).await;
    assert_eq!(escaped["result"]["structuredContent"]["title"], "CI/CD");
    world.stop().await;
}

#[tokio::test]
async fn initialize_negotiates_the_newest_revision_and_an_unknown_header_version_is_400() {
    let world = World::start_with(Deployment::DataCenter, "").await;
    for (asked, negotiated) in [
        ("2025-11-25", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2099-01-01", "2025-11-25"),
        ("2024-11-05", "2025-11-25"),
    ] {
        let answer = request(
            &world,
            "initialize",
            json!({
                "protocolVersion": asked,
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"},
            }),
        )
        .await;
        let result = &answer.body["result"];
        assert_eq!(result["protocolVersion"], negotiated, "{asked}");
        assert_eq!(result["capabilities"]["tools"]["listChanged"], false);
        assert!(answer.headers.get("mcp-session-id").is_none());
    }
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let unknown = post(
        &world,
        Some(SECRET),
        &[("mcp-protocol-version", "2099-01-01")],
        &ping,
    )
    .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.body["error"]["data"]["code"], "INVALID_INPUT");
    let known = post(
        &world,
        Some(SECRET),
        &[
            ("mcp-protocol-version", "2025-06-18"),
            ("mcp-session-id", "whatever"),
        ],
        &ping,
    )
    .await;
    assert_eq!(known.status, 200);
    world.stop().await;
}

#[tokio::test]
async fn origin_is_checked_against_the_host_loopback_and_the_public_url() {
    let world = World::start_with(
        Deployment::DataCenter,
        "public_url=https://gpt.example.com\n",
    )
    .await;
    let own = format!("http://{}", world.gateway.addr);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    for (origin, status) in [
        (own.as_str(), 200),
        ("http://localhost:3000", 200),
        ("https://gpt.example.com", 200),
        ("https://evil.example", 403),
        ("null", 403),
    ] {
        let answer = post(&world, Some(SECRET), &[("origin", origin)], &ping).await;
        assert_eq!(answer.status, status, "{origin}");
    }
    world.stop().await;
}

#[tokio::test]
async fn get_and_delete_are_405_and_the_route_is_not_in_the_openapi_document() {
    let world = World::start_with(Deployment::DataCenter, "").await;
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let response = world
            .gateway
            .http
            .request(method.clone(), world.gateway.url("/endpoint/docs/mcp"))
            .bearer_auth(SECRET)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 405, "{method}");
        assert_eq!(response.headers()["allow"], "POST");
    }
    let (status, document) = world
        .call(reqwest::Method::GET, "/openapi.json", None)
        .await;
    assert_eq!(status, 200);
    assert!(document["paths"].get("/mcp").is_none());
    assert!(!document.to_string().contains("\"mcp\""));
    let top = world
        .gateway
        .http
        .post(world.gateway.url("/mcp"))
        .send()
        .await
        .expect("request");
    assert_eq!(top.status(), 404);
    world.stop().await;
}

#[tokio::test]
async fn requests_are_counted_under_route_mcp_with_the_tool_and_the_status_of_the_outcome() {
    // An endpoint of its own (the recorder is shared by every test), whose Confluence is
    // unreachable: a tool call that gets that far fails upstream.
    let gateway = crate::support::Gateway::start(&[(
        "conflagent.mcp-metrics.properties",
        &crate::support::endpoint_file(SECRET, "http://127.0.0.1:9"),
    )])
    .await;
    let post = |body: Value| {
        let request = gateway
            .http
            .post(gateway.url("/endpoint/mcp-metrics/mcp"))
            .bearer_auth(SECRET)
            .json(&body);
        async move {
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("json")
        }
    };
    let call = |arguments: Value| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "listChildPages", "arguments": arguments}})
    };
    let failed = post(call(json!({"title": "Guides"}))).await;
    assert_eq!(failed["result"]["isError"], true, "{failed}");
    let invalid = post(call(json!({}))).await;
    assert_eq!(invalid["error"]["code"], -32602, "{invalid}");
    post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await;
    let scrape = gateway.scrape().await;
    let count = |status: &str, tool: Option<&str>| mcp_requests(&scrape, status, tool);
    assert_eq!(count("502", Some("listChildPages")), 1.0, "{scrape}");
    assert_eq!(count("400", Some("listChildPages")), 1.0, "{scrape}");
    assert_eq!(count("200", None), 1.0, "{scrape}");
    gateway.stop().await;
}

/// `conflagent_http_requests_total` of endpoint `mcp-metrics` on `/mcp` with `status` and `tool` (none:
/// without a tool label).
fn mcp_requests(scrape: &str, status: &str, tool: Option<&str>) -> f64 {
    {
        scrape
            .lines()
            .filter(|line| line.starts_with("conflagent_http_requests_total{"))
            .filter(|line| {
                line.contains("endpoint=\"mcp-metrics\"") && line.contains("route=\"/mcp\"")
            })
            .filter(|line| line.contains(&format!("status=\"{status}\"")))
            .filter(|line| match tool {
                Some(tool) => line.contains(&format!("tool=\"{tool}\"")),
                None => !line.contains("tool="),
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    }
}

#[tokio::test]
async fn a_global_public_url_is_an_allowed_origin_too() {
    let gateway = crate::support::Gateway::start_with(
        &[(
            "conflagent.docs.properties",
            &crate::support::endpoint_file(SECRET, "http://127.0.0.1:9"),
        )],
        Options {
            public_url: Some("https://gw.example.org".to_owned()),
            ..Options::default()
        },
    )
    .await;
    let status = |origin: &'static str| {
        let request = gateway
            .http
            .post(gateway.url("/endpoint/docs/mcp"))
            .bearer_auth(SECRET)
            .header("origin", origin)
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
        async move { request.send().await.expect("request").status().as_u16() }
    };
    assert_eq!(status("https://gw.example.org").await, 200);
    assert_eq!(status("https://other.example.org").await, 403);
    gateway.stop().await;
}
