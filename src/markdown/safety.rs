//! The write policy: which storage constructs could run script in Confluence and are refused.

use super::xml::{Element, Node};
use super::{BodyError, WritePolicy};

/// Elements that load or run active content whatever their attributes.
const SCRIPT_ELEMENTS: &[&str] = &["script", "iframe", "frame", "frameset", "object", "embed"];
/// Macros that inject raw HTML or script into the rendered page.
const SCRIPT_MACROS: &[&str] = &["html", "html-include"];
/// Attributes that hold names and text, never a URL: a page titled `javascript:x` is just a title.
const NOT_URLS: &[&str] = &[
    "ri:content-title",
    "ri:filename",
    "ri:space-key",
    "ri:account-id",
    "ri:userkey",
    "ri:username",
    "ac:alt",
    "ac:title",
    "ac:anchor",
    "alt",
    "title",
];
/// URL schemes that run script when followed.
const SCRIPT_SCHEMES: &[&str] = &["javascript:", "vbscript:", "data:text/html"];

/// Returns the first refused construct in the tree, if any.
pub(crate) fn check(nodes: &[Node], policy: &WritePolicy) -> Result<(), BodyError> {
    match nodes.iter().find_map(|node| refused(node, policy)) {
        Some(construct) => Err(BodyError::Unsafe { construct }),
        None => Ok(()),
    }
}

/// Names the first refused construct under `node`.
pub(crate) fn refused(node: &Node, policy: &WritePolicy) -> Option<String> {
    let Node::Element(element) = node else {
        return None;
    };
    refused_element(element, policy).or_else(|| {
        element
            .children
            .iter()
            .find_map(|child| refused(child, policy))
    })
}

fn refused_element(element: &Element, policy: &WritePolicy) -> Option<String> {
    let local_name = element.name.to_ascii_lowercase();
    if SCRIPT_ELEMENTS.contains(&local_name.as_str()) {
        return Some(format!("a <{}> element", element.name));
    }
    if matches!(local_name.as_str(), "ac:structured-macro" | "ac:macro")
        && let Some(macro_name) = element.attribute("ac:name")
    {
        let macro_name = macro_name.trim().to_ascii_lowercase();
        let allowed = policy
            .allowed_macros
            .iter()
            .any(|allowed| allowed.trim().eq_ignore_ascii_case(&macro_name));
        if SCRIPT_MACROS.contains(&macro_name.as_str()) && !allowed {
            return Some(format!("the {macro_name} macro"));
        }
    }
    for (key, value) in &element.attributes {
        if !key.contains(':') && key.to_ascii_lowercase().starts_with("on") {
            return Some(format!("an {key} attribute"));
        }
        if !NOT_URLS.contains(key) && is_script_url(value) {
            return Some(format!("a script url in the {key} attribute"));
        }
    }
    if element.name == "ac:parameter" && is_script_url(&element.text_content()) {
        return Some("a script url in a macro parameter".to_owned());
    }
    None
}

/// True when a URL would run script, ignoring case, whitespace and control characters, as browsers do.
fn is_script_url(value: &str) -> bool {
    let compact: String = value
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .take(16)
        .flat_map(char::to_lowercase)
        .collect();
    SCRIPT_SCHEMES
        .iter()
        .any(|scheme| compact.starts_with(scheme))
}
