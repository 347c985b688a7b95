//! Page titles and title paths as validated values: a [`Title`] is non-blank and at most 255
//! characters, a [`TitlePath`] is one or more titles from the root down. Both are made once, where
//! the raw text enters, and later code never re-checks them.

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
    /// Parses a `/`-separated title path as sent in a JSON body (`parentTitle: "A/B"`), where a
    /// slash always separates titles.
    pub fn parse(text: &str) -> Result<TitlePath, TitleError> {
        TitlePath::from_titles(text.split('/').map(str::to_owned).collect())
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

    /// `A/B` given as one title becomes the path `A` → `B`: clients that encode every slash send a
    /// path as one title.
    pub fn split_single_title(&self) -> Option<TitlePath> {
        match self.titles() {
            [only] if only.as_str().contains('/') => TitlePath::parse(only.as_str()).ok(),
            _ => None,
        }
    }
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
    }
}
