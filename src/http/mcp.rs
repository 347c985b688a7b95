//! `POST /endpoint/<name>/mcp`: the Model Context Protocol's Streamable HTTP transport, stateless,
//! as a second front door onto the same page commands as REST. Each POST carries one JSON-RPC
//! message and is answered on its own with `application/json` (requests) or 202 (notifications and
//! responses); no session is kept.
//!
//! Tools are the page operations the endpoint's flavor allows, described from the same definitions
//! as the OpenAPI document. A tool call's arguments become a [`crate::pages::Command`] through the
//! same parser as a REST request, run through [`pages::run`], and are rendered through the same
//! reply and error mappings: data as `structuredContent`, a domain failure as a result with
//! `isError` carrying the envelope's code and message. Malformed messages, unknown methods or tools
//! and invalid arguments are JSON-RPC errors.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderValue, ORIGIN};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Map, Value, json};

use crate::endpoint::Endpoint;
use crate::http::envelope::Body;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::reply;
use crate::http::request::tool_command;
use crate::metrics;
use crate::openapi;
use crate::pages;
use crate::routes::{Access, Operation};

/// The protocol revisions `initialize` accepts, newest first; the first is offered to a client that
/// asks for any other.
pub const PROTOCOL_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// The header a client sends after initialization with the negotiated revision.
const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";

/// JSON-RPC 2.0 error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
/// Implementation-defined server errors (the JSON-RPC range -32000 to -32099): a request refused
/// before its message was read, for a reason other than malformed input (secret, budget, Origin).
const SERVER_ERROR: i64 = -32000;

/// Checks the `Origin` header (DNS-rebinding protection, as the transport requires): absent is
/// allowed (command-line and desktop clients send none); the request's own host, a loopback
/// origin or one of `public_urls` is allowed; anything else is 403.
pub fn check_origin(
    headers: &HeaderMap,
    request_host: Option<&str>,
    public_urls: &[&str],
) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .ok()
        .and_then(|text| Origin::parse(text.trim()))
        .ok_or_else(ApiError::forbidden_origin)?;
    let same_host = request_host.is_some_and(|host| origin.authority == origin.normalise(host));
    let configured = public_urls
        .iter()
        .filter_map(|url| Origin::parse(url))
        .any(|allowed| allowed == origin);
    if origin.is_loopback() || same_host || configured {
        Ok(())
    } else {
        Err(ApiError::forbidden_origin())
    }
}

/// A web origin (or the origin part of a URL): a lowercase scheme and authority, without the
/// scheme's default port.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    authority: String,
}

impl Origin {
    fn parse(text: &str) -> Option<Origin> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        let mut origin = Origin {
            scheme,
            authority: String::new(),
        };
        origin.authority = origin.normalise(authority);
        Some(origin)
    }

    /// `authority` lowercased, without this origin's default port.
    fn normalise(&self, authority: &str) -> String {
        let authority = authority.trim().to_ascii_lowercase();
        let default_port = if self.scheme == "https" {
            ":443"
        } else {
            ":80"
        };
        match authority.strip_suffix(default_port) {
            Some(bare) => bare.to_owned(),
            None => authority,
        }
    }

    fn host(&self) -> &str {
        if let Some(bracketed) = self.authority.strip_prefix('[') {
            return bracketed.split(']').next().unwrap_or("");
        }
        match self.authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) => host,
            _ => &self.authority,
        }
    }

    fn is_loopback(&self) -> bool {
        let host = self.host();
        host == "localhost"
            || host.ends_with(".localhost")
            || host == "::1"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|address| address.is_loopback())
    }
}

/// 400 when the `MCP-Protocol-Version` header names a revision not in [`PROTOCOL_VERSIONS`]. A
/// request without it is served (the transport then assumes 2025-03-26).
pub fn check_protocol_version(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(PROTOCOL_VERSION_HEADER) {
        None => Ok(()),
        Some(value)
            if value
                .to_str()
                .is_ok_and(|version| PROTOCOL_VERSIONS.contains(&version.trim())) =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::unsupported_protocol_version(&PROTOCOL_VERSIONS)),
    }
}

/// The host the request was sent to: `Host`, or the URI's authority (HTTP/2).
pub fn request_host<'a>(headers: &'a HeaderMap, uri: &'a http::Uri) -> Option<&'a str> {
    headers
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| uri.authority().map(|authority| authority.as_str()))
}

/// A request refused as a whole, before its message is answered (Origin, secret, budget,
/// protocol header, body size or type): the status and headers of the one error mapping, with a
/// JSON-RPC error without an id as the body (MCP clients read it) and the envelope's code in
/// `error.data.code`.
pub fn refusal(error: ApiError) -> Response<Body> {
    let code = match error.code {
        ErrorCode::InvalidInput => INVALID_REQUEST,
        _ => SERVER_ERROR,
    };
    let mut response = json_response(
        error.status,
        &json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {
                "code": code,
                "message": error.message,
                "data": {"code": error.code.as_str()},
            },
        }),
    );
    for (name, value) in error.headers {
        response.headers_mut().insert(name, value);
    }
    response
}

/// A JSON-RPC error for a message that was read.
struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
    /// The HTTP status the failure stands for, for metrics and the log line.
    outcome_status: u16,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
            data: None,
            outcome_status: 400,
        }
    }

    /// Invalid arguments, refused by the same parser as REST: the message and envelope code of its
    /// error.
    fn invalid_arguments(error: ApiError) -> RpcError {
        RpcError {
            code: INVALID_PARAMS,
            message: error.message,
            data: Some(json!({"code": error.code.as_str()})),
            outcome_status: error.status.as_u16(),
        }
    }
}

/// Answers one JSON-RPC message (the request body) for `endpoint`.
pub async fn answer(endpoint: &Endpoint, body: &[u8]) -> Response<Body> {
    let message: Value = match serde_json::from_slice(body) {
        Ok(message) => message,
        Err(error) => {
            return message_error(
                Value::Null,
                RpcError::new(PARSE_ERROR, format!("parse error: {error}")),
            );
        }
    };
    let mut message = match message {
        Value::Object(message) => message,
        Value::Array(_) => {
            return message_error(
                Value::Null,
                RpcError::new(
                    INVALID_REQUEST,
                    "batches are not supported (MCP removed them in 2025-06-18); send one \
                     JSON-RPC message per POST",
                ),
            );
        }
        _ => {
            return message_error(
                Value::Null,
                RpcError::new(INVALID_REQUEST, "a JSON-RPC message must be an object"),
            );
        }
    };
    let id = message.remove("id");
    let valid_id = id.as_ref().filter(|id| is_valid_id(id)).cloned();
    if message.get("jsonrpc") != Some(&Value::from("2.0")) {
        return message_error(
            valid_id.unwrap_or(Value::Null),
            RpcError::new(INVALID_REQUEST, "`jsonrpc` must be \"2.0\""),
        );
    }
    let Some(method) = message.get("method") else {
        // A client's response to a server request: this server sends none, so there is nothing to
        // match it with; accepted like a notification.
        if valid_id.is_some() && (message.contains_key("result") || message.contains_key("error")) {
            return accepted();
        }
        return message_error(
            valid_id.unwrap_or(Value::Null),
            RpcError::new(INVALID_REQUEST, "a JSON-RPC request needs a `method`"),
        );
    };
    let Some(method) = method.as_str() else {
        return message_error(
            valid_id.unwrap_or(Value::Null),
            RpcError::new(INVALID_REQUEST, "`method` must be a string"),
        );
    };
    let id = match (id, valid_id) {
        // Notifications (`notifications/initialized`, `notifications/cancelled`) need no answer.
        (None, _) => return accepted(),
        (Some(_), Some(id)) => id,
        (Some(_), None) => {
            return message_error(
                Value::Null,
                RpcError::new(INVALID_REQUEST, "`id` must be a string or an integer"),
            );
        }
    };
    let params = match message.get("params") {
        None | Some(Value::Null) => None,
        Some(Value::Object(params)) => Some(params),
        Some(_) => {
            return request_error(
                id,
                RpcError::new(INVALID_PARAMS, "`params` must be an object"),
            );
        }
    };
    if method == "tools/list" {
        // The one answer that depends on the flavor only: served from its rendered text.
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{}}}"#,
            tools_list(endpoint)
        );
        return json_bytes(StatusCode::OK, Bytes::from(body));
    }
    let outcome = match method {
        "initialize" => initialize(endpoint, params),
        "ping" => Ok(json!({})),
        "tools/call" => tools_call(endpoint, params).await,
        _ => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method `{method}` is not supported; this server offers tools only"),
        )),
    };
    match outcome {
        Ok(result) => json_response(
            StatusCode::OK,
            &json!({"jsonrpc": "2.0", "id": id, "result": result}),
        ),
        Err(error) => request_error(id, error),
    }
}

/// JSON-RPC ids are strings or integers; MCP forbids `null`.
fn is_valid_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

fn initialize(endpoint: &Endpoint, params: Option<&Map<String, Value>>) -> Result<Value, RpcError> {
    let requested = params
        .and_then(|params| params.get("protocolVersion"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            RpcError::new(INVALID_PARAMS, "initialize needs `params.protocolVersion`")
        })?;
    let version = PROTOCOL_VERSIONS
        .iter()
        .find(|supported| **supported == requested)
        .unwrap_or(&PROTOCOL_VERSIONS[0]);
    Ok(json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {
            "name": "conflagent",
            "title": format!("Conflagent: {}", endpoint.tenant.name()),
            "version": env!("CARGO_PKG_VERSION"),
        },
        "instructions": openapi::tool_instructions(&allowed_tools(endpoint)),
    }))
}

/// The page operations `endpoint` offers as tools, in route-table order.
fn allowed_tools(endpoint: &Endpoint) -> Vec<Operation> {
    Operation::ALL
        .into_iter()
        .filter(|operation| operation.is_page_operation() && endpoint.tenant.allows(*operation))
        .collect()
}

/// The `tools/list` result of `endpoint` as JSON text, rendered once per set of allowed tools (a
/// flavor and `operations` list; a handful in practice) for the life of the process.
fn tools_list(endpoint: &Endpoint) -> Arc<str> {
    static RENDERED: Mutex<Vec<(Vec<Operation>, Arc<str>)>> = Mutex::new(Vec::new());
    let allowed = allowed_tools(endpoint);
    let mut rendered = RENDERED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, text)) = rendered.iter().find(|(tools, _)| *tools == allowed) {
        return Arc::clone(text);
    }
    let tools: Vec<&Value> = allowed
        .iter()
        .filter_map(|operation| {
            tool_definitions()
                .iter()
                .find(|(defined, _)| defined == operation)
                .map(|(_, tool)| tool)
        })
        .collect();
    let text: Arc<str> = json!({"tools": tools}).to_string().into();
    rendered.push((allowed, Arc::clone(&text)));
    text
}

/// Every page operation's tool definition, built once: they depend on the build only.
fn tool_definitions() -> &'static [(Operation, Value)] {
    static TOOLS: OnceLock<Vec<(Operation, Value)>> = OnceLock::new();
    TOOLS.get_or_init(|| {
        Operation::ALL
            .into_iter()
            .filter(|operation| operation.is_page_operation())
            .map(|operation| (operation, tool_definition(operation)))
            .collect()
    })
}

/// The tool of `operation`: name, title and description as in the OpenAPI document, its input and
/// output schemas from the same definitions, and annotations from its access class.
pub fn tool_definition(operation: Operation) -> Value {
    let summary = openapi::operation_summary(operation);
    let (read_only, destructive, idempotent) = match operation.access() {
        Access::Read => (true, false, true),
        // A second create with the same title is refused: not idempotent, but never destructive.
        Access::Create => (false, false, false),
        // Replacing, renaming, moving and deleting change what was there; repeating one with the
        // same arguments changes nothing more.
        Access::Modify | Access::Public | Access::Protocol => (false, true, true),
    };
    let mut tool = json!({
        "name": operation.operation_id(),
        "title": summary,
        "description": openapi::operation_description(operation),
        "inputSchema": openapi::tool_input_schema(operation),
        "annotations": {
            "title": summary,
            "readOnlyHint": read_only,
            "destructiveHint": destructive,
            "idempotentHint": idempotent,
            "openWorldHint": false,
        },
    });
    if let Some(output) = openapi::tool_output_schema(operation) {
        tool["outputSchema"] = output;
    }
    tool
}

async fn tools_call(
    endpoint: &Endpoint,
    params: Option<&Map<String, Value>>,
) -> Result<Value, RpcError> {
    let name = params
        .and_then(|params| params.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| RpcError::new(INVALID_PARAMS, "tools/call needs `params.name`"))?;
    let operation = Operation::from_operation_id(name)
        .filter(|operation| operation.is_page_operation())
        .ok_or_else(|| RpcError::new(INVALID_PARAMS, format!("unknown tool `{name}`")))?;
    metrics::called_tool(operation.operation_id());
    if !endpoint.tenant.allows(operation) {
        // Not listed for this endpoint, so a client that follows tools/list never calls it: a
        // protocol error, like an unknown tool, naming the flavor as REST's 403 does.
        let refused = ApiError::outside_flavor(endpoint.tenant.access_summary());
        return Err(RpcError::invalid_arguments(refused));
    }
    let empty = Map::new();
    let arguments = match params.and_then(|params| params.get("arguments")) {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(arguments)) => arguments,
        Some(_) => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                "`arguments` must be an object",
            ));
        }
    };
    let command = tool_command(operation, arguments).map_err(RpcError::invalid_arguments)?;
    Ok(
        match pages::run(
            &endpoint.upstream,
            &endpoint.tenant,
            &endpoint.renders,
            command,
        )
        .await
        {
            Ok(reply) => {
                let (message, data) = reply::render(reply);
                tool_result(&message, data)
            }
            Err(error) => {
                let error = ApiError::from(error);
                metrics::outcome_status(error.status.as_u16());
                json!({
                    "content": [{
                        "type": "text",
                        "text": format!("{}: {}", error.code.as_str(), error.message),
                    }],
                    "isError": true,
                })
            }
        },
    )
}

/// A successful call's result: the data as `structuredContent` (wrapped as `{"items": …}` when
/// it is not an object, as the output schema says) and one text block with the message and the JSON.
fn tool_result(message: &str, data: Value) -> Value {
    let structured = match data {
        Value::Object(_) => data,
        other => json!({ openapi::STRUCTURED_ARRAY_KEY: other }),
    };
    let text = format!("{message}\n\n{structured}");
    json!({
        "content": [{"type": "text", "text": text}],
        "structuredContent": structured,
        "isError": false,
    })
}

/// A JSON-RPC error answering a request with `id`: 200, as the transport carries it; metrics and
/// the log line count it under the status it stands for.
fn request_error(id: Value, error: RpcError) -> Response<Body> {
    metrics::outcome_status(error.outcome_status);
    json_response(StatusCode::OK, &rpc_error_body(id, error))
}

/// A JSON-RPC error for a message that could not be taken as a request: 400.
fn message_error(id: Value, error: RpcError) -> Response<Body> {
    json_response(StatusCode::BAD_REQUEST, &rpc_error_body(id, error))
}

fn rpc_error_body(id: Value, error: RpcError) -> Value {
    let mut body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": error.code, "message": error.message},
    });
    if let Some(data) = error.data {
        body["error"]["data"] = data;
    }
    body
}

/// 202 with no body: a notification or a response was accepted.
fn accepted() -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).expect("a Value with string keys always serialises");
    json_bytes(status, Bytes::from(bytes))
}

fn json_bytes(status: StatusCode, bytes: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_origin_of(origin: Option<&str>, host: Option<&str>, expected: bool) {
        let mut headers = HeaderMap::new();
        if let Some(origin) = origin {
            headers.insert(ORIGIN, HeaderValue::from_str(origin).expect("ascii"));
        }
        let allowed = check_origin(&headers, host, &["https://gpt.example.com/base"]).is_ok();
        assert_eq!(allowed, expected, "origin {origin:?} host {host:?}");
    }

    #[test]
    fn origins() {
        check_origin_of(None, Some("anything"), true);
        check_origin_of(Some("http://localhost:5173"), Some("gw:8080"), true);
        check_origin_of(Some("http://127.0.0.1"), None, true);
        check_origin_of(Some("http://[::1]:3000"), None, true);
        check_origin_of(Some("http://app.localhost"), None, true);
        check_origin_of(Some("https://gpt.example.com"), Some("10.0.0.5"), true);
        check_origin_of(Some("https://GPT.example.com:443"), None, true);
        check_origin_of(Some("http://gw:8080"), Some("gw:8080"), true);
        check_origin_of(Some("https://gw"), Some("GW:443"), true);
        check_origin_of(Some("https://evil.example"), Some("gw:8080"), false);
        check_origin_of(Some("http://gpt.example.com"), None, false);
        check_origin_of(Some("null"), Some("gw"), false);
        check_origin_of(Some("http://localhost.evil.example"), None, false);
        check_origin_of(Some("http://127.0.0.1@evil.example"), None, false);
    }

    #[test]
    fn protocol_version_header() {
        let mut headers = HeaderMap::new();
        assert!(check_protocol_version(&headers).is_ok());
        for version in PROTOCOL_VERSIONS {
            headers.insert(PROTOCOL_VERSION_HEADER, HeaderValue::from_static(version));
            assert!(check_protocol_version(&headers).is_ok(), "{version}");
        }
        headers.insert(
            PROTOCOL_VERSION_HEADER,
            HeaderValue::from_static("2024-11-05"),
        );
        let refused = check_protocol_version(&headers).expect_err("too old");
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn every_page_operation_is_a_tool_with_an_object_output_schema() {
        for operation in Operation::ALL {
            if !operation.is_page_operation() {
                continue;
            }
            let tool = tool_definition(operation);
            assert_eq!(tool["name"], operation.operation_id());
            assert_eq!(tool["inputSchema"]["type"], "object", "{operation:?}");
            assert_eq!(tool["outputSchema"]["type"], "object", "{operation:?}");
            assert_eq!(tool["annotations"]["openWorldHint"], false);
            let text = tool.to_string();
            assert!(!text.contains("#/components/"), "{text}");
        }
    }
}
