//! Validation of the global `--public-url`, the base advertised in the OpenAPI `servers` entry.

/// Checks a `--public-url` value: an absolute `https` URL with a host (`http` only for a loopback
/// host such as `localhost` or `127.0.0.1`, for local trials), without credentials, query or
/// fragment. Returns it without a trailing slash, or a message saying what is wrong.
pub fn parse(value: &str) -> Result<String, String> {
    let value = value.trim();
    let url = reqwest::Url::parse(value).map_err(|error| {
        format!("`{value}` is not an absolute URL ({error}); expected e.g. https://gpt-gateway.example.com")
    })?;
    let Some(host) = url.host_str().filter(|host| !host.is_empty()) else {
        return Err(format!("`{value}` has no host"));
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "`{value}` is not https; Custom GPT Actions require https (plain http is accepted only for a loopback host)"
            ));
        }
        scheme => return Err(format!("`{value}` has scheme `{scheme}`; expected https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("`{value}` must not contain credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{value}` must not have a query or fragment"));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn https_and_loopback_http_pass_everything_else_is_named() {
        assert_eq!(
            parse("https://gw.example.com/base/").as_deref(),
            Ok("https://gw.example.com/base")
        );
        assert!(parse("http://localhost:8080").is_ok());
        assert!(parse("http://127.0.0.1:8080").is_ok());
        assert!(parse("http://[::1]:8080").is_ok());
        for bad in [
            "gw.example.com",
            "/relative",
            "ftp://gw.example.com",
            "http://gw.example.com",
            "https://user:pw@gw.example.com",
            "https://gw.example.com/?x=1",
            "https://gw.example.com/#top",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
    }
}
