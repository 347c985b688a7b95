//! Page titles and title paths as validated values: a [`Title`] is non-blank and at most 255
//! characters, a [`TitlePath`] is one or more titles from the root down. Both are made once, where
//! the raw text enters, and later code never re-checks them.
//!
//! A title path as one string (what `GET /pages` lists and `titlePath` fields carry) joins titles
//! with `/`; inside a title, `/` is written `%2F` and `%` is written `%25`, so the string splits back
//! into exactly the titles it was made from ([`encode_title_path`], [`TitlePath::parse`]).

use std::fmt;

/// The longest title Confluence accepts, in characters.
pub const MAX_TITLE_CHARS: usize = 255;

/// Why a text is not a title.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TitleError {
    /// Empty or only whitespace.
    #[error("title must not be empty")]
    Empty,
    /// Longer than [`MAX_TITLE_CHARS`].
    #[error("title is longer than 255 characters")]
    TooLong,
}

/// One page title: not blank, at most [`MAX_TITLE_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// Checks `text` as a title.
    pub fn parse(text: impl Into<String>) -> Result<Title, TitleError> {
        let text = text.into();
        if text.trim().is_empty() {
            return Err(TitleError::Empty);
        }
        if text.chars().count() > MAX_TITLE_CHARS {
            return Err(TitleError::TooLong);
        }
        Ok(Title(text))
    }

    /// The title text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The title text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Title {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A title path: one or more titles from the root down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitlePath(Vec<Title>);

impl TitlePath {
    /// Parses a title path string as sent in a JSON body or query (`parentTitle: "A/B"`): a `/`
    /// always separates titles, and in each title `%2F` stands for `/` and `%25` for `%` (the form
    /// [`encode_title_path`] writes). Any other `%` is kept as it is.
    pub fn parse(text: &str) -> Result<TitlePath, TitleError> {
        TitlePath::from_titles(text.split('/').map(decode_title).collect())
    }

    /// Builds a title path from titles, checking each.
    pub fn from_titles(titles: Vec<String>) -> Result<TitlePath, TitleError> {
        if titles.is_empty() {
            return Err(TitleError::Empty);
        }
        titles
            .into_iter()
            .map(Title::parse)
            .collect::<Result<Vec<Title>, TitleError>>()
            .map(TitlePath)
    }

    /// A path of one title.
    pub fn single(title: Title) -> TitlePath {
        TitlePath(vec![title])
    }

    /// The titles, root side first.
    pub fn titles(&self) -> &[Title] {
        &self.0
    }

    /// The last title: the page itself.
    pub fn leaf(&self) -> &str {
        self.0.last().map_or("", Title::as_str)
    }

    /// The titles above the leaf, root side first.
    pub fn parents(&self) -> &[Title] {
        &self.0[..self.0.len() - 1]
    }

    /// `A/B` given as one title becomes the path `A` → `B`, and `CI%2FCD` the title `CI/CD`:
    /// clients that percent-encode a whole path parameter send a title path string as one title.
    pub fn split_single_title(&self) -> Option<TitlePath> {
        match self.titles() {
            [only] => TitlePath::parse(only.as_str())
                .ok()
                .filter(|split| split != self),
            _ => None,
        }
    }
}

/// The escapes of a title inside a title path string.
const ESCAPES: [(&str, char); 3] = [("%2F", '/'), ("%2f", '/'), ("%25", '%')];

/// Writes titles (root side first) as one title path string: `/` between titles, `%2F` for a `/`
/// and `%25` for a `%` inside a title. [`TitlePath::parse`] reads it back.
pub fn encode_title_path<S: AsRef<str>>(titles: &[S]) -> String {
    let mut out = String::new();
    for (index, title) in titles.iter().enumerate() {
        if index > 0 {
            out.push('/');
        }
        for c in title.as_ref().chars() {
            match c {
                '/' => out.push_str("%2F"),
                '%' => out.push_str("%25"),
                other => out.push(other),
            }
        }
    }
    out
}

/// One title of a title path string: `%2F` → `/`, `%25` → `%`, anything else as it is.
fn decode_title(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        for (escape, c) in ESCAPES {
            if let Some(after) = rest.strip_prefix(escape) {
                out.push(c);
                rest = after;
                continue 'scan;
            }
        }
        out.push('%');
        rest = &rest[1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &str) {
        let actual = match TitlePath::parse(text) {
            Ok(path) => path
                .titles()
                .iter()
                .map(Title::as_str)
                .collect::<Vec<_>>()
                .join("|"),
            Err(error) => error.to_string(),
        };
        assert_eq!(actual, expected, "{text:?}");
    }

    #[test]
    fn body_paths_split_on_every_slash() {
        check("Home", "Home");
        check("Guides/Install", "Guides|Install");
        check("A//B", "title must not be empty");
        check("", "title must not be empty");
        check("  ", "title must not be empty");
        check(&"x".repeat(255), &"x".repeat(255));
        check(&"x".repeat(256), "title is longer than 255 characters");
    }

    #[test]
    fn a_single_title_with_a_slash_can_be_read_as_a_path() {
        let whole = TitlePath::from_titles(vec!["A/B".to_owned()]).expect("valid");
        let split = whole.split_single_title().expect("splits");
        assert_eq!(split.leaf(), "B");
        assert_eq!(split.parents()[0].as_str(), "A");
        let plain = TitlePath::parse("A/B").expect("valid");
        assert_eq!(plain.split_single_title(), None);
        let encoded = TitlePath::from_titles(vec!["CI%2FCD/Setup".to_owned()]).expect("valid");
        let split = encoded.split_single_title().expect("decodes");
        assert_eq!(split.parents()[0].as_str(), "CI/CD");
        assert_eq!(split.leaf(), "Setup");
        let plain = TitlePath::from_titles(vec!["100% done".to_owned()]).expect("valid");
        assert_eq!(plain.split_single_title(), None);
    }

    #[test]
    fn title_path_strings_round_trip_every_title() {
        let titles = [
            "CI/CD",
            "100%",
            "50%2F",
            "%25",
            "Plain",
            "a%b/c%2fd",
            "Café ☕",
        ];
        let encoded = encode_title_path(&titles);
        assert_eq!(
            encoded,
            "CI%2FCD/100%25/50%252F/%2525/Plain/a%25b%2Fc%252fd/Café ☕"
        );
        let parsed = TitlePath::parse(&encoded).expect("valid");
        let back: Vec<&str> = parsed.titles().iter().map(Title::as_str).collect();
        assert_eq!(back, titles);
        check("Guides/CI%2FCD", "Guides|CI/CD");
        check("100% done", "100% done");
        check("%41%2f", "%41/");
    }
}
