//! A canonical form of storage XHTML, for deciding whether two bodies say the same thing.
//!
//! Two bodies are equivalent when their canonical forms are equal. The canonical form ignores what
//! Confluence itself changes or what carries no meaning: attribute order, `<x/>` versus `<x></x>`,
//! entity versus character, CDATA versus escaped text, line-ending style, runs of whitespace (except
//! in code bodies and `pre`) and whitespace next to blocks, spacing inside `style` values, macro ids
//! and schema versions, `ac:local-id`, `data-layout="default"`, `start="1"`, task ids, comments, the
//! HTML synonyms `b`/`i`/`s` of `strong`/`em`/`del`, and a lone `<p>` wrapping the content of a list
//! item, table cell or task body.

use super::XhtmlError;
use super::from_storage::is_insignificant_attribute;
use super::xml::{self, Element, Node, escape_attribute_into, escape_text_into};

/// Elements around which whitespace carries no meaning.
const BLOCK_LIKE: &[&str] = &[
    "ac:image",
    "ac:link-body",
    "ac:plain-text-link-body",
    "ri:attachment",
    "ri:page",
    "ri:space",
    "ri:url",
    "ri:user",
    "ac:layout",
    "ac:layout-cell",
    "ac:layout-section",
    "ac:parameter",
    "ac:plain-text-body",
    "ac:rich-text-body",
    "ac:structured-macro",
    "ac:task",
    "ac:task-body",
    "ac:task-list",
    "ac:task-status",
    "blockquote",
    "br",
    "col",
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
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
];

/// Elements whose text is kept exactly.
const PRESERVE_WHITESPACE: &[&str] = &["ac:plain-text-body", "pre"];

/// Containers whose lone `<p>` child is unwrapped.
const UNWRAP_LONE_PARAGRAPH: &[&str] = &["li", "td", "th", "ac:task-body"];

/// Returns the canonical form of a storage fragment; two fragments are equivalent when their
/// canonical forms are equal.
pub fn normalize_storage(xhtml: &str) -> Result<String, XhtmlError> {
    let nodes = xml::parse_fragment(xhtml)?;
    let mut out = String::with_capacity(xhtml.len());
    write_children(&mut out, &nodes, "", false);
    Ok(out)
}

/// A node reduced to what matters for comparison.
enum Canonical<'n> {
    Element(&'n Element<'n>),
    Text(String),
}

fn canonical_children<'n>(nodes: &'n [Node], parent: &str, preserve: bool) -> Vec<Canonical<'n>> {
    let mut flattened: Vec<&'n Node> = Vec::new();
    let significant: Vec<&Node> = nodes
        .iter()
        .filter(|node| match node {
            Node::Text(text, _) => !text.trim().is_empty(),
            Node::Other(_) => false,
            Node::Element(element) => !matches!(element.name, "ac:task-id" | "ac:task-uuid"),
            Node::CData(..) => true,
        })
        .collect();
    let is_paragraph = |node: &&Node| matches!(node, Node::Element(element) if element.name == "p");
    let lone_paragraph = UNWRAP_LONE_PARAGRAPH.contains(&parent)
        && significant.iter().filter(|node| is_paragraph(node)).count() == 1
        && significant.first().is_some_and(is_paragraph)
        && significant
            .iter()
            .all(|node| matches!(node, Node::Element(_)));
    for node in nodes {
        match node {
            Node::Element(paragraph)
                if lone_paragraph && paragraph.name == "p" && paragraph.attributes.is_empty() =>
            {
                flattened.extend(paragraph.children.iter());
            }
            _ => flattened.push(node),
        }
    }

    let mut canonical: Vec<Canonical<'n>> = Vec::new();
    for node in flattened {
        match node {
            Node::Text(text, _) | Node::CData(text, _) => {
                // XML parsers end every line with a bare line feed.
                let text = text.replace("\r\n", "\n").replace('\r', "\n");
                if let Some(Canonical::Text(previous)) = canonical.last_mut() {
                    previous.push_str(&text);
                } else {
                    canonical.push(Canonical::Text(text));
                }
            }
            Node::Element(element) if matches!(element.name, "ac:task-id" | "ac:task-uuid") => {}
            Node::Element(element) => canonical.push(Canonical::Element(element)),
            Node::Other(_) => {}
        }
    }
    if preserve {
        return canonical;
    }
    let is_block = |item: Option<&Canonical<'_>>| match item {
        None => true,
        Some(Canonical::Element(element)) => BLOCK_LIKE.contains(&element.name),
        Some(Canonical::Text(_)) => false,
    };
    let n_items = canonical.len();
    let mut result = Vec::with_capacity(n_items);
    let mut previous_is_block = true;
    let mut items = canonical.into_iter().peekable();
    while let Some(item) = items.next() {
        match item {
            Canonical::Text(text) => {
                let mut collapsed = super::from_storage::collapse_whitespace(&text);
                if previous_is_block {
                    collapsed = collapsed.trim_start().to_owned();
                }
                if is_block(items.peek()) {
                    collapsed = collapsed.trim_end().to_owned();
                }
                previous_is_block = false;
                if !collapsed.is_empty() {
                    result.push(Canonical::Text(collapsed));
                }
            }
            Canonical::Element(element) => {
                previous_is_block = BLOCK_LIKE.contains(&element.name);
                result.push(Canonical::Element(element));
            }
        }
    }
    result
}

fn write_children(out: &mut String, nodes: &[Node], parent: &str, preserve: bool) {
    for item in canonical_children(nodes, parent, preserve) {
        match item {
            Canonical::Text(text) => escape_text_into(out, &text),
            Canonical::Element(element) => write_element(out, element, preserve),
        }
    }
}

fn write_element(out: &mut String, element: &Element, preserve: bool) {
    let name = match element.name {
        "b" => "strong",
        "i" => "em",
        "s" => "del",
        other => other,
    };
    let mut attributes: Vec<&(&str, std::borrow::Cow<'_, str>)> = element
        .attributes
        .iter()
        .filter(|(key, value)| !is_insignificant_attribute(key, value))
        .collect();
    attributes.sort();
    out.push('<');
    out.push_str(name);
    for (key, value) in attributes {
        out.push(' ');
        out.push_str(key);
        out.push_str("=\"");
        if *key == "style" {
            escape_attribute_into(out, &canonical_style(value));
        } else {
            escape_attribute_into(out, value);
        }
        out.push('"');
    }
    let start = out.len();
    out.push('>');
    let preserve = preserve || PRESERVE_WHITESPACE.contains(&name);
    write_children(out, &element.children, name, preserve);
    if out.len() == start + 1 {
        out.truncate(start);
        out.push_str("/>");
    } else {
        out.push_str("</");
        out.push_str(name);
        out.push('>');
    }
}

/// `color: red; ` and `color:red` are the same style.
fn canonical_style(style: &str) -> String {
    style
        .split(';')
        .filter_map(|declaration| {
            let (property, value) = declaration.split_once(':')?;
            Some(format!(
                "{}:{}",
                property.trim().to_ascii_lowercase(),
                value.trim()
            ))
        })
        .collect::<Vec<_>>()
        .join(";")
}
