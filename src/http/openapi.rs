//! Serving the OpenAPI documents: the base URL a document advertises (configured, forwarded or
//! from `Host`), and the raw response with its `ETag` and 304s.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, HOST, HeaderValue, IF_NONE_MATCH};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

use crate::endpoint::Endpoint;
use crate::http::envelope::Body;
use crate::openapi::{
    DocumentCache, RenderedDocument, endpoint_document, endpoint_server_url, template_document,
};

/// The public base URL to advertise: the endpoint's `public_url`, else the global `--public-url`,
/// else the origin the request came through (`X-Forwarded-Proto` and `X-Forwarded-Host`, then
/// `Host`; plain `http` and `localhost` when nothing usable is sent).
pub fn public_base_url(
    endpoint_public_url: Option<&str>,
    global_public_url: Option<&str>,
    headers: &HeaderMap,
) -> String {
    if let Some(configured) = endpoint_public_url.or(global_public_url) {
        return configured.trim_end_matches('/').to_owned();
    }
    let scheme = first_header_value(headers, "x-forwarded-proto")
        .map(str::to_ascii_lowercase)
        .filter(|scheme| scheme == "https" || scheme == "http")
        .unwrap_or_else(|| "http".to_owned());
    let host = first_header_value(headers, "x-forwarded-host")
        .filter(|host| is_plausible_host(host))
        .or_else(|| {
            headers
                .get(HOST)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|host| is_plausible_host(host))
        })
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// The first comma-separated value of header `name` (proxies append to forwarded headers).
fn first_header_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let value = headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then_some(first)
}

/// A host, optionally with a port or as a bracketed IPv6 literal; anything else is ignored rather
/// than advertised.
fn is_plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b".-_:[]".contains(&byte))
}

/// The response for a rendered document: 304 when `If-None-Match` names its `ETag`, else 200 with
/// the raw JSON (deliberately not wrapped in the envelope: importers need the document itself).
pub fn respond(document: &RenderedDocument, request_headers: &HeaderMap) -> Response<Body> {
    let not_modified = request_headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| if_none_match_matches(value, &document.etag));
    let (status, body) = if not_modified {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else {
        (StatusCode::OK, document.body.clone())
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&document.etag) {
        headers.insert(ETAG, etag);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if !not_modified {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    response
}

/// Whether an `If-None-Match` value (`*` or a list of tags, weak or strong) names `etag`; weak
/// comparison, as RFC 9110 asks for `If-None-Match`.
fn if_none_match_matches(value: &str, etag: &str) -> bool {
    value.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// Serves an endpoint's document, from its cache when already rendered for this server URL.
pub fn serve_endpoint(
    endpoint: &Endpoint,
    global_public_url: Option<&str>,
    request_headers: &HeaderMap,
) -> Response<Body> {
    let tenant = &endpoint.tenant;
    let base = public_base_url(
        tenant.public_url().map(|url| url.as_str()),
        global_public_url,
        request_headers,
    );
    let server_url = endpoint_server_url(&base, tenant.name());
    let document = endpoint
        .openapi
        .get_or_render(&server_url, || endpoint_document(tenant, &server_url));
    respond(&document, request_headers)
}

/// The rendered top-level template, which depends only on the build and the base URL.
static TEMPLATE_CACHE: DocumentCache = DocumentCache::new();

/// Serves the tenant-free template, rendered once per base URL for the life of the process.
pub fn serve_template(
    global_public_url: Option<&str>,
    request_headers: &HeaderMap,
) -> Response<Body> {
    let base = public_base_url(None, global_public_url, request_headers);
    let document = TEMPLATE_CACHE.get_or_render(&base, || template_document(&base));
    respond(&document, request_headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn check_base(
        endpoint: Option<&str>,
        global: Option<&str>,
        pairs: &[(&'static str, &'static str)],
        expected: &str,
    ) {
        assert_eq!(
            public_base_url(endpoint, global, &headers(pairs)),
            expected,
            "{endpoint:?} {global:?} {pairs:?}"
        );
    }

    #[test]
    fn base_url_prefers_endpoint_then_global_then_forwarded_then_host() {
        let forwarded = [
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "gpt.example.com"),
            ("host", "10.0.0.5:8080"),
        ];
        check_base(
            Some("https://a.example"),
            Some("https://b.example/"),
            &forwarded,
            "https://a.example",
        );
        check_base(
            None,
            Some("https://b.example/"),
            &forwarded,
            "https://b.example",
        );
        check_base(None, None, &forwarded, "https://gpt.example.com");
        check_base(
            None,
            None,
            &[("host", "10.0.0.5:8080")],
            "http://10.0.0.5:8080",
        );
        check_base(None, None, &[], "http://localhost");
    }

    #[test]
    fn forwarded_headers_take_the_first_hop_and_ignore_junk() {
        check_base(
            None,
            None,
            &[
                ("x-forwarded-proto", "https, http"),
                ("x-forwarded-host", "a.example, b.example"),
            ],
            "https://a.example",
        );
        check_base(
            None,
            None,
            &[
                ("x-forwarded-proto", "gopher"),
                ("x-forwarded-host", "evil\"/x"),
                ("host", "[::1]:3000"),
            ],
            "http://[::1]:3000",
        );
    }

    #[test]
    fn if_none_match_forms() {
        let etag = "\"abc\"";
        for (value, expected) in [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("\"x\", \"abc\"", true),
            ("*", true),
            ("\"abd\"", false),
            ("abc", false),
        ] {
            assert_eq!(if_none_match_matches(value, etag), expected, "{value}");
        }
    }
}
