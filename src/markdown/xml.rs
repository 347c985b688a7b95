//! The storage-format XML fragment: a strict well-formedness parser into a small tree, and escaping.

use std::borrow::Cow;
use std::ops::Range;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::XhtmlError;
use super::entities;

/// One node of a parsed storage fragment; every node remembers where it sits in the source.
#[derive(Debug, Clone)]
pub(crate) enum Node<'s> {
    Element(Element<'s>),
    /// Character data with entities resolved.
    Text(Cow<'s, str>, Range<usize>),
    /// The content of a CDATA section (after joining split sections, see `Element::children`).
    CData(Cow<'s, str>, Range<usize>),
    /// Comments, processing instructions: kept only so they can be carried verbatim.
    Other(Range<usize>),
}

/// An element with its attributes (values unescaped) and children.
#[derive(Debug, Clone)]
pub(crate) struct Element<'s> {
    pub(crate) name: &'s str,
    pub(crate) attributes: Vec<(&'s str, Cow<'s, str>)>,
    pub(crate) children: Vec<Node<'s>>,
    pub(crate) span: Range<usize>,
}

impl Node<'_> {
    pub(crate) fn span(&self) -> Range<usize> {
        match self {
            Node::Element(element) => element.span.clone(),
            Node::Text(_, span) | Node::CData(_, span) | Node::Other(span) => span.clone(),
        }
    }
}

impl<'s> Element<'s> {
    pub(crate) fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_ref())
    }

    /// Child elements, skipping whitespace-only text.
    pub(crate) fn child_elements(&self) -> impl Iterator<Item = &Element<'s>> {
        self.children.iter().filter_map(|child| match child {
            Node::Element(element) => Some(element),
            _ => None,
        })
    }

    /// True when the element has no child other than elements and blank text.
    pub(crate) fn only_elements(&self) -> bool {
        self.children.iter().all(|child| match child {
            Node::Element(_) => true,
            Node::Text(text, _) => text.trim().is_empty(),
            _ => false,
        })
    }

    /// Concatenated text and CDATA content of the direct children.
    pub(crate) fn text_content(&self) -> String {
        let mut text = String::new();
        for child in &self.children {
            if let Node::Text(part, _) | Node::CData(part, _) = child {
                text.push_str(part);
            }
        }
        text
    }
}

/// Namespace prefixes that need no declaration in a storage fragment.
const KNOWN_PREFIXES: &[&str] = &["ac", "ri", "xml", "xmlns", "at"];

/// Parses a storage fragment (several roots, top-level text allowed), rejecting anything that is not
/// well-formed with the line and column of the problem.
pub(crate) fn parse_fragment(source: &str) -> Result<Vec<Node<'_>>, XhtmlError> {
    // The reader drops a leading byte order mark without counting it; keep it as text instead.
    let (base, body) = match source.strip_prefix('\u{feff}') {
        Some(rest) => (source.len() - rest.len(), rest),
        None => (0, source),
    };
    let mut reader = Reader::from_str(body);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    config.expand_empty_elements = false;
    config.trim_text(false);

    let mut declared_prefixes: Vec<String> = Vec::new();
    // Open elements; the root list is the bottom of the stack.
    let mut stack: Vec<Element<'_>> = Vec::new();
    let mut roots: Vec<Node<'_>> = Vec::new();
    if base > 0 {
        roots.push(Node::Text(Cow::Borrowed(&source[..base]), 0..base));
    }

    fn push<'s>(stack: &mut [Element<'s>], roots: &mut Vec<Node<'s>>, node: Node<'s>) {
        match stack.last_mut() {
            Some(parent) => parent.children.push(node),
            None => roots.push(node),
        }
    }
    // Appends text to the previous text node when adjacent (entities split text into events).
    fn push_text<'s>(
        stack: &mut [Element<'s>],
        roots: &mut Vec<Node<'s>>,
        text: Cow<'s, str>,
        span: Range<usize>,
    ) {
        let siblings = match stack.last_mut() {
            Some(parent) => &mut parent.children,
            None => roots,
        };
        if let Some(Node::Text(previous, previous_span)) = siblings.last_mut()
            && previous_span.end == span.start
        {
            previous.to_mut().push_str(&text);
            previous_span.end = span.end;
            return;
        }
        siblings.push(Node::Text(text, span));
    }

    loop {
        let start = base + position(reader.buffer_position());
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(error) => {
                let at = base + position(reader.error_position());
                return Err(error_at(source, at, &describe(&error)));
            }
        };
        let end = base + position(reader.buffer_position());
        match event {
            Event::Start(tag) => {
                let element = open_element(source, &tag, start, &mut declared_prefixes)?;
                stack.push(element);
            }
            Event::Empty(tag) => {
                let mut element = open_element(source, &tag, start, &mut declared_prefixes)?;
                element.span = start..end;
                push(&mut stack, &mut roots, Node::Element(element));
            }
            Event::End(_) => {
                let Some(mut element) = stack.pop() else {
                    return Err(error_at(source, start, "unexpected close tag"));
                };
                element.span.end = end;
                push(&mut stack, &mut roots, Node::Element(element));
            }
            Event::Text(_) => {
                let raw = &source[start..end];
                if let Some(offset) = raw.bytes().position(|b| b == b'&' || b == b'<') {
                    return Err(error_at(source, start + offset, "unescaped '&' or '<'"));
                }
                check_characters(source, start, raw)?;
                push_text(&mut stack, &mut roots, Cow::Borrowed(raw), start..end);
            }
            Event::GeneralRef(reference) => {
                let name = std::str::from_utf8(&reference).unwrap_or_default();
                let resolved = if reference.is_char_ref() {
                    reference.resolve_char_ref().ok().flatten()
                } else {
                    entities::resolve(name)
                };
                let Some(character) = resolved.filter(|c| is_xml_char(*c)) else {
                    return Err(error_at(
                        source,
                        start,
                        &format!("unknown entity '&{name};'"),
                    ));
                };
                push_text(
                    &mut stack,
                    &mut roots,
                    Cow::Owned(character.to_string()),
                    start..end,
                );
            }
            Event::CData(_) => {
                let raw = &source[start + 9..end.saturating_sub(3).max(start + 9)];
                check_characters(source, start + 9, raw)?;
                let siblings = match stack.last_mut() {
                    Some(parent) => &mut parent.children,
                    None => &mut roots,
                };
                // `]]]]><![CDATA[>` splits one logical text over two sections: join them.
                if let Some(Node::CData(previous, previous_span)) = siblings.last_mut()
                    && previous_span.end == start
                {
                    previous.to_mut().push_str(raw);
                    previous_span.end = end;
                } else {
                    siblings.push(Node::CData(Cow::Borrowed(raw), start..end));
                }
            }
            Event::Comment(_) | Event::PI(_) => {
                push(&mut stack, &mut roots, Node::Other(start..end));
            }
            Event::Decl(_) => {
                return Err(error_at(
                    source,
                    start,
                    "an xml declaration is not allowed in a fragment",
                ));
            }
            Event::DocType(_) => {
                return Err(error_at(
                    source,
                    start,
                    "a doctype is not allowed in a fragment",
                ));
            }
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.last() {
        return Err(error_at(
            source,
            source.len(),
            &format!("unexpected end of input; expected </{}>", open.name),
        ));
    }
    Ok(roots)
}

/// The part of `source` that `bytes` (a slice the reader took from it) covers.
fn source_slice<'s>(source: &'s str, bytes: &[u8]) -> &'s str {
    let offset = (bytes.as_ptr() as usize).wrapping_sub(source.as_ptr() as usize);
    source
        .get(offset..offset + bytes.len())
        .expect("the reader only hands out slices of the source at character boundaries")
}

fn position(offset: u64) -> usize {
    usize::try_from(offset).unwrap_or(usize::MAX)
}

fn describe(error: &quick_xml::Error) -> String {
    use quick_xml::errors::{Error, IllFormedError, SyntaxError};
    match error {
        Error::IllFormed(IllFormedError::MismatchedEndTag { expected, found }) => {
            format!("unexpected close tag </{found}>; expected </{expected}>")
        }
        Error::IllFormed(IllFormedError::UnmatchedEndTag(found)) => {
            format!("unexpected close tag </{found}>")
        }
        Error::IllFormed(IllFormedError::DoubleHyphenInComment) => {
            "'--' is not allowed inside a comment".to_owned()
        }
        Error::IllFormed(IllFormedError::UnclosedReference) => {
            "unescaped '&' (write &amp; for a literal ampersand)".to_owned()
        }
        Error::IllFormed(other) => other.to_string(),
        Error::Syntax(SyntaxError::UnclosedTag) => "unclosed tag".to_owned(),
        Error::Syntax(other) => other.to_string(),
        other => other.to_string(),
    }
}

fn open_element<'s>(
    source: &'s str,
    tag: &BytesStart<'_>,
    start: usize,
    declared_prefixes: &mut Vec<String>,
) -> Result<Element<'s>, XhtmlError> {
    // Names and values are slices of the source, so they can borrow from it.
    let name = source_slice(source, tag.name().as_ref());
    if !is_valid_name(name) {
        return Err(error_at(
            source,
            start,
            &format!("invalid element name '{name}'"),
        ));
    }
    let mut attributes = Vec::new();
    for attribute in tag.attributes() {
        let attribute = attribute
            .map_err(|error| error_at(source, start, &format!("bad attribute: {error}")))?;
        let key = source_slice(source, attribute.key.as_ref());
        if !is_valid_name(key) {
            return Err(error_at(
                source,
                start,
                &format!("invalid attribute name '{key}'"),
            ));
        }
        if let Some(prefix) = key.strip_prefix("xmlns:") {
            declared_prefixes.push(prefix.to_owned());
        }
        let raw = source_slice(source, &attribute.value);
        let value = unescape_attribute(raw)
            .map_err(|message| error_at(source, start, &format!("attribute '{key}': {message}")))?;
        attributes.push((key, value));
    }
    for qualified in std::iter::once(name).chain(attributes.iter().map(|(k, _)| *k)) {
        if let Some((prefix, _)) = qualified.split_once(':')
            && !KNOWN_PREFIXES.contains(&prefix)
            && !declared_prefixes.iter().any(|declared| declared == prefix)
        {
            return Err(error_at(
                source,
                start,
                &format!("unknown namespace prefix '{prefix}' in '{qualified}'"),
            ));
        }
    }
    Ok(Element {
        name,
        attributes,
        children: Vec::new(),
        span: start..start,
    })
}

fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    let mut n_colons = 0;
    let ascii_ok = bytes.iter().all(|&b| {
        n_colons += usize::from(b == b':');
        b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-' | b'.')
    });
    if ascii_ok {
        return (first.is_ascii_alphabetic() || first == b'_' || first == b':') && n_colons <= 1;
    }
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_alphabetic() || first == '_' || first == ':')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
        && name.matches(':').count() <= 1
}

/// Resolves references in a raw attribute value; `<` and a bare `&` are errors.
fn unescape_attribute(raw: &str) -> Result<Cow<'_, str>, String> {
    if !raw.bytes().any(|b| b == b'&' || b == b'<') {
        if raw
            .bytes()
            .all(|b| b != 0xEF && (b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r')))
        {
            return Ok(Cow::Borrowed(raw));
        }
        if let Some(bad) = raw.chars().find(|c| !is_xml_char(*c)) {
            return Err(format!("character U+{:04X} is not allowed", u32::from(bad)));
        }
        return Ok(Cow::Borrowed(raw));
    }
    let mut value = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(index) = rest.find(['&', '<']) {
        value.push_str(&rest[..index]);
        if rest[index..].starts_with('<') {
            return Err("'<' must be escaped".to_owned());
        }
        let after = &rest[index + 1..];
        let Some(semicolon) = after.find(';') else {
            return Err("unescaped '&'".to_owned());
        };
        let name = &after[..semicolon];
        let resolved =
            resolve_reference(name).ok_or_else(|| format!("unknown entity '&{name};'"))?;
        value.push(resolved);
        rest = &after[semicolon + 1..];
    }
    value.push_str(rest);
    if let Some(bad) = value.chars().find(|c| !is_xml_char(*c)) {
        return Err(format!("character U+{:04X} is not allowed", u32::from(bad)));
    }
    Ok(Cow::Owned(value))
}

fn resolve_reference(name: &str) -> Option<char> {
    let character = if let Some(number) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
        u32::from_str_radix(number, 16)
            .ok()
            .and_then(char::from_u32)
    } else if let Some(number) = name.strip_prefix('#') {
        number.parse::<u32>().ok().and_then(char::from_u32)
    } else {
        entities::resolve(name)
    };
    character.filter(|c| is_xml_char(*c))
}

fn check_characters(source: &str, start: usize, raw: &str) -> Result<(), XhtmlError> {
    if raw
        .bytes()
        .all(|b| b != 0xEF && (b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r')))
    {
        return Ok(());
    }
    match raw.char_indices().find(|(_, c)| !is_xml_char(*c)) {
        Some((offset, bad)) => Err(error_at(
            source,
            start + offset,
            &format!("character U+{:04X} is not allowed in xml", u32::from(bad)),
        )),
        None => Ok(()),
    }
}

/// Characters XML 1.0 allows in a document.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Builds an error at a byte offset, counting lines and columns (in characters) from 1.
pub(crate) fn error_at(source: &str, offset: usize, message: &str) -> XhtmlError {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let column = before[line_start..].chars().count() + 1;
    XhtmlError {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        column: u32::try_from(column).unwrap_or(u32::MAX),
        message: message.to_owned(),
    }
}

/// True when every byte of `text` can be copied as is into element content or a CDATA section.
fn is_plain(text: &str) -> bool {
    text.bytes().all(|b| {
        !matches!(b, b'&' | b'<' | b'>' | b'"' | 0xEF) && (b >= 0x20 || matches!(b, b'\t' | b'\n'))
    })
}

/// Appends text escaped for element content; characters XML forbids become U+FFFD.
pub(crate) fn escape_text_into(out: &mut String, text: &str) {
    escape_into(out, text, false);
}

/// Appends text escaped for a double-quoted attribute value.
pub(crate) fn escape_attribute_into(out: &mut String, text: &str) {
    escape_into(out, text, true);
}

/// Copies `text` in runs between the bytes that need a replacement. Every byte matched here is ASCII
/// or the lead byte of a three-byte sequence, so the runs always end on character boundaries.
fn escape_into(out: &mut String, text: &str, attribute: bool) {
    let bytes = text.as_bytes();
    let mut copied = 0;
    let mut index = 0;
    while index < bytes.len() {
        let (replacement, width) = match bytes[index] {
            b'&' => ("&amp;", 1),
            b'<' => ("&lt;", 1),
            b'>' => ("&gt;", 1),
            b'"' if attribute => ("&quot;", 1),
            b'\n' if attribute => ("&#10;", 1),
            b'\r' if attribute => ("&#13;", 1),
            b'\t' if attribute => ("&#9;", 1),
            b'\t' | b'\n' | b'\r' => {
                index += 1;
                continue;
            }
            0x00..=0x1F => ("\u{FFFD}", 1),
            // U+FFFE and U+FFFF are not XML characters.
            0xEF if matches!(bytes.get(index + 1..index + 3), Some([0xBF, 0xBE | 0xBF])) => {
                ("\u{FFFD}", 3)
            }
            _ => {
                index += 1;
                continue;
            }
        };
        out.push_str(&text[copied..index]);
        out.push_str(replacement);
        index += width;
        copied = index;
    }
    out.push_str(&text[copied..]);
}

/// Appends a CDATA section holding `text`, splitting it wherever the text contains `]]>`.
pub(crate) fn cdata_into(out: &mut String, text: &str) {
    out.push_str("<![CDATA[");
    if is_plain(text) {
        out.push_str(text);
        out.push_str("]]>");
        return;
    }
    for c in text.chars() {
        if c == '>' && out.ends_with("]]") {
            out.push_str("]]><![CDATA[>");
        } else if is_xml_char(c) {
            out.push(c);
        } else {
            out.push('\u{FFFD}');
        }
    }
    out.push_str("]]>");
}
