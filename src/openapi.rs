//! The OpenAPI 3.1 documents: one per endpoint (filtered by its flavor) and the tenant-free template,
//! generated from the route table so the document and the routes cannot drift, and rendered once per
//! config version into a cache (`http` serves them raw with an `ETag`).
//!
//! The documents stay inside what the GPT Action importer accepts: inline parameters, no
//! `oneOf`/`anyOf`/`allOf`, no type arrays, no `nullable`, every object schema with `properties`,
//! operation descriptions of at most [`MAX_OPERATION_DESCRIPTION`] characters and parameter
//! descriptions of at most [`MAX_PARAMETER_DESCRIPTION`].

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::config::Tenant;
use crate::routes::{Access, Operation};

/// The OpenAPI version the documents declare.
pub const OPENAPI_VERSION: &str = "3.1.0";

/// The longest operation `description` the GPT Action importer accepts, in characters.
pub const MAX_OPERATION_DESCRIPTION: usize = 300;

/// The longest parameter `description` the GPT Action importer accepts, in characters.
pub const MAX_PARAMETER_DESCRIPTION: usize = 700;

/// The last path segment of the template's `servers` URL, which a builder replaces with the endpoint
/// name.
pub const TEMPLATE_ENDPOINT_PLACEHOLDER: &str = "<endpoint_name>";

/// The name of the Bearer security scheme in `components.securitySchemes`.
const SECURITY_SCHEME: &str = "bearerAuth";

/// How many server URLs one cache keeps. A gateway is normally reached under one or two names; the
/// bound stops forged `Host` headers from growing the cache without limit.
const MAX_CACHED_SERVERS: usize = 8;

/// The `servers` URL of endpoint `name` below `base` (a scheme and host, maybe with a path prefix).
pub fn endpoint_server_url(base: &str, name: &str) -> String {
    format!("{}/endpoint/{name}", base.trim_end_matches('/'))
}

/// The document of one endpoint: the operations its tenant allows, its `servers` entry, and its
/// optional description appended to `info.description`.
pub fn endpoint_document(tenant: &Tenant, server_url: &str) -> Value {
    let operations: Vec<Operation> = Operation::ALL
        .into_iter()
        .filter(|operation| tenant.allows(*operation))
        .collect();
    let title = format!("Conflagent: {}", tenant.name());
    document(&title, &operations, server_url, tenant.description())
}

/// The tenant-free template served at the top level: every operation, with a `servers` URL ending in
/// [`TEMPLATE_ENDPOINT_PLACEHOLDER`].
pub fn template_document(base_url: &str) -> Value {
    let server_url = endpoint_server_url(base_url, TEMPLATE_ENDPOINT_PLACEHOLDER);
    let note = format!(
        "This is a template: replace `{TEMPLATE_ENDPOINT_PLACEHOLDER}` in the server URL with \
         the name of your endpoint, or import `/endpoint/<name>/openapi.json` instead."
    );
    document("Conflagent", &Operation::ALL, &server_url, Some(&note))
}

/// Builds a document listing `operations` (in [`Operation::ALL`] order) served at `server_url`.
pub fn document(
    title: &str,
    operations: &[Operation],
    server_url: &str,
    extra_description: Option<&str>,
) -> Value {
    let mut paths = Map::new();
    for operation in Operation::ALL {
        if !operations.contains(&operation) || !operation.in_openapi() {
            continue;
        }
        let route = operation.route();
        let method = route.method.as_str().to_ascii_lowercase();
        let path_item = paths
            .entry(route.template)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(path_item) = path_item {
            path_item.insert(method, operation_object(operation));
        }
    }
    let mut description = info_description(operations);
    if let Some(extra) = extra_description
        .map(str::trim)
        .filter(|text| !text.is_empty())
    {
        description.push_str("\n\n");
        description.push_str(extra);
    }
    json!({
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": title,
            "version": env!("CARGO_PKG_VERSION"),
            "description": description,
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The endpoint's shared secret, sent as `Authorization: Bearer <secret>`.",
                },
            },
        },
    })
}

/// What every surface says first: the sandbox.
const SANDBOX_GUIDANCE: &str = "Read and edit Confluence pages inside one sandbox: the root page \
    configured for this endpoint and every page below it. Pages outside the sandbox do not exist \
    for this API.";

/// The API-wide guidance of the document's `info.description`. Parts about writing appear only when
/// the document has write operations.
fn info_description(operations: &[Operation]) -> String {
    let mut text = format!(
        "{SANDBOX_GUIDANCE}\n\n\
         Pages are addressed by title, never by id. `{{title}}` is a page title or a title path from \
         the root down (`Guides/Install`); a `/` that is part of one title is sent as `%2F` \
         (`CI%2FCD`). A page titled like a route word (`tree`, `rename`) is reached by encoding one \
         letter (`%74ree`). Titles are unique in the whole space and match ignoring case. A page in \
         a response carries `path`, its breadcrumb of titles from the root down, and `titlePath`, \
         the string to pass back as `{{title}}`.\n\n\
         Every response is an envelope `{{success, code, message, data, timestamp}}`: use `data` on \
         success and read `message` on failure."
    );
    text.push_str(&operations_guidance(operations));
    text
}

/// The MCP server's instructions: the same guidance as the document's `info.description`, told
/// in terms of tools, arguments and tool results.
pub fn tool_instructions(operations: &[Operation]) -> String {
    let mut text = format!(
        "{SANDBOX_GUIDANCE}\n\n\
         Pages are addressed by title, never by id. A `title` argument is a page title or a title \
         path from the root down (`Guides/Install`); a `/` that is part of one title is written \
         `%2F` (`CI%2FCD`). Titles are unique in the whole space and match ignoring case. A page in \
         a result carries `path`, its breadcrumb of titles from the root down, and `titlePath`, \
         the string to pass back as `title`.\n\n\
         A tool result carries the data as structured content and as text. A failed call is a \
         result marked as an error whose text starts with one of the codes below, then what went \
         wrong."
    );
    text.push_str(&operations_guidance(operations));
    text
}

/// Guidance on reading, writing and errors, shared by both surfaces, with the parts about writing
/// only when `operations` has write operations.
fn operations_guidance(operations: &[Operation]) -> String {
    let has = |operation: Operation| operations.contains(&operation);
    let mut text = String::new();
    if has(Operation::ReadPage) {
        text.push_str(
            "\n\nRead with `format=markdown` to get Markdown. Long bodies come in slices: while \
             `truncated` is true, read again with `offset` advanced by the characters received.",
        );
    }
    if has(Operation::CreatePage) || has(Operation::UpdatePage) {
        text.push_str(
            "\n\nBodies you write are Markdown (CommonMark with GFM tables, task lists and \
             strikethrough; fenced code; `[[Page Title]]`, `[[Page Title|label]]` and \
             `[[Page Title#Heading|label]]` link to other pages; `> [!NOTE]` alerts become \
             panels) or Confluence storage XHTML. Macros, mentions, emoticons, layouts and coloured \
             text are directives: `:status{colour=Green title=DONE}` inline, `::toc` as a block, \
             `:::expand{title=\"More\"}` ... `:::` around Markdown; keep every attribute. Blocks \
             fenced as `confluence-storage` are raw XHTML: keep them unchanged.",
        );
    }
    if has(Operation::SearchPages) || has(Operation::PageOutline) {
        text.push_str(
            "\n\nFinding and reading in big spaces: searchPages finds pages by the words in their \
             titles and text (a page created or edited seconds ago may not be found yet: \
             Confluence indexes it first); listSubpages and getPageTree show the structure. On a \
             long page call getPageOutline first, then read only the section you need with \
             `section=<heading>` instead of the whole body.",
        );
    }
    if has(Operation::UpdatePage) {
        text.push_str(
            "\n\nAn update replaces the whole body: read the page (`format=markdown`), edit it, and \
             send the complete new body with `expectedVersion` set to the version you read. Never \
             send only the changed part as the body. Markdown blocks you leave unchanged keep \
             their stored form exactly. To change one part of a long page, update just its \
             section: read it with `section=<heading>`, edit it, and send it back, heading \
             included, with `section` and `expectedVersion`; the rest of the page is kept exactly \
             as it is.",
        );
    }
    text.push_str(
        "\n\nError codes and what to do:\n\
         - INVALID_INPUT: fix the request as the message says.\n\
         - UNAUTHORIZED: the secret is wrong (401) or the operation is not enabled for this \
         endpoint (403); do not retry.\n\
         - NOT_FOUND: no such page in the sandbox; find the exact title with listSubpages or \
         getPageTree.\n\
         - VERSION_CONFLICT: the page changed since you read it; read it again, merge your change \
         into the new body, and retry with the new version.\n\
         - INVALID_OPERATION: the title is already taken (choose another), or the change is not \
         allowed (the sandbox root, a move under the page itself).\n\
         - RATE_LIMITED: wait the seconds given in `Retry-After`, then retry.\n\
         - UPSTREAM_ERROR: Confluence failed or is slow; retry once a little later. After a write \
         answered with 504, read the page first: the write may have been applied.\n\
         - INTERNAL_ERROR: a gateway bug; tell the user instead of retrying.",
    );
    text
}

/// Static text of one operation.
struct OperationText {
    summary: &'static str,
    description: &'static str,
}

fn operation_text(operation: Operation) -> OperationText {
    let (summary, description) = match operation {
        Operation::ListPages => (
            "List all pages as title paths",
            "Lists every page in the sandbox as a title path (`Guides/Install`; a `/` inside a \
             title is `%2F`), depth-first in tree order. Pass `offset` and `limit`; the message \
             says when more remain. Use a path from this list as `{title}` in other calls.",
        ),
        Operation::PageTree => (
            "Get the page tree",
            "Returns one node `{title, path, titlePath, children}`: the root or `startTitle`'s \
             page, with the pages below it nested `depth` levels deep (0-10, default 2). Children \
             are empty at the depth limit: ask again deeper or from a lower `startTitle`.",
        ),
        Operation::ReadPage => (
            "Read a page or one section of it",
            "Reads one page: title, breadcrumb, version and body. `format=markdown` gives Markdown, \
             best for editing; `section=<heading>` gives only that section (see getPageOutline). \
             While `truncated` is true, read on with `offset`. Keep `version` for expectedVersion.",
        ),
        Operation::ListChildren => (
            "List the direct children of a page",
            "Lists the pages directly below a page as `{title, path, titlePath}`.",
        ),
        Operation::GetParent => (
            "Get the parent of a page",
            "Returns the parent's `title`; `path` is the breadcrumb of the page asked about, \
             `parentPath` the parent's own, and `parentTitlePath` the parent as `{title}`. For a \
             top-level page the parent is the sandbox root.",
        ),
        Operation::CreatePage => (
            "Create a page",
            "Creates a page under `parentTitle` (default: the sandbox root). `body` is Markdown, \
             with `[[Page Title]]` links to other pages, or storage XHTML. Titles are unique in \
             the space: INVALID_OPERATION (409) means choose another title.",
        ),
        Operation::UpdatePage => (
            "Replace the whole body of a page, or one section",
            "Replaces the whole body with the complete new text, or with `section=<heading>` only \
             that section (send it heading included; the rest stays as is). Pass the `version` \
             you read as `expectedVersion`. On VERSION_CONFLICT read again, merge, and retry.",
        ),
        Operation::RenamePage => (
            "Rename a page",
            "Renames a page; its place, body and children stay. INVALID_OPERATION (409) means the \
             new title is taken in the space. The sandbox root cannot be renamed.",
        ),
        Operation::MovePage => (
            "Move a page under another parent",
            "Moves a page and its subtree under `newParentTitle`; the sandbox root's own title \
             makes it top-level. Moving a page under itself or its descendants, or moving the \
             root, is refused with INVALID_OPERATION.",
        ),
        Operation::DeletePage => (
            "Delete a page",
            "Deletes a page: it goes to Confluence's trash, where a space admin can restore it. \
             The sandbox root cannot be deleted. Ask the user to confirm before deleting.",
        ),
        Operation::SearchPages => (
            "Search pages by the words they contain",
            "Finds pages of the sandbox whose title or text contains the words of `q`: title, \
             path, excerpt, version, lastModified. Use it when you do not know the title. New or \
             just-edited pages appear only after Confluence indexes them (seconds).",
        ),
        Operation::PageOutline => (
            "Get the headings of a page",
            "Lists a page's headings (level, text, anchor) with the characters of each section. \
             On long pages call it first, then read or update only the section you need with \
             `section` set to the heading's `section` value, instead of the whole body.",
        ),
        Operation::OpenApi => (
            "Get this OpenAPI document",
            "Returns this OpenAPI document itself, not wrapped in the envelope. Needs no secret.",
        ),
        Operation::Health => (
            "Check that the endpoint is served",
            "Tells whether this endpoint is served. Needs no secret and does not contact \
             Confluence.",
        ),
        Operation::Mcp => (
            "Use the page operations as MCP tools",
            "The Model Context Protocol front door onto the operations above (Streamable HTTP).",
        ),
    };
    OperationText {
        summary,
        description,
    }
}

fn operation_object(operation: Operation) -> Value {
    let text = operation_text(operation);
    let mut object = Map::new();
    object.insert("operationId".into(), operation.operation_id().into());
    object.insert("summary".into(), text.summary.into());
    object.insert("description".into(), text.description.into());
    let parameters = parameters(operation);
    if !parameters.is_empty() {
        object.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(body) = request_body(operation) {
        object.insert("requestBody".into(), body);
    }
    object.insert("responses".into(), responses(operation));
    if operation.requires_auth() {
        object.insert("security".into(), json!([{ SECURITY_SCHEME: [] }]));
    }
    let consequential = matches!(operation.access(), Access::Create | Access::Modify);
    object.insert("x-openai-isConsequential".into(), consequential.into());
    Value::Object(object)
}

const TITLE_PARAMETER: &str = "The page title, or a title path from the sandbox root down with \
    `/` between titles (`Guides/Install`). A `/` that is part of one title is sent as `%2F` \
    (`CI%2FCD`). Titles match ignoring case, as Confluence compares them; take them from \
    listSubpages, getPageTree or a `titlePath` field. A page whose title is a route word such as \
    `tree` is reached by encoding one letter (`%74ree`).";

fn title_parameter() -> Value {
    json!({
        "name": "title",
        "in": "path",
        "required": true,
        "description": TITLE_PARAMETER,
        "schema": {"type": "string", "minLength": 1},
    })
}

fn query_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "schema": schema,
    })
}

const SECTION_PARAMETER: &str = "One section instead of the whole body: a heading's text, or \
    a path of headings from the outermost down (`Install/Linux`) when several headings share a \
    text; `#2` picks the second of equal ones. Take the value from getPageOutline (`section`). A \
    section is the heading and everything up to the next heading of the same or a higher level.";

fn section_parameter() -> Value {
    query_parameter(
        "section",
        SECTION_PARAMETER,
        json!({"type": "string", "minLength": 1}),
    )
}

fn parameters(operation: Operation) -> Vec<Value> {
    let mut parameters = Vec::new();
    if operation.route().template.contains("{title}") {
        parameters.push(title_parameter());
    }
    match operation {
        Operation::ListPages => {
            parameters.push(query_parameter(
                "offset",
                "How many title paths to skip; pass the previous offset plus the number received \
                 to get the next slice.",
                json!({"type": "integer", "minimum": 0, "default": 0}),
            ));
            parameters.push(query_parameter(
                "limit",
                "How many title paths to return at most (1-2000, default 500).",
                json!({"type": "integer", "minimum": 1, "maximum": 2000, "default": 500}),
            ));
        }
        Operation::PageTree => {
            parameters.push(query_parameter(
                "depth",
                "How many levels below the start page to include (0-10, default 2; 0 gives the \
                 start page alone).",
                json!({"type": "integer", "minimum": 0, "maximum": 10, "default": 2}),
            ));
            parameters.push(query_parameter(
                "startTitle",
                "The page to start from, as a title or title path; the sandbox root when omitted.",
                json!({"type": "string", "minLength": 1}),
            ));
        }
        Operation::ReadPage => {
            parameters.push(query_parameter(
                "format",
                "`markdown` returns Markdown, best for editing: macros and mentions come as \
                 directives (`:name{key=value}`, `::name{…}`, `:::name{…}` … `:::`), the rest as \
                 `confluence-storage` blocks; keep both when writing back. `storage` (default) \
                 returns storage XHTML.",
                json!({"type": "string", "enum": ["storage", "markdown"], "default": "storage"}),
            ));
            parameters.push(query_parameter(
                "offset",
                "The first character of the body to return (default 0). To read a truncated body, \
                 pass the previous offset plus the length of the body received.",
                json!({"type": "integer", "minimum": 0, "default": 0}),
            ));
            parameters.push(query_parameter(
                "maxChars",
                "How many characters of the body to return at most (1-90000, default 90000).",
                json!({"type": "integer", "minimum": 1, "maximum": 90000, "default": 90000}),
            ));
            parameters.push(section_parameter());
        }
        Operation::UpdatePage => parameters.push(section_parameter()),
        Operation::PageOutline => parameters.push(query_parameter(
            "offset",
            "The first heading to list (default 0). While `truncated` is true, pass the previous \
             offset plus the number of headings received.",
            json!({"type": "integer", "minimum": 0, "default": 0}),
        )),
        Operation::SearchPages => {
            let mut q = query_parameter(
                "q",
                "The words to look for in page titles and text, e.g. `backup restore`. Pages \
                 containing all of them match. Punctuation and search operators are ignored.",
                json!({"type": "string", "minLength": 1, "maxLength": 500}),
            );
            q["required"] = json!(true);
            parameters.push(q);
            parameters.push(query_parameter(
                "offset",
                "How many hits to skip; pass `nextOffset` from the previous answer to get more.",
                json!({"type": "integer", "minimum": 0, "default": 0}),
            ));
            parameters.push(query_parameter(
                "limit",
                "How many hits to return at most (1-50, default 10).",
                json!({"type": "integer", "minimum": 1, "maximum": 50, "default": 10}),
            ));
        }
        _ => {}
    }
    parameters
}

const BODY_FIELD: &str = "Markdown (CommonMark with GFM tables, task lists, strikethrough; \
    `[[Page Title]]`, `[[Page Title|label]]` or `[[Page Title#Heading|label]]` link to other pages; \
    `> [!NOTE]` alerts become panels) or Confluence storage XHTML.";

const FORMAT_FIELD: &str = "How to read `body`; detected when omitted (a body that starts with an \
    XML element and parses as XHTML is storage).";

fn request_body(operation: Operation) -> Option<Value> {
    let format =
        json!({"type": "string", "enum": ["markdown", "storage"], "description": FORMAT_FIELD});
    let schema = match operation {
        Operation::CreatePage => json!({
            "type": "object",
            "required": ["title", "body"],
            "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": 255,
                    "description": "The new page's title; unique in the whole space. A `/` here is part of the title."},
                "body": {"type": "string", "description": format!("The page content, may be empty. {BODY_FIELD}")},
                "parentTitle": {"type": "string", "minLength": 1,
                    "description": "The parent page, as a title or title path; the sandbox root when omitted."},
                "format": format,
            },
        }),
        Operation::UpdatePage => json!({
            "type": "object",
            "required": ["body"],
            "properties": {
                "body": {"type": "string",
                    "description": format!("The whole new body, replacing the old one entirely; with `section`, the whole new section, heading included. {BODY_FIELD}")},
                "expectedVersion": {"type": "integer", "minimum": 1,
                    "description": "The version you read; the update is refused with VERSION_CONFLICT when the page changed since."},
                "format": format,
            },
        }),
        Operation::RenamePage => json!({
            "type": "object",
            "required": ["old_title", "new_title"],
            "properties": {
                "old_title": {"type": "string", "minLength": 1,
                    "description": "The page to rename, as a title or title path (`oldTitle` is accepted too)."},
                "new_title": {"type": "string", "minLength": 1, "maxLength": 255,
                    "description": "The new title; unique in the whole space (`newTitle` is accepted too)."},
            },
        }),
        Operation::MovePage => json!({
            "type": "object",
            "required": ["newParentTitle"],
            "properties": {
                "newParentTitle": {"type": "string", "minLength": 1,
                    "description": "The new parent, as a title or title path; the sandbox root's own title makes the page top-level."},
            },
        }),
        _ => return None,
    };
    Some(json!({
        "required": true,
        "content": {"application/json": {"schema": schema}},
    }))
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The data of a successful response of `operation`; `None` for the raw OpenAPI document.
fn data_schema(operation: Operation) -> Option<Value> {
    let schema = match operation {
        Operation::ListPages => json!({
            "type": "array",
            "description": "Title paths below the sandbox root (`Guides/Install`; `/` inside a title as `%2F`, `%` as `%25`), depth-first in page-tree order.",
            "items": {"type": "string"},
        }),
        Operation::PageTree => schema_ref("TreeNode"),
        Operation::ReadPage => schema_ref("Page"),
        Operation::ListChildren => json!({"type": "array", "items": schema_ref("PageRef")}),
        Operation::GetParent => schema_ref("ParentPage"),
        Operation::CreatePage => schema_ref("CreatedPage"),
        Operation::UpdatePage => schema_ref("UpdatedPage"),
        Operation::RenamePage => schema_ref("RenamedPage"),
        Operation::MovePage => schema_ref("MovedPage"),
        Operation::DeletePage => schema_ref("DeletedPage"),
        Operation::SearchPages => schema_ref("SearchResults"),
        Operation::PageOutline => schema_ref("Outline"),
        Operation::Health => schema_ref("Health"),
        Operation::OpenApi | Operation::Mcp => return None,
    };
    Some(schema)
}

/// Every envelope `code`.
const ERROR_CODES: [&str; 8] = [
    "INVALID_INPUT",
    "UNAUTHORIZED",
    "NOT_FOUND",
    "VERSION_CONFLICT",
    "INVALID_OPERATION",
    "RATE_LIMITED",
    "UPSTREAM_ERROR",
    "INTERNAL_ERROR",
];

fn success_envelope(data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["success", "code", "message", "data", "timestamp"],
        "properties": {
            "success": {"type": "boolean", "description": "Always true on success."},
            "code": {"type": "string", "enum": ["OK"]},
            "message": {"type": "string", "description": "A short human-readable summary."},
            "data": data,
            "timestamp": {"type": "string", "format": "date-time"},
        },
    })
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": json_content(schema_ref("ErrorEnvelope"))})
}

fn responses(operation: Operation) -> Value {
    let mut responses = Map::new();
    match data_schema(operation) {
        Some(data) => {
            responses.insert(
                "200".into(),
                json!({"description": "OK: the result is in `data`.", "content": json_content(success_envelope(data))}),
            );
        }
        None => {
            responses.insert(
                "200".into(),
                json!({
                    "description": "The OpenAPI document itself, not wrapped in the envelope.",
                    "headers": {"ETag": {"description": "Send it back in `If-None-Match` to get 304 while the document is unchanged.", "schema": {"type": "string"}}},
                    "content": json_content(json!({
                        "type": "object",
                        "required": ["openapi", "info", "paths"],
                        "properties": {
                            "openapi": {"type": "string"},
                            "info": {"type": "object", "properties": {"title": {"type": "string"}}},
                            "paths": {"type": "object", "properties": {}},
                        },
                    })),
                }),
            );
            responses.insert(
                "304".into(),
                json!({"description": "The document is unchanged since the `ETag` sent in `If-None-Match`."}),
            );
        }
    }
    for (status, description) in error_statuses(operation) {
        let mut response = error_response(description);
        if status == "429" {
            response["headers"] = json!({"Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0},
            }});
        }
        responses.insert(status.into(), response);
    }
    responses.insert(
        "default".into(),
        error_response("An error: `success` is false and `data` is null; `code` and `message` say what went wrong."),
    );
    Value::Object(responses)
}

/// The error statuses `operation` may answer, each with what to do about it.
fn error_statuses(operation: Operation) -> Vec<(&'static str, &'static str)> {
    if !operation.requires_auth() {
        return vec![("404", "NOT_FOUND: there is no such endpoint.")];
    }
    let mut statuses = vec![
        (
            "400",
            "INVALID_INPUT: a parameter or field is missing or malformed (bodies: the line and column of bad XHTML). Fix it as the message says.",
        ),
        (
            "401",
            "UNAUTHORIZED: the Bearer secret is missing or wrong. Do not retry: the Action's API key must be fixed.",
        ),
        (
            "403",
            "UNAUTHORIZED: this operation is not enabled for this endpoint. Do not retry.",
        ),
        (
            "404",
            if matches!(operation, Operation::ReadPage | Operation::UpdatePage) {
                "NOT_FOUND: no such page in the sandbox (find the exact title with listSubpages, getPageTree or searchPages), or no such section (the message lists the page's sections)."
            } else {
                "NOT_FOUND: no such page in the sandbox. Find the exact title with listSubpages, getPageTree or searchPages."
            },
        ),
    ];
    let writes = matches!(operation.access(), Access::Create | Access::Modify);
    match operation {
        Operation::CreatePage => statuses.push(("409", "INVALID_OPERATION: a page with this title already exists in the space. Choose another title.")),
        Operation::RenamePage => statuses.push(("409", "INVALID_OPERATION: the new title is already taken in the space. Choose another title.")),
        Operation::UpdatePage => statuses.push(("409", "VERSION_CONFLICT: the page changed since you read it; the message gives the current version. Read it again, merge your change, and retry.")),
        _ => {}
    }
    if writes {
        statuses.push(("413", "INVALID_INPUT: the request body is too large."));
        statuses.push((
            "415",
            "INVALID_INPUT: send the body as JSON with `Content-Type: application/json`.",
        ));
    }
    if matches!(
        operation,
        Operation::RenamePage | Operation::MovePage | Operation::DeletePage
    ) {
        statuses.push(("422", "INVALID_OPERATION: not allowed on the sandbox root page, or a move under the page itself or one of its descendants."));
    }
    statuses.extend([
        (
            "429",
            "RATE_LIMITED: too many requests. Wait the seconds in `Retry-After`, then retry.",
        ),
        (
            "500",
            "INTERNAL_ERROR: a gateway bug. Tell the user instead of retrying.",
        ),
        (
            "502",
            "UPSTREAM_ERROR: Confluence failed. Retry once a little later.",
        ),
        (
            "503",
            "UPSTREAM_ERROR: Confluence is unavailable. Retry once a little later.",
        ),
    ]);
    statuses.push(if matches!(operation.access(), Access::Create | Access::Modify) {
        (
            "504",
            "UPSTREAM_ERROR: Confluence did not confirm the write in time, and it may have been \
             applied. Read the page before retrying, or the write could happen twice.",
        )
    } else {
        (
            "504",
            "UPSTREAM_ERROR: Confluence did not answer in time. Retry once a little later.",
        )
    });
    statuses
}

fn component_schemas() -> Value {
    let title = json!({"type": "string", "description": "The page title."});
    let path = json!({
        "type": "array",
        "items": {"type": "string"},
        "description": "The breadcrumb: titles from the sandbox root's title down to this page's own.",
    });
    let title_path = json!({
        "type": "string",
        "description": "This page as `{title}` for the next call: the titles below the root joined by `/` (a `/` inside a title as `%2F`, `%` as `%25`); the root's own title for the root.",
    });
    let version = json!({"type": "integer", "description": "The page version; pass it as `expectedVersion` when updating."});
    let section = json!({
        "type": "object",
        "description": "The section: its heading and where it sits.",
        "required": ["level", "text", "anchor", "headingPath", "section"],
        "properties": {
            "level": {"type": "integer", "minimum": 1, "maximum": 6, "description": "1 for `<h1>` to 6 for `<h6>`."},
            "text": {"type": "string", "description": "The heading's text."},
            "anchor": {"type": "string", "description": "The anchor for links to the heading: `[[Page Title#anchor|label]]`."},
            "headingPath": {"type": "string", "description": "The texts of the enclosing headings and this one, `/`-separated."},
            "section": {"type": "string", "description": "The value to pass as `section` to read or update this section."},
        },
    });
    json!({
        "ErrorEnvelope": {
            "type": "object",
            "description": "A failed request: `code` says what kind of failure, `message` what to fix.",
            "required": ["success", "code", "message", "timestamp"],
            "properties": {
                "success": {"type": "boolean", "description": "Always false on errors."},
                "code": {"type": "string", "enum": ERROR_CODES},
                "message": {"type": "string", "description": "What went wrong, safe to show the user."},
                "data": {"description": "Always null on errors."},
                "timestamp": {"type": "string", "format": "date-time"},
            },
        },
        "PageRef": {
            "type": "object",
            "required": ["title", "path", "titlePath"],
            "properties": {"title": title, "path": path, "titlePath": title_path},
        },
        "ParentPage": {
            "type": "object",
            "required": ["title", "path", "titlePath", "parentPath", "parentTitlePath"],
            "properties": {
                "title": {"type": "string", "description": "The parent's title."},
                "path": {"type": "array", "items": {"type": "string"}, "description": "The breadcrumb of the page asked about (not of the parent), from the sandbox root's title down."},
                "titlePath": {"type": "string", "description": "The page asked about as `{title}`."},
                "parentPath": {"type": "array", "items": {"type": "string"}, "description": "The parent's breadcrumb, from the sandbox root's title down."},
                "parentTitlePath": {"type": "string", "description": "The parent as `{title}` for the next call."},
            },
        },
        "TreeNode": {
            "type": "object",
            "required": ["title", "path", "titlePath", "children"],
            "properties": {
                "title": title,
                "path": path,
                "titlePath": title_path,
                "children": {
                    "type": "array",
                    "description": "Child nodes; empty at the depth limit even when the page has children.",
                    "items": schema_ref("TreeNode"),
                },
            },
        },
        "Page": {
            "type": "object",
            "required": ["title", "path", "titlePath", "version", "format", "body", "bodyLength", "offset", "truncated"],
            "properties": {
                "title": title,
                "path": path,
                "titlePath": title_path,
                "version": version,
                "format": {"type": "string", "enum": ["storage", "markdown"], "description": "The format of `body`."},
                "body": {"type": "string", "description": "The body, or the slice starting at `offset`."},
                "bodyLength": {"type": "integer", "description": "The length of the whole body, in characters."},
                "offset": {"type": "integer", "description": "Where `body` starts in the whole body, in characters."},
                "truncated": {"type": "boolean", "description": "True when more of the body follows: read again with a larger `offset`."},
                "section": section.clone(),
            },
        },
        "SearchResults": {
            "type": "object",
            "required": ["hits", "offset"],
            "properties": {
                "hits": {"type": "array", "items": schema_ref("SearchHit")},
                "offset": {"type": "integer", "description": "Where this window of hits starts."},
                "nextOffset": {"type": "integer", "description": "Present when more hits may follow: pass it as `offset`."},
            },
        },
        "SearchHit": {
            "type": "object",
            "required": ["title", "path", "titlePath", "excerpt", "version"],
            "properties": {
                "title": title,
                "path": path,
                "titlePath": title_path,
                "excerpt": {"type": "string", "description": "Plain text around the match; matched words in **bold**."},
                "version": version,
                "lastModified": {"type": "string", "format": "date-time", "description": "When the page last changed."},
            },
        },
        "Outline": {
            "type": "object",
            "required": ["title", "path", "titlePath", "version", "bodyLength", "headings", "offset", "headingCount", "truncated"],
            "properties": {
                "title": title,
                "path": path,
                "titlePath": title_path,
                "version": version,
                "bodyLength": {"type": "integer", "description": "The characters of the whole body (storage format)."},
                "offset": {"type": "integer", "description": "Where `headings` starts among all the headings."},
                "headingCount": {"type": "integer", "description": "How many headings the page has."},
                "truncated": {"type": "boolean", "description": "True when more headings follow: call again with a larger `offset`."},
                "headings": {
                    "type": "array",
                    "description": "The headings in page order.",
                    "items": {
                        "type": "object",
                        "required": ["level", "text", "anchor", "headingPath", "section", "chars"],
                        "properties": {
                            "level": {"type": "integer", "minimum": 1, "maximum": 6},
                            "text": {"type": "string"},
                            "anchor": {"type": "string", "description": "For links: `[[Page Title#anchor|label]]`."},
                            "headingPath": {"type": "string", "description": "Enclosing headings and this one, `/`-separated."},
                            "section": {"type": "string", "description": "The value to pass as `section`."},
                            "chars": {"type": "integer", "description": "The characters of the section (storage format), heading included."},
                        },
                    },
                },
            },
        },
        "CreatedPage": {
            "type": "object",
            "required": ["id", "title", "version", "path", "titlePath"],
            "properties": {
                "id": {"type": "string", "description": "The Confluence page id."},
                "title": title,
                "version": version,
                "path": path,
                "titlePath": title_path,
            },
        },
        "UpdatedPage": {
            "type": "object",
            "required": ["title", "version", "path", "titlePath"],
            "properties": {"title": title, "version": version, "path": path, "titlePath": title_path, "section": section},
        },
        "RenamedPage": {
            "type": "object",
            "required": ["oldTitle", "newTitle", "version"],
            "properties": {
                "oldTitle": {"type": "string"},
                "newTitle": {"type": "string"},
                "version": version,
            },
        },
        "MovedPage": {
            "type": "object",
            "required": ["title", "oldParentTitle", "newParentTitle"],
            "properties": {
                "title": title,
                "oldParentTitle": {"type": "string"},
                "newParentTitle": {"type": "string"},
            },
        },
        "DeletedPage": {
            "type": "object",
            "required": ["deletedTitle"],
            "properties": {"deletedTitle": {"type": "string"}},
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string", "enum": ["ok"]}},
        },
    })
}

/// The summary (a short title) of `operation`, as in its OpenAPI operation object.
pub fn operation_summary(operation: Operation) -> &'static str {
    operation_text(operation).summary
}

/// The description of `operation`, as in its OpenAPI operation object.
pub fn operation_description(operation: Operation) -> &'static str {
    operation_text(operation).description
}

/// The title argument of an MCP tool: the same title path as `{title}`, written into a JSON string
/// rather than a URL path.
const TITLE_ARGUMENT: &str = "The page title, or a title path from the sandbox root down with `/` \
    between titles (`Guides/Install`). A `/` that is part of one title is written `%2F` \
    (`CI%2FCD`) and a `%` in a title `%25`. Take titles from listSubpages or getPageTree.";

/// The key under which an MCP tool's `structuredContent` carries data that is not a JSON object
/// (MCP requires an object): `{"items": [...]}`.
pub const STRUCTURED_ARRAY_KEY: &str = "items";

/// The names of the inputs `operation` takes as parameters (path and query), in document order.
pub fn parameter_names(operation: Operation) -> Vec<String> {
    parameters(operation)
        .iter()
        .filter_map(|parameter| parameter["name"].as_str().map(str::to_owned))
        .collect()
}

/// The MCP tool input schema of `operation`: one object whose properties are the operation's
/// parameters (with their descriptions) and the fields of its JSON body, all from the same
/// definitions as the OpenAPI document.
pub fn tool_input_schema(operation: Operation) -> Value {
    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    for parameter in parameters(operation) {
        let Some(name) = parameter["name"].as_str() else {
            continue;
        };
        let mut schema = parameter["schema"].clone();
        let description = if parameter["in"] == "path" {
            TITLE_ARGUMENT
        } else {
            parameter["description"].as_str().unwrap_or_default()
        };
        if let Value::Object(schema) = &mut schema {
            schema.insert("description".into(), description.into());
        }
        if parameter["required"] == true {
            required.push(name.into());
        }
        properties.insert(name.to_owned(), schema);
    }
    if let Some(body) = request_body(operation) {
        let schema = &body["content"]["application/json"]["schema"];
        if let Some(fields) = schema["properties"].as_object() {
            properties.extend(fields.clone());
        }
        if let Some(fields) = schema["required"].as_array() {
            required.extend(fields.iter().cloned());
        }
    }
    let mut schema = Map::new();
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    schema.insert("additionalProperties".into(), false.into());
    Value::Object(schema)
}

/// The MCP tool output schema of `operation`: its `data` schema made self-contained (component
/// references become `$defs`), and wrapped as `{"items": …}` (see [`STRUCTURED_ARRAY_KEY`]) when
/// the data is not an object. `None` for operations without an envelope's `data`.
pub fn tool_output_schema(operation: Operation) -> Option<Value> {
    let components = component_schemas();
    let mut wanted: Vec<String> = Vec::new();
    let mut data = data_schema(operation)?;
    // A top-level reference is inlined: an MCP output schema must itself say `type: object`.
    if let Some(name) = referenced_component(&data) {
        data = components[name.as_str()].clone();
    }
    to_defs(&mut data, &mut wanted);
    let mut defs = Map::new();
    while let Some(name) = wanted.pop() {
        if defs.contains_key(&name) {
            continue;
        }
        let mut schema = components[name.as_str()].clone();
        to_defs(&mut schema, &mut wanted);
        defs.insert(name, schema);
    }
    let mut schema = if data["type"] == "object" {
        data
    } else {
        json!({
            "type": "object",
            "required": [STRUCTURED_ARRAY_KEY],
            "properties": {STRUCTURED_ARRAY_KEY: data},
        })
    };
    if !defs.is_empty() {
        schema["$defs"] = Value::Object(defs);
    }
    Some(schema)
}

/// The component name of a `{"$ref": "#/components/schemas/<name>"}` schema.
fn referenced_component(schema: &Value) -> Option<String> {
    schema["$ref"]
        .as_str()?
        .strip_prefix("#/components/schemas/")
        .map(str::to_owned)
}

/// Rewrites every component reference inside `schema` to `#/$defs/<name>`, noting the names.
fn to_defs(schema: &mut Value, wanted: &mut Vec<String>) {
    match schema {
        Value::Object(object) => {
            if let Some(name) = object
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|reference| reference.strip_prefix("#/components/schemas/"))
                .map(str::to_owned)
            {
                object.insert("$ref".into(), format!("#/$defs/{name}").into());
                wanted.push(name);
            }
            for value in object.values_mut() {
                to_defs(value, wanted);
            }
        }
        Value::Array(items) => {
            for item in items {
                to_defs(item, wanted);
            }
        }
        _ => {}
    }
}

/// A document rendered to bytes, with its entity tag.
#[derive(Debug)]
pub struct RenderedDocument {
    /// The JSON text.
    pub body: Bytes,
    /// The strong `ETag`, quoted.
    pub etag: String,
}

impl RenderedDocument {
    /// Renders `document`.
    pub fn new(document: &Value) -> RenderedDocument {
        let body = serde_json::to_vec(document)
            .expect("a Value with string keys always serialises to JSON");
        let digest = Sha256::digest(&body);
        let hex: String = digest[..16]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        RenderedDocument {
            body: Bytes::from(body),
            etag: format!("\"{hex}\""),
        }
    }
}

/// Rendered documents keyed by server URL. One lives in each endpoint, which is rebuilt on every
/// config change, so an entry is valid for exactly one config version.
#[derive(Debug, Default)]
pub struct DocumentCache {
    entries: Mutex<Vec<(String, Arc<RenderedDocument>)>>,
}

impl DocumentCache {
    /// An empty cache (usable in a `static`).
    pub const fn new() -> DocumentCache {
        DocumentCache {
            entries: Mutex::new(Vec::new()),
        }
    }

    /// The document for `server_url`, rendering it with `build` on first use.
    pub fn get_or_render(
        &self,
        server_url: &str,
        build: impl FnOnce() -> Value,
    ) -> Arc<RenderedDocument> {
        if let Some(found) = self.find(server_url) {
            return found;
        }
        let rendered = Arc::new(RenderedDocument::new(&build()));
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, found)) = entries.iter().find(|(url, _)| url == server_url) {
            return Arc::clone(found);
        }
        if entries.len() >= MAX_CACHED_SERVERS {
            entries.remove(0);
        }
        entries.push((server_url.to_owned(), Arc::clone(&rendered)));
        rendered
    }

    fn find(&self, server_url: &str) -> Option<Arc<RenderedDocument>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .iter()
            .find(|(url, _)| url == server_url)
            .map(|(_, rendered)| Arc::clone(rendered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_renders_once_per_server_url_and_stays_bounded() {
        let cache = DocumentCache::default();
        let mut builds = 0;
        for _ in 0..3 {
            cache.get_or_render("https://a/endpoint/x", || {
                builds += 1;
                json!({"n": 1})
            });
        }
        assert_eq!(builds, 1);
        for index in 0..(MAX_CACHED_SERVERS * 2) {
            cache.get_or_render(&format!("https://h{index}"), || json!({}));
        }
        assert_eq!(
            cache
                .entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len(),
            MAX_CACHED_SERVERS
        );
    }

    #[test]
    fn template_lists_every_route_and_a_placeholder_server() {
        let document = template_document("https://gpt.example.com");
        assert_eq!(
            document["servers"],
            json!([{"url": "https://gpt.example.com/endpoint/<endpoint_name>"}])
        );
        let mut listed = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                listed.push(format!(
                    "{} {path} {}",
                    method.to_ascii_uppercase(),
                    operation["operationId"].as_str().expect("operationId")
                ));
            }
        }
        listed.sort();
        let mut routes: Vec<String> = crate::routes::ROUTES
            .iter()
            .filter(|route| route.operation.in_openapi())
            .map(|route| {
                format!(
                    "{} {} {}",
                    route.method,
                    route.template,
                    route.operation.operation_id()
                )
            })
            .collect();
        routes.sort();
        assert_eq!(listed, routes);
    }
}
