//! Well-formedness check for storage-format bodies, reported the way Confluence reports it.
//!
//! A body is an XML fragment: several top-level elements, `ac:`/`ri:` prefixes without declarations,
//! CDATA, comments, the XML entities, numeric references and HTML's named entities (`&nbsp;`).

use quick_xml::events::Event;
use quick_xml::reader::Reader;

/// Why a body is not well-formed, with the 1-based row and column Confluence would name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XhtmlError {
    /// Parser message, e.g. `Unexpected close tag </b>; expected </p>.`
    pub message: String,
    /// 1-based line of the problem.
    pub row: usize,
    /// 1-based column of the problem.
    pub column: usize,
}

impl XhtmlError {
    /// The text Confluence puts in its 400 message.
    pub fn confluence_message(&self) -> String {
        format!(
            "Error parsing xhtml: {}\n at [row,col {{unknown-source}}]: [{},{}]",
            self.message, self.row, self.column
        )
    }
}

const ROOT_OPEN: &str = "<sim-root>";
const ROOT_CLOSE: &str = "</sim-root>";

/// Checks that `body` is a well-formed storage fragment.
pub fn check(body: &str) -> Result<(), XhtmlError> {
    let wrapped = format!("{ROOT_OPEN}{body}{ROOT_CLOSE}");
    let mut reader = Reader::from_str(&wrapped);
    let config = reader.config_mut();
    config.check_end_names = false;
    config.trim_text(false);
    let fail = |offset: usize, message: String| -> XhtmlError {
        let offset = offset.saturating_sub(ROOT_OPEN.len()).min(body.len());
        let (row, column) = row_column(body, offset);
        XhtmlError {
            message,
            row,
            column,
        }
    };
    let mut open: Vec<String> = Vec::new();
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = reader.read_event().map_err(|error| {
            let at = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
            fail(at, parser_message(&error.to_string()))
        })?;
        match event {
            Event::Start(start) | Event::Empty(start) if !is_name(start.name().as_ref()) => {
                return Err(fail(before, "Unexpected character in tag name".to_owned()));
            }
            Event::Start(start) => {
                check_attributes(&start).map_err(|message| fail(before, message))?;
                open.push(String::from_utf8_lossy(start.name().as_ref()).into_owned());
            }
            Event::Empty(start) => {
                check_attributes(&start).map_err(|message| fail(before, message))?
            }
            Event::End(end) => {
                let name = String::from_utf8_lossy(end.name().as_ref()).into_owned();
                match open.pop() {
                    Some(expected) if expected == name => {}
                    Some(expected) if expected == "sim-root" => {
                        return Err(fail(
                            before,
                            format!("Unexpected close tag </{name}>; no open element."),
                        ));
                    }
                    Some(expected) if name == "sim-root" => {
                        return Err(fail(
                            before,
                            format!(
                                "Unexpected EOF; was expecting a close tag for element <{expected}>"
                            ),
                        ));
                    }
                    Some(expected) => {
                        return Err(fail(
                            before,
                            format!("Unexpected close tag </{name}>; expected </{expected}>."),
                        ));
                    }
                    None => {
                        return Err(fail(
                            before,
                            "Unexpected content after the fragment".to_owned(),
                        ));
                    }
                }
            }
            Event::GeneralRef(reference) => {
                let name = String::from_utf8_lossy(&reference).into_owned();
                if !is_known_reference(&name) {
                    return Err(fail(
                        before,
                        format!("Undeclared general entity \"{name}\""),
                    ));
                }
            }
            Event::Eof => {
                return match open.last() {
                    None => Ok(()),
                    Some(name) => Err(fail(
                        body.len(),
                        format!("Unexpected EOF; was expecting a close tag for element <{name}>"),
                    )),
                };
            }
            Event::DocType(_) | Event::Decl(_) => {
                return Err(fail(
                    before,
                    "Unexpected declaration inside a fragment".to_owned(),
                ));
            }
            Event::Text(_) | Event::CData(_) | Event::Comment(_) | Event::PI(_) => {}
        }
    }
}

fn parser_message(raw: &str) -> String {
    let mut message = raw.to_owned();
    if let Some(first) = message.get(..1) {
        let upper = first.to_uppercase();
        message.replace_range(..1, &upper);
    }
    message
}

fn is_name(name: &[u8]) -> bool {
    name.first().is_some_and(|&first| {
        first.is_ascii_alphabetic() || first == b'_' || first == b':' || first >= 0x80
    })
}

fn check_attributes(start: &quick_xml::events::BytesStart<'_>) -> Result<(), String> {
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|error| parser_message(&error.to_string()))?;
        let value = String::from_utf8_lossy(&attribute.value);
        check_references_in(&value)?;
        if value.contains('<') {
            return Err("Unexpected '<' in an attribute value".to_owned());
        }
    }
    Ok(())
}

/// Attribute values are not split into reference events, so their `&…;` references are checked here.
fn check_references_in(value: &str) -> Result<(), String> {
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        let after = &rest[at + 1..];
        let Some(end) = after.find(';') else {
            return Err("Unexpected '&' in an attribute value; write it as &amp;".to_owned());
        };
        let name = &after[..end];
        if !is_known_reference(name) {
            return Err(format!("Undeclared general entity \"{name}\""));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

fn is_known_reference(name: &str) -> bool {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number
            .strip_prefix('x')
            .or_else(|| number.strip_prefix('X'))
        {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => number.parse::<u32>().ok(),
        };
        return code.and_then(char::from_u32).is_some();
    }
    matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
        || HTML_ENTITY_NAMES.binary_search(&name).is_ok()
}

fn row_column(text: &str, offset: usize) -> (usize, usize) {
    let mut cut = offset.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let before = &text[..cut];
    let row = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (row, column)
}

/// The named character references of HTML 4 / XHTML 1.0, sorted for binary search.
pub(crate) const HTML_ENTITY_NAMES: &[&str] = &[
    "AElig", "Aacute", "Acirc", "Agrave", "Alpha", "Aring", "Atilde", "Auml", "Beta", "Ccedil",
    "Chi", "Dagger", "Delta", "ETH", "Eacute", "Ecirc", "Egrave", "Epsilon", "Eta", "Euml",
    "Gamma", "Iacute", "Icirc", "Igrave", "Iota", "Iuml", "Kappa", "Lambda", "Mu", "Ntilde", "Nu",
    "OElig", "Oacute", "Ocirc", "Ograve", "Omega", "Omicron", "Oslash", "Otilde", "Ouml", "Phi",
    "Pi", "Prime", "Psi", "Rho", "Scaron", "Sigma", "THORN", "Tau", "Theta", "Uacute", "Ucirc",
    "Ugrave", "Upsilon", "Uuml", "Xi", "Yacute", "Yuml", "Zeta", "aacute", "acirc", "acute",
    "aelig", "agrave", "alefsym", "alpha", "amp", "and", "ang", "aring", "asymp", "atilde", "auml",
    "bdquo", "beta", "brvbar", "bull", "cap", "ccedil", "cedil", "cent", "chi", "circ", "clubs",
    "cong", "copy", "crarr", "cup", "curren", "dArr", "dagger", "darr", "deg", "delta", "diams",
    "divide", "eacute", "ecirc", "egrave", "empty", "emsp", "ensp", "epsilon", "equiv", "eta",
    "eth", "euml", "euro", "exist", "fnof", "forall", "frac12", "frac14", "frac34", "frasl",
    "gamma", "ge", "gt", "hArr", "harr", "hearts", "hellip", "iacute", "icirc", "iexcl", "igrave",
    "image", "infin", "int", "iota", "iquest", "isin", "iuml", "kappa", "lArr", "lambda", "lang",
    "laquo", "larr", "lceil", "ldquo", "le", "lfloor", "lowast", "loz", "lrm", "lsaquo", "lsquo",
    "lt", "macr", "mdash", "micro", "middot", "minus", "mu", "nabla", "nbsp", "ndash", "ne", "ni",
    "not", "notin", "nsub", "ntilde", "nu", "oacute", "ocirc", "oelig", "ograve", "oline", "omega",
    "omicron", "oplus", "or", "ordf", "ordm", "oslash", "otilde", "otimes", "ouml", "para", "part",
    "permil", "perp", "phi", "pi", "piv", "plusmn", "pound", "prime", "prod", "prop", "psi",
    "quot", "rArr", "radic", "rang", "raquo", "rarr", "rceil", "rdquo", "real", "reg", "rfloor",
    "rho", "rlm", "rsaquo", "rsquo", "sbquo", "scaron", "sdot", "sect", "shy", "sigma", "sigmaf",
    "sim", "spades", "sub", "sube", "sum", "sup", "sup1", "sup2", "sup3", "supe", "szlig", "tau",
    "there4", "theta", "thetasym", "thinsp", "thorn", "tilde", "times", "trade", "uArr", "uacute",
    "uarr", "ucirc", "ugrave", "uml", "upsih", "upsilon", "uuml", "weierp", "xi", "yacute", "yen",
    "yuml", "zeta", "zwj", "zwnj",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn check_body(body: &str, expected: Result<(), (&str, usize, usize)>) {
        let got = check(body).map_err(|error| (error.message, error.row, error.column));
        match expected {
            Ok(()) => assert_eq!(got, Ok(()), "{body}"),
            Err((fragment, row, column)) => {
                let (message, got_row, got_column) = got.expect_err(body);
                assert!(message.contains(fragment), "{body}: {message}");
                assert_eq!((got_row, got_column), (row, column), "{body}: {message}");
            }
        }
    }

    #[test]
    fn accepts_storage_fragments() {
        check_body("", Ok(()));
        check_body("<p>a</p><p>b&nbsp;&amp;&#169;&#x263A;</p>", Ok(()));
        check_body(
            r#"<ac:structured-macro ac:name="code"><ac:plain-text-body><![CDATA[a < b && c]]></ac:plain-text-body></ac:structured-macro>"#,
            Ok(()),
        );
        check_body(
            r#"<p><ac:link><ri:page ri:content-title="A &amp; B"/></ac:link><br/></p>"#,
            Ok(()),
        );
        check_body("plain text with > sign<!-- note -->", Ok(()));
    }

    #[test]
    fn reports_what_and_where() {
        check_body(
            "<p>a\n<b>x</p>",
            Err(("Unexpected close tag </p>; expected </b>.", 2, 5)),
        );
        check_body(
            "<p>a<br></p>",
            Err(("Unexpected close tag </p>; expected </br>.", 1, 9)),
        );
        check_body(
            "<p>open",
            Err(("was expecting a close tag for element <p>", 1, 8)),
        );
        check_body("<p>a & b</p>", Err(("reference not closed", 1, 6)));
        check_body(
            "<p>&bogus;</p>",
            Err(("Undeclared general entity \"bogus\"", 1, 4)),
        );
        check_body("<p class=x>a</p>", Err(("", 1, 1)));
        check_body("</p>", Err(("Unexpected close tag </p>", 1, 1)));
        check_body(
            "<p>a < b</p>",
            Err(("Unexpected character in tag name", 1, 6)),
        );
        check_body("<p a='1' a='2'/>", Err(("duplicated attribute", 1, 1)));
        check_body("<p title=\"a & b\"/>", Err(("write it as &amp;", 1, 1)));
    }
}
