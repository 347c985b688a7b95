//! Markdown to storage XHTML: a walk over pulldown-cmark events that always yields well-formed XML.

use pulldown_cmark::{
    Alignment, BlockQuoteKind, CodeBlockKind, Event, LinkType, Options, Parser, Tag, TagEnd,
};

use super::xml::{cdata_into, escape_attribute_into, escape_text_into, parse_fragment};
use super::{VERBATIM_BLOCK_INFO, VERBATIM_INLINE_PREFIX, WritePolicy, safety};

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
    let mut events = Events {
        parser: Parser::new_ext(markdown, parser_options()),
        buffer: Vec::new(),
        base: 0,
    };
    let mut writer = Writer {
        policy,
        out: String::with_capacity(markdown.len() + markdown.len() / 2),
        closers: Vec::new(),
        capture: None,
        table: Vec::new(),
        task_lists: Vec::new(),
        scopes: Vec::new(),
        escape_inline_html_until: None,
        html_block: None,
    };
    let mut index = 0;
    while events.load(index) {
        if writer.at_top_level() {
            // Nothing before the previous event can be looked at or redone any more.
            events.release_before(index.saturating_sub(1));
        }
        events.prefetch_for(index);
        index = writer.step(&events, index);
    }
    writer.out
}

/// The parser's events, pulled on demand and kept only while the writer may still look back at them
/// (to redo a scope) or ahead (to classify a list); indices are absolute from the first event.
struct Events<'a> {
    parser: Parser<'a>,
    buffer: Vec<Event<'a>>,
    /// Absolute index of `buffer[0]`.
    base: usize,
}

impl<'a> Events<'a> {
    /// Consumed events are dropped in batches so that releasing stays cheap.
    const RELEASE_BATCH: usize = 256;

    fn get(&self, index: usize) -> Option<&Event<'a>> {
        index
            .checked_sub(self.base)
            .and_then(|offset| self.buffer.get(offset))
    }

    fn tail(&self, from: usize) -> &[Event<'a>] {
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
    Code { language: Option<String> },
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

struct Writer<'e> {
    policy: &'e WritePolicy,
    out: String,
    closers: Vec<&'static str>,
    capture: Option<Capture>,
    table: Vec<TableState>,
    /// For each open list: whether it is a task list.
    task_lists: Vec<bool>,
    scopes: Vec<Scope>,
    escape_inline_html_until: Option<usize>,
    html_block: Option<String>,
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
        let Some(event) = events.get(index) else {
            return index + 1;
        };
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
                let language = match kind {
                    CodeBlockKind::Fenced(info) => info
                        .split_whitespace()
                        .next()
                        .map(str::to_owned)
                        .filter(|language| !language.is_empty()),
                    CodeBlockKind::Indented => None,
                };
                self.capture = Some(Capture {
                    kind: CaptureKind::Code { language },
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
                        .any(|event| matches!(event, Event::TaskListMarker(true)));
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
            Tag::Strikethrough => {
                self.out.push_str("<del>");
                "</del>"
            }
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
            let balanced = parse_fragment(&fragment)
                .is_ok_and(|nodes| safety::check(&nodes, self.policy).is_ok());
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
            CaptureKind::Code { language } => {
                if language.as_deref() == Some(VERBATIM_BLOCK_INFO) {
                    let content = capture.text.trim_end_matches('\n');
                    if parse_fragment(content).is_ok() {
                        self.out.push_str(content);
                        return;
                    }
                }
                self.out.push_str("<ac:structured-macro ac:name=\"code\">");
                if let Some(language) = language {
                    self.out.push_str("<ac:parameter ac:name=\"language\">");
                    escape_text_into(&mut self.out, &language);
                    self.out.push_str("</ac:parameter>");
                }
                self.out.push_str("<ac:plain-text-body>");
                // XML reads every line ending as a line feed; write them that way.
                let text = capture.text.replace("\r\n", "\n").replace('\r', "\n");
                let text = text.strip_suffix('\n').unwrap_or(&text);
                cdata_into(&mut self.out, text);
                self.out
                    .push_str("</ac:plain-text-body></ac:structured-macro>");
            }
            CaptureKind::Image { url, title } => {
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

/// A list is a task list when every one of its items opens with a task marker.
fn is_task_list(events: &Events<'_>, list_index: usize) -> bool {
    let mut depth = 0usize;
    let mut n_items = 0usize;
    let following = events.tail(list_index + 1);
    for (offset, event) in following.iter().enumerate() {
        match event {
            Event::Start(Tag::Item) if depth == 0 => {
                n_items += 1;
                let marked = following[offset + 1..]
                    .iter()
                    .take(2)
                    .any(|event| matches!(event, Event::TaskListMarker(_)));
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
