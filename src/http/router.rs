//! Matches a request's method and raw path against the route table and returns a route value that
//! carries its parsed data, as a command parser does. Titles are decoded here, once: the raw path is
//! split on `/` before percent-decoding, so `%2F` is a slash inside a title.

use std::sync::LazyLock;

use http::Method;

use crate::http::error::ApiError;
use crate::routes::{Operation, ROUTES};
use crate::titles::TitlePath;

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

/// The raw path with every run of slashes merged into one, as nginx and the original's Flask app
/// do: `/endpoint/a//openapi.json` is `/endpoint/a/openapi.json`. Done before routing, so `//` in a
/// title path separates two titles like `/` (an empty title cannot be sent in a path).
pub fn merge_slashes(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains("//") {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut merged = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && merged.ends_with('/') {
            continue;
        }
        merged.push(c);
    }
    std::borrow::Cow::Owned(merged)
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

/// A route of an endpoint, with what its path carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointRoute {
    /// `GET /health`.
    Health,
    /// `GET /openapi.json`.
    OpenApi,
    /// `POST /mcp`.
    Mcp,
    /// A page operation.
    Page(PageRoute),
}

/// A page operation's route, with the title path of `{title}` routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRoute {
    /// `GET /pages`.
    List,
    /// `GET /pages/tree`.
    Tree,
    /// `GET /pages/{title}`.
    Read(TitlePath),
    /// `GET /pages/{title}/children`.
    Children(TitlePath),
    /// `GET /pages/{title}/parent`.
    Parent(TitlePath),
    /// `POST /pages`.
    Create,
    /// `PUT /pages/{title}`.
    Update(TitlePath),
    /// `POST /pages/rename`.
    Rename,
    /// `POST /pages/{title}/move`.
    Move(TitlePath),
    /// `DELETE /pages/{title}`.
    Delete(TitlePath),
    /// `GET /pages/search`.
    Search,
    /// `GET /pages/{title}/outline`.
    Outline(TitlePath),
}

impl EndpointRoute {
    /// The operation served.
    pub fn operation(&self) -> Operation {
        match self {
            EndpointRoute::Health => Operation::Health,
            EndpointRoute::OpenApi => Operation::OpenApi,
            EndpointRoute::Mcp => Operation::Mcp,
            EndpointRoute::Page(page) => page.operation(),
        }
    }
}

impl PageRoute {
    /// The operation served.
    pub fn operation(&self) -> Operation {
        match self {
            PageRoute::List => Operation::ListPages,
            PageRoute::Tree => Operation::PageTree,
            PageRoute::Read(_) => Operation::ReadPage,
            PageRoute::Children(_) => Operation::ListChildren,
            PageRoute::Parent(_) => Operation::GetParent,
            PageRoute::Create => Operation::CreatePage,
            PageRoute::Update(_) => Operation::UpdatePage,
            PageRoute::Rename => Operation::RenamePage,
            PageRoute::Move(_) => Operation::MovePage,
            PageRoute::Delete(_) => Operation::DeletePage,
            PageRoute::Search => Operation::SearchPages,
            PageRoute::Outline(_) => Operation::PageOutline,
        }
    }
}

/// How a route value is made from a matched path: a fixed route, or one built from the title path.
enum Shape {
    Fixed(EndpointRoute),
    Titled(fn(TitlePath) -> EndpointRoute),
}

/// The shape of each operation's route. A `Titled` shape matches its template's `{title}` part; a
/// `Fixed` one matches its template literally.
fn shape(operation: Operation) -> Shape {
    use EndpointRoute::Page;
    match operation {
        Operation::Health => Shape::Fixed(EndpointRoute::Health),
        Operation::OpenApi => Shape::Fixed(EndpointRoute::OpenApi),
        Operation::Mcp => Shape::Fixed(EndpointRoute::Mcp),
        Operation::ListPages => Shape::Fixed(Page(PageRoute::List)),
        Operation::PageTree => Shape::Fixed(Page(PageRoute::Tree)),
        Operation::CreatePage => Shape::Fixed(Page(PageRoute::Create)),
        Operation::RenamePage => Shape::Fixed(Page(PageRoute::Rename)),
        Operation::SearchPages => Shape::Fixed(Page(PageRoute::Search)),
        Operation::PageOutline => Shape::Titled(|title| Page(PageRoute::Outline(title))),
        Operation::ReadPage => Shape::Titled(|title| Page(PageRoute::Read(title))),
        Operation::ListChildren => Shape::Titled(|title| Page(PageRoute::Children(title))),
        Operation::GetParent => Shape::Titled(|title| Page(PageRoute::Parent(title))),
        Operation::UpdatePage => Shape::Titled(|title| Page(PageRoute::Update(title))),
        Operation::MovePage => Shape::Titled(|title| Page(PageRoute::Move(title))),
        Operation::DeletePage => Shape::Titled(|title| Page(PageRoute::Delete(title))),
    }
}

/// The page route of a page operation whose inputs come from elsewhere than a path (an MCP tool
/// call): `title` is asked for only when the operation's template has a `{title}` part. `None` for
/// operations that are not page operations.
pub fn page_route(
    operation: Operation,
    title: impl FnOnce() -> Result<TitlePath, ApiError>,
) -> Result<Option<PageRoute>, ApiError> {
    let route = match shape(operation) {
        Shape::Fixed(route) => route,
        Shape::Titled(build) => build(title()?),
    };
    Ok(match route {
        EndpointRoute::Page(page) => Some(page),
        EndpointRoute::Health | EndpointRoute::OpenApi | EndpointRoute::Mcp => None,
    })
}

/// Matches the part of the path after `/endpoint/<name>`.
pub fn match_route(method: &Method, rest: &str) -> Result<EndpointRoute, ApiError> {
    let Some(rest) = rest.strip_prefix('/') else {
        return Err(ApiError::not_found());
    };
    let mut other_methods = false;
    for (route, template) in ROUTES.iter().zip(TEMPLATES.iter()) {
        let Some(raw_title) = template.matches(rest) else {
            continue;
        };
        if route.method != *method {
            other_methods = true;
            continue;
        }
        return match shape(route.operation) {
            Shape::Fixed(fixed) => Ok(fixed),
            Shape::Titled(build) => Ok(build(decode_title_path(raw_title)?)),
        };
    }
    if !other_methods {
        return Err(ApiError::not_found());
    }
    // Only routes of other methods have this path: name them (rare, so the templates are matched
    // again rather than collected on every request).
    let mut allowed: Vec<Method> = Vec::new();
    for (route, template) in ROUTES.iter().zip(TEMPLATES.iter()) {
        if template.matches(rest).is_some() && !allowed.contains(&route.method) {
            allowed.push(route.method.clone());
        }
    }
    Err(ApiError::method_not_allowed(method, &allowed))
}

/// A route template as the text around its `{title}` part, without the leading `/`. Matching
/// compares text rather than split segments, which needs no allocation: what lies between a
/// titled template's prefix and suffix is its title path, one or more segments.
struct Template {
    /// The text before `{title}`, ending with `/`; all of a template without one.
    prefix: &'static str,
    /// The text after `{title}` (empty or starting with `/`); `None` without one.
    suffix: Option<&'static str>,
}

/// The templates of [`ROUTES`], in the same order.
static TEMPLATES: LazyLock<Vec<Template>> = LazyLock::new(|| {
    ROUTES
        .iter()
        .map(|route| {
            let template = route.template.trim_start_matches('/');
            match template.split_once("{title}") {
                Some((prefix, suffix)) => Template {
                    prefix,
                    suffix: Some(suffix),
                },
                None => Template {
                    prefix: template,
                    suffix: None,
                },
            }
        })
        .collect()
});

impl Template {
    /// Matches the path after `/endpoint/<name>/`; returns the raw title path (one or more
    /// segments, the last possibly empty) for a titled template, `""` for a fixed one.
    fn matches<'a>(&self, rest: &'a str) -> Option<&'a str> {
        match self.suffix {
            None => (rest == self.prefix).then_some(""),
            Some(suffix) => rest.strip_prefix(self.prefix)?.strip_suffix(suffix),
        }
    }
}

/// Percent-decodes each raw segment of a title path into a title (strictly: `%` must start a
/// two-digit escape, and the result must be UTF-8).
fn decode_title_path(raw: &str) -> Result<TitlePath, ApiError> {
    let titles = raw
        .split('/')
        .map(percent_decode_strict)
        .collect::<Result<Vec<String>, ApiError>>()?;
    Ok(TitlePath::from_titles(titles)?)
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
            Ok(route) => {
                let id = route.operation().operation_id();
                let title = match &route {
                    EndpointRoute::Page(
                        PageRoute::Read(title)
                        | PageRoute::Children(title)
                        | PageRoute::Parent(title)
                        | PageRoute::Update(title)
                        | PageRoute::Move(title)
                        | PageRoute::Delete(title)
                        | PageRoute::Outline(title),
                    ) => Some(title),
                    _ => None,
                };
                match title {
                    Some(title) => format!(
                        "{id} [{}]",
                        title
                            .titles()
                            .iter()
                            .map(|title| title.as_str())
                            .collect::<Vec<_>>()
                            .join("|")
                    ),
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
        check(Method::GET, "/pages/search", "searchPages");
        check(Method::GET, "/pages/A/B/outline", "getPageOutline [A|B]");
        check(Method::GET, "/pages/%73earch", "readPageByTitle [search]");
        check(Method::GET, "/health", "getHealth");
        check(Method::GET, "/openapi.json", "getOpenApiDocument");
        check(Method::POST, "/mcp", "mcp");
        check(
            Method::GET,
            "/mcp",
            "405 method GET is not allowed here; allowed: POST",
        );
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
    fn a_route_carries_a_title_exactly_when_its_template_has_one() {
        for route in &ROUTES {
            let titled = matches!(shape(route.operation), Shape::Titled(_));
            assert_eq!(
                route.template.contains("{title}"),
                titled,
                "{}",
                route.template
            );
        }
    }

    #[test]
    fn repeated_slashes_merge_before_routing() {
        assert_eq!(
            merge_slashes("//endpoint//a///openapi.json"),
            "/endpoint/a/openapi.json"
        );
        assert_eq!(merge_slashes("/pages/A%2F%2FB"), "/pages/A%2F%2FB");
        assert!(matches!(
            merge_slashes("/pages/A/B"),
            std::borrow::Cow::Borrowed(_)
        ));
        check(
            Method::GET,
            &merge_slashes("/pages/A//B"),
            "readPageByTitle [A|B]",
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
