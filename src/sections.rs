//! Headings and sections of a storage-format body (pure: no IO): the outline of a page, the section a
//! heading (or a path of headings) names, and the splice that replaces one section while every byte
//! outside it stays as stored.
//!
//! A section is a heading and everything after it up to the next heading of the same or a higher
//! level **in the same container**, or the end of that container. A container is the page body
//! itself or any element holding blocks: a layout cell (`ac:layout-cell`), a panel's
//! `ac:rich-text-body`, a table cell. So a heading inside a layout cell owns the rest of that cell
//! up to its next heading of the same or a higher level, never the cells after it; a heading of the
//! page body owns every container that follows it (layouts included) up to its next heading. The
//! whitespace between a section and what follows it stays outside the section, so a replacement
//! keeps the page's separators. Headings inside `ac:adf-fallback` (Cloud's copy of an
//! `ac:adf-extension` for older renderers) are copies and open no section.

use std::collections::HashMap;
use std::ops::Range;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// One heading of a page and the section it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heading {
    /// 1 to 6, from `<h1>` to `<h6>`.
    pub level: u8,
    /// The heading's text: its character data with entities resolved and whitespace collapsed.
    pub text: String,
    /// The anchor links use (`[[Page#anchor]]`): the heading's `id` when it has one, else its text
    /// with spaces turned into hyphens, as Confluence Cloud names heading anchors.
    pub anchor: String,
    /// Byte range of the section in the body: the heading element and what follows it.
    pub section: Range<usize>,
    /// Index (in [`Outline::headings`]) of the heading whose section holds this one.
    pub parent: Option<usize>,
}

/// The headings of a body, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outline {
    headings: Vec<Heading>,
    /// Each heading's text as compared (case and whitespace folded), by heading index.
    keys: Vec<String>,
    /// The headings of each compared text, in document order.
    by_key: HashMap<String, Vec<usize>>,
}

/// A stored body that is not well-formed XML, so it cannot be cut into sections.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stored body is not well-formed storage at byte {offset}")]
pub struct MalformedBody {
    /// Where parsing stopped.
    pub offset: usize,
}

/// Why a section name does not pick exactly one section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SectionError {
    /// No heading has this text (or path).
    #[error("no section is headed `{wanted}`")]
    NotFound {
        /// The name asked for.
        wanted: String,
        /// The shortest name of every section of the page, usable as it is.
        available: Vec<String>,
    },
    /// Several headings match.
    #[error("`{wanted}` names {} sections", choices.len())]
    Ambiguous {
        /// The name asked for.
        wanted: String,
        /// A name for each matching section that picks it alone.
        choices: Vec<String>,
    },
}

/// The outline of `storage`.
pub fn outline(storage: &str) -> Result<Outline, MalformedBody> {
    let scanned = scan(storage)?;
    let mut headings: Vec<Heading> = Vec::with_capacity(scanned.len());
    for (index, found) in scanned.iter().enumerate() {
        let boundary = scanned[index + 1..]
            .iter()
            .find(|next| next.container == found.container && next.level <= found.level)
            .map_or(found.container_end, |next| next.element.start);
        let mut end = boundary;
        while end > found.element.end && storage.as_bytes()[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        let start = found.element.start;
        // Sections nest or are disjoint: the latest earlier section holding this heading is its
        // smallest enclosing one.
        let parent = headings
            .iter()
            .rposition(|earlier| earlier.section.start <= start && start < earlier.section.end);
        let anchor = match &found.id {
            Some(id) if !id.is_empty() => id.clone(),
            _ => found.text.split_whitespace().collect::<Vec<_>>().join("-"),
        };
        headings.push(Heading {
            level: found.level,
            text: found.text.clone(),
            anchor,
            section: start..end,
            parent,
        });
    }
    let keys: Vec<String> = headings
        .iter()
        .map(|heading| comparable(&heading.text))
        .collect();
    let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, key) in keys.iter().enumerate() {
        by_key.entry(key.clone()).or_default().push(index);
    }
    Ok(Outline {
        headings,
        keys,
        by_key,
    })
}

impl Outline {
    /// The headings in document order.
    pub fn headings(&self) -> &[Heading] {
        &self.headings
    }

    /// The texts of the headings from the outermost section down to `index` itself.
    pub fn path(&self, index: usize) -> Vec<&str> {
        let mut path = Vec::new();
        let mut at = Some(index);
        while let Some(current) = at {
            path.push(self.headings[current].text.as_str());
            at = self.headings[current].parent;
        }
        path.reverse();
        path
    }

    /// The section `wanted` names: a heading's text, or a path of heading texts separated by `/`
    /// (`Install/Linux`: a `Linux` section inside an `Install` section, at any depth), optionally
    /// followed by `#N` to pick the N-th of several equal matches. Texts compare ignoring case and
    /// runs of whitespace. A whole name that matches is never read as a path, so a heading with a
    /// `/` in its text is found by its text.
    pub fn find(&self, wanted: &str) -> Result<usize, SectionError> {
        let (matches, pick) = self.candidates(wanted);
        match (matches.as_slice(), pick) {
            ([], _) => Err(SectionError::NotFound {
                wanted: wanted.to_owned(),
                available: (0..self.headings.len())
                    .map(|index| self.selector(index))
                    .collect(),
            }),
            ([only], None) => Ok(*only),
            (_, Some(number)) if (1..=matches.len()).contains(&number) => Ok(matches[number - 1]),
            (_, Some(_)) => Err(SectionError::NotFound {
                wanted: wanted.to_owned(),
                available: self.unique_names(&matches),
            }),
            (several, None) => Err(SectionError::Ambiguous {
                wanted: wanted.to_owned(),
                choices: self.unique_names(several),
            }),
        }
    }

    /// The headings `wanted` matches, and the `#N` it picks among them when it ends in one that
    /// the whole name does not match.
    fn candidates(&self, wanted: &str) -> (Vec<usize>, Option<usize>) {
        let matches = self.matches_of(wanted);
        if matches.is_empty()
            && let Some((name, number)) = wanted.rsplit_once('#')
            && let Ok(number) = number.trim().parse::<usize>()
        {
            return (self.matches_of(name), Some(number));
        }
        (matches, None)
    }

    /// The one heading `wanted` picks, if it picks one.
    fn pick(&self, wanted: &str) -> Option<usize> {
        match self.candidates(wanted) {
            (matches, None) if matches.len() == 1 => Some(matches[0]),
            (matches, Some(number)) => number
                .checked_sub(1)
                .and_then(|at| matches.get(at).copied()),
            _ => None,
        }
    }

    /// The headings `name` matches before any `#N`: by its whole text, else as a path.
    fn matches_of(&self, name: &str) -> Vec<usize> {
        let matches = self.matching(&[name]);
        if matches.is_empty() && name.contains('/') {
            let parts: Vec<&str> = name.split('/').collect();
            return self.matching(&parts);
        }
        matches
    }

    /// The shortest name that picks heading `index` with [`Outline::find`]: its text when no other
    /// heading shares it, else its path, else either with `#N`.
    pub fn selector(&self, index: usize) -> String {
        let text = self.headings[index].text.clone();
        let path = self.path(index).join("/");
        for name in [&text, &path] {
            if self.pick(name) == Some(index) {
                return name.clone();
            }
        }
        for name in [&text, &path] {
            let matches = self.matches_of(name);
            if let Some(at) = matches.iter().position(|&other| other == index) {
                let numbered = format!("{name}#{}", at + 1);
                if self.pick(&numbered) == Some(index) {
                    return numbered;
                }
            }
        }
        path
    }

    /// Headings whose text matches the last part and whose enclosing headings contain the earlier
    /// parts in order.
    fn matching(&self, parts: &[&str]) -> Vec<usize> {
        let Some((last, above)) = parts.split_last() else {
            return Vec::new();
        };
        let Some(candidates) = self.by_key.get(&comparable(last)) else {
            return Vec::new();
        };
        let above: Vec<String> = above.iter().map(|part| comparable(part)).collect();
        candidates
            .iter()
            .copied()
            .filter(|&index| {
                let mut wanted = above.iter().peekable();
                for ancestor in self.ancestors(index).into_iter().rev() {
                    if wanted
                        .peek()
                        .is_some_and(|part| **part == self.keys[ancestor])
                    {
                        wanted.next();
                    }
                }
                wanted.peek().is_none()
            })
            .collect()
    }

    /// The indices of the headings enclosing `index`, innermost first.
    fn ancestors(&self, index: usize) -> Vec<usize> {
        let mut ancestors = Vec::new();
        let mut at = self.headings[index].parent;
        while let Some(current) = at {
            ancestors.push(current);
            at = self.headings[current].parent;
        }
        ancestors
    }

    /// A name for each of `indices` that picks it alone.
    fn unique_names(&self, indices: &[usize]) -> Vec<String> {
        indices.iter().map(|&index| self.selector(index)).collect()
    }
}

/// `storage` with the bytes of `section` replaced by `replacement`; every other byte is kept.
pub fn replace_section(storage: &str, section: Range<usize>, replacement: &str) -> String {
    let mut spliced = String::with_capacity(storage.len() - section.len() + replacement.len());
    spliced.push_str(&storage[..section.start]);
    spliced.push_str(replacement);
    spliced.push_str(&storage[section.end..]);
    spliced
}

/// Text compared ignoring case and runs of whitespace.
fn comparable(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A heading as the scan finds it.
struct Found {
    level: u8,
    text: String,
    id: Option<String>,
    /// The heading element's bytes.
    element: Range<usize>,
    /// The start of the element holding the heading (`usize::MAX` for the body itself).
    container: usize,
    /// Where the container's content ends.
    container_end: usize,
}

/// An element being read: where it starts, the heading it is when it is one, and whether it is a
/// copy kept only for old renderers.
struct Open {
    start: usize,
    heading: Option<(u8, Option<String>)>,
    fallback: bool,
}

/// The element under which Cloud repeats an `ac:adf-extension`'s content for renderers that do not
/// know it; its headings are copies, not sections of their own.
const FALLBACK: &[u8] = b"ac:adf-fallback";

/// Finds every heading element with its container.
fn scan(source: &str) -> Result<Vec<Found>, MalformedBody> {
    let (base, body) = match source.strip_prefix('\u{feff}') {
        Some(rest) => (source.len() - rest.len(), rest),
        None => (0, source),
    };
    let mut reader = Reader::from_str(body);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;
    config.trim_text(false);
    let mut stack: Vec<Open> = Vec::new();
    let mut found: Vec<Found> = Vec::new();
    // Headings whose container has not closed yet, by index into `found`.
    let mut waiting: Vec<usize> = Vec::new();
    // The text of the heading being read, if any.
    let mut heading_text: Option<String> = None;
    loop {
        let start = base + position(reader.buffer_position());
        let event = reader.read_event().map_err(|_| MalformedBody {
            offset: base + position(reader.error_position()),
        })?;
        let end = base + position(reader.buffer_position());
        match event {
            Event::Start(tag) => {
                let in_fallback = stack.iter().any(|open| open.fallback);
                let heading = heading_of(&tag).filter(|_| !in_fallback);
                if heading.is_some() && heading_text.is_none() {
                    heading_text = Some(String::new());
                }
                stack.push(Open {
                    start,
                    heading,
                    fallback: tag.name().as_ref() == FALLBACK,
                });
            }
            Event::Empty(tag) => {
                let in_fallback = stack.iter().any(|open| open.fallback);
                if let Some((level, id)) = heading_of(&tag).filter(|_| !in_fallback) {
                    let container = stack.last().map_or(usize::MAX, |open| open.start);
                    waiting.push(found.len());
                    found.push(Found {
                        level,
                        text: String::new(),
                        id,
                        element: start..end,
                        container,
                        container_end: source.len(),
                    });
                }
            }
            Event::End(_) => {
                let Some(open) = stack.pop() else {
                    return Err(MalformedBody { offset: start });
                };
                if let Some((level, id)) = open.heading {
                    // The outermost heading element collects the text; nested ones add nothing.
                    if !stack.iter().any(|outer| outer.heading.is_some()) {
                        let text = heading_text.take().unwrap_or_default();
                        let container = stack.last().map_or(usize::MAX, |outer| outer.start);
                        waiting.push(found.len());
                        found.push(Found {
                            level,
                            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
                            id,
                            element: open.start..end,
                            container,
                            container_end: source.len(),
                        });
                    }
                }
                // The closing element ends the content of the container it is.
                waiting.retain(|&index| {
                    if found[index].container == open.start {
                        found[index].container_end = start;
                        false
                    } else {
                        true
                    }
                });
            }
            Event::Text(text) => {
                if let Some(heading) = heading_text.as_mut() {
                    heading.push_str(&String::from_utf8_lossy(&text));
                }
            }
            Event::CData(text) => {
                if let Some(heading) = heading_text.as_mut() {
                    heading.push_str(&String::from_utf8_lossy(&text));
                }
            }
            Event::GeneralRef(reference) => {
                if let Some(heading) = heading_text.as_mut() {
                    let name = String::from_utf8_lossy(&reference).into_owned();
                    match reference.resolve_char_ref().ok().flatten() {
                        Some(character) => heading.push(character),
                        None => {
                            heading.push_str(named_entity(&name).unwrap_or(&format!("&{name};")))
                        }
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(MalformedBody { offset: open.start });
    }
    found.sort_by_key(|heading| heading.element.start);
    Ok(found)
}

fn position(position: u64) -> usize {
    usize::try_from(position).unwrap_or(usize::MAX)
}

/// The level and `id` of an `<h1>`…`<h6>` tag.
fn heading_of(tag: &BytesStart<'_>) -> Option<(u8, Option<String>)> {
    let level = match tag.name().as_ref() {
        b"h1" => 1,
        b"h2" => 2,
        b"h3" => 3,
        b"h4" => 4,
        b"h5" => 5,
        b"h6" => 6,
        _ => return None,
    };
    let id = tag
        .attributes()
        .flatten()
        .find(|attribute| attribute.key.as_ref() == b"id")
        .map(|attribute| String::from_utf8_lossy(&attribute.value).into_owned());
    Some((level, id))
}

/// The XML entities and the HTML ones common in headings; others stay as written.
fn named_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" => " ",
        "ndash" => "–",
        "mdash" => "—",
        "hellip" => "…",
        "lsquo" => "‘",
        "rsquo" => "’",
        "ldquo" => "“",
        "rdquo" => "”",
        "laquo" => "«",
        "raquo" => "»",
        "middot" => "·",
        "bull" => "•",
        "copy" => "©",
        "reg" => "®",
        "trade" => "™",
        "deg" => "°",
        "times" => "×",
        "euro" => "€",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "<p>Intro</p>\n<h1>Install</h1>\n<p>Pick a system.</p>\n\
        <h2>Linux</h2>\n<p>apt install</p>\n<h2 id=\"mac-os\">macOS</h2>\n<p>brew</p>\n\
        <h1>Upgrade</h1>\n<h2>Linux</h2>\n<p>apt upgrade</p>\n";

    fn section<'s>(storage: &'s str, wanted: &str) -> Result<&'s str, SectionError> {
        let outline = outline(storage).expect("well-formed");
        let index = outline.find(wanted)?;
        Ok(&storage[outline.headings()[index].section.clone()])
    }

    #[test]
    fn outline_lists_levels_texts_anchors_and_nesting() {
        let outline = outline(PAGE).expect("well-formed");
        let rows: Vec<String> = (0..outline.headings().len())
            .map(|index| {
                let heading = &outline.headings()[index];
                format!(
                    "{} {} #{} {}",
                    heading.level,
                    outline.path(index).join("/"),
                    heading.anchor,
                    heading.section.len()
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                "1 Install #Install 111",
                "2 Install/Linux #Linux 33",
                "2 Install/macOS #mac-os 38",
                "1 Upgrade #Upgrade 50",
                "2 Upgrade/Linux #Linux 33",
            ]
        );
    }

    #[test]
    fn a_section_runs_to_the_next_heading_of_the_same_or_a_higher_level() {
        assert_eq!(
            section(PAGE, "Install"),
            Ok(
                "<h1>Install</h1>\n<p>Pick a system.</p>\n<h2>Linux</h2>\n<p>apt install</p>\n\
                <h2 id=\"mac-os\">macOS</h2>\n<p>brew</p>"
            )
        );
        assert_eq!(
            section(PAGE, "macos"),
            Ok("<h2 id=\"mac-os\">macOS</h2>\n<p>brew</p>")
        );
        assert_eq!(
            section(PAGE, "Upgrade/Linux"),
            Ok("<h2>Linux</h2>\n<p>apt upgrade</p>")
        );
        assert_eq!(
            section(PAGE, "Linux#1"),
            Ok("<h2>Linux</h2>\n<p>apt install</p>")
        );
    }

    #[test]
    fn duplicate_and_missing_headings_name_the_choices() {
        assert_eq!(
            section(PAGE, "Linux"),
            Err(SectionError::Ambiguous {
                wanted: "Linux".into(),
                choices: vec!["Install/Linux".into(), "Upgrade/Linux".into()],
            })
        );
        let twins = "<h2>Notes</h2><p>a</p><h2>Notes</h2><p>b</p>";
        assert_eq!(
            section(twins, "Notes"),
            Err(SectionError::Ambiguous {
                wanted: "Notes".into(),
                choices: vec!["Notes#1".into(), "Notes#2".into()],
            })
        );
        assert_eq!(section(twins, "Notes#2"), Ok("<h2>Notes</h2><p>b</p>"));
        let twins_outline = outline(twins).expect("well-formed");
        assert_eq!(twins_outline.selector(1), "Notes#2");
        let page_outline = outline(PAGE).expect("well-formed");
        let selectors: Vec<String> = (0..5).map(|index| page_outline.selector(index)).collect();
        assert_eq!(
            selectors,
            [
                "Install",
                "Install/Linux",
                "macOS",
                "Upgrade",
                "Upgrade/Linux"
            ]
        );
        match section(PAGE, "Windows") {
            Err(SectionError::NotFound { available, .. }) => {
                assert_eq!(available.len(), 5);
                assert!(available.contains(&"Upgrade/Linux".to_owned()));
                assert!(available.contains(&"macOS".to_owned()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_heading_in_a_layout_cell_ends_with_its_cell() {
        let page = "<h1>Top</h1><ac:layout><ac:layout-section ac:type=\"two_equal\">\
            <ac:layout-cell><h2>Left</h2><p>l</p></ac:layout-cell>\
            <ac:layout-cell><h2>Right</h2><p>r</p></ac:layout-cell>\
            </ac:layout-section></ac:layout><h1>Next</h1>";
        assert_eq!(section(page, "Left"), Ok("<h2>Left</h2><p>l</p>"));
        assert_eq!(section(page, "Top/Right"), Ok("<h2>Right</h2><p>r</p>"));
        assert!(section(page, "Top").is_ok_and(|top| top.ends_with("</ac:layout>")));
    }

    #[test]
    fn headings_in_an_adf_fallback_copy_open_no_section() {
        let page = "<ac:adf-extension><ac:adf-node type=\"panel\"><ac:adf-content>\
            <h3>Warning</h3><p>w</p></ac:adf-content></ac:adf-node><ac:adf-fallback>\
            <div><h3>Warning</h3><p>w</p></div></ac:adf-fallback></ac:adf-extension><h2>Next</h2>";
        assert_eq!(section(page, "Warning"), Ok("<h3>Warning</h3><p>w</p>"));
        assert_eq!(outline(page).map(|o| o.headings().len()), Ok(2));
    }

    #[test]
    fn heading_text_resolves_entities_and_inline_markup() {
        let page = "<h2>Q&amp;A <em>for</em>&nbsp;you &#x263A;</h2><p>x</p>";
        let outline = outline(page).expect("well-formed");
        assert_eq!(outline.headings()[0].text, "Q&A for you ☺");
        assert_eq!(section(page, "q&a  for you ☺"), Ok(page));
    }

    #[test]
    fn replacing_a_section_keeps_every_other_byte() {
        let outline = outline(PAGE).expect("well-formed");
        let index = outline.find("Install/macOS").expect("found");
        let range = outline.headings()[index].section.clone();
        let replaced = replace_section(PAGE, range.clone(), "<h2>macOS</h2><p>port</p>");
        assert_eq!(&replaced[..range.start], &PAGE[..range.start]);
        assert!(replaced.ends_with(&PAGE[range.end..]));
        assert!(replaced.contains("<h2>macOS</h2><p>port</p>\n<h1>Upgrade</h1>"));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert!(outline("<h1>open").is_err());
        assert!(outline("<p></b>").is_err());
        assert_eq!(outline("no headings").map(|o| o.headings().len()), Ok(0));
    }
}
