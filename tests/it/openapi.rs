//! The OpenAPI documents as a GPT builder meets them: what each flavor publishes, what the GPT
//! Action importer accepts, what an external validator says, and how the documents are served
//! (raw JSON, `servers` URL, ETag/304, rebuilt on reload).

use std::collections::{BTreeSet, HashSet};
use std::process::Command;
use std::time::Duration;

use conflagent::openapi::{MAX_OPERATION_DESCRIPTION, MAX_PARAMETER_DESCRIPTION};
use conflagent::routes::{Access, Operation, ROUTES};
use serde_json::Value;

use crate::support::{Gateway, Options, SECRET, endpoint_file, eventually, find_checker};

const BASE: &str = "http://127.0.0.1:9";

/// Which access classes a document should publish.
type AccessFilter = fn(Access) -> bool;

/// Extra request headers.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// The flavors of the test endpoints; each endpoint is named after its flavor.
const FLAVORS: [&str; 3] = ["default", "read", "upload"];

fn flavored_file(flavor: &str) -> String {
    let mut file = endpoint_file(SECRET, BASE);
    file.push_str(&format!(
        "flavor={flavor}\ndescription=Pages of the {flavor} handbook.\n"
    ));
    file
}

async fn flavors_gateway(options: Options) -> Gateway {
    let files: Vec<(String, String)> = FLAVORS
        .iter()
        .map(|flavor| {
            (
                format!("conflagent.{flavor}.properties"),
                flavored_file(flavor),
            )
        })
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(name, content)| (name.as_str(), content.as_str()))
        .collect();
    Gateway::start_with(&files, options).await
}

/// A raw GET: status, headers and body text.
async fn fetch(
    gateway: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = gateway.http.get(gateway.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("body");
    (status, headers, body)
}

async fn document(gateway: &Gateway, path: &str) -> Value {
    let (status, headers, body) = fetch(gateway, path, &[]).await;
    assert_eq!(status, 200, "{path}: {body}");
    assert_eq!(
        headers.get("content-type").map(|value| value.as_bytes()),
        Some(&b"application/json"[..]),
        "{path}"
    );
    serde_json::from_str(&body).expect("the document is JSON")
}

/// Every document a builder can import: one per flavor plus the top-level template.
async fn all_documents(gateway: &Gateway) -> Vec<(String, Value)> {
    let mut documents = Vec::new();
    for flavor in FLAVORS {
        let path = format!("/endpoint/{flavor}/openapi.json");
        documents.push((path.clone(), document(gateway, &path).await));
    }
    documents.push((
        "/openapi.json".to_owned(),
        document(gateway, "/openapi.json").await,
    ));
    documents
}

/// `METHOD /path operationId` for every operation of a document.
fn listed_operations(document: &Value) -> BTreeSet<String> {
    let mut listed = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let id = operation["operationId"].as_str().expect("operationId");
            listed.insert(format!("{} {path} {id}", method.to_ascii_uppercase()));
        }
    }
    listed
}

/// The same, from the route table, for the operations `include` keeps.
fn routed_operations(include: impl Fn(Operation) -> bool) -> BTreeSet<String> {
    ROUTES
        .iter()
        .filter(|route| route.operation.in_openapi() && include(route.operation))
        .map(|route| {
            format!(
                "{} {} {}",
                route.method,
                route.template,
                route.operation.operation_id()
            )
        })
        .collect()
}

#[tokio::test]
async fn route_table_and_documents_list_the_same_operations_per_flavor() {
    let gateway = flavors_gateway(Options::default()).await;
    let cases: [(&str, AccessFilter); 4] = [
        ("/endpoint/default/openapi.json", |_| true),
        ("/openapi.json", |_| true),
        ("/endpoint/read/openapi.json", |access| {
            matches!(access, Access::Public | Access::Read)
        }),
        ("/endpoint/upload/openapi.json", |access| {
            matches!(access, Access::Public | Access::Create)
        }),
    ];
    for (path, include) in cases {
        let document = document(&gateway, path).await;
        assert_eq!(
            listed_operations(&document),
            routed_operations(|operation| include(operation.access())),
            "{path}"
        );
    }
    gateway.stop().await;
}

#[tokio::test]
async fn flavor_filtering_in_the_document_matches_enforcement() {
    let gateway = flavors_gateway(Options::default()).await;
    let read = document(&gateway, "/endpoint/read/openapi.json").await;
    assert!(read["paths"]["/pages"].get("post").is_none());
    let response = gateway
        .http
        .post(gateway.url("/endpoint/read/pages"))
        .bearer_auth(SECRET)
        .json(&serde_json::json!({"title": "T", "body": ""}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 403);

    let upload = document(&gateway, "/endpoint/upload/openapi.json").await;
    assert!(upload["paths"]["/pages"].get("get").is_none());
    let (status, body) = gateway.get("/endpoint/upload/pages", Some(SECRET)).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "UNAUTHORIZED");
    gateway.stop().await;
}

/// Every rule of the GPT Action importer, checked on one document.
fn check_importer_rules(name: &str, document: &Value) {
    let size = serde_json::to_vec(document).expect("serialise").len();
    assert!(
        size < 100_000,
        "{name}: {size} bytes; the importer allows 1 MB, keep far below"
    );
    assert_eq!(document["openapi"], "3.1.0", "{name}");
    let servers = document["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 1, "{name}: exactly one server");
    check_schema_keywords(name, document, false);

    let mut ids = HashSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation_object) in item.as_object().expect("path item") {
            let at = format!("{name} {method} {path}");
            let id = operation_object["operationId"]
                .as_str()
                .expect("operationId");
            assert!(ids.insert(id.to_owned()), "{at}: duplicate operationId");
            assert!(
                id.chars()
                    .next()
                    .is_some_and(|first| first.is_ascii_lowercase())
                    && id.chars().all(|c| c.is_ascii_alphanumeric()),
                "{at}: operationId {id} is not camelCase"
            );
            let operation = Operation::from_operation_id(id).expect("known operationId");
            assert!(
                operation_object["summary"]
                    .as_str()
                    .is_some_and(|summary| !summary.is_empty()),
                "{at}: summary"
            );
            let description = operation_object["description"]
                .as_str()
                .expect("description");
            assert!(
                !description.is_empty() && description.chars().count() <= MAX_OPERATION_DESCRIPTION,
                "{at}: description of {} characters",
                description.chars().count()
            );
            for parameter in operation_object["parameters"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
            {
                assert!(parameter.get("$ref").is_none(), "{at}: $ref parameter");
                let text = parameter["description"].as_str().expect("description");
                assert!(
                    text.chars().count() <= MAX_PARAMETER_DESCRIPTION,
                    "{at}: parameter {} description too long",
                    parameter["name"]
                );
            }
            let writes = matches!(operation.access(), Access::Create | Access::Modify);
            assert_eq!(
                operation_object["x-openai-isConsequential"],
                Value::Bool(writes),
                "{at}: x-openai-isConsequential"
            );
            assert_eq!(
                operation_object.get("security").is_some(),
                operation.requires_auth(),
                "{at}: security"
            );
            check_responses(&at, document, operation, &operation_object["responses"]);
        }
    }
    if let Some(security) = document.get("security") {
        panic!("{name}: top-level security {security} would cover health and openapi.json");
    }
}

/// Every response declares the envelope; success envelopes require `data`, error envelopes leave
/// it untyped and optional. The raw document of `getOpenApiDocument` is the one exception.
fn check_responses(at: &str, document: &Value, operation: Operation, responses: &Value) {
    for (status, response) in responses.as_object().expect("responses") {
        assert!(response["description"].is_string(), "{at} {status}");
        let Some(schema) = response.pointer("/content/application~1json/schema") else {
            assert_eq!(status, "304", "{at} {status}: no JSON content");
            continue;
        };
        if operation == Operation::OpenApi && status == "200" {
            continue;
        }
        let schema = resolve(document, schema);
        let properties = schema["properties"]
            .as_object()
            .expect("envelope properties");
        for field in ["success", "code", "message", "data", "timestamp"] {
            assert!(properties.contains_key(field), "{at} {status}: {field}");
        }
        let required: Vec<&str> = schema["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if status.starts_with('2') {
            assert!(required.contains(&"data"), "{at} {status}: data required");
            let data = resolve(document, &properties["data"]);
            assert!(data.get("type").is_some(), "{at} {status}: data schema");
        } else {
            let data_is_untyped = properties["data"].get("type").is_none();
            assert!(
                !required.contains(&"data") || data_is_untyped,
                "{at} {status}: an error's null data must fit the schema"
            );
        }
    }
}

fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("local $ref");
            document.pointer(pointer).expect("$ref resolves")
        }
        None => schema,
    }
}

/// Walks the whole document: no composition keywords, no `nullable`, no type arrays, and every
/// object schema has `properties`. `in_properties` marks a map of property names, whose keys are
/// names and not keywords.
fn check_schema_keywords(at: &str, value: &Value, in_properties: bool) {
    match value {
        Value::Object(map) => {
            if !in_properties {
                for banned in ["oneOf", "anyOf", "allOf", "nullable"] {
                    assert!(!map.contains_key(banned), "{at}: {banned}");
                }
                if let Some(kind) = map.get("type") {
                    assert!(kind.is_string(), "{at}: type {kind} is not one string");
                    if kind == "object" {
                        assert!(
                            map.get("properties").is_some_and(Value::is_object),
                            "{at}: object schema without properties"
                        );
                    }
                }
            }
            for (key, child) in map {
                let child_at = format!("{at}/{key}");
                let names_follow = !in_properties && key == "properties";
                check_schema_keywords(&child_at, child, names_follow);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                check_schema_keywords(&format!("{at}/{index}"), item, false);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_document_follows_the_gpt_action_importer_rules() {
    let gateway = flavors_gateway(Options::default()).await;
    for (name, document) in all_documents(&gateway).await {
        check_importer_rules(&name, &document);
    }
    gateway.stop().await;
}

#[tokio::test]
async fn every_document_passes_openapi_spec_validator() {
    let Some(validator) = find_checker(
        "openapi-spec-validator",
        "pip install openapi-spec-validator==0.9.0",
    ) else {
        return;
    };
    let gateway = flavors_gateway(Options::default()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    for (index, (name, document)) in all_documents(&gateway).await.into_iter().enumerate() {
        let file = dir.path().join(format!("document-{index}.json"));
        std::fs::write(&file, serde_json::to_vec(&document).expect("serialise"))
            .expect("write document");
        let output = Command::new(&validator)
            .arg(&file)
            .output()
            .expect("run the validator");
        assert!(
            output.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    gateway.stop().await;
}

#[tokio::test]
async fn descriptions_teach_titles_full_body_updates_markdown_and_errors() {
    let gateway = flavors_gateway(Options::default()).await;
    let default = document(&gateway, "/endpoint/default/openapi.json").await;
    let info = default["info"]["description"].as_str().expect("info");
    for lesson in [
        "sandbox",
        "`Guides/Install`",
        "%2F",
        "[[Page Title]]",
        "expectedVersion",
        "format=markdown",
        "confluence-storage",
        "VERSION_CONFLICT: the page changed since you read it; read it again, merge",
        "RATE_LIMITED",
    ] {
        assert!(info.contains(lesson), "info.description lacks {lesson}");
    }
    assert!(
        info.ends_with("\n\nPages of the default handbook."),
        "the endpoint description is appended: {info}"
    );
    let update = &default["paths"]["/pages/{title}"]["put"]["description"];
    assert!(
        update
            .as_str()
            .is_some_and(|text| text.contains("whole body") && text.contains("VERSION_CONFLICT")),
        "{update}"
    );

    let read = document(&gateway, "/endpoint/read/openapi.json").await;
    let info = read["info"]["description"].as_str().expect("info");
    assert!(
        !info.contains("expectedVersion"),
        "a read-only endpoint is not taught how to update"
    );
    gateway.stop().await;
}

/// Every string in `value`, with where it is.
fn strings<'a>(at: String, value: &'a Value, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::String(text) => out.push((at, text)),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                strings(format!("{at}[{index}]"), item, out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                strings(format!("{at}.{key}"), item, out);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn the_document_says_one_thing_about_title_case_the_true_one() {
    let gateway = flavors_gateway(Options::default()).await;
    let default = document(&gateway, "/endpoint/default/openapi.json").await;
    let mut texts = Vec::new();
    strings(String::new(), &default, &mut texts);
    for (at, text) in &texts {
        assert!(
            !text.contains("case included") && !text.contains("match exactly"),
            "{at} says titles match case-sensitively: {text}"
        );
    }
    let title = default["paths"]["/pages/{title}"]["get"]["parameters"]
        .as_array()
        .and_then(|parameters| parameters.iter().find(|p| p["name"] == "title"))
        .and_then(|parameter| parameter["description"].as_str())
        .expect("title parameter");
    assert!(title.contains("ignoring case"), "{title}");
    assert!(
        default["info"]["description"]
            .as_str()
            .is_some_and(|info| info.contains("match ignoring case"))
    );
    gateway.stop().await;
}

#[tokio::test]
async fn data_schemas_have_the_original_shapes() {
    let gateway = flavors_gateway(Options::default()).await;
    let document = document(&gateway, "/endpoint/default/openapi.json").await;
    let data = |path: &str, method: &str| {
        let schema = &document["paths"][path][method]["responses"]["200"]["content"]["application/json"]
            ["schema"]["properties"]["data"];
        resolve(&document, schema).clone()
    };
    let breadcrumb = |schema: &Value, field: &str| {
        assert_eq!(
            schema["properties"][field]["type"], "array",
            "{field}: {schema}"
        );
        assert_eq!(schema["properties"][field]["items"]["type"], "string");
    };
    // The tree is one node object whose children are nodes.
    let tree = data("/pages/tree", "get");
    assert_eq!(tree["type"], "object", "{tree}");
    breadcrumb(&tree, "path");
    assert_eq!(tree["properties"]["titlePath"]["type"], "string");
    assert_eq!(tree["properties"]["children"]["type"], "array");
    for (path, method) in [
        ("/pages/{title}", "get"),
        ("/pages", "post"),
        ("/pages/{title}", "put"),
    ] {
        let schema = data(path, method);
        breadcrumb(&schema, "path");
        assert_eq!(
            schema["properties"]["titlePath"]["type"], "string",
            "{path}"
        );
    }
    let children = data("/pages/{title}/children", "get");
    assert_eq!(children["type"], "array");
    breadcrumb(resolve(&document, &children["items"]), "path");
    let parent = data("/pages/{title}/parent", "get");
    breadcrumb(&parent, "path");
    breadcrumb(&parent, "parentPath");
    assert_eq!(parent["properties"]["parentTitlePath"]["type"], "string");
    let list = data("/pages", "get");
    assert_eq!(list["type"], "array");
    assert_eq!(list["items"]["type"], "string");
    gateway.stop().await;
}

#[tokio::test]
async fn the_document_is_raw_json_with_an_etag_and_answers_304_when_unchanged() {
    let gateway = flavors_gateway(Options::default()).await;
    let path = "/endpoint/default/openapi.json";
    let (status, headers, body) = fetch(&gateway, path, &[]).await;
    assert_eq!(status, 200);
    let document: Value = serde_json::from_str(&body).expect("json");
    assert!(
        document.get("success").is_none(),
        "not wrapped in the envelope"
    );
    let etag = headers
        .get("etag")
        .and_then(|value| value.to_str().ok())
        .expect("ETag")
        .to_owned();

    for (if_none_match, expected) in [
        (etag.clone(), 304),
        (format!("W/{etag}"), 304),
        (format!("\"other\", {etag}"), 304),
        ("\"other\"".to_owned(), 200),
    ] {
        let (status, headers, body) =
            fetch(&gateway, path, &[("if-none-match", &if_none_match)]).await;
        assert_eq!(status, expected, "If-None-Match: {if_none_match}");
        assert_eq!(
            headers.get("etag").and_then(|value| value.to_str().ok()),
            Some(etag.as_str())
        );
        if expected == 304 {
            assert!(body.is_empty(), "a 304 has no body");
        }
    }
    let (_, again, _) = fetch(&gateway, path, &[]).await;
    assert_eq!(
        again.get("etag").and_then(|value| value.to_str().ok()),
        Some(etag.as_str()),
        "the same config serves the same document"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn errors_on_the_document_route_stay_envelopes() {
    let gateway = flavors_gateway(Options::default()).await;
    let (status, body) = gateway.get("/endpoint/nope/openapi.json", None).await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "NOT_FOUND");
    assert_eq!(body["success"], false);
    let response = gateway
        .http
        .post(gateway.url("/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.expect("envelope");
    assert_eq!(body["code"], "INVALID_INPUT");
    gateway.stop().await;
}

#[tokio::test]
async fn servers_url_comes_from_public_url_then_forwarded_headers_then_host() {
    let mut pinned = endpoint_file(SECRET, BASE);
    pinned.push_str("public_url=https://gpt.example.com\n");
    let plain = endpoint_file(SECRET, BASE);
    let gateway = Gateway::start(&[
        ("conflagent.pinned.properties", &pinned),
        ("conflagent.plain.properties", &plain),
    ])
    .await;
    let forwarded: Headers = &[
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "proxy.example.org"),
    ];
    let host = gateway.addr;
    let cases: [(&str, Headers, String); 4] = [
        (
            "/endpoint/pinned/openapi.json",
            forwarded,
            "https://gpt.example.com/endpoint/pinned".to_owned(),
        ),
        (
            "/endpoint/plain/openapi.json",
            forwarded,
            "https://proxy.example.org/endpoint/plain".to_owned(),
        ),
        (
            "/endpoint/plain/openapi.json",
            &[],
            format!("http://{host}/endpoint/plain"),
        ),
        (
            "/openapi.json",
            forwarded,
            "https://proxy.example.org/endpoint/<endpoint_name>".to_owned(),
        ),
    ];
    for (path, headers, expected) in cases {
        let (status, _, body) = fetch(&gateway, path, headers).await;
        assert_eq!(status, 200, "{path}");
        let document: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            document["servers"],
            serde_json::json!([{ "url": expected }]),
            "{path} {headers:?}"
        );
    }
    gateway.stop().await;
}

#[tokio::test]
async fn global_public_url_is_used_when_the_endpoint_has_none() {
    let options = Options {
        public_url: Some("https://global.example.net/".to_owned()),
        ..Options::default()
    };
    let gateway = flavors_gateway(options).await;
    let endpoint = document(&gateway, "/endpoint/read/openapi.json").await;
    assert_eq!(
        endpoint["servers"][0]["url"],
        "https://global.example.net/endpoint/read"
    );
    let template = document(&gateway, "/openapi.json").await;
    assert_eq!(
        template["servers"][0]["url"],
        "https://global.example.net/endpoint/<endpoint_name>"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn an_edited_endpoint_file_rebuilds_its_document() {
    let gateway = flavors_gateway(Options::default()).await;
    let path = "/endpoint/default/openapi.json";
    let (_, headers, _) = fetch(&gateway, path, &[]).await;
    let old_etag = headers.get("etag").cloned().expect("ETag");

    let mut edited = endpoint_file(SECRET, BASE);
    edited.push_str("flavor=read\ndescription=Now read-only.\n");
    gateway.write_config("conflagent.default.properties", &edited);
    eventually(Duration::from_secs(10), || async {
        let (_, headers, body) = fetch(&gateway, path, &[]).await;
        headers.get("etag") != Some(&old_etag) && body.contains("Now read-only.")
    })
    .await;
    let document = document(&gateway, path).await;
    assert!(
        document["paths"]["/pages"].get("post").is_none(),
        "the new flavor filters the rebuilt document"
    );
    gateway.stop().await;
}
