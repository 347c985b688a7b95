//! The request surfaces of the page operations, REST (query parameters and JSON bodies) and MCP
//! (a tool call's JSON arguments), parsed once into a typed [`Command`] of the page domain by the
//! same code. Everything a client can get wrong is answered here with a 4xx naming the problem.

use http::HeaderMap;
use http::header::CONTENT_TYPE;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::http::error::ApiError;
use crate::http::router::{self, PageRoute};
use crate::markdown::BodyFormat;
use crate::pages::{
    Command, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, READ_MAX_CHARS, SEARCH_DEFAULT_LIMIT,
    SEARCH_MAX_LIMIT, TREE_DEFAULT_DEPTH, TREE_MAX_DEPTH,
};
use crate::routes::Operation;
use crate::titles::{Title, TitlePath};

/// A request's decoded query parameters.
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Decodes a raw query string (`a=1&b=x%20y`).
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            raw.map(|query| {
                form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default(),
        )
    }

    /// The first value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A request body as received, with the headers that say what it is.
pub struct RequestBody<'a> {
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The body bytes (empty for reads).
    pub bytes: &'a [u8],
}

impl RequestBody<'_> {
    /// Parses the body as JSON into `T`, with 415 for a non-JSON content type and 400 naming the
    /// problem for bad JSON.
    fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        check_json_content_type(self.headers)?;
        if self.bytes.is_empty() {
            return Err(ApiError::invalid_input(
                "request body is empty; send a JSON object",
            ));
        }
        serde_json::from_slice(self.bytes)
            .map_err(|error| ApiError::invalid_input(format!("invalid JSON body: {error}")))
    }
}

/// 415 unless the request declares no content type or a JSON one (`application/json`, `…+json`).
pub fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(content_type) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let is_json = content_type.to_str().is_ok_and(|value| {
        let mime = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        mime == "application/json" || mime.ends_with("+json")
    });
    if is_json {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type())
    }
}

/// An optional whole number within `min..=max`; the one range check of every numeric input.
fn in_range(
    name: &str,
    value: Option<u64>,
    min: usize,
    max: usize,
) -> Result<Option<usize>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    match usize::try_from(value) {
        Ok(value) if (min..=max).contains(&value) => Ok(Some(value)),
        _ => Err(out_of_range(name, min, max)),
    }
}

fn out_of_range(name: &str, min: usize, max: usize) -> ApiError {
    if max == usize::MAX {
        ApiError::invalid_input(format!("{name} must be a whole number of at least {min}"))
    } else {
        ApiError::invalid_input(format!("{name} must be a whole number from {min} to {max}"))
    }
}

/// Where a page command's inputs come from: a REST request's query string and JSON body, or an MCP
/// tool call's arguments. The command is built from either by the same code, so both surfaces
/// accept and refuse the same values.
trait Inputs {
    /// The text input `name`, if given.
    fn text(&self, name: &str) -> Result<Option<&str>, ApiError>;
    /// The whole-number input `name` within `min..=max`, if given.
    fn number(&self, name: &str, min: usize, max: usize) -> Result<Option<usize>, ApiError>;
    /// The operation's JSON body fields as `T`.
    fn body<T: DeserializeOwned>(&self) -> Result<T, ApiError>;
}

/// A REST request's inputs.
struct RestInputs<'a> {
    query: &'a Query,
    body: &'a RequestBody<'a>,
}

impl Inputs for RestInputs<'_> {
    fn text(&self, name: &str) -> Result<Option<&str>, ApiError> {
        Ok(self.query.get(name))
    }

    fn number(&self, name: &str, min: usize, max: usize) -> Result<Option<usize>, ApiError> {
        let Some(raw) = self.query.get(name) else {
            return Ok(None);
        };
        let value = raw
            .trim()
            .parse::<u64>()
            .map_err(|_| out_of_range(name, min, max))?;
        in_range(name, Some(value), min, max)
    }

    fn body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        self.body.json()
    }
}

/// An MCP tool call's arguments: one JSON object holding the title, the query parameters and the
/// body fields of the operation.
struct ArgumentInputs<'a> {
    arguments: &'a Map<String, Value>,
    /// Whether `title` names the page the route acts on (REST's path), rather than a body field.
    title_in_route: bool,
}

impl Inputs for ArgumentInputs<'_> {
    fn text(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.arguments.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(ApiError::invalid_input(format!("{name} must be a string"))),
        }
    }

    fn number(&self, name: &str, min: usize, max: usize) -> Result<Option<usize>, ApiError> {
        match self.arguments.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => match number.as_u64() {
                Some(value) => in_range(name, Some(value), min, max),
                None => Err(out_of_range(name, min, max)),
            },
            // A number sent as a string, as some clients do, is read like a query parameter.
            Some(Value::String(text)) => match text.trim().parse::<u64>() {
                Ok(value) => in_range(name, Some(value), min, max),
                Err(_) => Err(out_of_range(name, min, max)),
            },
            Some(_) => Err(out_of_range(name, min, max)),
        }
    }

    fn body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        // The page's title travels beside the body fields here; on REST it is in the path.
        let mut fields = self.arguments.clone();
        if self.title_in_route {
            fields.remove("title");
        }
        serde_json::from_value(Value::Object(fields))
            .map_err(|error| ApiError::invalid_input(format!("invalid arguments: {error}")))
    }
}

/// Decodes a title path given as a tool argument: `/` separates titles, `%2F` is a slash inside
/// a title and `%25` a percent sign; any other `%` is literal.
fn argument_title_path(text: &str) -> Result<TitlePath, ApiError> {
    let titles = text
        .split('/')
        .map(|segment| {
            let mut title = String::with_capacity(segment.len());
            let mut rest = segment;
            while let Some(at) = rest.find('%') {
                title.push_str(&rest[..at]);
                let escape = rest.get(at..at + 3).unwrap_or("");
                if escape.eq_ignore_ascii_case("%2F") {
                    title.push('/');
                    rest = &rest[at + 3..];
                } else if escape == "%25" {
                    title.push('%');
                    rest = &rest[at + 3..];
                } else {
                    title.push('%');
                    rest = &rest[at + 1..];
                }
            }
            title.push_str(rest);
            title
        })
        .collect();
    Ok(TitlePath::from_titles(titles)?)
}

/// Builds the page command of a tool call of `operation` from its JSON `arguments`, through the
/// same parsing and validation as the REST route. Arguments the operation does not take are
/// refused by name.
pub fn tool_command(
    operation: Operation,
    arguments: &Map<String, Value>,
) -> Result<Command, ApiError> {
    let mut title_in_route = false;
    let title = || {
        title_in_route = true;
        match arguments.get("title") {
            Some(Value::String(text)) => argument_title_path(text),
            None | Some(Value::Null) => Err(ApiError::invalid_input("missing argument `title`")),
            Some(_) => Err(ApiError::invalid_input("title must be a string")),
        }
    };
    let Some(route) = router::page_route(operation, title)? else {
        return Err(ApiError::not_found());
    };
    if !route_has_body(&route) {
        let known = crate::openapi::parameter_names(operation);
        if let Some(unknown) = arguments.keys().find(|key| !known.contains(key)) {
            return Err(ApiError::invalid_input(format!(
                "unknown argument `{unknown}`"
            )));
        }
    }
    command(
        route,
        &ArgumentInputs {
            arguments,
            title_in_route,
        },
    )
}

fn route_has_body(route: &PageRoute) -> bool {
    matches!(
        route,
        PageRoute::Create | PageRoute::Update(_) | PageRoute::Rename | PageRoute::Move(_)
    )
}

/// `POST /pages` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    title: String,
    body: String,
    #[serde(default, alias = "parent_title")]
    #[serde(rename = "parentTitle")]
    parent_title: Option<String>,
    #[serde(default)]
    format: Option<FormatField>,
}

/// `PUT /pages/{title}` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    body: String,
    #[serde(default, rename = "expectedVersion", alias = "expected_version")]
    expected_version: Option<u64>,
    #[serde(default)]
    format: Option<FormatField>,
}

/// `POST /pages/rename` body; snake_case as the original, camelCase accepted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    #[serde(alias = "oldTitle")]
    old_title: String,
    #[serde(alias = "newTitle")]
    new_title: String,
}

/// `POST /pages/{title}/move` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    #[serde(rename = "newParentTitle", alias = "new_parent_title")]
    new_parent_title: String,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum FormatField {
    Markdown,
    Storage,
}

impl From<FormatField> for BodyFormat {
    fn from(field: FormatField) -> BodyFormat {
        match field {
            FormatField::Markdown => BodyFormat::Markdown,
            FormatField::Storage => BodyFormat::Storage,
        }
    }
}

/// The longest search query accepted, in characters.
const MAX_QUERY_CHARS: usize = 500;

/// The longest `section` name accepted, in characters (a path of a few headings).
const MAX_SECTION_CHARS: usize = 2000;

/// The `section` parameter: `None` when absent, a 400 when blank or too long.
fn section_name(inputs: &impl Inputs) -> Result<Option<String>, ApiError> {
    match inputs.text("section")? {
        None => Ok(None),
        Some(name) if name.trim().is_empty() => Err(ApiError::invalid_input(
            "section must name a heading (its text, or a path such as `Install/Linux`)",
        )),
        Some(name) if name.chars().count() > MAX_SECTION_CHARS => Err(ApiError::invalid_input(
            format!("section is longer than {MAX_SECTION_CHARS} characters"),
        )),
        Some(name) => Ok(Some(name.trim().to_owned())),
    }
}

/// A title path given in a query or body, where blank means "none" (the root).
fn optional_path(text: Option<&str>) -> Result<Option<TitlePath>, ApiError> {
    match text {
        Some(text) if !text.trim().is_empty() => Ok(Some(TitlePath::parse(text)?)),
        _ => Ok(None),
    }
}

/// Builds the page command of `route` from the request's query and body.
pub fn page_command(
    route: PageRoute,
    query: &Query,
    body: &RequestBody<'_>,
) -> Result<Command, ApiError> {
    command(route, &RestInputs { query, body })
}

/// Builds the page command of `route` from `inputs`.
fn command(route: PageRoute, inputs: &impl Inputs) -> Result<Command, ApiError> {
    let query = inputs;
    Ok(match route {
        PageRoute::List => Command::List {
            offset: query.number("offset", 0, usize::MAX)?.unwrap_or(0),
            limit: query
                .number("limit", 1, LIST_MAX_LIMIT)?
                .unwrap_or(LIST_DEFAULT_LIMIT),
        },
        PageRoute::Tree => Command::Tree {
            depth: query
                .number("depth", 0, TREE_MAX_DEPTH as usize)?
                .map_or(TREE_DEFAULT_DEPTH, |depth| depth as u32),
            start: optional_path(query.text("startTitle")?)?,
        },
        PageRoute::Read(title) => {
            let format = match query.text("format")?.unwrap_or("storage") {
                "storage" => BodyFormat::Storage,
                "markdown" => BodyFormat::Markdown,
                other => {
                    return Err(ApiError::invalid_input(format!(
                        "format must be storage or markdown, not `{other}`"
                    )));
                }
            };
            let offset = query.number("offset", 0, usize::MAX)?.unwrap_or(0);
            let max_chars = query
                .number("maxChars", 1, READ_MAX_CHARS)?
                .unwrap_or(READ_MAX_CHARS);
            match section_name(query)? {
                Some(section) => Command::ReadSection {
                    title,
                    section,
                    format,
                    offset,
                    max_chars,
                },
                None => Command::Read {
                    title,
                    format,
                    offset,
                    max_chars,
                },
            }
        }
        PageRoute::Children(title) => Command::Children { title },
        PageRoute::Parent(title) => Command::Parent { title },
        PageRoute::Create => {
            let parsed: CreateBody = inputs.body()?;
            Command::Create {
                title: Title::parse(parsed.title)?,
                parent: optional_path(parsed.parent_title.as_deref())?,
                body: parsed.body,
                format: parsed.format.map(BodyFormat::from),
            }
        }
        PageRoute::Update(title) => {
            let section = section_name(query)?;
            let parsed: UpdateBody = inputs.body()?;
            match section {
                Some(section) => Command::UpdateSection {
                    title,
                    section,
                    body: parsed.body,
                    expected_version: parsed.expected_version,
                    format: parsed.format.map(BodyFormat::from),
                },
                None => Command::Update {
                    title,
                    body: parsed.body,
                    expected_version: parsed.expected_version,
                    format: parsed.format.map(BodyFormat::from),
                },
            }
        }
        PageRoute::Rename => {
            let parsed: RenameBody = inputs.body()?;
            let new_title = Title::parse(parsed.new_title)?;
            Command::Rename {
                page: TitlePath::parse(&parsed.old_title)?,
                new_title,
            }
        }
        PageRoute::Move(title) => {
            let parsed: MoveBody = inputs.body()?;
            Command::Move {
                title,
                new_parent: TitlePath::parse(&parsed.new_parent_title)?,
            }
        }
        PageRoute::Delete(title) => Command::Delete { title },
        PageRoute::Search => {
            let text = query.text("q")?.unwrap_or("");
            if text.trim().is_empty() {
                return Err(ApiError::invalid_input(
                    "q is required: the words to search for",
                ));
            }
            if text.chars().count() > MAX_QUERY_CHARS {
                return Err(ApiError::invalid_input(format!(
                    "q is longer than {MAX_QUERY_CHARS} characters"
                )));
            }
            Command::Search {
                query: text.to_owned(),
                offset: query.number("offset", 0, usize::MAX)?.unwrap_or(0),
                limit: query
                    .number("limit", 1, SEARCH_MAX_LIMIT)?
                    .unwrap_or(SEARCH_DEFAULT_LIMIT),
            }
        }
        PageRoute::Outline(title) => Command::Outline {
            title,
            offset: query.number("offset", 0, usize::MAX)?.unwrap_or(0),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds the command of a tool call and renders it, or its error message.
    fn check(operation: Operation, arguments: Value, expected: &str) {
        let Value::Object(arguments) = arguments else {
            panic!("arguments must be an object");
        };
        let actual = match tool_command(operation, &arguments) {
            Ok(command) => format!("{command:?}"),
            Err(error) => error.message,
        };
        assert!(
            actual.contains(expected),
            "{operation:?} {arguments:?}: {actual}"
        );
    }

    #[test]
    fn tool_arguments_become_the_commands_of_the_rest_routes() {
        use serde_json::json;
        check(
            Operation::ListPages,
            json!({"limit": 5}),
            "List { offset: 0, limit: 5 }",
        );
        check(
            Operation::ListPages,
            json!({"limit": "5", "offset": 2}),
            "List { offset: 2, limit: 5 }",
        );
        check(
            Operation::ListPages,
            json!({"limit": 0}),
            "limit must be a whole number from 1 to 2000",
        );
        check(
            Operation::ReadPage,
            json!({"title": "CI%2FCD/100%25 done/50% off"}),
            r#"Title("CI/CD"), Title("100% done"), Title("50% off")"#,
        );
        check(
            Operation::ReadPage,
            json!({"title": "A", "format": "html"}),
            "format must be storage or markdown, not `html`",
        );
        check(
            Operation::CreatePage,
            json!({"title": "New", "body": "text", "parentTitle": "A/B"}),
            r#"Create { title: Title("New"), body: "text""#,
        );
        check(
            Operation::UpdatePage,
            json!({"title": "A", "body": "x", "expectedVersion": 3}),
            "expected_version: Some(3)",
        );
        check(
            Operation::RenamePage,
            json!({"oldTitle": "A", "newTitle": "B"}),
            r#"new_title: Title("B")"#,
        );
        check(
            Operation::MovePage,
            json!({"title": "A"}),
            "missing field `newParentTitle`",
        );
        check(Operation::Health, json!({}), "not found");
    }
}
