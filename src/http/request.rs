//! The REST request surface of the page operations: query parameters and JSON bodies, parsed once
//! into a typed [`Command`] of the page domain. Everything a client can get wrong is answered here
//! with a 4xx naming the problem.

use http::HeaderMap;
use http::header::CONTENT_TYPE;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::http::error::ApiError;
use crate::http::router::PageRoute;
use crate::markdown::BodyFormat;
use crate::pages::{
    Command, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, READ_MAX_CHARS, SEARCH_DEFAULT_LIMIT,
    SEARCH_MAX_LIMIT, TREE_DEFAULT_DEPTH, TREE_MAX_DEPTH,
};
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

    /// An optional whole-number parameter within `min..=max`.
    fn number(&self, name: &str, min: usize, max: usize) -> Result<Option<usize>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        match raw.trim().parse::<usize>() {
            Ok(value) if (min..=max).contains(&value) => Ok(Some(value)),
            _ if max == usize::MAX => Err(ApiError::invalid_input(format!(
                "{name} must be a whole number of at least {min}"
            ))),
            _ => Err(ApiError::invalid_input(format!(
                "{name} must be a whole number from {min} to {max}"
            ))),
        }
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
        if let Some(content_type) = self.headers.get(CONTENT_TYPE) {
            let is_json = content_type.to_str().is_ok_and(|value| {
                let mime = value
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            });
            if !is_json {
                return Err(ApiError::unsupported_media_type());
            }
        }
        if self.bytes.is_empty() {
            return Err(ApiError::invalid_input(
                "request body is empty; send a JSON object",
            ));
        }
        serde_json::from_slice(self.bytes)
            .map_err(|error| ApiError::invalid_input(format!("invalid JSON body: {error}")))
    }
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
fn section_name(query: &Query) -> Result<Option<String>, ApiError> {
    match query.get("section") {
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
            start: optional_path(query.get("startTitle"))?,
        },
        PageRoute::Read(title) => {
            let format = match query.get("format").unwrap_or("storage") {
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
            let parsed: CreateBody = body.json()?;
            Command::Create {
                title: Title::parse(parsed.title)?,
                parent: optional_path(parsed.parent_title.as_deref())?,
                body: parsed.body,
                format: parsed.format.map(BodyFormat::from),
            }
        }
        PageRoute::Update(title) => {
            let section = section_name(query)?;
            let parsed: UpdateBody = body.json()?;
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
            let parsed: RenameBody = body.json()?;
            let new_title = Title::parse(parsed.new_title)?;
            Command::Rename {
                page: TitlePath::parse(&parsed.old_title)?,
                new_title,
            }
        }
        PageRoute::Move(title) => {
            let parsed: MoveBody = body.json()?;
            Command::Move {
                title,
                new_parent: TitlePath::parse(&parsed.new_parent_title)?,
            }
        }
        PageRoute::Delete(title) => Command::Delete { title },
        PageRoute::Search => {
            let text = query.get("q").unwrap_or("");
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
