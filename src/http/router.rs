//! Matches a request's method and raw path against the route table. Titles are decoded here, once:
//! the raw path is split on `/` before percent-decoding, so `%2F` is a slash inside a title.

use http::Method;

use crate::error::ApiError;
use crate::routes::{Operation, ROUTES};

/// Where a request is going.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// `GET /health` at the top level.
    Health,
    /// `GET /openapi.json` at the top level: the tenant-free template.
    OpenApiTemplate,
    /// Something under `/endpoint/<name>`; `rest` is the raw path after the name (may be empty).
    Endpoint {
        /// The endpoint name, raw.
        name: &'a str,
        /// The raw remainder of the path, starting with `/` unless empty.
        rest: &'a str,
    },
    /// Nothing is served here.
    Unknown,
}

/// Splits off the top-level part of a raw path.
pub fn target(path: &str) -> Target<'_> {
    match path {
        "/health" => return Target::Health,
        "/openapi.json" => return Target::OpenApiTemplate,
        _ => {}
    }
    let Some(after) = path.strip_prefix("/endpoint/") else {
        return Target::Unknown;
    };
    let (name, rest) = match after.find('/') {
        Some(slash) => (&after[..slash], &after[slash..]),
        None => (after, ""),
    };
    Target::Endpoint { name, rest }
}

/// A title path: one or more titles from the root down, each non-empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitlePath(Vec<String>);

/// The longest title Confluence accepts, in characters.
pub const MAX_TITLE_CHARS: usize = 255;

impl TitlePath {
    /// Parses a `/`-separated title path as sent in a JSON body (`parentTitle: "A/B"`), where a
    /// slash always separates titles.
    pub fn parse_body(text: &str) -> Result<TitlePath, ApiError> {
        let titles: Vec<String> = text.split('/').map(str::to_owned).collect();
        TitlePath::from_titles(titles)
    }

    /// Builds a title path from titles, checking each.
    pub fn from_titles(titles: Vec<String>) -> Result<TitlePath, ApiError> {
        for title in &titles {
            check_title(title)?;
        }
        if titles.is_empty() {
            return Err(ApiError::invalid_input("title must not be empty"));
        }
        Ok(TitlePath(titles))
    }

    /// The titles, root side first.
    pub fn titles(&self) -> &[String] {
        &self.0
    }

    /// The last title: the page itself.
    pub fn leaf(&self) -> &str {
        self.0.last().map_or("", String::as_str)
    }

    /// The titles above the leaf, root side first.
    pub fn parents(&self) -> &[String] {
        &self.0[..self.0.len() - 1]
    }
}

/// Checks one title: non-empty, not only whitespace, at most 255 characters.
pub fn check_title(title: &str) -> Result<(), ApiError> {
    if title.trim().is_empty() {
        return Err(ApiError::invalid_input("title must not be empty"));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::invalid_input(format!(
            "title is longer than {MAX_TITLE_CHARS} characters"
        )));
    }
    Ok(())
}

/// A request matched to an operation.
#[derive(Debug, PartialEq, Eq)]
pub struct Matched {
    /// The operation.
    pub operation: Operation,
    /// The title path, for routes with `{title}`.
    pub title: Option<TitlePath>,
}

/// Matches the part of the path after `/endpoint/<name>`.
pub fn match_route(method: &Method, rest: &str) -> Result<Matched, ApiError> {
    let Some(rest) = rest.strip_prefix('/') else {
        return Err(ApiError::not_found());
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let mut allowed: Vec<Method> = Vec::new();
    for route in &ROUTES {
        let Some(raw_title) = match_template(route.template, &segments) else {
            continue;
        };
        if route.method != *method {
            if !allowed.contains(&route.method) {
                allowed.push(route.method.clone());
            }
            continue;
        }
        let title = match raw_title {
            Some(raw) => Some(decode_title_path(raw)?),
            None => None,
        };
        return Ok(Matched {
            operation: route.operation,
            title,
        });
    }
    if allowed.is_empty() {
        Err(ApiError::not_found())
    } else {
        Err(ApiError::method_not_allowed(method, &allowed))
    }
}

/// Matches raw segments against a template. Returns `Some(None)` for a match without a title,
/// `Some(Some(segments))` with the raw title segments, `None` for no match.
fn match_template<'a, 's>(
    template: &str,
    segments: &'s [&'a str],
) -> Option<Option<&'s [&'a str]>> {
    let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    match parts.iter().position(|part| *part == "{title}") {
        None => (parts.as_slice() == segments).then_some(None),
        Some(title_at) => {
            let suffix = &parts[title_at + 1..];
            let prefix = &parts[..title_at];
            if segments.len() < prefix.len() + suffix.len() + 1 {
                return None;
            }
            let title_end = segments.len() - suffix.len();
            let matches = segments[..prefix.len()] == *prefix && segments[title_end..] == *suffix;
            matches.then_some(Some(&segments[prefix.len()..title_end]))
        }
    }
}

/// Percent-decodes each raw segment into a title (strictly: `%` must start a two-digit escape, and the
/// result must be UTF-8).
fn decode_title_path(raw: &[&str]) -> Result<TitlePath, ApiError> {
    let titles = raw
        .iter()
        .map(|segment| percent_decode_strict(segment))
        .collect::<Result<Vec<String>, ApiError>>()?;
    TitlePath::from_titles(titles)
}

/// Decodes `%XX` escapes, refusing malformed ones and invalid UTF-8 with a 400.
pub fn percent_decode_strict(raw: &str) -> Result<String, ApiError> {
    let bytes = raw.as_bytes();
    let mut index = 0;
    while let Some(offset) = bytes[index..].iter().position(|&byte| byte == b'%') {
        let at = index + offset;
        let valid = bytes.len() >= at + 3
            && bytes[at + 1].is_ascii_hexdigit()
            && bytes[at + 2].is_ascii_hexdigit();
        if !valid {
            return Err(ApiError::invalid_input(
                "invalid percent-encoding in path (use %XX; a literal % is %25)",
            ));
        }
        index = at + 3;
    }
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| ApiError::invalid_input("path is not valid UTF-8 after percent-decoding"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Matches `method path` and renders the outcome as `operationId [title|title]` or `status`.
    fn check(method: Method, rest: &str, expected: &str) {
        let actual = match match_route(&method, rest) {
            Ok(matched) => {
                let id = matched.operation.operation_id();
                match matched.title {
                    Some(title) => format!("{id} [{}]", title.titles().join("|")),
                    None => id.to_owned(),
                }
            }
            Err(error) => format!("{} {}", error.status.as_u16(), error.message),
        };
        assert_eq!(actual, expected, "{method} {rest}");
    }

    #[test]
    fn routes_of_the_surface() {
        check(Method::GET, "/pages", "listSubpages");
        check(Method::POST, "/pages", "createPage");
        check(Method::GET, "/pages/tree", "getPageTree");
        check(Method::POST, "/pages/rename", "renamePage");
        check(Method::GET, "/pages/Home", "readPageByTitle [Home]");
        check(Method::PUT, "/pages/Home", "updatePageByTitle [Home]");
        check(Method::DELETE, "/pages/Home", "deletePageByTitle [Home]");
        check(Method::GET, "/pages/A/B/children", "listChildPages [A|B]");
        check(Method::GET, "/pages/A/parent", "getParentPage [A]");
        check(Method::POST, "/pages/A/B/move", "movePage [A|B]");
        check(Method::GET, "/health", "getHealth");
        check(Method::GET, "/openapi.json", "getOpenApiDocument");
    }

    #[test]
    fn encoded_slash_stays_inside_a_title() {
        check(Method::GET, "/pages/A%2FB/C", "readPageByTitle [A/B|C]");
        check(
            Method::GET,
            "/pages/Caf%C3%A9%20%26%20%2B%23%3F%25",
            "readPageByTitle [Café & +#?%]",
        );
        check(Method::GET, "/pages/a+b", "readPageByTitle [a+b]");
    }

    #[test]
    fn literal_route_words_match_only_raw_segments() {
        check(Method::GET, "/pages/%74ree", "readPageByTitle [tree]");
        check(Method::GET, "/pages/children", "readPageByTitle [children]");
        check(
            Method::GET,
            "/pages/A/%63hildren",
            "readPageByTitle [A|children]",
        );
    }

    #[test]
    fn bad_paths_are_400_or_404() {
        check(
            Method::GET,
            "/pages/%zz",
            "400 invalid percent-encoding in path (use %XX; a literal % is %25)",
        );
        check(
            Method::GET,
            "/pages/%FF",
            "400 path is not valid UTF-8 after percent-decoding",
        );
        check(Method::GET, "/pages/A//B", "400 title must not be empty");
        check(Method::GET, "/pages/A/", "400 title must not be empty");
        check(Method::GET, "", "404 not found");
        check(Method::GET, "/", "404 not found");
        check(Method::GET, "/nothing", "404 not found");
        let long = "x".repeat(256);
        check(
            Method::GET,
            &format!("/pages/{long}"),
            "400 title is longer than 255 characters",
        );
    }

    #[test]
    fn wrong_method_lists_the_allowed_ones() {
        check(
            Method::PATCH,
            "/pages",
            "405 method PATCH is not allowed here; allowed: GET, POST",
        );
        check(
            Method::POST,
            "/pages/Home",
            "405 method POST is not allowed here; allowed: GET, PUT, DELETE",
        );
        check(
            Method::DELETE,
            "/health",
            "405 method DELETE is not allowed here; allowed: GET",
        );
    }

    #[test]
    fn top_level_targets() {
        assert_eq!(target("/health"), Target::Health);
        assert_eq!(target("/openapi.json"), Target::OpenApiTemplate);
        assert_eq!(
            target("/endpoint/docs/pages/A"),
            Target::Endpoint {
                name: "docs",
                rest: "/pages/A"
            }
        );
        assert_eq!(
            target("/endpoint/docs"),
            Target::Endpoint {
                name: "docs",
                rest: ""
            }
        );
        assert_eq!(target("/metrics"), Target::Unknown);
    }
}
