//! The one reading of a `base_url` that decides which Confluence an endpoint talks to.
//!
//! Pure: no IO. Cloud is reached either through the site (`https://<site>.atlassian.net/wiki`) or
//! through Atlassian's API gateway (`https://api.atlassian.com/ex/confluence/<cloudId>/wiki`, needed
//! for scoped API tokens); both end in `/wiki`, under which the REST APIs live. Anything else is Data
//! Center unless `deployment=cloud` says otherwise (the simulator serves both Cloud forms on loopback).

use super::tenant::Deployment;

/// The Atlassian API gateway's host.
const GATEWAY_HOST: &str = "api.atlassian.com";

/// A classified `base_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfluenceBase {
    /// Cloud or Data Center.
    pub deployment: Deployment,
    /// The base the client uses, without a trailing `/`: Cloud bases end in `/wiki`.
    pub base_url: String,
    /// Whether `/wiki` was appended to what the operator wrote (worth a warning).
    pub appended_wiki: bool,
}

/// Reads `base_url` (an absolute http(s) URL, already checked for credentials, query and fragment)
/// with the `deployment` key when one was given. The error explains what was expected.
pub fn classify_base_url(
    base_url: &str,
    explicit: Option<Deployment>,
) -> Result<ConfluenceBase, String> {
    let url = url::Url::parse(base_url.trim()).map_err(|_| "is not a valid URL".to_owned())?;
    let host = url.host_str().unwrap_or("").to_ascii_lowercase();
    let trimmed = base_url.trim().trim_end_matches('/');
    let path = url.path().trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
    let gateway_shape = matches!(
        segments.as_slice(),
        ["ex", "confluence", cloud_id] | ["ex", "confluence", cloud_id, "wiki"] if !cloud_id.is_empty()
    );
    let is_gateway_host = host == GATEWAY_HOST;
    let is_site_host = host.ends_with(".atlassian.net");
    if is_gateway_host && !gateway_shape {
        return Err(format!(
            "on {GATEWAY_HOST} must be https://{GATEWAY_HOST}/ex/confluence/<cloudId> (the cloudId \
             is in https://<site>.atlassian.net/_edge/tenant_info), not a path like {path:?}"
        ));
    }
    if is_site_host && !matches!(segments.as_slice(), [] | ["wiki"]) {
        return Err(format!(
            "of a Confluence Cloud site must be https://{host} or https://{host}/wiki, not a page \
             or space address (path {path:?})"
        ));
    }
    let deployment = match explicit {
        Some(Deployment::DataCenter) if is_gateway_host || is_site_host => {
            return Err(format!(
                "{host} is Confluence Cloud, which has no Data Center API: remove deployment or set \
                 it to cloud"
            ));
        }
        Some(explicit) => explicit,
        None if is_gateway_host || is_site_host => Deployment::Cloud,
        None => Deployment::DataCenter,
    };
    if deployment == Deployment::DataCenter {
        return Ok(ConfluenceBase {
            deployment,
            base_url: trimmed.to_owned(),
            appended_wiki: false,
        });
    }
    // Cloud on any host: the site form or the gateway form, each with `/wiki` at the end.
    let ends_in_wiki = segments.last() == Some(&"wiki");
    let known_shape = gateway_shape || segments.is_empty() || segments.as_slice() == ["wiki"];
    if !known_shape {
        return Err(format!(
            "of a Confluence Cloud endpoint must be the site (https://<site>.atlassian.net[/wiki]) or \
             the API gateway (https://{GATEWAY_HOST}/ex/confluence/<cloudId>[/wiki]); path {path:?} \
             is neither"
        ));
    }
    Ok(ConfluenceBase {
        deployment,
        base_url: if ends_in_wiki {
            trimmed.to_owned()
        } else {
            format!("{trimmed}/wiki")
        },
        appended_wiki: !ends_in_wiki,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        base_url: &str,
        explicit: Option<Deployment>,
        expected: Result<(Deployment, &str), &str>,
    ) {
        let got = classify_base_url(base_url, explicit);
        match expected {
            Ok((deployment, base)) => {
                let got = got.unwrap_or_else(|error| panic!("{base_url}: {error}"));
                assert_eq!(
                    (got.deployment, got.base_url.as_str()),
                    (deployment, base),
                    "{base_url}"
                );
            }
            Err(fragment) => {
                let error = got.expect_err(base_url);
                assert!(error.contains(fragment), "{base_url}: {error}");
            }
        }
    }

    #[test]
    fn both_cloud_forms_and_data_center_are_recognised() {
        use Deployment::{Cloud, DataCenter};
        check(
            "https://acme.atlassian.net",
            None,
            Ok((Cloud, "https://acme.atlassian.net/wiki")),
        );
        check(
            "https://acme.atlassian.net/wiki/",
            None,
            Ok((Cloud, "https://acme.atlassian.net/wiki")),
        );
        check(
            "https://api.atlassian.com/ex/confluence/1a2b-3c",
            None,
            Ok((
                Cloud,
                "https://api.atlassian.com/ex/confluence/1a2b-3c/wiki",
            )),
        );
        check(
            "https://api.atlassian.com/ex/confluence/1a2b-3c/wiki",
            None,
            Ok((
                Cloud,
                "https://api.atlassian.com/ex/confluence/1a2b-3c/wiki",
            )),
        );
        check(
            "https://wiki.corp.example/confluence/",
            None,
            Ok((DataCenter, "https://wiki.corp.example/confluence")),
        );
        check(
            "http://127.0.0.1:9/wiki",
            Some(Cloud),
            Ok((Cloud, "http://127.0.0.1:9/wiki")),
        );
        check(
            "http://127.0.0.1:9/ex/confluence/abc",
            Some(Cloud),
            Ok((Cloud, "http://127.0.0.1:9/ex/confluence/abc/wiki")),
        );
    }

    #[test]
    fn urls_that_cannot_be_classified_are_explained() {
        check(
            "https://api.atlassian.com/",
            None,
            Err("/ex/confluence/<cloudId>"),
        );
        check(
            "https://api.atlassian.com/ex/jira/abc",
            None,
            Err("_edge/tenant_info"),
        );
        check(
            "https://acme.atlassian.net/wiki/spaces/DOC/overview",
            None,
            Err("not a page or space address"),
        );
        check(
            "https://acme.atlassian.net",
            Some(Deployment::DataCenter),
            Err("no Data Center API"),
        );
        check(
            "http://127.0.0.1:9/confluence",
            Some(Deployment::Cloud),
            Err("is neither"),
        );
    }
}
