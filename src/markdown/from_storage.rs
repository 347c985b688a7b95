//! Storage XHTML to Markdown, carrying what Markdown cannot express through verbatim.
//!
//! Every construct is either rendered in the canonical Markdown the writer turns back into the same
//! storage, or copied from the source byte for byte inside a `confluence-storage` fenced block (block
//! level) or a code span starting with `confluence-storage:` (inline level).

use std::ops::Range;

use super::XhtmlError;
use super::directive;
use super::to_storage::FRONT_MATTER_TITLE;
use super::xml::{Element, Node, parse_fragment};
use super::{VERBATIM_BLOCK_INFO, VERBATIM_INLINE_PREFIX};

/// Attributes Confluence adds on its own or that restate a default; losing them loses nothing.
pub(crate) fn is_insignificant_attribute(name: &str, value: &str) -> bool {
    matches!(name, "ac:macro-id" | "ac:schema-version" | "ac:local-id")
        || (name == "data-layout" && value == "default")
        || (name == "start" && value.trim() == "1")
}

/// Attributes only the editor needs (ids, local ids, widths, layouts): the Markdown view leaves them
/// out. A block the client does not change keeps them, since the write merges block by block.
fn is_editor_bookkeeping(name: &str, value: &str) -> bool {
    is_insignificant_attribute(name, value)
        || matches!(
            name,
            "id" | "local-id"
                | "ri:local-id"
                | "ac:original-height"
                | "ac:original-width"
                | "ac:custom-width"
                | "class"
                | "colspan"
                | "rowspan"
                | "ac:breakout-mode"
                | "ac:breakout-width"
                | "ac:card-appearance"
                | "ri:version-at-save"
        ) && !matches!((name, value), ("colspan" | "rowspan", v) if v.trim() != "1")
        || (name.starts_with("data-") && name != "data-highlight-colour")
}

/// Elements that are rendered as inline content when they sit in a paragraph-like container
/// (sorted, for binary search).
/// A thematic break (`<hr/>`) as written on a line of its own.
const THEMATIC_BREAK: &str = "---";

const INLINE_ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "ac:emoticon",
    "ac:image",
    "ac:inline-comment-marker",
    "ac:link",
    "ac:placeholder",
    "b",
    "br",
    "cite",
    "code",
    "del",
    "em",
    "i",
    "ins",
    "kbd",
    "mark",
    "q",
    "ri:user",
    "s",
    "samp",
    "small",
    "span",
    "strike",
    "strong",
    "sub",
    "sup",
    "time",
    "u",
    "var",
];

/// Whether an element named `name` can never sit inside inline Markdown.
pub(super) fn is_block_element(name: &str) -> bool {
    BLOCK_ELEMENTS.binary_search(&name).is_ok()
}

/// Elements that can never sit inside inline Markdown (sorted, for binary search).
const BLOCK_ELEMENTS: &[&str] = &[
    "ac:layout",
    "ac:layout-cell",
    "ac:layout-section",
    "ac:rich-text-body",
    "ac:task-list",
    "blockquote",
    "colgroup",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
];

/// The top-level blocks of a stored body: each one's Markdown and the span of storage it comes from.
pub(crate) type Blocks = Vec<(String, Range<usize>)>;

/// The top-level blocks of `source`, parsed and rendered.
pub(crate) fn blocks_of(source: &str) -> Result<Blocks, XhtmlError> {
    let nodes = parse_fragment(source)?;
    Ok(render_blocks(source, &nodes))
}

/// The Markdown of a body from its blocks, as [`super::storage_to_markdown`] gives it.
pub(crate) fn join_blocks(blocks: &Blocks) -> String {
    let length = blocks.iter().map(|(text, _)| text.len() + 2).sum();
    let mut markdown = String::with_capacity(length);
    for (index, (block, _)) in blocks.iter().enumerate() {
        if index > 0 {
            markdown.push_str("\n\n");
        }
        markdown.push_str(block);
    }
    if !markdown.is_empty() {
        markdown.push('\n');
    }
    markdown
}

/// The top-level blocks of a body: each one's Markdown and the span of storage it comes from.
fn render_blocks(source: &str, nodes: &[Node]) -> Blocks {
    let renderer = Renderer {
        source,
        roots: nodes,
        nested: std::cell::Cell::new(0),
        footnotes: std::cell::OnceCell::new(),
        collecting_footnotes: std::cell::Cell::new(false),
    };
    let mut blocks: Vec<(String, Range<usize>)> = renderer
        .blocks(nodes)
        .into_iter()
        .map(|(text, _, span)| (text, span))
        .collect();
    // A first code block titled as front matter reads back as front matter.
    if let Some((text, span)) = blocks.first_mut()
        && let Some(Node::Element(element)) = nodes.iter().find(|node| node.span() == *span)
        && let Some(yaml) = front_matter(element)
    {
        *text = format!("---\n{yaml}\n---");
    }
    blocks
}

/// The YAML of a code macro written from front matter.
fn front_matter(element: &Element) -> Option<String> {
    if element.name != "ac:structured-macro" || element.attribute("ac:name") != Some("code") {
        return None;
    }
    let mut parameters = Vec::new();
    let mut body = None;
    for child in element.child_elements() {
        match child.name {
            "ac:parameter" => parameters.push((child.attribute("ac:name")?, child.text_content())),
            "ac:plain-text-body" => body = Some(child.text_content()),
            _ => return None,
        }
    }
    let expected = [
        ("language", "yaml".to_owned()),
        ("title", FRONT_MATTER_TITLE.to_owned()),
    ];
    let body = body?;
    let closes = body
        .lines()
        .any(|line| matches!(line.trim_end(), "---" | "..."));
    (parameters == expected && !closes && !body.trim().is_empty() && !body.starts_with('\n'))
        .then_some(body)
}

struct Renderer<'s> {
    source: &'s str,
    /// The whole fragment being rendered.
    roots: &'s [Node<'s>],
    /// How many quotes, alerts and list items enclose what is being rendered: block directives are
    /// only read at the top level and in the bodies of container directives.
    nested: std::cell::Cell<usize>,
    /// The labels of the footnote definitions the Markdown will hold, found at the first reference:
    /// a reference is written `[^X]` only when `[^X]:` is written too, else it would read back as
    /// plain text.
    footnotes: std::cell::OnceCell<std::collections::HashSet<String>>,
    /// Set while the definitions are being found; references then count as defined.
    collecting_footnotes: std::cell::Cell<bool>,
}

/// Where inline content ends up, which changes what must be escaped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum InlineContext {
    Flow,
    TableCell,
}

/// What a rendered block is, as far as list layout cares.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Paragraph,
    /// Tables and rules need a blank line before them inside a list item.
    NeedsBlankLine,
    Other,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Bullet,
    Ordered,
    Task,
}

fn has_only_significant(element: &Element, allowed: &[&str]) -> bool {
    element
        .attributes
        .iter()
        .all(|(name, value)| allowed.contains(name) || is_editor_bookkeeping(name, value))
}

/// The attributes a directive carries for an element: every attribute that is not bookkeeping,
/// with `prefix` removed; `None` when one lacks the prefix or cannot be written.
fn directive_attributes(
    element: &Element,
    prefix: &str,
    skip: &[&str],
) -> Option<Vec<(String, String)>> {
    let mut attributes = Vec::new();
    for (name, value) in &element.attributes {
        if skip.contains(name) || is_editor_bookkeeping(name, value) {
            continue;
        }
        let key = name.strip_prefix(prefix)?;
        if !directive::is_valid_key(key) || value.contains(['\n', '\r']) {
            return None;
        }
        attributes.push((key.to_owned(), value.to_string()));
    }
    Some(attributes)
}

/// Writes `:name[label]{…}` (the label already escaped).
fn inline_directive(name: &str, label: Option<&str>, attributes: &[(String, String)]) -> String {
    let mut out = String::with_capacity(32);
    out.push(':');
    out.push_str(name);
    if let Some(label) = label {
        out.push('[');
        out.push_str(label);
        out.push(']');
    }
    directive::write_attributes(&mut out, attributes);
    out
}

/// Escapes a directive label: inline escaping plus every bracket.
fn directive_label(text: &str) -> Option<String> {
    if text.contains(['\n', '\r']) || text != collapse_whitespace(text) {
        return None;
    }
    let mut escaped = String::with_capacity(text.len());
    escape_inline_text(&mut escaped, text);
    Some(escaped)
}

/// Directive attributes: keys and values in their order.
type Attributes = Vec<(String, String)>;

/// The parameters of a macro as directive attributes: `_` for the default parameter, `name.page`
/// and `name.space` for a parameter that links to a page.
fn macro_parameters<'e, 's>(
    element: &'e Element<'s>,
) -> Option<(Attributes, Option<&'e Element<'s>>)> {
    let mut parameters = Vec::new();
    let mut body = None;
    for child in element.child_elements() {
        match child.name {
            "ac:parameter" if has_only_significant(child, &["ac:name"]) => {
                let name = child.attribute("ac:name")?;
                let key = if name.is_empty() { "_" } else { name };
                if !directive::is_valid_key(key)
                    || key.ends_with(".page")
                    || key.ends_with(".space")
                {
                    return None;
                }
                if child
                    .children
                    .iter()
                    .all(|node| matches!(node, Node::Text(..)))
                {
                    let value = child.text_content();
                    if value.contains(['\n', '\r']) {
                        return None;
                    }
                    parameters.push((key.to_owned(), value));
                    continue;
                }
                // A parameter holding a link to a page.
                let mut links = child.child_elements();
                let link = links.next()?;
                if links.next().is_some()
                    || !child.only_elements()
                    || link.name != "ac:link"
                    || !has_only_significant(link, &[])
                {
                    return None;
                }
                let mut targets = link.child_elements();
                let page = targets.next()?;
                if targets.next().is_some()
                    || page.name != "ri:page"
                    || !link.only_elements()
                    || !has_only_significant(page, &["ri:content-title", "ri:space-key"])
                {
                    return None;
                }
                parameters.push((
                    format!("{key}.page"),
                    page.attribute("ri:content-title")?.to_owned(),
                ));
                if let Some(space) = page.attribute("ri:space-key") {
                    parameters.push((format!("{key}.space"), space.to_owned()));
                }
            }
            "ac:rich-text-body" if body.is_none() && has_only_significant(child, &[]) => {
                body = Some(child)
            }
            _ => return None,
        }
    }
    Some((parameters, body))
}

/// The number of colons a container needs so that no line of its body closes it.
fn container_colons(body: &str) -> usize {
    body.lines()
        .map(|line| line.bytes().take_while(|b| *b == b':').count() + 1)
        .max()
        .unwrap_or(0)
        .max(3)
}

/// `:::name{…}` + body + `:::`.
fn container(name: &str, attributes: &[(String, String)], body: &str) -> String {
    let colons = ":".repeat(container_colons(body));
    let mut out = String::with_capacity(body.len() + 64);
    out.push_str(&colons);
    out.push_str(name);
    if !attributes.is_empty() {
        directive::write_attributes(&mut out, attributes);
    }
    out.push('\n');
    if !body.is_empty() {
        out.push_str(body);
        out.push('\n');
    }
    out.push_str(&colons);
    out
}

fn is_blank(node: &Node) -> bool {
    matches!(node, Node::Text(text, _) if text.trim().is_empty())
}

fn is_block(node: &Node) -> bool {
    match node {
        Node::Element(element) => INLINE_ELEMENTS.binary_search(&element.name).is_err(),
        _ => false,
    }
}

impl Renderer<'_> {
    /// Runs `render` one level deeper in quotes, alerts and list items.
    fn nested<T>(&self, render: impl FnOnce() -> T) -> T {
        self.nested.set(self.nested.get() + 1);
        let rendered = render();
        self.nested.set(self.nested.get() - 1);
        rendered
    }

    fn block_texts(&self, nodes: &[Node]) -> Vec<String> {
        self.blocks(nodes)
            .into_iter()
            .map(|(text, _, _)| text)
            .collect()
    }

    /// Renders a sequence of block-level nodes; each entry is one Markdown block with the span of
    /// storage it comes from.
    fn blocks(&self, nodes: &[Node]) -> Vec<(String, BlockKind, Range<usize>)> {
        let mut blocks = Vec::new();
        // Where the current run of inline nodes between blocks starts.
        let mut run_start: Option<usize> = None;
        let mut previous_list: Option<(ListKind, bool)> = None;
        for (index, node) in nodes.iter().enumerate() {
            if !is_block(node) {
                if run_start.is_none() && !is_blank(node) {
                    run_start = Some(index);
                }
                continue;
            }
            if let Some(start) = run_start.take()
                && let Some((block, span)) = self.stray_inline(&nodes[start..index])
            {
                blocks.push((block, BlockKind::Other, span));
                previous_list = None;
            }
            let Node::Element(element) = node else {
                continue;
            };
            let list_kind = match element.name {
                "ul" => Some(ListKind::Bullet),
                "ol" => Some(ListKind::Ordered),
                "ac:task-list" => Some(ListKind::Task),
                _ => None,
            };
            // Two lists in a row merge in Markdown unless the second uses another marker.
            let alternate = match (previous_list, list_kind) {
                (Some((previous, alternate)), Some(current)) => {
                    (previous == current
                        || (previous != ListKind::Ordered && current != ListKind::Ordered))
                        && !alternate
                }
                _ => false,
            };
            let rendered = match list_kind {
                Some(kind) => self.list(element, kind, alternate),
                None => self.block(element),
            };
            let kind = match (&rendered, element.name) {
                (Some(_), "p") => BlockKind::Paragraph,
                (Some(_), "table" | "hr") => BlockKind::NeedsBlankLine,
                _ => BlockKind::Other,
            };
            let text = rendered.unwrap_or_else(|| self.verbatim_block(element.span.clone()));
            blocks.push((text, kind, element.span.clone()));
            previous_list = list_kind.map(|kind| (kind, alternate));
        }
        if let Some(start) = run_start
            && let Some((block, span)) = self.stray_inline(&nodes[start..])
        {
            blocks.push((block, BlockKind::Other, span));
        }
        blocks
    }

    /// Inline content found where blocks belong: Markdown would wrap it in a paragraph, so copy it.
    /// A lone comment is written as an HTML comment, which the writer keeps.
    fn stray_inline(&self, run: &[Node]) -> Option<(String, Range<usize>)> {
        let first = run.iter().position(|node| !is_blank(node))?;
        let last = run.iter().rposition(|node| !is_blank(node))?;
        let span = run[first].span().start..run[last].span().end;
        let text = &self.source[span.clone()];
        // Inline content the editor put between blocks (Cloud's images) reads as a paragraph.
        let nodes = &run[first..=last];
        if nodes
            .iter()
            .all(|node| matches!(node, Node::Element(_)) || is_blank(node))
            && let Some(paragraph) = self.inline(nodes, InlineContext::Flow)
            && !paragraph.is_empty()
        {
            return Some((paragraph, span));
        }
        if first == last
            && matches!(&run[first], Node::Other(_))
            && text.starts_with("<!--")
            && !text.contains("\n\n")
            && !text.contains("-->\n")
        {
            return Some((text.to_owned(), span));
        }
        Some((self.verbatim_block(span.clone()), span))
    }

    fn verbatim_block(&self, span: std::ops::Range<usize>) -> String {
        let content = self.source[span].trim();
        let fence = "`".repeat(longest_run(content, '`').max(2) + 1);
        format!("{fence}{VERBATIM_BLOCK_INFO}\n{content}\n{fence}")
    }

    /// An inline verbatim span; in a table cell its pipes are escaped so they do not end the cell.
    fn verbatim_in(&self, span: std::ops::Range<usize>, context: InlineContext) -> String {
        let verbatim = self.verbatim_span(span);
        match context {
            InlineContext::TableCell => verbatim.replace('|', "\\|"),
            InlineContext::Flow => verbatim,
        }
    }

    fn verbatim_span(&self, span: std::ops::Range<usize>) -> String {
        let content: String = self.source[span]
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        code_span(&format!("{VERBATIM_INLINE_PREFIX}{content}"))
    }

    /// Renders one block element, or `None` when it must be carried verbatim.
    fn block(&self, element: &Element) -> Option<String> {
        match element.name {
            "p" if has_only_significant(element, &[]) => self.paragraph(element),
            name @ ("h1" | "h2" | "h3" | "h4" | "h5" | "h6")
                if has_only_significant(element, &[]) =>
            {
                let level = usize::from(name.as_bytes()[1] - b'0');
                let text = self.inline(&element.children, InlineContext::Flow)?;
                if text.contains('\n') {
                    return None;
                }
                let hashes = "#".repeat(level);
                Some(if text.is_empty() {
                    hashes
                } else {
                    format!("{hashes} {text}")
                })
            }
            "hr" if element.attributes.is_empty() && element.children.is_empty() => {
                Some(THEMATIC_BREAK.to_owned())
            }
            "blockquote" if has_only_significant(element, &[]) => {
                let blocks = self.nested(|| self.block_texts(&element.children));
                if blocks.is_empty() {
                    return None;
                }
                Some(prefix_lines(&blocks.join("\n\n"), "> ", ">"))
            }
            "table" => self.table(element),
            "ac:structured-macro" => self.structured_macro(element),
            "ac:layout" | "ac:layout-section" | "ac:layout-cell" => self.layout_part(element),
            _ => None,
        }
    }

    /// `ac:layout`, its sections and cells as nested containers.
    fn layout_part(&self, element: &Element) -> Option<String> {
        if self.nested.get() > 0 {
            return None;
        }
        let name = element.name.strip_prefix("ac:")?;
        let attributes = directive_attributes(element, "ac:", &[])?;
        let body = if name == "layout-cell" {
            self.block_texts(&element.children).join("\n\n")
        } else {
            if !element.only_elements() {
                return None;
            }
            let expected = if name == "layout" {
                "ac:layout-section"
            } else {
                "ac:layout-cell"
            };
            let mut parts = Vec::new();
            for child in element.child_elements() {
                if child.name != expected {
                    return None;
                }
                parts.push(self.layout_part(child)?);
            }
            parts.join("\n")
        };
        Some(container(name, &attributes, &body))
    }

    /// A macro as a leaf or container directive.
    fn macro_directive(&self, element: &Element) -> Option<String> {
        if self.nested.get() > 0 {
            return None;
        }
        let name = element.attribute("ac:name")?;
        if !directive::is_valid_name(name) || directive::RESERVED.contains(&name) {
            return None;
        }
        let (parameters, body) = macro_parameters(element)?;
        match body {
            None => {
                let mut out = String::from("::");
                out.push_str(name);
                if !parameters.is_empty() {
                    directive::write_attributes(&mut out, &parameters);
                }
                Some(out)
            }
            Some(body) => {
                let text = self.block_texts(&body.children).join("\n\n");
                Some(container(name, &parameters, &text))
            }
        }
    }

    fn paragraph(&self, element: &Element) -> Option<String> {
        if let Some(footnote) = self.footnote_definition(element) {
            return Some(footnote);
        }
        let text = self.inline(&element.children, InlineContext::Flow)?;
        if text.is_empty() {
            return None;
        }
        Some(text)
    }

    /// `<p>` opening with the anchor macro `fn-X` and `<sup>X</sup>`: a footnote definition.
    fn footnote_definition(&self, element: &Element) -> Option<String> {
        let mut children = element.children.iter().filter(|node| !is_blank(node));
        let Some(Node::Element(anchor)) = children.next() else {
            return None;
        };
        let label = anchor_macro_name(anchor)?.strip_prefix("fn-")?;
        let Some(Node::Element(sup)) = children.next() else {
            return None;
        };
        if sup.name != "sup" || !sup.attributes.is_empty() || sup.text_content() != label {
            return None;
        }
        if !sup
            .children
            .iter()
            .all(|node| matches!(node, Node::Text(..)))
            || !is_footnote_label(label)
        {
            return None;
        }
        let sup_index = element
            .children
            .iter()
            .position(|node| matches!(node, Node::Element(e) if std::ptr::eq(e, sup)))?;
        let rest = self.inline(&element.children[sup_index + 1..], InlineContext::Flow)?;
        Some(if rest.is_empty() {
            format!("[^{label}]:")
        } else {
            format!("[^{label}]: {rest}")
        })
    }

    fn structured_macro(&self, element: &Element) -> Option<String> {
        if !has_only_significant(element, &["ac:name"]) || !element.only_elements() {
            return None;
        }
        let name = element.attribute("ac:name")?;
        self.known_macro(element, name)
            .or_else(|| self.macro_directive(element))
    }

    fn known_macro(&self, element: &Element, name: &str) -> Option<String> {
        match name {
            "code" => self.code_macro(element),
            "info" | "tip" | "note" | "warning" => {
                let kind = match name {
                    "info" => "NOTE",
                    "tip" => "TIP",
                    "note" => "IMPORTANT",
                    _ => "WARNING",
                };
                let mut children = element.child_elements();
                let body = children.next()?;
                if children.next().is_some()
                    || body.name != "ac:rich-text-body"
                    || !has_only_significant(body, &[])
                {
                    return None;
                }
                let blocks = self.nested(|| self.block_texts(&body.children));
                let mut alert = format!("> [!{kind}]");
                if !blocks.is_empty() {
                    alert.push('\n');
                    alert.push_str(&prefix_lines(&blocks.join("\n\n"), "> ", ">"));
                }
                Some(alert)
            }
            _ => None,
        }
    }

    fn code_macro(&self, element: &Element) -> Option<String> {
        let mut language = None;
        let mut others: Vec<(String, String)> = Vec::new();
        let mut body = None;
        for child in element.child_elements() {
            match child.name {
                "ac:parameter" if has_only_significant(child, &["ac:name"]) => {
                    let name = child.attribute("ac:name")?;
                    if !child
                        .children
                        .iter()
                        .all(|node| matches!(node, Node::Text(..)))
                    {
                        return None;
                    }
                    let value = child.text_content();
                    if name == "language" && language.is_none() {
                        language = Some(value);
                    } else {
                        others.push((name.to_owned(), value));
                    }
                }
                "ac:plain-text-body" if body.is_none() => body = Some(child.text_content()),
                _ => return None,
            }
        }
        let body = body?;
        let language = language.unwrap_or_default();
        if language.is_empty() && (element.child_elements().count() == 2 || !others.is_empty())
            || language
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '`' | '&' | '\\' | '='))
            || language == VERBATIM_BLOCK_INFO
        {
            return None;
        }
        let mut info = language;
        for (key, value) in &others {
            let key_ok = !key.is_empty()
                && !key.contains(|c: char| {
                    c.is_whitespace() || matches!(c, '=' | '"' | '`' | '&' | '\\')
                });
            if !key_ok || value.contains(['\n', '\r', '`', '&', '"', '\\']) {
                return None;
            }
            info.push(' ');
            info.push_str(key);
            info.push_str("=\"");
            info.push_str(value);
            info.push('"');
        }
        let fence = "`".repeat(longest_run(&body, '`').max(2) + 1);
        Some(format!("{fence}{info}\n{body}\n{fence}"))
    }

    fn list(&self, element: &Element, kind: ListKind, alternate: bool) -> Option<String> {
        let allowed: &[&str] = if kind == ListKind::Ordered {
            &["start"]
        } else {
            &[]
        };
        if !has_only_significant(element, allowed) || !element.only_elements() {
            return None;
        }
        let mut number: u64 = match element.attribute("start") {
            Some(start) => start.trim().parse().ok()?,
            None => 1,
        };
        let item_name = if kind == ListKind::Task {
            "ac:task"
        } else {
            "li"
        };
        let mut items: Vec<(String, Vec<(String, BlockKind)>)> = Vec::new();
        for item in element.child_elements() {
            if item.name != item_name || !has_only_significant(item, &[]) {
                return None;
            }
            let (marker_text, content) = if kind == ListKind::Task {
                let (complete, body) = self.task(item)?;
                let bullet = if alternate { '*' } else { '-' };
                (
                    format!("{bullet} [{}] ", if complete { 'x' } else { ' ' }),
                    vec![(body, BlockKind::Paragraph)],
                )
            } else {
                let marker = match kind {
                    ListKind::Ordered => {
                        let marker = format!("{number}{} ", if alternate { ')' } else { '.' });
                        number += 1;
                        marker
                    }
                    _ => (if alternate { "* " } else { "- " }).to_owned(),
                };
                (marker, self.list_item(item)?)
            };
            items.push((marker_text, content));
        }
        if items.is_empty() {
            return None;
        }
        // Blank lines inside an item make the whole list loose in Markdown; keep it tight unless an
        // item holds several paragraphs.
        let loose = items.iter().any(|(_, blocks)| {
            blocks
                .iter()
                .filter(|(_, kind)| *kind == BlockKind::Paragraph)
                .count()
                > 1
        });
        let mut rendered_items = Vec::new();
        for (marker, blocks) in items {
            let mut body = String::new();
            for (index, (block, kind)) in blocks.iter().enumerate() {
                if index > 0 {
                    let needs_blank = loose || *kind == BlockKind::NeedsBlankLine;
                    body.push_str(if needs_blank { "\n\n" } else { "\n" });
                }
                // `- ---` is one thematic break, not a list item holding one: on the marker's
                // line, a break is written with another character.
                if index == 0 && block == THEMATIC_BREAK {
                    body.push_str("___");
                } else {
                    body.push_str(block);
                }
            }
            let indent = " ".repeat(marker.chars().count());
            let indented = prefix_lines(&body, &indent, "");
            let first = indented.strip_prefix(indent.as_str()).unwrap_or(&indented);
            let marker = marker.trim_end();
            let mut rendered = String::with_capacity(marker.len() + 1 + first.len());
            rendered.push_str(marker);
            if !first.is_empty() {
                rendered.push(' ');
                rendered.push_str(first);
            }
            rendered_items.push(rendered);
        }
        Some(rendered_items.join(if loose { "\n\n" } else { "\n" }))
    }

    /// The blocks of one list item: a leading run of inline content counts as a paragraph.
    fn list_item(&self, item: &Element) -> Option<Vec<(String, BlockKind)>> {
        let first_block = item
            .children
            .iter()
            .position(is_block)
            .unwrap_or(item.children.len());
        let (inline, rest) = item.children.split_at(first_block);
        let mut blocks = Vec::new();
        let text = self.inline(inline, InlineContext::Flow)?;
        if !text.is_empty() {
            blocks.push((text, BlockKind::Paragraph));
        }
        if rest.iter().any(|node| !is_block(node) && !is_blank(node)) {
            return None;
        }
        let rendered = self.nested(|| self.blocks(rest));
        let paragraph_next = rendered
            .first()
            .is_some_and(|(_, kind, _)| *kind == BlockKind::Paragraph);
        if !blocks.is_empty() && paragraph_next {
            // Inline text followed by a paragraph cannot be told apart from two paragraphs.
            return None;
        }
        blocks.extend(rendered.into_iter().map(|(text, kind, _)| (text, kind)));
        Some(blocks)
    }

    /// A task: its status and its body as inline Markdown.
    fn task(&self, task: &Element) -> Option<(bool, String)> {
        if !task.only_elements() {
            return None;
        }
        let mut status = None;
        let mut body = None;
        for child in task.child_elements() {
            match child.name {
                "ac:task-id" | "ac:task-uuid" => {}
                "ac:task-status" if status.is_none() => {
                    status = Some(match child.text_content().trim() {
                        "complete" => true,
                        "incomplete" => false,
                        _ => return None,
                    });
                }
                "ac:task-body" if body.is_none() && has_only_significant(child, &[]) => {
                    body = Some(self.inline(&child.children, InlineContext::Flow)?);
                }
                _ => return None,
            }
        }
        Some((status?, body.unwrap_or_default()))
    }

    fn table(&self, table: &Element) -> Option<String> {
        // Widths (`style`, `colgroup`) and layouts are the editor's; the cells are the content.
        if !has_only_significant(table, &["style"]) || !table.only_elements() {
            return None;
        }
        let mut rows: Vec<&Element> = Vec::new();
        for child in table.child_elements() {
            match child.name {
                "colgroup"
                    if child.only_elements()
                        && child.child_elements().all(|col| col.name == "col") => {}
                "tbody" | "thead" if has_only_significant(child, &[]) && child.only_elements() => {
                    rows.extend(child.child_elements());
                }
                "tr" => rows.push(child),
                _ => return None,
            }
        }
        let header = rows.first()?;
        let columns = header.child_elements().count();
        if columns == 0 {
            return None;
        }
        let mut alignments: Vec<Option<&'static str>> = Vec::new();
        let mut lines = Vec::new();
        for (row_index, row) in rows.iter().enumerate() {
            if row.name != "tr" || !has_only_significant(row, &[]) || !row.only_elements() {
                return None;
            }
            let cell_name = if row_index == 0 { "th" } else { "td" };
            let mut cells = Vec::new();
            for (column, cell) in row.child_elements().enumerate() {
                if cell.name != cell_name || !has_only_significant(cell, &["style"]) {
                    return None;
                }
                let alignment = match cell.attribute("style") {
                    Some(style) => Some(parse_alignment(style)?),
                    None => None,
                };
                if row_index == 0 {
                    alignments.push(alignment);
                } else if alignments.get(column) != Some(&alignment) {
                    return None;
                }
                cells.push(self.cell(cell)?);
            }
            if cells.len() != columns {
                return None;
            }
            lines.push(table_row(&cells));
            if row_index == 0 {
                let delimiters: Vec<&str> = alignments
                    .iter()
                    .map(|alignment| match alignment {
                        None => "---",
                        Some("left") => ":---",
                        Some("center") => ":---:",
                        Some(_) => "---:",
                    })
                    .collect();
                lines.push(table_row(&delimiters));
            }
        }
        Some(lines.join("\n"))
    }

    fn cell(&self, cell: &Element) -> Option<String> {
        let mut significant = cell.children.iter().filter(|node| !is_blank(node));
        let only = match (significant.next(), significant.next()) {
            (Some(node), None) => Some(node),
            _ => None,
        };
        let text = match only {
            Some(Node::Element(paragraph))
                if paragraph.name == "p" && has_only_significant(paragraph, &[]) =>
            {
                self.inline(&paragraph.children, InlineContext::TableCell)?
            }
            _ => self.inline(&cell.children, InlineContext::TableCell)?,
        };
        if text.contains('\n') {
            return None;
        }
        Some(text)
    }

    /// Renders inline content, or `None` when a block element makes that impossible.
    fn inline(&self, nodes: &[Node], context: InlineContext) -> Option<String> {
        // The Markdown is rarely longer than the storage it comes from: size for that up front.
        let source_len = match (nodes.first(), nodes.last()) {
            (Some(first), Some(last)) => last.span().end.saturating_sub(first.span().start),
            _ => 0,
        };
        let mut out = String::with_capacity(source_len);
        let mut significant = nodes.iter().filter(|node| !is_blank(node));
        let first = significant.next();
        let last = significant.next_back().or(first);
        let is_break = |node: Option<&Node>| matches!(node, Some(Node::Element(element)) if element.name == "br");
        // A break cannot open or close a Markdown paragraph.
        if is_break(first) || is_break(last) {
            return None;
        }
        // Where the previous non-text piece starts in `out` and in the source.
        let mut previous_piece: Option<(usize, usize)> = None;
        for (index, node) in nodes.iter().enumerate() {
            let rendered = match node {
                Node::Text(text, _) => {
                    escape_inline_text(&mut out, text);
                    previous_piece = None;
                    continue;
                }
                Node::CData(..) | Node::Other(_) => self.verbatim_in(node.span(), context),
                Node::Element(element) => {
                    if BLOCK_ELEMENTS.binary_search(&element.name).is_ok() {
                        return None;
                    }
                    let next = match nodes.get(index + 1) {
                        Some(Node::Text(text, _)) => text.chars().next().or(Some(' ')),
                        Some(_) => Some('['),
                        None => None,
                    };
                    self.inline_element(element, context)
                        .filter(|rendered| {
                            !is_emphasis(element.name)
                                || emphasis_fits(rendered, out.chars().last(), next)
                        })
                        .unwrap_or_else(|| self.verbatim_in(node.span(), context))
                }
            };
            // Delimiter runs that touch (`a``b`, `**a***b*`) would fuse: copy both pieces as one.
            let touching = rendered
                .chars()
                .next()
                .filter(|c| matches!(c, '`' | '*' | '_' | '~'));
            match previous_piece {
                Some((out_start, source_start)) if touching.is_some_and(|c| out.ends_with(c)) => {
                    out.truncate(out_start);
                    out.push_str(&self.verbatim_in(source_start..node.span().end, context));
                }
                _ => {
                    previous_piece = Some((out.len(), node.span().start));
                    out.push_str(&rendered);
                }
            }
        }
        let trimmed = out.trim();
        // One line that starts with nothing Markdown would read as a block marker: done.
        let plain_start = trimmed.bytes().next().is_none_or(|first| {
            !first.is_ascii_digit() && !matches!(first, b'#' | b'-' | b'+' | b'=' | b'>' | b':')
        });
        if plain_start && trimmed.len() == out.len() && !trimmed.contains('\n') {
            return Some(out);
        }
        let mut markdown = String::with_capacity(trimmed.len() + 2);
        for (index, line) in trimmed.split('\n').enumerate() {
            if index > 0 {
                markdown.push('\n');
            }
            escape_line_start_into(&mut markdown, line.trim_start());
        }
        Some(markdown)
    }

    fn inline_element(&self, element: &Element, context: InlineContext) -> Option<String> {
        let plain = has_only_significant(element, &[]);
        match element.name {
            "strong" | "b" if plain => self.delimited(element, "**", context),
            "em" | "i" if plain => {
                let inner = self.inline(&element.children, context)?;
                let delimiter = if has_unescaped(&inner, '*') { "_" } else { "*" };
                wrap(&inner, delimiter)
            }
            "del" | "s" | "strike" if plain => self.delimited(element, "~~", context),
            "code" if plain => {
                if !element
                    .children
                    .iter()
                    .all(|node| matches!(node, Node::Text(..)))
                {
                    return None;
                }
                // Spaces and tabs stay as they are; a line break reads as a space in a code span.
                let text = element
                    .text_content()
                    .replace("\r\n", " ")
                    .replace(['\n', '\r'], " ");
                if text.trim().is_empty() || text.starts_with(VERBATIM_INLINE_PREFIX) {
                    return None;
                }
                let span = code_span(&text);
                Some(if context == InlineContext::TableCell {
                    span.replace('|', "\\|")
                } else {
                    span
                })
            }
            "br" if plain && element.children.is_empty() => Some("\\\n".to_owned()),
            "a" if has_only_significant(element, &["href", "title"]) => {
                let href = element.attribute("href")?;
                // A destination cannot span lines.
                if href.contains(['\n', '\r'])
                    || element
                        .attribute("title")
                        .is_some_and(|title| title.contains(['\n', '\r']))
                {
                    return None;
                }
                let label = self.inline(&element.children, context)?;
                if label.is_empty() || label.contains('\n') {
                    return None;
                }
                let title = element
                    .attribute("title")
                    .map(link_title)
                    .unwrap_or_default();
                Some(format!(
                    "[{label}]({})",
                    in_cell(format!("{}{title}", link_destination(href)), context)
                ))
            }
            "ac:link" => self
                .page_link(element, context)
                .or_else(|| self.link_directive(element)),
            "ac:image" => self
                .image(element, context)
                .or_else(|| self.image_directive(element)),
            "sup" if plain => self.footnote_reference(element),
            "ac:emoticon" if element.children.is_empty() => {
                let attributes = directive_attributes(element, "ac:", &[])?;
                Some(inline_directive("emoticon", None, &attributes))
            }
            // Underlined text as Markdown's own inline HTML.
            "u" if plain
                && element
                    .children
                    .iter()
                    .all(|node| matches!(node, Node::Text(..))) =>
            {
                let mut inner = String::new();
                escape_inline_text(&mut inner, &element.text_content());
                (!inner.trim().is_empty() && inner == inner.trim())
                    .then(|| format!("<u>{inner}</u>"))
            }
            // A span with nothing but bookkeeping (`class="placeholder-inline-tasks"`) is transparent.
            "span" if plain => self.inline(&element.children, context),
            "time"
                if has_only_significant(element, &["datetime"]) && element.children.is_empty() =>
            {
                let attributes = directive_attributes(element, "", &[])?;
                Some(inline_directive("time", None, &attributes))
            }
            "span"
                if has_only_significant(element, &["style"])
                    && element.attribute("style").is_some()
                    && element
                        .children
                        .iter()
                        .all(|node| matches!(node, Node::Text(..))) =>
            {
                let label = directive_label(&element.text_content())?;
                let attributes = directive_attributes(element, "", &[])?;
                Some(inline_directive("span", Some(&label), &attributes))
            }
            "ac:structured-macro"
                if has_only_significant(element, &["ac:name"]) && element.only_elements() =>
            {
                let name = element.attribute("ac:name")?;
                if !directive::is_valid_name(name) || directive::RESERVED.contains(&name) {
                    return None;
                }
                let (parameters, body) = macro_parameters(element)?;
                if body.is_some() {
                    return None;
                }
                Some(inline_directive(name, None, &parameters))
            }
            _ => None,
        }
    }

    /// The target of a link or image as directive attributes: `page` and `space`, `attachment`
    /// (with the page it belongs to), `space` alone, or `src` for an image URL.
    fn target_attributes(target: &Element) -> Option<Vec<(String, String)>> {
        let mut attributes = Vec::new();
        let mut push = |key: &str, value: Option<&str>| {
            if let Some(value) = value {
                attributes.push((key.to_owned(), value.to_owned()));
            }
        };
        match target.name {
            "ri:page"
                if has_only_significant(target, &["ri:content-title", "ri:space-key"])
                    && target.children.is_empty() =>
            {
                push("page", Some(target.attribute("ri:content-title")?));
                push("space", target.attribute("ri:space-key"));
            }
            "ri:attachment"
                if has_only_significant(target, &["ri:filename"]) && target.only_elements() =>
            {
                push("attachment", Some(target.attribute("ri:filename")?));
                let mut owners = target.child_elements();
                if let Some(owner) = owners.next() {
                    if owners.next().is_some()
                        || owner.name != "ri:page"
                        || !owner.children.is_empty()
                        || !has_only_significant(owner, &["ri:content-title", "ri:space-key"])
                    {
                        return None;
                    }
                    push("page", Some(owner.attribute("ri:content-title")?));
                    push("space", owner.attribute("ri:space-key"));
                }
            }
            "ri:space"
                if has_only_significant(target, &["ri:space-key"])
                    && target.children.is_empty() =>
            {
                push("space", Some(target.attribute("ri:space-key")?));
            }
            "ri:url"
                if has_only_significant(target, &["ri:value"]) && target.children.is_empty() =>
            {
                push("src", Some(target.attribute("ri:value")?));
            }
            _ => return None,
        }
        attributes
            .iter()
            .all(|(_, value)| !value.contains(['\n', '\r']))
            .then_some(attributes)
    }

    /// `ac:link` to a user (`:mention{…}`) or to a page in another space, an attachment or a space
    /// (`:link[label]{…}`).
    fn link_directive(&self, link: &Element) -> Option<String> {
        if !has_only_significant(link, &["ac:anchor"]) || !link.only_elements() {
            return None;
        }
        let mut target = None;
        let mut label = None;
        for child in link.child_elements() {
            match child.name {
                "ac:plain-text-link-body" | "ac:link-body"
                    if label.is_none()
                        && child.attributes.is_empty()
                        && child
                            .children
                            .iter()
                            .all(|node| matches!(node, Node::Text(..) | Node::CData(..))) =>
                {
                    label = Some(child.text_content());
                }
                name if name.starts_with("ri:") && target.is_none() => target = Some(child),
                _ => return None,
            }
        }
        let target = target?;
        if target.name == "ri:user" {
            if label.is_some()
                || link.attribute("ac:anchor").is_some()
                || !target.children.is_empty()
            {
                return None;
            }
            let attributes = directive_attributes(target, "ri:", &[])?;
            return Some(inline_directive("mention", None, &attributes));
        }
        let mut attributes = Vec::new();
        if let Some(anchor) = link.attribute("ac:anchor") {
            if anchor.contains(['\n', '\r']) {
                return None;
            }
            attributes.push(("anchor".to_owned(), anchor.to_owned()));
        }
        if target.name == "ri:url" {
            return None;
        }
        attributes.extend(Self::target_attributes(target)?);
        let label = match label {
            Some(label) => Some(directive_label(&label).filter(|escaped| !escaped.is_empty())?),
            None => None,
        };
        Some(inline_directive("link", label.as_deref(), &attributes))
    }

    /// `ac:image` with what `![alt](…)` cannot say (sizes, alignment, another page's attachment).
    fn image_directive(&self, image: &Element) -> Option<String> {
        if !image.only_elements() {
            return None;
        }
        let mut children = image.child_elements();
        let target = children.next()?;
        if children.next().is_some() {
            return None;
        }
        let mut attributes = directive_attributes(image, "ac:", &["ac:alt"])?;
        if attributes
            .iter()
            .any(|(key, _)| matches!(key.as_str(), "src" | "attachment" | "page" | "space"))
        {
            return None;
        }
        attributes.extend(Self::target_attributes(target)?);
        let label = match image.attribute("ac:alt") {
            Some(alt) => Some(directive_label(alt)?),
            None => None,
        };
        Some(inline_directive("image", label.as_deref(), &attributes))
    }

    fn delimited(
        &self,
        element: &Element,
        delimiter: &str,
        context: InlineContext,
    ) -> Option<String> {
        let inner = self.inline(&element.children, context)?;
        // The same delimiter nested inside would pair up with the wrong partner.
        if contains_unescaped(&inner, delimiter) {
            return None;
        }
        wrap(&inner, delimiter)
    }

    /// `ac:link` to a page by title (with optional anchor and plain label), or to an anchor on this page.
    fn page_link(&self, link: &Element, context: InlineContext) -> Option<String> {
        if !has_only_significant(link, &["ac:anchor"]) || !link.only_elements() {
            return None;
        }
        let mut title = None;
        let mut label = None;
        for child in link.child_elements() {
            match child.name {
                "ri:page"
                    if title.is_none() && has_only_significant(child, &["ri:content-title"]) =>
                {
                    title = Some(child.attribute("ri:content-title")?.to_owned());
                }
                "ac:plain-text-link-body" if label.is_none() => label = Some(child.text_content()),
                _ => return None,
            }
        }
        let anchor = link.attribute("ac:anchor");
        if title.is_none() && anchor.is_none() {
            return None;
        }
        let title = title.unwrap_or_default();
        let target_ok = |text: &str| {
            text.trim() == text
                && !text.contains(['|', '#', '[', ']', '\n', '\r', '\\', '`', '<', '>'])
        };
        if !target_ok(&title)
            || anchor.is_some_and(|anchor| !target_ok(anchor) || anchor.is_empty())
        {
            return None;
        }
        if anchor.is_none() && title.is_empty() {
            return None;
        }
        let mut target = title;
        if let Some(anchor) = anchor {
            target.push('#');
            target.push_str(anchor);
        }
        match label {
            None => Some(format!("[[{target}]]")),
            Some(label) => {
                let mut escaped = String::new();
                escape_inline_text(&mut escaped, &label);
                if escaped.is_empty()
                    || escaped != escaped.trim()
                    || escaped.contains('\n')
                    || label != collapse_whitespace(&label)
                {
                    return None;
                }
                // In a table the pipe must be escaped or it would end the cell.
                let pipe = if context == InlineContext::TableCell {
                    "\\|"
                } else {
                    "|"
                };
                Some(format!("[[{target}{pipe}{escaped}]]"))
            }
        }
    }

    fn image(&self, image: &Element, context: InlineContext) -> Option<String> {
        if !has_only_significant(image, &["ac:alt", "ac:title"]) || !image.only_elements() {
            return None;
        }
        let mut children = image.child_elements();
        let target = children.next()?;
        if children.next().is_some() {
            return None;
        }
        let destination = match target.name {
            "ri:url" if has_only_significant(target, &["ri:value"]) => {
                let url = target.attribute("ri:value")?;
                if !super::to_storage::is_absolute_url(url) {
                    return None;
                }
                url.to_owned()
            }
            "ri:attachment"
                if has_only_significant(target, &["ri:filename"]) && target.children.is_empty() =>
            {
                let filename = target.attribute("ri:filename")?;
                if filename.is_empty() || super::to_storage::is_absolute_url(filename) {
                    return None;
                }
                filename.to_owned()
            }
            _ => return None,
        };
        if destination.contains(['\n', '\r'])
            || image
                .attribute("ac:title")
                .is_some_and(|title| title.contains(['\n', '\r']))
        {
            return None;
        }
        let alt = image.attribute("ac:alt").unwrap_or_default();
        if alt.contains('\n') || alt != collapse_whitespace(alt).trim() {
            return None;
        }
        let mut escaped_alt = String::new();
        escape_inline_text(&mut escaped_alt, alt);
        let title = image
            .attribute("ac:title")
            .map(link_title)
            .unwrap_or_default();
        Some(format!(
            "![{escaped_alt}]({})",
            in_cell(
                format!("{}{title}", link_destination(&destination)),
                context
            )
        ))
    }

    /// `<sup>` holding an anchor link `fn-X` labelled `X`: a footnote reference.
    fn footnote_reference(&self, sup: &Element) -> Option<String> {
        let significant: Vec<&Node> = sup.children.iter().filter(|node| !is_blank(node)).collect();
        let [Node::Element(link)] = significant.as_slice() else {
            return None;
        };
        if link.name != "ac:link" || !has_only_significant(link, &["ac:anchor"]) {
            return None;
        }
        let label = link.attribute("ac:anchor")?.strip_prefix("fn-")?;
        let mut children = link.child_elements();
        let body = children.next()?;
        if children.next().is_some()
            || body.name != "ac:plain-text-link-body"
            || body.text_content() != label
        {
            return None;
        }
        (is_footnote_label(label) && self.footnote_defined(label)).then(|| format!("[^{label}]"))
    }

    /// Whether the Markdown of the whole fragment holds the definition `[^label]:`.
    fn footnote_defined(&self, label: &str) -> bool {
        if self.collecting_footnotes.get() {
            return true;
        }
        let defined = self.footnotes.get_or_init(|| {
            self.collecting_footnotes.set(true);
            let mut labels = std::collections::HashSet::new();
            let mut stack: Vec<&Node> = self.roots.iter().collect();
            while let Some(node) = stack.pop() {
                let Node::Element(element) = node else {
                    continue;
                };
                if element.name == "p"
                    && has_only_significant(element, &[])
                    && let Some(definition) = self.footnote_definition(element)
                    && let Some(found) = definition
                        .strip_prefix("[^")
                        .and_then(|rest| rest.split_once("]:"))
                {
                    labels.insert(found.0.to_owned());
                }
                stack.extend(element.children.iter());
            }
            self.collecting_footnotes.set(false);
            labels
        });
        defined.contains(label)
    }
}

/// The anchor name of `<ac:structured-macro ac:name="anchor">` with only its default parameter.
fn anchor_macro_name<'e>(element: &'e Element<'_>) -> Option<&'e str> {
    if element.name != "ac:structured-macro"
        || element.attribute("ac:name") != Some("anchor")
        || !has_only_significant(element, &["ac:name"])
    {
        return None;
    }
    let mut children = element.child_elements();
    let parameter = children.next()?;
    if children.next().is_some()
        || parameter.name != "ac:parameter"
        || parameter.attribute("ac:name") != Some("")
    {
        return None;
    }
    match parameter.children.as_slice() {
        [Node::Text(text, _)] => Some(text.as_ref()),
        _ => None,
    }
}

fn is_footnote_label(label: &str) -> bool {
    !label.is_empty()
        && label
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// True when `text` holds `pattern` at a position not preceded by a backslash escape.
fn contains_unescaped(text: &str, pattern: &str) -> bool {
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        if !escaped && text[index..].starts_with(pattern) {
            return true;
        }
        escaped = c == '\\' && !escaped;
    }
    false
}

/// True when `text` holds `wanted` not preceded by a backslash escape.
fn has_unescaped(text: &str, wanted: char) -> bool {
    let mut escaped = false;
    for c in text.chars() {
        if c == wanted && !escaped {
            return true;
        }
        escaped = c == '\\' && !escaped;
    }
    false
}

fn is_emphasis(name: &str) -> bool {
    matches!(name, "strong" | "b" | "em" | "i" | "del" | "s" | "strike")
}

/// Whether rendered emphasis opens and closes where it stands, by CommonMark's flanking rules:
/// a delimiter next to punctuation inside needs whitespace or punctuation (or nothing) outside.
fn emphasis_fits(rendered: &str, before: Option<char>, after: Option<char>) -> bool {
    // Inside, anything that might count as punctuation; outside, only what surely counts as
    // whitespace or punctuation. Doubtful cases are carried verbatim rather than misread.
    let is_punctuation = |c: char| !c.is_alphanumeric() && !c.is_whitespace();
    let outside_ok = |c: Option<char>| {
        c.is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_punctuation() || c == '\u{a0}')
    };
    let before = if rendered.starts_with(' ') {
        Some(' ')
    } else {
        before
    };
    let after = if rendered.ends_with(' ') {
        Some(' ')
    } else {
        after
    };
    let trimmed = rendered.trim();
    let Some(delimiter) = trimmed.chars().next() else {
        return false;
    };
    let inner = trimmed.trim_matches(delimiter);
    let (Some(first), Some(last)) = (inner.chars().next(), inner.chars().last()) else {
        return false;
    };
    let opens = !is_punctuation(first) || outside_ok(before);
    let closes = !is_punctuation(last) || outside_ok(after);
    let underscore_ok = delimiter != '_' || (outside_ok(before) && outside_ok(after));
    opens && closes && underscore_ok
}

/// Wraps inline Markdown in emphasis delimiters, keeping edge whitespace outside them.
fn wrap(inner: &str, delimiter: &str) -> Option<String> {
    let trimmed = inner.trim();
    if trimmed.is_empty() || trimmed.contains("\n") {
        return None;
    }
    let leading = if inner.starts_with(' ') { " " } else { "" };
    let trailing = if inner.ends_with(' ') { " " } else { "" };
    Some(format!(
        "{leading}{delimiter}{trimmed}{delimiter}{trailing}"
    ))
}

/// A link destination and title: in a table cell, a pipe is escaped so that it does not end the cell.
fn in_cell(target: String, context: InlineContext) -> String {
    if context == InlineContext::TableCell {
        target.replace('|', "\\|")
    } else {
        target
    }
}

/// One table row in pipe syntax.
fn table_row<S: AsRef<str>>(cells: &[S]) -> String {
    let width: usize = cells.iter().map(|cell| cell.as_ref().len() + 3).sum();
    let mut row = String::with_capacity(width + 2);
    row.push('|');
    for cell in cells {
        row.push(' ');
        row.push_str(cell.as_ref());
        row.push_str(" |");
    }
    row
}

fn parse_alignment(style: &str) -> Option<&'static str> {
    let compact: String = style
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    match compact.trim_end_matches(';') {
        "text-align:left" => Some("left"),
        "text-align:center" => Some("center"),
        "text-align:right" => Some("right"),
        _ => None,
    }
}

fn longest_run(text: &str, wanted: char) -> usize {
    let mut longest = 0;
    let mut current = 0;
    for c in text.chars() {
        if c == wanted {
            current += 1;
            longest = longest.max(current);
        } else {
            current = 0;
        }
    }
    longest
}

/// A code span holding `text` exactly, with a fence longer than any backtick run inside it.
fn code_span(text: &str) -> String {
    let fence = "`".repeat(longest_run(text, '`') + 1);
    let pad = text.starts_with('`')
        || text.ends_with('`')
        || (text.starts_with(' ') && text.ends_with(' ') && !text.trim().is_empty());
    if pad {
        format!("{fence} {text} {fence}")
    } else {
        format!("{fence}{text}{fence}")
    }
}

/// Runs of XML whitespace become one space.
pub(super) fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

/// Escapes text for inline Markdown: whitespace collapses, syntax characters get a backslash.
fn escape_inline_text(out: &mut String, text: &str) {
    let plain = !text.contains("  ")
        && !text.bytes().any(|b| {
            matches!(
                b,
                b'\\'
                    | b'`'
                    | b'*'
                    | b'['
                    | b']'
                    | b'<'
                    | b'>'
                    | b'~'
                    | b'|'
                    | b'!'
                    | b'_'
                    | b'&'
                    | b'#'
                    | b'\t'
                    | b'\n'
                    | b'\r'
            )
        })
        // A colon matters only before a letter (`:name[` or `:name{`).
        && !text
            .as_bytes()
            .windows(2)
            .any(|pair| pair[0] == b':' && pair[1].is_ascii_alphabetic());
    if plain {
        out.push_str(text);
        return;
    }
    let collapsed = collapse_whitespace(text);
    let chars: Vec<char> = collapsed.chars().collect();
    for (index, &c) in chars.iter().enumerate() {
        match c {
            '\\' | '`' | '*' | '[' | ']' | '<' | '>' | '~' | '|' | '!' => {
                if c == '!' && chars.get(index + 1).is_some_and(|next| *next != '[') {
                    out.push(c);
                    continue;
                }
                out.push('\\');
                out.push(c);
            }
            '#' if index == 0 || chars[index - 1] == ' ' => {
                // Keeps `# x #` from closing a heading and `#` from opening one.
                out.push('\\');
                out.push(c);
            }
            '_' => {
                let before = if index == 0 {
                    None
                } else {
                    chars.get(index - 1)
                };
                let after = chars.get(index + 1);
                let intraword = before.is_some_and(|c| c.is_alphanumeric())
                    && after.is_some_and(|c| c.is_alphanumeric());
                if !intraword {
                    out.push('\\');
                }
                out.push(c);
            }
            '&' => {
                if starts_entity(&chars[index + 1..]) {
                    out.push('\\');
                }
                out.push(c);
            }
            ':' => {
                if starts_directive(&chars[index + 1..]) {
                    out.push('\\');
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
}

/// True when the characters after a `:` would read as an inline directive.
fn starts_directive(after: &[char]) -> bool {
    let name_end = after
        .iter()
        .position(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(after.len());
    name_end > 0 && after[0].is_ascii_alphabetic() && matches!(after.get(name_end), Some('[' | '{'))
}

/// True when the characters after an `&` would make Markdown read an entity reference.
fn starts_entity(after: &[char]) -> bool {
    let name: String = after.iter().take(40).take_while(|c| **c != ';').collect();
    let closed = after.get(name.chars().count()) == Some(&';');
    closed
        && !name.is_empty()
        && name
            .trim_start_matches('#')
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
}

/// Backslash-escapes every `&` that would read as an entity reference.
fn escape_entities(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (index, &c) in chars.iter().enumerate() {
        if c == '&' && starts_entity(&chars[index + 1..]) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Appends a line, escaping what would start a block if it began the line.
fn escape_line_start_into(out: &mut String, line: &str) {
    match line.as_bytes().first() {
        Some(b':') if line.starts_with("::") => {
            out.push('\\');
            out.push_str(line);
        }
        Some(b'#' | b'-' | b'+' | b'=' | b'>') => {
            out.push('\\');
            out.push_str(line);
        }
        Some(first) if first.is_ascii_digit() => {
            let digits = line.bytes().take_while(u8::is_ascii_digit).count();
            let rest = &line[digits..];
            if rest.starts_with('.') || rest.starts_with(')') {
                out.push_str(&line[..digits]);
                out.push('\\');
                out.push_str(rest);
            } else {
                out.push_str(line);
            }
        }
        _ => out.push_str(line),
    }
}

fn link_destination(url: &str) -> String {
    let needs_angle = url.is_empty()
        || url.contains([' ', '(', ')', '<', '>', '\n', '\t'])
        || url.starts_with('<');
    if needs_angle {
        let escaped = url
            .replace('\\', "\\\\")
            .replace('<', "\\<")
            .replace('>', "\\>");
        format!("<{}>", escape_entities(&escaped))
    } else {
        escape_entities(&url.replace('\\', "\\\\"))
    }
}

fn link_title(title: &str) -> String {
    let escaped = title.replace('\\', "\\\\").replace('"', "\\\"");
    format!(" \"{}\"", escape_entities(&escaped))
}

/// Prefixes every line; blank lines get `blank_prefix` so no trailing whitespace is left.
fn prefix_lines(text: &str, prefix: &str, blank_prefix: &str) -> String {
    let mut out = String::with_capacity(text.len() + prefix.len() * 4);
    for (index, line) in text.split('\n').enumerate() {
        if index > 0 {
            out.push('\n');
        }
        if line.is_empty() {
            out.push_str(blank_prefix);
        } else {
            out.push_str(prefix);
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{BLOCK_ELEMENTS, INLINE_ELEMENTS};

    #[test]
    fn element_tables_are_sorted_for_binary_search() {
        assert!(INLINE_ELEMENTS.is_sorted());
        assert!(BLOCK_ELEMENTS.is_sorted());
    }
}
