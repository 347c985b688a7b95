//! Full-text search below one page with v1 CQL (`GET /rest/api/search`), on Data Center and on
//! Cloud alike (Cloud v2 has no CQL search). One request per result page: the hits come with their
//! ancestors and version expanded and with Confluence's excerpt, so nothing is read back.

use serde::Deserialize;
use tokio::time::Instant;

use super::types::{ContentRef, Links};
use super::{ConfluenceClient, Page, PageRef, UpstreamError, cql_escape, within};

/// The search route, for logs and metrics.
const SEARCH_ROUTE: &str = "/rest/api/search";

/// One search hit: the page (with ancestors and version, no body) and where the words occur.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// The page; its ancestors place it (or not) in a sandbox.
    pub page: Page,
    /// Plain text around the match, highlights as Markdown `**emphasis**`, no markup.
    pub excerpt: String,
    /// When the page last changed, as Confluence wrote it (ISO 8601), when it said.
    pub last_modified: Option<String>,
}

/// One window of search results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResults {
    /// The hits of the window, in Confluence's order.
    pub hits: Vec<SearchHit>,
    /// Whether Confluence has more results after the window.
    pub more: bool,
}

/// The CQL for pages containing `words` in the subtree of `root_id`, the root included. The words
/// are quoted and escaped (`\` first, then `"`), so nothing in them can leave the string literal:
/// operators, parentheses and `OR` inside it are text to search for.
pub fn subtree_text_cql(root_id: &str, words: &str) -> String {
    format!(
        "(id = {root_id} or ancestor = {root_id}) and type = page and text ~ \"{}\"",
        cql_escape(words)
    )
}

/// `words` made safe for the Lucene query that `text ~` runs: characters with a meaning there
/// (`+ - & | ! ( ) { } [ ] ^ " ~ * ? : \ /`) become spaces and the operators `AND`, `OR`, `NOT`
/// are lowered to plain words, so a query can neither change the search nor make it fail.
pub fn plain_search_words(words: &str) -> String {
    let spaced: String = words
        .chars()
        .map(|c| {
            if "+-&|!(){}[]^\"~*?:\\/".contains(c) || c.is_control() {
                ' '
            } else {
                c
            }
        })
        .collect();
    spaced
        .split_whitespace()
        .map(|word| match word {
            "AND" | "OR" | "NOT" | "TO" => word.to_lowercase(),
            _ => word.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `/rest/api/search` answer.
#[derive(Debug, Deserialize)]
struct SearchArray {
    #[serde(default)]
    results: Vec<SearchRow>,
    #[serde(default, rename = "totalSize")]
    total_size: Option<u64>,
    #[serde(default)]
    start: Option<u64>,
    #[serde(default, rename = "_links")]
    links: Links,
}

/// One row: the content object plus search metadata.
#[derive(Debug, Deserialize)]
struct SearchRow {
    #[serde(default)]
    content: Option<SearchContent>,
    #[serde(default)]
    excerpt: Option<String>,
    #[serde(default, rename = "lastModified")]
    last_modified: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SearchContent {
    #[serde(deserialize_with = "super::types::string_or_number")]
    id: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    version: Option<SearchVersion>,
    #[serde(default)]
    ancestors: Option<Vec<ContentRef>>,
}

#[derive(Debug, Deserialize)]
struct SearchVersion {
    number: u64,
    #[serde(default)]
    when: Option<String>,
}

impl ConfluenceClient {
    /// Pages matching `cql`, the window of `limit` hits from `offset`. Data Center: one request
    /// (`start`/`limit`). Cloud pages search results by cursor only, so the first request asks for
    /// `offset + limit` hits and `next` links are followed only when the server capped that: one
    /// request whenever `offset + limit` is within the server's cap.
    pub async fn search_pages(
        &self,
        cql: &str,
        offset: usize,
        limit: usize,
    ) -> Result<SearchResults, UpstreamError> {
        const OPERATION: &str = "search_pages";
        let deadline = self.deadline();
        within(
            deadline,
            self.search_window(OPERATION, cql, offset, limit, deadline),
        )
        .await
    }

    async fn search_window(
        &self,
        operation: &'static str,
        cql: &str,
        offset: usize,
        limit: usize,
        deadline: Instant,
    ) -> Result<SearchResults, UpstreamError> {
        // Cloud (the v2 backend) pages search results by cursor only.
        let cursor_only = self.inner.v2.is_some();
        let (start, asked) = if cursor_only {
            (0, offset.saturating_add(limit))
        } else {
            (offset, limit)
        };
        let asked_text = asked.to_string();
        let start_text = start.to_string();
        let mut query = vec![
            ("cql", cql),
            ("limit", asked_text.as_str()),
            ("expand", "content.ancestors,content.version"),
            ("excerpt", "highlight"),
        ];
        if !cursor_only {
            query.push(("start", start_text.as_str()));
        }
        let mut url = self.url(&["search"], &query);
        // Rows before `offset` on Cloud, which cannot start anywhere but at the beginning.
        let mut to_skip = if cursor_only { offset } else { 0 };
        let mut hits = Vec::new();
        loop {
            let page: SearchArray = self
                .get_json(operation, SEARCH_ROUTE, url.clone(), deadline)
                .await?;
            let received = page.results.len();
            let returned_start = page.start.unwrap_or(start as u64) as usize;
            for row in page.results {
                if to_skip > 0 {
                    to_skip -= 1;
                    continue;
                }
                if hits.len() < limit
                    && let Some(hit) = hit_from(row)?
                {
                    hits.push(hit);
                }
            }
            let mut links = page.links;
            let next = links.next.take().filter(|_| received > 0);
            // `totalSize` is an estimate, but a total beyond this window means more to read.
            let more_by_total = page
                .total_size
                .is_some_and(|total| total > (returned_start + received) as u64);
            match next {
                Some(next) if hits.len() < limit => {
                    url = self.resolve_next(&next, &links)?;
                    keep_search_parameters(&mut url);
                }
                Some(_) => return Ok(SearchResults { hits, more: true }),
                None => {
                    return Ok(SearchResults {
                        hits,
                        more: more_by_total,
                    });
                }
            }
        }
    }
}

/// Puts back what a `next` link may leave out (Cloud's do not reliably carry every parameter):
/// without the expansions a hit could not be placed, without the excerpt it would say nothing.
fn keep_search_parameters(url: &mut reqwest::Url) {
    let present: Vec<String> = url.query_pairs().map(|(key, _)| key.into_owned()).collect();
    let mut pairs = url.query_pairs_mut();
    if !present.iter().any(|key| key == "expand") {
        pairs.append_pair("expand", "content.ancestors,content.version");
    }
    if !present.iter().any(|key| key == "excerpt") {
        pairs.append_pair("excerpt", "highlight");
    }
}

/// The hit of one row; `None` for rows that are not pages (attachments, comments).
fn hit_from(row: SearchRow) -> Result<Option<SearchHit>, UpstreamError> {
    let Some(content) = row.content else {
        return Ok(None);
    };
    if content.kind.as_deref().is_some_and(|kind| kind != "page") {
        return Ok(None);
    }
    let version = content.version.ok_or_else(|| {
        UpstreamError::Protocol(format!(
            "search hit {} came without its version",
            content.id
        ))
    })?;
    // A hit without ancestors can only be the sandbox root itself; any other page is then dropped
    // by the sandbox check, never let through.
    let ancestors = content.ancestors.unwrap_or_default();
    Ok(Some(SearchHit {
        page: Page {
            id: content.id,
            title: content.title,
            version: version.number,
            ancestors: ancestors.into_iter().map(PageRef::from).collect(),
            body: None,
        },
        excerpt: plain_excerpt(row.excerpt.as_deref().unwrap_or("")),
        last_modified: row.last_modified.or(version.when),
    }))
}

/// Confluence's highlighted excerpt as plain text: `@@@hl@@@…@@@endhl@@@` becomes `**…**`, any
/// markup is dropped, entities are resolved and whitespace collapsed.
pub fn plain_excerpt(excerpt: &str) -> String {
    let mut text = String::with_capacity(excerpt.len());
    let mut rest = excerpt;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        match rest[open..].find('>') {
            Some(close) => {
                text.push(' ');
                rest = &rest[open + close + 1..];
            }
            None => {
                rest = "";
            }
        }
    }
    text.push_str(rest);
    let text = text
        .replace("@@@hl@@@", "\u{1}")
        .replace("@@@endhl@@@", "\u{2}");
    let text = resolve_entities(&text);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    // Emphasis needs the marker next to the words: `** x**` is not emphasis.
    let mut out = String::with_capacity(collapsed.len());
    let mut chars = collapsed.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1}' => {
                while chars.peek() == Some(&' ') {
                    chars.next();
                }
                out.push_str("**");
            }
            '\u{2}' => {
                while out.ends_with(' ') {
                    out.pop();
                }
                out.push_str("**");
            }
            other => out.push(other),
        }
    }
    out.replace("****", "").trim().to_owned()
}

/// Resolves the entities an excerpt carries (XML's, numeric ones, spaces, dashes, quotes and
/// ellipses); others stay.
fn resolve_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let entity = after
            .find(';')
            .filter(|&end| end <= 10)
            .map(|end| (&after[..end], end));
        let resolved = entity.and_then(|(name, _)| match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            "hellip" => Some('…'),
            "ndash" => Some('–'),
            "mdash" => Some('—'),
            "lsquo" => Some('‘'),
            "rsquo" => Some('’'),
            "ldquo" => Some('“'),
            "rdquo" => Some('”'),
            _ => {
                let number = name.strip_prefix('#')?;
                let code = match number.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => number.parse::<u32>().ok()?,
                };
                char::from_u32(code)
            }
        });
        match (resolved, entity) {
            (Some(character), Some((_, end))) => {
                out.push(character);
                rest = &after[end + 1..];
            }
            _ => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_lose_markup_and_keep_highlights_as_emphasis() {
        for (raw, expected) in [
            (
                "Run the @@@hl@@@installer@@@endhl@@@ &amp; wait",
                "Run the **installer** & wait",
            ),
            (
                "<p>a <b>b</b></p>\n c &lt;tag&gt; &#x263A;",
                "a b c <tag> ☺",
            ),
            ("@@@hl@@@ x @@@endhl@@@y", "**x**y"),
            ("broken <tag", "broken"),
            ("&unknown; & done", "&unknown; & done"),
            ("more&hellip; &ldquo;quoted&rdquo;", "more… “quoted”"),
        ] {
            assert_eq!(plain_excerpt(raw), expected, "{raw}");
        }
    }

    #[test]
    fn search_words_cannot_change_the_query() {
        assert_eq!(
            plain_search_words(r#"a" OR (ancestor = 1) \ x*"#),
            "a or ancestor = 1 x"
        );
        assert_eq!(plain_search_words("  "), "");
        assert_eq!(
            subtree_text_cql("7", r#"q"\"#),
            r#"(id = 7 or ancestor = 7) and type = page and text ~ "q\"\\""#
        );
    }
}
