//! The CQL subset the simulator understands: field clauses joined by `AND`/`OR` with parentheses.
//!
//! Supported fields: `ancestor`, `parent`, `space`, `type`, `title`, `id`, each with `=` or `in (…)`,
//! and `text ~ "words"` (full text over title and body: every word must occur, ignoring case).
//! Values are double- or single-quoted strings (with `\"`, `\'` and `\\` escapes) or bare words.

use thiserror::Error;

/// A CQL field the simulator can evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Any ancestor of the page (the whole subtree below an id).
    Ancestor,
    /// The direct parent.
    Parent,
    /// The space key (case-insensitive).
    Space,
    /// The content type (`page`).
    Type,
    /// The exact title.
    Title,
    /// The content id.
    Id,
    /// Title and body text, with `~` only.
    Text,
}

const FIELD_NAMES: &str = "ancestor, id, parent, space, text, title, type";

impl Field {
    fn parse(name: &str) -> Option<Field> {
        match name.to_ascii_lowercase().as_str() {
            "ancestor" => Some(Field::Ancestor),
            "parent" => Some(Field::Parent),
            "space" => Some(Field::Space),
            "type" => Some(Field::Type),
            "title" => Some(Field::Title),
            "id" => Some(Field::Id),
            "text" => Some(Field::Text),
            _ => None,
        }
    }
}

/// A parsed CQL expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cql {
    /// `field = value` or `field in (v1, v2)`: true when the field equals any value.
    Clause {
        /// The field compared.
        field: Field,
        /// Accepted values.
        values: Vec<String>,
    },
    /// `text ~ "words"`: every word occurs in the title or the body, ignoring case.
    Contains {
        /// The words searched for.
        words: String,
    },
    /// Both sides hold.
    And(Box<Cql>, Box<Cql>),
    /// Either side holds.
    Or(Box<Cql>, Box<Cql>),
}

/// What a page looks like to the CQL evaluator.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Content id.
    pub id: u64,
    /// Space key.
    pub space_key: &'a str,
    /// Title.
    pub title: &'a str,
    /// Ancestors root-first; the last one is the parent.
    pub ancestors: &'a [u64],
    /// The storage body, searched by `text ~`.
    pub body: &'a str,
}

impl Cql {
    /// Whether `page` satisfies the expression.
    pub fn matches(&self, page: &Candidate<'_>) -> bool {
        match self {
            Cql::And(left, right) => left.matches(page) && right.matches(page),
            Cql::Or(left, right) => left.matches(page) || right.matches(page),
            Cql::Clause { field, values } => values
                .iter()
                .any(|value| field_matches(*field, value, page)),
            Cql::Contains { words } => contains_words(words, page),
        }
    }
}

/// Whether every word of `words` occurs in the page's title or body text, ignoring case. The body's
/// markup is not searched, as an index holds the text only.
fn contains_words(words: &str, page: &Candidate<'_>) -> bool {
    let text = format!("{} {}", page.title, body_text(page.body)).to_lowercase();
    let mut words = words.split_whitespace().peekable();
    words.peek().is_some() && words.all(|word| text.contains(&word.to_lowercase()))
}

/// The character data of a storage body: tags dropped, common entities resolved.
pub fn body_text(body: &str) -> String {
    let mut text = String::with_capacity(body.len());
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("<![CDATA[", "")
        .replace("]]>", "")
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

fn field_matches(field: Field, value: &str, page: &Candidate<'_>) -> bool {
    let as_id = || value.parse::<u64>().ok();
    match field {
        Field::Ancestor => as_id().is_some_and(|id| page.ancestors.contains(&id)),
        Field::Parent => as_id().is_some_and(|id| page.ancestors.last() == Some(&id)),
        Field::Space => page.space_key.eq_ignore_ascii_case(value),
        Field::Type => value.eq_ignore_ascii_case("page"),
        Field::Title => super::store::same_title(page.title, value),
        Field::Id => as_id() == Some(page.id),
        Field::Text => false,
    }
}

/// Why a CQL string was refused; the message is what the simulator answers with its 400.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct CqlError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    Comma,
    Equals,
    /// An operator the simulator does not evaluate (`~`, `!=`, `<`, …).
    OtherOperator(String),
    Word(String),
    Quoted(String),
}

fn tokenize(cql: &str) -> Result<Vec<Token>, CqlError> {
    let mut tokens = Vec::new();
    let mut chars = cql.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' | '=' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    ',' => Token::Comma,
                    _ => Token::Equals,
                });
            }
            '!' | '~' | '<' | '>' => {
                let mut operator = String::new();
                while let Some(&next) = chars.peek() {
                    if !matches!(next, '!' | '~' | '<' | '>' | '=') {
                        break;
                    }
                    operator.push(next);
                    chars.next();
                }
                tokens.push(Token::OtherOperator(operator));
            }
            '"' | '\'' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err(syntax_error(cql, "unterminated string literal")),
                        Some('\\') => match chars.next() {
                            Some(escaped) => value.push(escaped),
                            None => return Err(syntax_error(cql, "unterminated string literal")),
                        },
                        Some(end) if end == c => break,
                        Some(other) => value.push(other),
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || "()=,\"'!~<>".contains(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

fn syntax_error(cql: &str, detail: &str) -> CqlError {
    CqlError(format!("Could not parse cql : {cql} ({detail})"))
}

struct Parser<'a> {
    cql: &'a str,
    tokens: Vec<Token>,
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn error(&self, detail: &str) -> CqlError {
        syntax_error(self.cql, detail)
    }

    fn keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(word)) if word.eq_ignore_ascii_case(keyword))
    }

    fn or_expr(&mut self) -> Result<Cql, CqlError> {
        let mut left = self.and_expr()?;
        while self.keyword("or") {
            self.at += 1;
            let right = self.and_expr()?;
            left = Cql::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Cql, CqlError> {
        let mut left = self.atom()?;
        while self.keyword("and") {
            self.at += 1;
            let right = self.atom()?;
            left = Cql::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn atom(&mut self) -> Result<Cql, CqlError> {
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or_expr()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err(self.error("expected ')'")),
                }
            }
            Some(Token::Word(name)) => {
                if name.eq_ignore_ascii_case("not") || name.eq_ignore_ascii_case("order") {
                    return Err(self.error(&format!("'{name}' is not supported")));
                }
                let field = Field::parse(&name).ok_or_else(|| {
                    CqlError(format!(
                        "Could not parse cql : {}, field '{name}' is not one of: {FIELD_NAMES}",
                        self.cql
                    ))
                })?;
                self.clause(field)
            }
            Some(_) => Err(self.error("expected a field name")),
            None => Err(self.error("unexpected end of query")),
        }
    }

    fn clause(&mut self, field: Field) -> Result<Cql, CqlError> {
        let values = match self.next() {
            Some(Token::Equals) => vec![self.value()?],
            Some(Token::Word(word)) if word.eq_ignore_ascii_case("in") => {
                if self.next() != Some(Token::Open) {
                    return Err(self.error("expected '(' after 'in'"));
                }
                let mut values = vec![self.value()?];
                loop {
                    match self.next() {
                        Some(Token::Comma) => values.push(self.value()?),
                        Some(Token::Close) => break,
                        _ => return Err(self.error("expected ',' or ')' in list")),
                    }
                }
                values
            }
            Some(Token::OtherOperator(operator)) if operator == "~" && field == Field::Text => {
                let words = self.value()?;
                if words.trim().is_empty() {
                    return Err(self.error("text must not be empty"));
                }
                return Ok(Cql::Contains { words });
            }
            Some(Token::OtherOperator(operator)) => {
                return Err(self.error(&format!("operator '{operator}' is not supported")));
            }
            _ => return Err(self.error("expected '=' or 'in'")),
        };
        if field == Field::Title && values.iter().any(|value| value.is_empty()) {
            return Err(self.error("title must not be empty"));
        }
        Ok(Cql::Clause { field, values })
    }

    fn value(&mut self) -> Result<String, CqlError> {
        match self.next() {
            Some(Token::Quoted(value)) => Ok(value),
            Some(Token::Word(word))
                if !word.eq_ignore_ascii_case("and") && !word.eq_ignore_ascii_case("or") =>
            {
                Ok(word)
            }
            _ => Err(self.error("expected a value")),
        }
    }
}

/// Parses a CQL string into an expression, or explains why not.
pub fn parse(cql: &str) -> Result<Cql, CqlError> {
    let tokens = tokenize(cql)?;
    if tokens.is_empty() {
        return Err(CqlError("The CQL query must not be empty".to_owned()));
    }
    let mut parser = Parser { cql, tokens, at: 0 };
    let expression = parser.or_expr()?;
    if parser.peek().is_some() {
        return Err(parser.error("unexpected input after the expression"));
    }
    Ok(expression)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(field: Field, values: &[&str]) -> Cql {
        Cql::Clause {
            field,
            values: values.iter().map(|value| (*value).to_owned()).collect(),
        }
    }

    fn check(cql: &str, expected: Result<Cql, &str>) {
        let parsed = parse(cql).map_err(|error| error.0);
        match expected {
            Ok(expression) => assert_eq!(parsed, Ok(expression), "{cql}"),
            Err(fragment) => {
                let message = parsed.expect_err(cql);
                assert!(message.contains(fragment), "{cql}: {message}");
            }
        }
    }

    #[test]
    fn parses_the_supported_subset() {
        check("ancestor = 42", Ok(clause(Field::Ancestor, &["42"])));
        check("parent=7", Ok(clause(Field::Parent, &["7"])));
        check("space = DOCS", Ok(clause(Field::Space, &["DOCS"])));
        check(
            r#"title = "a\"b\\c""#,
            Ok(clause(Field::Title, &[r#"a"b\c"#])),
        );
        check("id in (1, 2,3)", Ok(clause(Field::Id, &["1", "2", "3"])));
        check(
            r#"space = "DOCS" and type = page AND (title = "A" or title = 'B')"#,
            Ok(Cql::And(
                Box::new(Cql::And(
                    Box::new(clause(Field::Space, &["DOCS"])),
                    Box::new(clause(Field::Type, &["page"])),
                )),
                Box::new(Cql::Or(
                    Box::new(clause(Field::Title, &["A"])),
                    Box::new(clause(Field::Title, &["B"])),
                )),
            )),
        );
    }

    #[test]
    fn refuses_everything_else() {
        check("status = current", Err("field 'status' is not one of"));
        check(r#"title ~ "x""#, Err("operator '~' is not supported"));
        check(r#"title = """#, Err("title must not be empty"));
        check(r#"title = "open"#, Err("unterminated string literal"));
        check("(space = A", Err("expected ')'"));
        check("space = A B", Err("unexpected input"));
        check("not space = A", Err("'not' is not supported"));
        check("", Err("must not be empty"));
    }

    #[test]
    fn evaluates_against_a_page() {
        let page = Candidate {
            id: 9,
            space_key: "DOCS",
            title: "Guide",
            ancestors: &[1, 4],
            body: "<p>Run the <b>Installer</b> &amp; wait</p>",
        };
        let check_match = |cql: &str, expected: bool| {
            assert_eq!(parse(cql).expect(cql).matches(&page), expected, "{cql}");
        };
        check_match("ancestor = 1 and parent = 4", true);
        check_match("parent = 1", false);
        check_match(r#"space = "docs" and title = "guide""#, true);
        check_match("id in (3, 9) and type = page", true);
        check_match("type = blogpost or id = 8", false);
        check_match(r#"text ~ "installer guide""#, true);
        check_match(r#"text ~ "installer & wait" and ancestor = 1"#, true);
        check_match(r#"text ~ "installer missing""#, false);
        check_match(r#"text ~ "b""#, false);
    }
}
