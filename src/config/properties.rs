//! A pure parser for Java `.properties` text: entries with their line numbers, plus one problem per
//! bad line. No IO, no knowledge of which keys mean what.

/// One `key = value` pair, after escapes are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, unescaped.
    pub key: String,
    /// The value, unescaped. Trailing whitespace is kept, as Java keeps it.
    pub value: String,
    /// The 1-based line on which the entry starts.
    pub line: usize,
}

/// Something wrong (or suspicious) on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// The 1-based line the problem was found on.
    pub line: usize,
    /// What is wrong, lowercase, never containing a value.
    pub message: String,
    /// Whether the line was dropped (`Error`) or kept with a warning.
    pub severity: Severity,
}

/// How serious a [`LineProblem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The line could not be used.
    Error,
    /// The line was used, but probably not as its author meant.
    Warning,
}

/// The result of parsing one file: the entries in file order (a duplicate key keeps only its last
/// occurrence) and the problems found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Entries in the order they first appear; for a duplicate key, the last value wins.
    pub entries: Vec<Entry>,
    /// Problems, in line order.
    pub problems: Vec<LineProblem>,
}

impl Parsed {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.key == key)
    }
}

/// Parses `.properties` text with the full Java syntax: `=`, `:` or whitespace separators; `#` and `!`
/// comments; backslash line continuation; `\t \n \r \f \\ \uXXXX` escapes (other escaped characters
/// stand for themselves); `\n`, `\r` or `\r\n` line ends. The last duplicate key wins, with a warning.
///
/// Keys are named in problems only when they are one of `known_keys` or a near miss of one (see
/// [`shown_key`]): a mangled file can put a secret where a key belongs.
pub fn parse(text: &str, known_keys: &[&str]) -> Parsed {
    let mut parsed = Parsed::default();
    for logical in logical_lines(text) {
        match parse_logical_line(&logical.text, known_keys) {
            Ok(Some((key, value))) => {
                if let Some(existing) = parsed.entries.iter_mut().find(|entry| entry.key == key) {
                    parsed.problems.push(LineProblem {
                        line: logical.line,
                        message: format!(
                            "duplicate key {} (first on line {}); the last one wins",
                            shown_key(&key, known_keys),
                            existing.line
                        ),
                        severity: Severity::Warning,
                    });
                    existing.value = value;
                    existing.line = logical.line;
                } else {
                    parsed.entries.push(Entry {
                        key,
                        value,
                        line: logical.line,
                    });
                }
            }
            Ok(None) => {}
            Err(message) => parsed.problems.push(LineProblem {
                line: logical.line,
                message,
                severity: Severity::Error,
            }),
        }
    }
    parsed
}

/// A logical line: natural lines joined where a line ends in an odd number of backslashes.
struct LogicalLine {
    line: usize,
    text: String,
}

fn logical_lines(text: &str) -> Vec<LogicalLine> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut current: Option<LogicalLine> = None;
    for (index, natural) in natural_lines(text).enumerate() {
        let line_number = index + 1;
        let trimmed_start = natural.trim_start_matches(is_properties_whitespace);
        let continues = ends_with_odd_backslashes(natural);
        match current.take() {
            Some(mut logical) => {
                // Leading whitespace of a continuation line is not part of the value.
                let piece = trimmed_start;
                if continues {
                    logical.text.push_str(&piece[..piece.len() - 1]);
                    current = Some(logical);
                } else {
                    logical.text.push_str(piece);
                    out.push(logical);
                }
            }
            None => {
                if trimmed_start.is_empty()
                    || trimmed_start.starts_with('#')
                    || trimmed_start.starts_with('!')
                {
                    // Blank and comment lines never continue, whatever they end with.
                    continue;
                }
                let logical = LogicalLine {
                    line: line_number,
                    text: String::new(),
                };
                if continues {
                    let mut logical = logical;
                    logical
                        .text
                        .push_str(&trimmed_start[..trimmed_start.len() - 1]);
                    current = Some(logical);
                } else {
                    let mut logical = logical;
                    logical.text.push_str(trimmed_start);
                    out.push(logical);
                }
            }
        }
    }
    // A continuation on the last line of the file simply ends the entry.
    out.extend(current);
    out
}

/// Splits on `\n`, `\r\n` and lone `\r`, without the terminators.
fn natural_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    let mut done = text.is_empty();
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match rest.find(['\n', '\r']) {
            Some(position) => {
                let line = &rest[..position];
                let terminator_len = if rest[position..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = &rest[position + terminator_len..];
                if rest.is_empty() {
                    done = true;
                }
                Some(line)
            }
            None => {
                done = true;
                Some(rest)
            }
        }
    })
}

fn ends_with_odd_backslashes(line: &str) -> bool {
    line.bytes().rev().take_while(|&byte| byte == b'\\').count() % 2 == 1
}

fn is_properties_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// Splits one logical line (already without leading whitespace) into an unescaped key and value.
fn parse_logical_line(text: &str, known_keys: &[&str]) -> Result<Option<(String, String)>, String> {
    let mut key_end = text.len();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        if c == '\\' {
            chars.next();
            continue;
        }
        if c == '=' || c == ':' || is_properties_whitespace(c) {
            key_end = index;
            break;
        }
    }
    let raw_key = &text[..key_end];
    let mut rest = text[key_end..].trim_start_matches(is_properties_whitespace);
    if let Some(after) = rest.strip_prefix(['=', ':']) {
        rest = after.trim_start_matches(is_properties_whitespace);
    }
    let key = unescape(raw_key).map_err(|problem| format!("in key: {problem}"))?;
    let value = unescape(rest)
        .map_err(|problem| format!("in value of {}: {problem}", shown_key(&key, known_keys)))?;
    if key.is_empty() {
        return Err("line has a value but no key".to_owned());
    }
    Ok(Some((key, value)))
}

/// How a problem names `key`: quoted when it is one of `known_keys` or a near miss of one (a typo,
/// at most two edits away), otherwise not at all. A mangled file can put a value where a key
/// belongs (a token on a line of its own, or `token:key` swapped), and a value may be a secret.
pub fn shown_key(key: &str, known_keys: &[&str]) -> String {
    if known_keys.contains(&key) || near_miss(key, known_keys).is_some() {
        format!("`{key}`")
    } else {
        "a key that is not shown (it does not look like a configuration key and may be a secret)"
            .to_owned()
    }
}

/// The known key that `key` is a typo of: at most two edits away, and short enough to be a key.
pub fn near_miss<'k>(key: &str, known_keys: &[&'k str]) -> Option<&'k str> {
    if key.len() > 40
        || !key
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte == b'_')
    {
        return None;
    }
    known_keys
        .iter()
        .copied()
        .find(|known| edit_distance(key, known) <= 2)
}

/// Levenshtein distance between two short ASCII strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, &x) in a.as_bytes().iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &y) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(x != y);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// Resolves backslash escapes. `\uXXXX` must have four hex digits; UTF-16 surrogate pairs written as
/// two escapes are joined, and a lone surrogate is an error.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => {}
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let unit = read_hex4(&mut chars)?;
                if (0xD800..0xDC00).contains(&unit) {
                    let low = match (chars.next(), chars.next()) {
                        (Some('\\'), Some('u')) => read_hex4(&mut chars)?,
                        _ => return Err("lone UTF-16 high surrogate in \\u escape".to_owned()),
                    };
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err("invalid UTF-16 surrogate pair in \\u escapes".to_owned());
                    }
                    let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                    out.push(
                        char::from_u32(code)
                            .ok_or_else(|| "invalid code point in \\u escapes".to_owned())?,
                    );
                } else {
                    out.push(
                        char::from_u32(unit)
                            .ok_or_else(|| "lone UTF-16 low surrogate in \\u escape".to_owned())?,
                    );
                }
            }
            Some(other) => out.push(other),
        }
    }
    Ok(out)
}

fn read_hex4(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<u32, String> {
    let mut value = 0u32;
    for _ in 0..4 {
        let digit = chars
            .next()
            .and_then(|c| c.to_digit(16))
            .ok_or_else(|| "malformed \\uXXXX escape (needs four hex digits)".to_owned())?;
        value = value * 16 + digit;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` and compares the entries as `key=value@line` and the problems as `line:message`.
    fn check(text: &str, expected_entries: &[&str], expected_problems: &[&str]) {
        let parsed = parse(text, &["a", "b", "bad", "lone"]);
        let entries: Vec<String> = parsed
            .entries
            .iter()
            .map(|entry| format!("{}={}@{}", entry.key, entry.value, entry.line))
            .collect();
        let problems: Vec<String> = parsed
            .problems
            .iter()
            .map(|problem| format!("{}:{}", problem.line, problem.message))
            .collect();
        assert_eq!(entries, expected_entries, "entries of {text:?}");
        assert_eq!(problems, expected_problems, "problems of {text:?}");
    }

    #[test]
    fn separators_equals_colon_and_whitespace() {
        check(
            "a=1\nb:2\nc 3\nd\t4",
            &["a=1@1", "b=2@2", "c=3@3", "d=4@4"],
            &[],
        );
        check("a = 1\nb : 2\nc   =   3", &["a=1@1", "b=2@2", "c=3@3"], &[]);
        // Only the first separator counts; later ones belong to the value.
        check(
            "url=https://x.example/a=b",
            &["url=https://x.example/a=b@1"],
            &[],
        );
        check("a b=c", &["a=b=c@1"], &[]);
    }

    #[test]
    fn key_without_value_is_empty() {
        check("alone\nalso=\n", &["alone=@1", "also=@2"], &[]);
    }

    #[test]
    fn comments_with_hash_and_bang_and_blank_lines() {
        check(
            "# comment\n! also comment\n   # indented\n\n  \na=1 # not a comment",
            &["a=1 # not a comment@6"],
            &[],
        );
    }

    #[test]
    fn continuation_lines_join_and_drop_leading_whitespace() {
        check(
            "list=one, \\\n      two, \\\n      three\nnext=x",
            &["list=one, two, three@1", "next=x@4"],
            &[],
        );
        // An even number of trailing backslashes is an escaped backslash, not a continuation.
        check("path=c:\\\\\nnext=x", &["path=c:\\@1", "next=x@2"], &[]);
        // A comment line never continues.
        check("# comment \\\na=1", &["a=1@2"], &[]);
        // A continuation at the end of the file ends the entry.
        check("a=1\\", &["a=1@1"], &[]);
    }

    #[test]
    fn escapes_in_keys_and_values() {
        check(
            "tab=a\\tb\nnl=a\\nb\ncr=a\\rb\nff=a\\fb\nbs=a\\\\b\nother=\\q",
            &[
                "tab=a\tb@1",
                "nl=a\nb@2",
                "cr=a\rb@3",
                "ff=a\u{c}b@4",
                "bs=a\\b@5",
                "other=q@6",
            ],
            &[],
        );
        check("my\\ key\\=x\\:y=v", &["my key=x:y=v@1"], &[]);
        check("lead=\\  spaced", &["lead=  spaced@1"], &[]);
    }

    #[test]
    fn unicode_escapes_including_surrogate_pairs() {
        check("e=caf\\u00e9", &["e=café@1"], &[]);
        check("smile=\\uD83D\\uDE00", &["smile=😀@1"], &[]);
        check("raw=naïve ✓", &["raw=naïve ✓@1"], &[]);
        check(
            "bad=\\u12G4\ngood=1",
            &["good=1@2"],
            &["1:in value of `bad`: malformed \\uXXXX escape (needs four hex digits)"],
        );
        check(
            "lone=\\uD83D",
            &[],
            &["1:in value of `lone`: lone UTF-16 high surrogate in \\u escape"],
        );
    }

    #[test]
    fn duplicate_keys_last_wins_with_warning() {
        check(
            "a=1\nb=2\na=3",
            &["a=3@3", "b=2@2"],
            &["3:duplicate key `a` (first on line 1); the last one wins"],
        );
    }

    #[test]
    fn trailing_whitespace_is_kept_as_java_keeps_it() {
        check("a=1  \nb=2\t", &["a=1  @1", "b=2\t@2"], &[]);
    }

    #[test]
    fn crlf_and_lone_cr_line_ends() {
        check("a=1\r\nb=2\r\n", &["a=1@1", "b=2@2"], &[]);
        check("a=1\rb=2", &["a=1@1", "b=2@2"], &[]);
        check("a=one \\\r\n  two\r\nb=3", &["a=one two@1", "b=3@3"], &[]);
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        check("\u{feff}a=1", &["a=1@1"], &[]);
    }

    #[test]
    fn value_without_key_is_an_error() {
        check(
            "=orphan\nb=2",
            &["b=2@2"],
            &["1:line has a value but no key"],
        );
    }

    #[test]
    fn a_key_is_named_only_when_it_is_known_or_a_typo_of_one() {
        let known = ["api_token", "base_url", "gpt_shared_secret"];
        assert_eq!(shown_key("api_token", &known), "`api_token`");
        assert_eq!(shown_key("base_ur", &known), "`base_ur`");
        assert_eq!(near_miss("api_tokn", &known), Some("api_token"));
        for pasted in [
            "ATATT3xFfGF0T9nWq2cLk8s7ZpQvR1mYbXhE4uJdA6oI-5gKtC=1A2B3C4D",
            "3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c1e",
            "correcthorsebatterystaplecorrecthorse",
            "hunter2",
        ] {
            assert!(!shown_key(pasted, &known).contains(pasted), "{pasted}");
            let parsed = parse(&format!("{pasted}\n{pasted}:gpt_shared_secret\n"), &known);
            for problem in &parsed.problems {
                assert!(!problem.message.contains(pasted), "{}", problem.message);
            }
        }
    }
}
