//! Markdown to storage XHTML: a walk over pulldown-cmark events that always yields well-formed XML.

use std::ops::Range;

use pulldown_cmark::{
    Alignment, BlockQuoteKind, CodeBlockKind, Event, LinkType, OffsetIter, Options, Parser, Tag,
    TagEnd,
};

use super::directive::{self, Directive, Segment};
use super::from_storage::is_block_element;
use super::xml::{Node, cdata_into, escape_attribute_into, escape_text_into, parse_fragment};
use super::{VERBATIM_BLOCK_INFO, VERBATIM_INLINE_PREFIX, WritePolicy, safety};

/// The title of the code macro that holds a page's YAML front matter.
pub(crate) const FRONT_MATTER_TITLE: &str = "front matter";

/// How a conversion writes what Markdown says in one way and storage in several.
#[derive(Clone, Copy)]
pub(crate) struct Style {
    /// The element `~~struck~~` becomes: `del` (the default), `s` or `strike`.
    pub(crate) strike: &'static str,
    /// What goes between top-level blocks.
    pub(crate) separator: &'static str,
}

impl Default for Style {
    fn default() -> Style {
        Style {
            strike: "del",
            separator: "\n\n",
        }
    }
}

/// One top-level block: where it is in the Markdown and in the storage written for it.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub(crate) markdown: Range<usize>,
    pub(crate) storage: Range<usize>,
}

/// Storage written for a whole document, with its top-level blocks.
pub(crate) struct Converted {
    pub(crate) storage: String,
    pub(crate) blocks: Vec<Block>,
}

/// The Markdown dialect the gateway accepts.
pub(crate) fn parser_options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_GFM
        | Options::ENABLE_WIKILINKS
}

/// The panel macro a GitHub alert becomes.
pub(crate) fn alert_macro(kind: BlockQuoteKind) -> &'static str {
    match kind {
        BlockQuoteKind::Note => "info",
        BlockQuoteKind::Tip => "tip",
        BlockQuoteKind::Important => "note",
        // Confluence has no fifth classic panel; `warning` renders red, like GitHub's caution.
        BlockQuoteKind::Warning | BlockQuoteKind::Caution => "warning",
    }
}

pub(crate) fn convert(markdown: &str, policy: &WritePolicy) -> String {
    convert_blocks(markdown, policy, Style::default()).storage
}

/// Converts a document, recording each top-level block.
pub(crate) fn convert_blocks(markdown: &str, policy: &WritePolicy, style: Style) -> Converted {
    let mut converted = Converted {
        storage: String::with_capacity(markdown.len() + markdown.len() / 2),
        blocks: Vec::new(),
    };
    let (front_matter, rest_start) = front_matter(markdown);
    if let Some((range, yaml)) = front_matter {
        let start = converted.storage.len();
        write_code_macro(
            &mut converted.storage,
            &[
                ("language".to_owned(), "yaml".to_owned()),
                ("title".to_owned(), FRONT_MATTER_TITLE.to_owned()),
            ],
            yaml,
        );
        converted.blocks.push(Block {
            markdown: range,
            storage: start..converted.storage.len(),
        });
    }
    let rest = &markdown[rest_start..];
    for segment in directive::segments(rest) {
        match segment {
            Segment::Markdown(range) => {
                convert_markdown(
                    &mut converted,
                    markdown,
                    rest_start + range.start..rest_start + range.end,
                    policy,
                    style,
                );
            }
            Segment::Leaf { range, directive } => {
                let storage = block_directive(&directive, None);
                push_block(
                    &mut converted,
                    rest_start + range.start..rest_start + range.end,
                    &storage,
                    style,
                );
            }
            Segment::Container {
                range,
                directive,
                body,
            } => {
                let inner = convert_blocks(
                    &rest[body],
                    policy,
                    Style {
                        separator: "",
                        ..style
                    },
                );
                let storage = block_directive(&directive, Some(&inner.storage));
                push_block(
                    &mut converted,
                    rest_start + range.start..rest_start + range.end,
                    &storage,
                    style,
                );
            }
        }
    }
    converted
}

fn push_block(converted: &mut Converted, markdown: Range<usize>, storage: &str, style: Style) {
    if !converted.storage.is_empty() {
        converted.storage.push_str(style.separator);
    }
    let start = converted.storage.len();
    converted.storage.push_str(storage);
    converted.blocks.push(Block {
        markdown,
        storage: start..converted.storage.len(),
    });
}

/// YAML front matter at the very start (`---` … `---` or `...`): its range and its text.
fn front_matter(markdown: &str) -> (Option<(Range<usize>, &str)>, usize) {
    let Some(rest) = markdown
        .strip_prefix("---\n")
        .or_else(|| markdown.strip_prefix("---\r\n"))
    else {
        return (None, 0);
    };
    let body_start = markdown.len() - rest.len();
    let mut at = body_start;
    for line in rest.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == "---" || bare == "..." {
            let yaml = markdown[body_start..at].trim_end_matches(['\n', '\r']);
            let end = at + line.len();
            return (Some((0..end, yaml)), end);
        }
        if bare.trim().is_empty() && at == body_start {
            // `---` followed by a blank line is a rule, not front matter.
            return (None, 0);
        }
        at += line.len();
    }
    (None, 0)
}

/// Converts one stretch of plain Markdown, appending to `converted`.
fn convert_markdown(
    converted: &mut Converted,
    document: &str,
    range: Range<usize>,
    policy: &WritePolicy,
    style: Style,
) {
    let source = &document[range.clone()];
    let mut events = Events {
        parser: Parser::new_ext(source, parser_options()).into_offset_iter(),
        buffer: Vec::new(),
        base: 0,
    };
    let mut writer = Writer {
        policy,
        style,
        source,
        out: std::mem::take(&mut converted.storage),
        closers: Vec::new(),
        capture: None,
        table: Vec::new(),
        task_lists: Vec::new(),
        scopes: Vec::new(),
        escape_inline_html_until: None,
        html_block: None,
        pending: Pending::default(),
        block_start: None,
    };
    let mut index = 0;
    while events.load(index) {
        if writer.at_top_level() {
            // Nothing before the previous event can be looked at or redone any more.
            events.release_before(index.saturating_sub(1));
            if writer.block_start.is_none()
                && let Some((event, event_range)) = events.get_ranged(index)
                && matches!(event, Event::Start(_) | Event::Rule)
            {
                if !writer.out.is_empty() {
                    writer.out.push_str(style.separator);
                }
                writer.block_start = Some((event_range.clone(), writer.out.len()));
            }
        }
        events.prefetch_for(index);
        let next = writer.step(&events, index);
        if next == index + 1 && writer.at_top_level() {
            writer.flush_pending();
            if let Some((markdown, storage_start)) = writer.block_start.take() {
                converted.blocks.push(Block {
                    markdown: range.start + markdown.start..range.start + markdown.end,
                    storage: storage_start..writer.out.len(),
                });
            }
        }
        index = next;
    }
    writer.flush_pending();
    converted.storage = writer.out;
}

/// The storage of a block directive; `body` is the converted body of a container.
fn block_directive(directive: &Directive, body: Option<&str>) -> String {
    let mut out = String::with_capacity(body.map_or(64, |body| body.len() + 128));
    let element = match directive.name.as_str() {
        "layout" => Some("ac:layout"),
        "layout-section" => Some("ac:layout-section"),
        "layout-cell" => Some("ac:layout-cell"),
        _ => None,
    };
    if let Some(element) = element {
        out.push('<');
        out.push_str(element);
        write_prefixed_attributes(&mut out, "ac:", &directive.attributes);
        match body {
            Some(body) => {
                out.push('>');
                out.push_str(body);
                out.push_str("</");
                out.push_str(element);
                out.push('>');
            }
            None => out.push_str("/>"),
        }
        return out;
    }
    write_macro(&mut out, &directive.name, &directive.attributes, body);
    out
}

/// Writes ` prefix:key="value"` for every attribute.
fn write_prefixed_attributes(out: &mut String, prefix: &str, attributes: &[(String, String)]) {
    for (key, value) in attributes {
        out.push(' ');
        out.push_str(prefix);
        out.push_str(key);
        out.push_str("=\"");
        escape_attribute_into(out, value);
        out.push('"');
    }
}

/// Writes a structured macro with its parameters and, when given, its rich-text body. The key `_`
/// is the default (unnamed) parameter; `key.page` and `key.space` make a parameter that links to a
/// page.
fn write_macro(out: &mut String, name: &str, parameters: &[(String, String)], body: Option<&str>) {
    out.push_str("<ac:structured-macro ac:name=\"");
    escape_attribute_into(out, name);
    out.push('"');
    if parameters.is_empty() && body.is_none() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    let mut index = 0;
    while index < parameters.len() {
        let (key, value) = &parameters[index];
        index += 1;
        let (parameter, link) = match key.strip_suffix(".page") {
            Some(parameter) => (parameter, true),
            None => (key.as_str(), false),
        };
        let parameter = if parameter == "_" { "" } else { parameter };
        out.push_str("<ac:parameter ac:name=\"");
        escape_attribute_into(out, parameter);
        out.push_str("\">");
        if link {
            out.push_str("<ac:link><ri:page ri:content-title=\"");
            escape_attribute_into(out, value);
            out.push('"');
            if let Some((next_key, space)) = parameters.get(index)
                && next_key.strip_suffix(".space") == key.strip_suffix(".page")
            {
                out.push_str(" ri:space-key=\"");
                escape_attribute_into(out, space);
                out.push('"');
                index += 1;
            }
            out.push_str("/></ac:link>");
        } else {
            escape_text_into(out, value);
        }
        out.push_str("</ac:parameter>");
    }
    if let Some(body) = body {
        out.push_str("<ac:rich-text-body>");
        out.push_str(body);
        out.push_str("</ac:rich-text-body>");
    }
    out.push_str("</ac:structured-macro>");
}

/// Writes a code macro: named parameters first, then the body as CDATA.
pub(crate) fn write_code_macro(out: &mut String, parameters: &[(String, String)], text: &str) {
    out.push_str("<ac:structured-macro ac:name=\"code\">");
    for (key, value) in parameters {
        out.push_str("<ac:parameter ac:name=\"");
        escape_attribute_into(out, key);
        out.push_str("\">");
        escape_text_into(out, value);
        out.push_str("</ac:parameter>");
    }
    out.push_str("<ac:plain-text-body>");
    // XML reads every line ending as a line feed; write them that way.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let text = text.strip_suffix('\n').unwrap_or(&text);
    cdata_into(out, text);
    out.push_str("</ac:plain-text-body></ac:structured-macro>");
}

/// The parameters of a code macro from a fence info string: the first word is the language, then
/// `key=value` or `key="value"` pairs; a bare word is a flag set to `true`.
pub(crate) fn code_parameters(info: &str) -> Vec<(String, String)> {
    let mut parameters = Vec::new();
    let info = info.trim();
    let (language, mut rest) = match info.find(char::is_whitespace) {
        Some(at) => (&info[..at], info[at..].trim_start()),
        None => (info, ""),
    };
    if !language.is_empty() {
        parameters.push(("language".to_owned(), language.to_owned()));
    }
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = &rest[key_end..];
        let value = if let Some(after) = rest.strip_prefix('=') {
            if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let chars = quoted.char_indices();
                let mut consumed = quoted.len();
                for (at, c) in chars {
                    match c {
                        '"' => {
                            consumed = at + 1;
                            break;
                        }
                        other => value.push(other),
                    }
                }
                rest = &quoted[consumed.min(quoted.len())..];
                value
            } else {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                rest = &after[end..];
                after[..end].to_owned()
            }
        } else {
            "true".to_owned()
        };
        if !key.is_empty() {
            parameters.push((key.to_owned(), value));
        }
        rest = rest.trim_start();
    }
    parameters
}

/// The parser's events, pulled on demand and kept only while the writer may still look back at them
/// (to redo a scope) or ahead (to classify a list); indices are absolute from the first event.
struct Events<'a> {
    parser: OffsetIter<'a>,
    buffer: Vec<(Event<'a>, Range<usize>)>,
    /// Absolute index of `buffer[0]`.
    base: usize,
}

impl<'a> Events<'a> {
    /// Consumed events are dropped in batches so that releasing stays cheap.
    const RELEASE_BATCH: usize = 256;

    fn get(&self, index: usize) -> Option<&Event<'a>> {
        self.get_ranged(index).map(|(event, _)| event)
    }

    fn get_ranged(&self, index: usize) -> Option<&(Event<'a>, Range<usize>)> {
        index
            .checked_sub(self.base)
            .and_then(|offset| self.buffer.get(offset))
    }

    fn tail(&self, from: usize) -> &[(Event<'a>, Range<usize>)] {
        let offset = from.saturating_sub(self.base).min(self.buffer.len());
        &self.buffer[offset..]
    }

    /// Pulls events until `index` is buffered; false when the document has fewer events.
    fn load(&mut self, index: usize) -> bool {
        while self.base + self.buffer.len() <= index {
            match self.parser.next() {
                Some(event) => self.buffer.push(event),
                None => return false,
            }
        }
        true
    }

    /// Buffers what the writer will look ahead at when it handles the event at `index`.
    fn prefetch_for(&mut self, index: usize) {
        match self.get(index) {
            Some(Event::Start(Tag::List(_))) => self.load_through_end(index),
            Some(Event::Start(Tag::Item)) => {
                self.load(index + 2);
            }
            Some(Event::Start(Tag::FootnoteDefinition(_))) => {
                self.load(index + 1);
            }
            _ => {}
        }
    }

    /// Buffers up to the end event matching the start event at `start`.
    fn load_through_end(&mut self, start: usize) {
        let mut depth = 0usize;
        let mut index = start;
        while self.load(index) {
            match self.get(index) {
                Some(Event::Start(_)) => depth += 1,
                Some(Event::End(_)) => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
            index += 1;
        }
    }

    /// Forgets the events before `index`.
    fn release_before(&mut self, index: usize) {
        let consumed = index.saturating_sub(self.base).min(self.buffer.len());
        if consumed >= Self::RELEASE_BATCH {
            self.buffer.drain(..consumed);
            self.base += consumed;
        }
    }
}

/// Text collected for a construct whose content becomes an attribute or CDATA, not markup.
struct Capture {
    kind: CaptureKind,
    depth: usize,
    text: String,
}

enum CaptureKind {
    Code { info: String },
    Image { url: String, title: String },
    PageLink { target: String, labelled: bool },
}

/// Where an inline scope (paragraph, heading, cell, item) started, to redo it when its raw inline
/// HTML turns out not to balance.
struct Scope {
    event_index: usize,
    out_len: usize,
    raw_inline_html: bool,
}

struct TableState {
    alignments: Vec<Alignment>,
    in_head: bool,
    column: usize,
}

/// Text not yet written because an inline directive may span several text events: the texts and,
/// for each, where it starts in `text` and what it covers in the Markdown.
#[derive(Default)]
struct Pending {
    text: String,
    pieces: Vec<(usize, Range<usize>)>,
}

struct Writer<'e> {
    policy: &'e WritePolicy,
    style: Style,
    /// The Markdown being converted, to tell escaped characters from plain ones.
    source: &'e str,
    out: String,
    closers: Vec<&'static str>,
    capture: Option<Capture>,
    table: Vec<TableState>,
    /// For each open list: whether it is a task list.
    task_lists: Vec<bool>,
    scopes: Vec<Scope>,
    escape_inline_html_until: Option<usize>,
    html_block: Option<String>,
    pending: Pending,
    /// The Markdown range and storage start of the top-level block being written.
    block_start: Option<(Range<usize>, usize)>,
}

impl Writer<'_> {
    /// True between top-level blocks: no construct is open, so no earlier event can be needed again.
    fn at_top_level(&self) -> bool {
        self.closers.is_empty()
            && self.scopes.is_empty()
            && self.capture.is_none()
            && self.html_block.is_none()
    }

    /// Handles one event and returns the index of the next one (earlier when redoing a scope).
    fn step(&mut self, events: &Events<'_>, index: usize) -> usize {
        let Some((event, range)) = events.get_ranged(index) else {
            return index + 1;
        };
        if self.capture.is_none() && self.html_block.is_none() {
            if let Event::Text(text) = event {
                if !self.pending.pieces.is_empty() || text.contains(':') {
                    self.pending
                        .pieces
                        .push((self.pending.text.len(), range.clone()));
                    self.pending.text.push_str(text);
                    return index + 1;
                }
            } else {
                self.flush_pending();
            }
        }
        if let Some(capture) = &mut self.capture {
            match event {
                Event::Start(_) => capture.depth += 1,
                Event::End(_) if capture.depth > 0 => capture.depth -= 1,
                Event::End(_) => {
                    self.finish_capture();
                    return index + 1;
                }
                Event::Text(text) => {
                    // pulldown-cmark leaves the backslash of an escape that opens a wikilink label.
                    let text = match (&capture.kind, text.strip_prefix('\\')) {
                        (CaptureKind::PageLink { .. }, Some(rest))
                            if capture.text.is_empty()
                                && rest.starts_with(|c: char| c.is_ascii_punctuation()) =>
                        {
                            rest
                        }
                        _ => text,
                    };
                    capture.text.push_str(text)
                }
                Event::Code(text) | Event::InlineMath(text) => capture.text.push_str(text),
                Event::Html(text) | Event::InlineHtml(text) => capture.text.push_str(text),
                Event::SoftBreak | Event::HardBreak => capture.text.push('\n'),
                _ => {}
            }
            return index + 1;
        }
        if let Some(html) = &mut self.html_block {
            match event {
                Event::Html(text) | Event::Text(text) => html.push_str(text),
                _ => self.finish_html_block(),
            }
            return index + 1;
        }
        match event {
            Event::Start(tag) => self.start(events, tag, index),
            Event::End(tag) => return self.end(*tag, index),
            Event::Text(text) | Event::InlineMath(text) | Event::DisplayMath(text) => {
                escape_text_into(&mut self.out, text)
            }
            Event::Code(code) => self.inline_code(code),
            Event::Html(html) => escape_text_into(&mut self.out, html),
            Event::InlineHtml(html) => self.inline_html(html, index),
            Event::FootnoteReference(label) => {
                self.out.push_str("<sup><ac:link ac:anchor=\"fn-");
                escape_attribute_into(&mut self.out, label);
                self.out.push_str("\"><ac:plain-text-link-body>");
                cdata_into(&mut self.out, label);
                self.out
                    .push_str("</ac:plain-text-link-body></ac:link></sup>");
            }
            Event::SoftBreak => self.out.push('\n'),
            Event::HardBreak => self.out.push_str("<br/>"),
            Event::Rule => self.out.push_str("<hr/>"),
            // In a task list the marker became the task status when the item opened.
            Event::TaskListMarker(checked) => {
                if !self.task_lists.last().copied().unwrap_or(false) {
                    self.out.push_str(if *checked { "[x] " } else { "[ ] " });
                }
            }
        }
        index + 1
    }

    fn start(&mut self, events: &Events<'_>, tag: &Tag<'_>, index: usize) {
        let closer = match tag {
            Tag::Paragraph => {
                self.open_scope(index);
                self.out.push_str("<p>");
                if let Some(Event::Start(Tag::FootnoteDefinition(label))) = index
                    .checked_sub(1)
                    .and_then(|previous| events.get(previous))
                {
                    self.footnote_marker(label);
                }
                "</p>"
            }
            Tag::Heading { level, .. } => {
                self.open_scope(index);
                let (open, close) = match *level as usize {
                    1 => ("<h1>", "</h1>"),
                    2 => ("<h2>", "</h2>"),
                    3 => ("<h3>", "</h3>"),
                    4 => ("<h4>", "</h4>"),
                    5 => ("<h5>", "</h5>"),
                    _ => ("<h6>", "</h6>"),
                };
                self.out.push_str(open);
                close
            }
            Tag::BlockQuote(None) => {
                self.out.push_str("<blockquote>");
                "</blockquote>"
            }
            Tag::BlockQuote(Some(kind)) => {
                self.out.push_str("<ac:structured-macro ac:name=\"");
                self.out.push_str(alert_macro(*kind));
                self.out.push_str("\"><ac:rich-text-body>");
                "</ac:rich-text-body></ac:structured-macro>"
            }
            Tag::CodeBlock(kind) => {
                let info = match kind {
                    CodeBlockKind::Fenced(info) => info.trim().to_owned(),
                    CodeBlockKind::Indented => String::new(),
                };
                self.capture = Some(Capture {
                    kind: CaptureKind::Code { info },
                    depth: 0,
                    text: String::new(),
                });
                return;
            }
            Tag::HtmlBlock => {
                self.html_block = Some(String::new());
                return;
            }
            Tag::List(start) => {
                let is_task_list = is_task_list(events, index);
                self.task_lists.push(is_task_list);
                if is_task_list {
                    self.out.push_str("<ac:task-list>");
                    "</ac:task-list>"
                } else {
                    match start {
                        Some(1) => {
                            self.out.push_str("<ol>");
                            "</ol>"
                        }
                        Some(number) => {
                            self.out.push_str(&format!("<ol start=\"{number}\">"));
                            "</ol>"
                        }
                        None => {
                            self.out.push_str("<ul>");
                            "</ul>"
                        }
                    }
                }
            }
            Tag::Item => {
                self.open_scope(index);
                if self.task_lists.last().copied().unwrap_or(false) {
                    let complete = events
                        .tail(index + 1)
                        .iter()
                        .take(2)
                        .any(|(event, _)| matches!(event, Event::TaskListMarker(true)));
                    self.out.push_str("<ac:task><ac:task-status>");
                    self.out
                        .push_str(if complete { "complete" } else { "incomplete" });
                    self.out.push_str("</ac:task-status><ac:task-body>");
                    "</ac:task-body></ac:task>"
                } else {
                    self.out.push_str("<li>");
                    "</li>"
                }
            }
            Tag::FootnoteDefinition(label) => {
                let first_is_paragraph =
                    matches!(events.get(index + 1), Some(Event::Start(Tag::Paragraph)));
                if !first_is_paragraph {
                    self.out.push_str("<p>");
                    self.footnote_marker(label);
                    self.out.push_str("</p>");
                }
                ""
            }
            Tag::Table(alignments) => {
                self.table.push(TableState {
                    alignments: alignments.clone(),
                    in_head: false,
                    column: 0,
                });
                self.out.push_str("<table><tbody>");
                "</tbody></table>"
            }
            Tag::TableHead => {
                if let Some(table) = self.table.last_mut() {
                    table.in_head = true;
                    table.column = 0;
                }
                self.out.push_str("<tr>");
                "</tr>"
            }
            Tag::TableRow => {
                if let Some(table) = self.table.last_mut() {
                    table.in_head = false;
                    table.column = 0;
                }
                self.out.push_str("<tr>");
                "</tr>"
            }
            Tag::TableCell => {
                self.open_scope(index);
                let (in_head, alignment) = match self.table.last() {
                    Some(table) => (
                        table.in_head,
                        table
                            .alignments
                            .get(table.column)
                            .copied()
                            .unwrap_or(Alignment::None),
                    ),
                    None => (false, Alignment::None),
                };
                self.out.push_str(if in_head { "<th" } else { "<td" });
                match alignment {
                    Alignment::None => {}
                    Alignment::Left => self.out.push_str(" style=\"text-align:left\""),
                    Alignment::Center => self.out.push_str(" style=\"text-align:center\""),
                    Alignment::Right => self.out.push_str(" style=\"text-align:right\""),
                }
                self.out.push('>');
                if in_head { "</th>" } else { "</td>" }
            }
            Tag::Emphasis => {
                self.out.push_str("<em>");
                "</em>"
            }
            Tag::Strong => {
                self.out.push_str("<strong>");
                "</strong>"
            }
            Tag::Strikethrough => match self.style.strike {
                "s" => {
                    self.out.push_str("<s>");
                    "</s>"
                }
                "strike" => {
                    self.out.push_str("<strike>");
                    "</strike>"
                }
                _ => {
                    self.out.push_str("<del>");
                    "</del>"
                }
            },
            Tag::Superscript => {
                self.out.push_str("<sup>");
                "</sup>"
            }
            Tag::Subscript => {
                self.out.push_str("<sub>");
                "</sub>"
            }
            Tag::Link {
                link_type: LinkType::WikiLink { has_pothole },
                dest_url,
                ..
            } => {
                self.capture = Some(Capture {
                    kind: CaptureKind::PageLink {
                        target: dest_url.to_string(),
                        labelled: *has_pothole,
                    },
                    depth: 0,
                    text: String::new(),
                });
                return;
            }
            Tag::Link {
                dest_url, title, ..
            } => {
                self.out.push_str("<a href=\"");
                escape_attribute_into(&mut self.out, dest_url);
                self.out.push('"');
                if !title.is_empty() {
                    self.out.push_str(" title=\"");
                    escape_attribute_into(&mut self.out, title);
                    self.out.push('"');
                }
                self.out.push('>');
                "</a>"
            }
            Tag::Image {
                dest_url, title, ..
            } => {
                self.capture = Some(Capture {
                    kind: CaptureKind::Image {
                        url: dest_url.to_string(),
                        title: title.to_string(),
                    },
                    depth: 0,
                    text: String::new(),
                });
                return;
            }
            Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::MetadataBlock(_) => "",
        };
        self.closers.push(closer);
    }

    fn end(&mut self, tag: TagEnd, index: usize) -> usize {
        if matches!(
            tag,
            TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::Item | TagEnd::TableCell
        ) && let Some(scope) = self.scopes.pop()
            && scope.raw_inline_html
            && self
                .escape_inline_html_until
                .is_none_or(|until| until < index)
        {
            // The scope's own closing tag is still to come: add it for the check.
            let mut fragment = self.out[scope.out_len..].to_owned();
            fragment.push_str(self.closers.last().copied().unwrap_or_default());
            let phrasing_only = matches!(tag, TagEnd::Paragraph | TagEnd::Heading(_));
            // Balanced within the scope's own element: raw HTML that closes it early and opens
            // another (`</p>…<p>`) would leave its content outside any block.
            let balanced = parse_fragment(&fragment).is_ok_and(|nodes| {
                matches!(nodes.as_slice(), [Node::Element(_)])
                    && safety::check(&nodes, self.policy).is_ok()
                    && !(phrasing_only && nodes.iter().any(holds_a_block))
            });
            if !balanced {
                self.out.truncate(scope.out_len);
                self.escape_inline_html_until = Some(index);
                self.closers.pop();
                return scope.event_index;
            }
        }
        match tag {
            TagEnd::List(_) => {
                self.task_lists.pop();
            }
            TagEnd::TableCell => {
                if let Some(table) = self.table.last_mut() {
                    table.column += 1;
                }
            }
            TagEnd::Table => {
                self.table.pop();
            }
            _ => {}
        }
        if let Some(closer) = self.closers.pop() {
            self.out.push_str(closer);
        }
        index + 1
    }

    /// Writes pending text, turning the inline directives in it into storage.
    fn flush_pending(&mut self) {
        if self.pending.pieces.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let raw_start = pending.pieces[0].1.start;
        let raw_end = pending.pieces[pending.pieces.len() - 1].1.end;
        let raw = self.source.get(raw_start..raw_end).unwrap_or_default();
        // Where each piece ends in `text`.
        let piece_end = |index: usize| {
            pending
                .pieces
                .get(index + 1)
                .map_or(pending.text.len(), |(start, _)| *start)
        };
        // Maps a Markdown offset to an offset in `text`, when a piece holds it unchanged.
        let to_text = |at: usize| -> Option<usize> {
            pending
                .pieces
                .iter()
                .enumerate()
                .find_map(|(index, (start, range))| {
                    let end = piece_end(index);
                    let verbatim =
                        self.source.get(range.clone()) == Some(&pending.text[*start..end]);
                    // A piece that differs from its source (an escape, an entity) maps only its
                    // two ends.
                    let offset = if verbatim && range.contains(&at) {
                        start + (at - range.start)
                    } else if at == range.start {
                        *start
                    } else if at == range.end {
                        end
                    } else {
                        return None;
                    };
                    pending.text.is_char_boundary(offset).then_some(offset)
                })
        };
        let mut written = 0;
        let mut search = 0;
        while let Some(found) = raw[search..].find(':') {
            let colon = search + found;
            search = colon + 1;
            // `\:` is an escaped colon, `\\:` an escaped backslash before a live one: the run of
            // backslashes in front decides.
            // Counted in the whole source: a text event may start after the escaping backslash.
            let backslashes = self.source[..raw_start + colon]
                .bytes()
                .rev()
                .take_while(|&byte| byte == b'\\')
                .count();
            if backslashes % 2 == 1 {
                continue;
            }
            let Some((directive, length)) = directive::parse_inline(&raw[colon + 1..]) else {
                continue;
            };
            let Some(storage) = inline_directive(&directive) else {
                continue;
            };
            let (Some(text_start), Some(text_end)) = (
                to_text(raw_start + colon),
                to_text(raw_start + colon + 1 + length),
            ) else {
                continue;
            };
            if text_start < written {
                continue;
            }
            escape_text_into(&mut self.out, &pending.text[written..text_start]);
            self.out.push_str(&storage);
            written = text_end;
            search = colon + 1 + length;
        }
        escape_text_into(&mut self.out, &pending.text[written..]);
    }

    fn open_scope(&mut self, index: usize) {
        self.scopes.push(Scope {
            event_index: index,
            out_len: self.out.len(),
            raw_inline_html: false,
        });
    }

    /// Raw inline HTML goes out as is; the enclosing scope checks, when it ends, that it balanced.
    fn inline_html(&mut self, html: &str, index: usize) {
        let escaped = self
            .escape_inline_html_until
            .is_some_and(|until| index < until);
        match self.scopes.last_mut() {
            Some(scope) if !escaped => {
                scope.raw_inline_html = true;
                self.out.push_str(html);
            }
            _ => escape_text_into(&mut self.out, html),
        }
    }

    fn inline_code(&mut self, code: &str) {
        if let Some(verbatim) = code.strip_prefix(VERBATIM_INLINE_PREFIX)
            && parse_fragment(verbatim).is_ok()
        {
            self.out.push_str(verbatim);
            return;
        }
        self.out.push_str("<code>");
        escape_text_into(&mut self.out, code);
        self.out.push_str("</code>");
    }

    fn footnote_marker(&mut self, label: &str) {
        self.out
            .push_str("<ac:structured-macro ac:name=\"anchor\"><ac:parameter ac:name=\"\">fn-");
        escape_text_into(&mut self.out, label);
        self.out
            .push_str("</ac:parameter></ac:structured-macro><sup>");
        escape_text_into(&mut self.out, label);
        self.out.push_str("</sup> ");
    }

    fn finish_capture(&mut self) {
        let Some(capture) = self.capture.take() else {
            return;
        };
        match capture.kind {
            CaptureKind::Code { info } => {
                if info == VERBATIM_BLOCK_INFO {
                    let content = capture.text.trim_end_matches('\n');
                    if parse_fragment(content).is_ok() {
                        self.out.push_str(content);
                        return;
                    }
                }
                write_code_macro(&mut self.out, &code_parameters(&info), &capture.text);
            }
            CaptureKind::Image { url, title } => {
                let (url, title) = if self.table.is_empty() {
                    (url, title)
                } else {
                    (url.replace("\\|", "|"), title.replace("\\|", "|"))
                };
                self.out.push_str("<ac:image");
                if !capture.text.is_empty() {
                    self.out.push_str(" ac:alt=\"");
                    escape_attribute_into(&mut self.out, &capture.text);
                    self.out.push('"');
                }
                if !title.is_empty() {
                    self.out.push_str(" ac:title=\"");
                    escape_attribute_into(&mut self.out, &title);
                    self.out.push('"');
                }
                if is_absolute_url(&url) {
                    self.out.push_str("><ri:url ri:value=\"");
                } else {
                    self.out.push_str("><ri:attachment ri:filename=\"");
                }
                escape_attribute_into(&mut self.out, &url);
                self.out.push_str("\"/></ac:image>");
            }
            CaptureKind::PageLink { target, labelled } => {
                // Inside a table the separator is written `\|`; the backslash stays in the target.
                let target = match target.strip_suffix('\\') {
                    Some(stripped) if labelled && !self.table.is_empty() => stripped,
                    _ => target.as_str(),
                };
                let (title, anchor) = match target.split_once('#') {
                    Some((title, anchor)) => (title.trim(), Some(anchor.trim())),
                    None => (target.trim(), None),
                };
                self.out.push_str("<ac:link");
                if let Some(anchor) = anchor {
                    self.out.push_str(" ac:anchor=\"");
                    escape_attribute_into(&mut self.out, anchor);
                    self.out.push('"');
                }
                self.out.push('>');
                if !title.is_empty() {
                    self.out.push_str("<ri:page ri:content-title=\"");
                    escape_attribute_into(&mut self.out, title);
                    self.out.push_str("\"/>");
                }
                if labelled {
                    self.out.push_str("<ac:plain-text-link-body>");
                    cdata_into(&mut self.out, &capture.text);
                    self.out.push_str("</ac:plain-text-link-body>");
                }
                self.out.push_str("</ac:link>");
            }
        }
    }

    fn finish_html_block(&mut self) {
        let Some(html) = self.html_block.take() else {
            return;
        };
        let trimmed = html.trim_end();
        let allowed =
            parse_fragment(trimmed).is_ok_and(|nodes| safety::check(&nodes, self.policy).is_ok());
        if allowed {
            self.out.push_str(trimmed);
        } else {
            self.out.push_str("<p>");
            escape_text_into(&mut self.out, trimmed);
            self.out.push_str("</p>");
        }
    }
}

/// The storage of an inline directive, or `None` when the name means nothing inline.
fn inline_directive(directive: &Directive) -> Option<String> {
    let mut out = String::new();
    let label = directive.label.as_deref().map(unescape_label);
    match (directive.name.as_str(), label) {
        ("emoticon", None) => {
            out.push_str("<ac:emoticon");
            write_prefixed_attributes(&mut out, "ac:", &directive.attributes);
            out.push_str("/>");
        }
        ("mention", None) => {
            out.push_str("<ac:link><ri:user");
            write_prefixed_attributes(&mut out, "ri:", &directive.attributes);
            out.push_str("/></ac:link>");
        }
        // Without attributes a span means nothing, and reading drops such spans: its text alone.
        ("span", Some(label)) if directive.attributes.is_empty() => {
            escape_text_into(&mut out, &label);
        }
        ("span", Some(label)) => {
            out.push_str("<span");
            write_prefixed_attributes(&mut out, "", &directive.attributes);
            out.push('>');
            escape_text_into(&mut out, &label);
            out.push_str("</span>");
        }
        ("time", None) => {
            out.push_str("<time");
            write_prefixed_attributes(&mut out, "", &directive.attributes);
            out.push_str("/>");
        }
        ("link", label) => {
            let mut rest: Vec<(String, String)> = directive.attributes.clone();
            let anchor = take_attribute(&mut rest, "anchor");
            out.push_str("<ac:link");
            if let Some(anchor) = anchor {
                out.push_str(" ac:anchor=\"");
                escape_attribute_into(&mut out, &anchor);
                out.push('"');
            }
            out.push('>');
            write_target(&mut out, &mut rest)?;
            if !rest.is_empty() {
                return None;
            }
            if let Some(label) = label {
                out.push_str("<ac:plain-text-link-body>");
                cdata_into(&mut out, &label);
                out.push_str("</ac:plain-text-link-body>");
            }
            out.push_str("</ac:link>");
        }
        ("image", label) => {
            let mut rest: Vec<(String, String)> = directive.attributes.clone();
            let mut target = String::new();
            write_target(&mut target, &mut rest)?;
            out.push_str("<ac:image");
            if let Some(label) = label {
                out.push_str(" ac:alt=\"");
                escape_attribute_into(&mut out, &label);
                out.push('"');
            }
            write_prefixed_attributes(&mut out, "ac:", &rest);
            out.push('>');
            out.push_str(&target);
            out.push_str("</ac:image>");
        }
        (name, None) if !directive::RESERVED.contains(&name) => {
            write_macro(&mut out, name, &directive.attributes, None);
        }
        _ => return None,
    }
    Some(out)
}

/// Removes and returns the attribute named `key`.
fn take_attribute(attributes: &mut Vec<(String, String)>, key: &str) -> Option<String> {
    let index = attributes.iter().position(|(name, _)| name == key)?;
    Some(attributes.remove(index).1)
}

/// Writes the `ri:` target a link or image directive names, removing its attributes.
fn write_target(out: &mut String, attributes: &mut Vec<(String, String)>) -> Option<()> {
    let page = take_attribute(attributes, "page");
    let space = take_attribute(attributes, "space");
    let write_page = |out: &mut String, page: &str, space: Option<&str>| {
        out.push_str("<ri:page");
        if let Some(space) = space {
            out.push_str(" ri:space-key=\"");
            escape_attribute_into(out, space);
            out.push('"');
        }
        out.push_str(" ri:content-title=\"");
        escape_attribute_into(out, page);
        out.push_str("\"/>");
    };
    if let Some(url) = take_attribute(attributes, "src") {
        if page.is_some() || space.is_some() {
            return None;
        }
        out.push_str("<ri:url ri:value=\"");
        escape_attribute_into(out, &url);
        out.push_str("\"/>");
    } else if let Some(file) = take_attribute(attributes, "attachment") {
        out.push_str("<ri:attachment ri:filename=\"");
        escape_attribute_into(out, &file);
        out.push('"');
        match page {
            Some(page) => {
                out.push('>');
                write_page(out, &page, space.as_deref());
                out.push_str("</ri:attachment>");
            }
            None if space.is_some() => return None,
            None => out.push_str("/>"),
        }
    } else if let Some(page) = page {
        write_page(out, &page, space.as_deref());
    } else if let Some(space) = space {
        out.push_str("<ri:space ri:space-key=\"");
        escape_attribute_into(out, &space);
        out.push_str("\"/>");
    } else {
        return None;
    }
    Some(())
}

/// Removes the backslash of each escaped ASCII punctuation character.
fn unescape_label(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut chars = label.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(escaped) = chars.next_if(char::is_ascii_punctuation)
        {
            out.push(escaped);
            continue;
        }
        out.push(c);
    }
    out
}

/// A list is a task list when every one of its items opens with a task marker.
fn is_task_list(events: &Events<'_>, list_index: usize) -> bool {
    let mut depth = 0usize;
    let mut n_items = 0usize;
    let following = events.tail(list_index + 1);
    for (offset, (event, _)) in following.iter().enumerate() {
        match event {
            Event::Start(Tag::Item) if depth == 0 => {
                n_items += 1;
                let marked = following[offset + 1..]
                    .iter()
                    .take(2)
                    .any(|(event, _)| matches!(event, Event::TaskListMarker(_)));
                if !marked {
                    return false;
                }
                depth += 1;
            }
            Event::Start(_) => depth += 1,
            Event::End(_) if depth == 0 => break,
            Event::End(_) => depth -= 1,
            _ => {}
        }
    }
    n_items > 0
}

/// True for a URL with a scheme (`https:`, `data:`…) or a protocol-relative one.
pub(crate) fn is_absolute_url(url: &str) -> bool {
    if url.starts_with("//") {
        return true;
    }
    match url.split_once(':') {
        Some((scheme, _)) => {
            scheme.len() > 1
                && scheme
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// Whether anything below `node` (the paragraph or heading itself) is a block element.
fn holds_a_block(node: &Node<'_>) -> bool {
    let Node::Element(scope) = node else {
        return false;
    };
    let mut stack: Vec<&Node<'_>> = scope.children.iter().collect();
    while let Some(node) = stack.pop() {
        if let Node::Element(element) = node {
            // A block in raw HTML inside a paragraph or heading is what the reader cannot express.
            if is_block_element(&element.name.to_ascii_lowercase()) {
                return true;
            }
            stack.extend(element.children.iter());
        }
    }
    false
}
