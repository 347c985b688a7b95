//! The generic directive syntax for what Markdown cannot say: `:name[label]{key=value}` inline,
//! `::name{…}` as a leaf block and `:::name{…}` … `:::` as a container, as remark and MyST write it.
//!
//! This module parses and writes the syntax; the meaning of each name (a macro, a mention, an
//! emoticon, a layout part, coloured text) is decided by the reader and the writer.

use std::ops::Range;

/// Names that are not macros. A macro with one of these names is carried verbatim instead.
pub(crate) const RESERVED: &[&str] = &[
    "emoticon",
    "image",
    "layout",
    "layout-cell",
    "layout-section",
    "link",
    "mention",
    "span",
    "time",
];

/// One parsed directive: its name, optional label and attributes in their written order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    pub(crate) name: String,
    pub(crate) label: Option<String>,
    pub(crate) attributes: Vec<(String, String)>,
}

/// A top-level piece of a Markdown document: plain Markdown, or a block directive.
#[derive(Debug)]
pub(crate) enum Segment {
    Markdown(Range<usize>),
    Leaf {
        range: Range<usize>,
        directive: Directive,
    },
    Container {
        range: Range<usize>,
        directive: Directive,
        body: Range<usize>,
    },
}

/// True for a character that may appear in a directive name.
fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')
}

/// True for a character that may appear in an unquoted attribute value.
fn is_bare_value_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'/' | b'+' | b'#' | b'%')
}

/// True for a character that may appear in an attribute key.
fn is_key_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':')
}

/// True when `key` can be written as an attribute key.
pub(crate) fn is_valid_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(is_key_char)
}

/// True when `name` can be written as a directive name.
pub(crate) fn is_valid_name(name: &str) -> bool {
    name.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) && name.bytes().all(is_name_char)
}

/// Writes `{key=value …}`, quoting values that need it. In a quoted value every character Markdown
/// could read as syntax gets a backslash, so that the value stays plain text to a Markdown parser.
pub(crate) fn write_attributes(out: &mut String, attributes: &[(String, String)]) {
    out.push('{');
    for (index, (key, value)) in attributes.iter().enumerate() {
        if index > 0 {
            out.push(' ');
        }
        out.push_str(key);
        out.push('=');
        let chars: Vec<char> = value.chars().collect();
        // An underscore between letters or digits never delimits emphasis.
        let intraword = |index: usize| {
            index > 0
                && chars[index - 1].is_alphanumeric()
                && chars.get(index + 1).is_some_and(|c| c.is_alphanumeric())
        };
        let bare = !chars.is_empty()
            && chars.iter().enumerate().all(|(index, c)| {
                (c.is_ascii() && is_bare_value_char(*c as u8)) || (*c == '_' && intraword(index))
            });
        if bare {
            out.push_str(value);
        } else {
            out.push('"');
            for (index, &c) in chars.iter().enumerate() {
                let entity = c == '&'
                    && chars
                        .get(index + 1)
                        .is_some_and(|next| next.is_ascii_alphanumeric() || *next == '#');
                let syntax = matches!(
                    c,
                    '"' | '\\' | '`' | '*' | '[' | ']' | '<' | '>' | '~' | '|'
                );
                if syntax || entity || (c == '_' && !intraword(index)) {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
    }
    out.push('}');
}

/// Parses `{key=value key="quoted value"}` at the start of `text`; returns the attributes and the
/// length consumed.
pub(crate) fn parse_attributes(text: &str) -> Option<(Vec<(String, String)>, usize)> {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'{') {
        return None;
    }
    let mut attributes = Vec::new();
    let mut index = 1;
    loop {
        while bytes.get(index) == Some(&b' ') {
            index += 1;
        }
        match bytes.get(index)? {
            b'}' => return Some((attributes, index + 1)),
            _ => {
                let key_start = index;
                while bytes.get(index).copied().is_some_and(is_key_char) {
                    index += 1;
                }
                if index == key_start || bytes.get(index) != Some(&b'=') {
                    return None;
                }
                let key = text[key_start..index].to_owned();
                index += 1;
                let value = if bytes.get(index) == Some(&b'"') {
                    index += 1;
                    let mut value = String::new();
                    loop {
                        let c = text[index..].chars().next()?;
                        index += c.len_utf8();
                        match c {
                            '"' => break,
                            '\\' => {
                                let escaped = text[index..].chars().next()?;
                                index += escaped.len_utf8();
                                value.push(escaped);
                            }
                            '\n' | '\r' => return None,
                            other => value.push(other),
                        }
                    }
                    value
                } else {
                    let value_start = index;
                    while bytes
                        .get(index)
                        .is_some_and(|b| is_bare_value_char(*b) || *b == b'_')
                    {
                        index += 1;
                    }
                    if index == value_start {
                        return None;
                    }
                    text[value_start..index].to_owned()
                };
                attributes.push((key, value));
                if !matches!(bytes.get(index), Some(b' ' | b'}')) {
                    return None;
                }
            }
        }
    }
}

/// Parses `name[label]{attributes}` (label optional, attributes required) at the start of `text`;
/// returns the directive and the length consumed.
pub(crate) fn parse_inline(text: &str) -> Option<(Directive, usize)> {
    let bytes = text.as_bytes();
    let name_end = bytes.iter().position(|b| !is_name_char(*b))?;
    let name = &text[..name_end];
    if !is_valid_name(name) {
        return None;
    }
    let mut index = name_end;
    let mut label = None;
    if bytes.get(index) == Some(&b'[') {
        let mut depth = 0usize;
        let mut end = None;
        let mut escaped = false;
        for (offset, c) in text[index..].char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(index + offset);
                        break;
                    }
                }
                '\n' => return None,
                _ => {}
            }
        }
        let end = end?;
        label = Some(text[index + 1..end].to_owned());
        index = end + 1;
    }
    let (attributes, length) = parse_attributes(&text[index..])?;
    Some((
        Directive {
            name: name.to_owned(),
            label,
            attributes,
        },
        index + length,
    ))
}

/// A block directive line: its colon count and directive. The attributes may be left out.
fn parse_block_line(line: &str) -> Option<(usize, Directive)> {
    let colons = line.bytes().take_while(|b| *b == b':').count();
    if colons < 2 {
        return None;
    }
    let rest = line[colons..].trim_end();
    if is_valid_name(rest) {
        let directive = Directive {
            name: rest.to_owned(),
            label: None,
            attributes: Vec::new(),
        };
        return Some((colons, directive));
    }
    let (directive, length) = parse_inline(rest)?;
    (length == rest.len() && directive.label.is_none()).then_some((colons, directive))
}

/// The colon count of a closing line (only colons, at least three).
fn closing_colons(line: &str) -> Option<usize> {
    let trimmed = line.trim_end();
    (trimmed.len() >= 3 && trimmed.bytes().all(|b| b == b':')).then_some(trimmed.len())
}

/// Tracks fenced code blocks so that directive lines inside them are left alone, including fences
/// that open after list item and block quote markers (a fence on the line of `- ` or `> `): their
/// content and closing lines are indented to the item, or carry the same quote markers.
#[derive(Default)]
struct Fences {
    open: Option<OpenFence>,
}

struct OpenFence {
    marker: u8,
    count: usize,
    /// The column the opening fence starts at.
    column: usize,
    /// How many block quote markers precede it.
    quotes: usize,
    /// Inside a list item, the column its content starts at (0 outside): a line that starts
    /// left of it ends the item, and the fence with it.
    item_column: usize,
}

/// A line taken apart: the block quote markers that open it, where its content starts after
/// those and any list item markers, and that content.
struct LineStart<'a> {
    quotes: usize,
    /// Whether list item markers were stripped.
    in_item: bool,
    /// The column the content starts at.
    column: usize,
    /// The spaces between the last marker (or the line's start) and the content.
    indent: usize,
    content: &'a str,
}

impl LineStart<'_> {
    /// Strips block quote markers and, when `items`, list item markers.
    fn of(line: &str, items: bool) -> LineStart<'_> {
        let mut quotes = 0;
        let mut in_item = false;
        let mut column = 0;
        let mut rest = line;
        loop {
            let indent = rest.bytes().take_while(|byte| *byte == b' ').count();
            let after = &rest[indent..];
            let marker = if after.starts_with('>') {
                quotes += 1;
                1
            } else if items {
                let marker = list_marker_len(after);
                in_item |= marker > 0;
                marker
            } else {
                0
            };
            if marker == 0 {
                return LineStart {
                    quotes,
                    in_item,
                    column: column + indent,
                    indent,
                    content: after,
                };
            }
            column += indent + marker;
            rest = &after[marker..];
        }
    }
}

/// The length of a list item marker and the space after it (`- `, `* `, `+ `, `12. `, `3) `) at
/// the start of `text`, or 0.
fn list_marker_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let digits = bytes
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    let marker = match bytes.first() {
        Some(b'-' | b'*' | b'+') => 1,
        Some(_) if (1..=9).contains(&digits) && matches!(bytes.get(digits), Some(b'.' | b')')) => {
            digits + 1
        }
        _ => return 0,
    };
    if bytes.get(marker) == Some(&b' ') {
        marker + 1
    } else {
        0
    }
}

/// The fence that `content` starts with: its character and length.
fn fence_at(content: &str) -> Option<(u8, usize)> {
    let marker = *content.as_bytes().first()?;
    if marker != b'`' && marker != b'~' {
        return None;
    }
    let count = content.bytes().take_while(|byte| *byte == marker).count();
    (count >= 3).then_some((marker, count))
}

impl Fences {
    /// Feeds a line; true when the line is inside (or opens or closes) a fence.
    fn feed(&mut self, line: &str) -> bool {
        match &self.open {
            Some(open) => {
                let start = LineStart::of(line, false);
                // A line outside the quote or the list item the fence opened in ends both.
                let blank = start.content.trim().is_empty();
                if start.quotes < open.quotes || (!blank && start.column < open.item_column) {
                    self.open = None;
                    return self.feed(line);
                }
                // A closing fence: after the opener's quote markers, at most three columns past
                // where the opener stood.
                if start.quotes == open.quotes
                    && start.column <= open.column + 3
                    && let Some((marker, count)) = fence_at(start.content)
                    && marker == open.marker
                    && count >= open.count
                    && start.content[count..].trim().is_empty()
                {
                    self.open = None;
                }
                true
            }
            None => {
                let start = LineStart::of(line, true);
                // Four spaces before it make indented code, not a fence.
                if start.indent > 3 {
                    return false;
                }
                let Some((marker, count)) = fence_at(start.content) else {
                    return false;
                };
                if marker == b'`' && start.content[count..].contains('`') {
                    return false;
                }
                self.open = Some(OpenFence {
                    marker,
                    count,
                    column: start.column,
                    quotes: start.quotes,
                    item_column: if start.in_item { start.column } else { 0 },
                });
                true
            }
        }
    }
}

/// Lines of `text` with their byte ranges (line ending included).
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= text.len() {
            return None;
        }
        let end = text[start..]
            .find('\n')
            .map_or(text.len(), |offset| start + offset + 1);
        let line = &text[start..end];
        let at = start;
        start = end;
        Some((at, line))
    })
}

/// Splits a document into Markdown and block directives at column 0, outside fenced code.
pub(crate) fn segments(text: &str) -> Vec<Segment> {
    // Fast path: no line starts with `::`.
    if !text.starts_with("::") && !text.contains("\n::") {
        return vec![Segment::Markdown(0..text.len())];
    }
    let all: Vec<(usize, &str)> = lines(text).collect();
    let mut segments = Vec::new();
    let mut fences = Fences::default();
    let mut markdown_start = 0;
    let mut index = 0;
    while index < all.len() {
        let (at, line) = all[index];
        if fences.feed(line) {
            index += 1;
            continue;
        }
        let Some((colons, directive)) = parse_block_line(line.trim_end_matches(['\n', '\r']))
        else {
            index += 1;
            continue;
        };
        let end_of_line = at + line.len();
        let found = if colons == 2 {
            Some((
                index,
                Segment::Leaf {
                    range: at..end_of_line,
                    directive,
                },
            ))
        } else {
            closing_line(&all, index, colons).map(|close| {
                let (close_at, close_line) = all[close];
                (
                    close,
                    Segment::Container {
                        range: at..close_at + close_line.len(),
                        directive,
                        body: end_of_line..close_at,
                    },
                )
            })
        };
        let Some((last_line, segment)) = found else {
            index += 1;
            continue;
        };
        if markdown_start < at {
            segments.push(Segment::Markdown(markdown_start..at));
        }
        markdown_start = match &segment {
            Segment::Leaf { range, .. } | Segment::Container { range, .. } => range.end,
            Segment::Markdown(range) => range.end,
        };
        segments.push(segment);
        index = last_line + 1;
    }
    if markdown_start < text.len() {
        segments.push(Segment::Markdown(markdown_start..text.len()));
    }
    segments
}

/// The index of the line closing the container opened at `open` with `colons` colons.
fn closing_line(all: &[(usize, &str)], open: usize, colons: usize) -> Option<usize> {
    let mut fences = Fences::default();
    let mut stack = vec![colons];
    for (index, (_, line)) in all.iter().enumerate().skip(open + 1) {
        if fences.feed(line) {
            continue;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if let Some(count) = closing_colons(line) {
            if stack.last().is_some_and(|top| count >= *top) {
                stack.pop();
                if stack.is_empty() {
                    return Some(index);
                }
            }
        } else if let Some((inner, _)) = parse_block_line(line)
            && inner >= 3
        {
            stack.push(inner);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_through_writing_and_parsing() {
        let attributes = vec![
            ("title".to_owned(), "A \"quoted\" \\ title".to_owned()),
            ("colour".to_owned(), "Green".to_owned()),
            ("empty".to_owned(), String::new()),
        ];
        let mut written = String::new();
        write_attributes(&mut written, &attributes);
        let (parsed, length) = parse_attributes(&written).expect("parses");
        assert_eq!(parsed, attributes);
        assert_eq!(length, written.len());
    }

    #[test]
    fn containers_nest_by_colon_count() {
        let text = "a\n\n::::layout{}\n:::layout-cell{}\nx\n:::\n::::\n\nb\n";
        let found = segments(text);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            matches!(&found[1], Segment::Container { directive, .. } if directive.name == "layout")
        );
    }

    /// How many directives `segments` finds in `text`.
    fn check_directives_found(text: &str, expected: usize) {
        let found = segments(text)
            .iter()
            .filter(|segment| !matches!(segment, Segment::Markdown(_)))
            .count();
        assert_eq!(found, expected, "{text:?}");
    }

    #[test]
    fn directive_lines_in_fenced_code_are_code_wherever_the_fence_opens() {
        // Fences at the top level, in list items and in block quotes, closed where CommonMark
        // closes them; a directive after the fence is live, one inside it is not.
        check_directives_found("```\n::toc\n```\n::toc\n", 1);
        check_directives_found("- ```\n  ::toc\n  ```\n\n::toc\n", 1);
        check_directives_found("1. ~~~~\n   x\n   ~~~~\n::toc\n", 1);
        check_directives_found("- - ```\n    x\n    ```\n::toc\n", 1);
        check_directives_found("> ```\n> ::toc\n> ```\n\n::toc\n", 1);
        // Still open: the closer is too deep.
        check_directives_found("```\n    ```\n::toc\n", 0);
        // Ended with its quote or its list item, closed or not.
        check_directives_found("> ```\n> x\n\n::toc\n", 1);
        check_directives_found("- ```\n  x\n\n  y\n::toc\n", 1);
        check_directives_found("> ```\n```\n::toc\n", 0);
        // Indented code and a backtick fence with a backtick in its info string are not fences.
        check_directives_found("-     ```\n::toc\n", 1);
        check_directives_found("``` a`b\n::toc\n", 1);
    }
}
