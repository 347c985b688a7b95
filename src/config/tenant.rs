//! Turns the raw entries of one endpoint file into a validated [`Tenant`], collecting every problem.
//! Later code never re-checks what is validated here: a `Tenant` can only be made by [`validate`],
//! and its fields are parsed types behind getters.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::config::base_url::classify_base_url;
use crate::config::properties::{self, Parsed, Severity};
use crate::routes::{Access, Operation};
use crate::secret::Secret;

/// Which kind of Confluence an endpoint talks to; the APIs differ in what they offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// Confluence Cloud (the site or the API gateway): REST v2 for pages, v1 only where v2 has no
    /// equivalent.
    Cloud,
    /// Confluence Data Center or Server: REST v1.
    DataCenter,
}

/// The credential sent to Confluence.
#[derive(Debug, Clone)]
pub enum UpstreamAuth {
    /// HTTP Basic with an account email and an API token (Cloud), or a user and password (DC).
    Basic {
        /// The account's email address or user name.
        email: String,
        /// The API token or password.
        api_token: Secret,
    },
    /// A bearer token: a personal access token (DC) or an OAuth access token. Only visible ASCII,
    /// so it can always be sent in a header.
    Bearer {
        /// The token.
        token: Secret,
    },
}

/// An absolute http(s) URL without credentials, query, fragment or trailing slash: a Confluence
/// base URL (with `/rest/api` removed when the operator included it) or a public base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Checks `text` as a base URL; the error says what is wrong, without echoing the text.
    pub fn parse(text: &str) -> Result<BaseUrl, String> {
        let parsed = url::Url::parse(text.trim()).map_err(|_| "is not a valid URL".to_owned())?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err("must be an http or https URL with a host".to_owned());
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("must not contain credentials; use email and api_token".to_owned());
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err("must not have a query or fragment".to_owned());
        }
        let text = parsed.as_str().trim_end_matches('/');
        let text = text.strip_suffix("/rest/api").unwrap_or(text);
        Ok(BaseUrl(text.trim_end_matches('/').to_owned()))
    }

    /// The URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host, lowercase.
    pub fn host(&self) -> String {
        url::Url::parse(&self.0)
            .ok()
            .and_then(|url| url.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default()
    }

    fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated endpoint configuration.
#[derive(Debug, Clone)]
pub struct Tenant {
    name: String,
    base_url: BaseUrl,
    space_key: String,
    root_page_id: String,
    secret: Secret,
    previous_secret: Option<Secret>,
    credentials: UpstreamAuth,
    deployment: Deployment,
    flavor: Flavor,
    /// Whether `flavor` was given: then `operations` adds to it, else `operations` alone decides.
    flavor_given: bool,
    operations: Option<Vec<Operation>>,
    rate_limit: RateLimit,
    upstream_timeout: Duration,
    upstream_max_concurrent: NonZeroUsize,
    public_url: Option<BaseUrl>,
    description: Option<String>,
    allowed_macros: Vec<String>,
    /// [`Tenant::access_summary`], worded once.
    access_summary: String,
}

/// The original Conflagent's flavors: which part of the API an endpoint exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Everything.
    Default,
    /// Only the read operations.
    Read,
    /// Only page creation.
    Upload,
}

impl Flavor {
    /// The name used in configuration files and messages.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Default => "default",
            Flavor::Read => "read",
            Flavor::Upload => "upload",
        }
    }

    fn allows(self, access: Access) -> bool {
        match (self, access) {
            (_, Access::Public | Access::Protocol) | (Flavor::Default, _) => true,
            (Flavor::Read, Access::Read) | (Flavor::Upload, Access::Create) => true,
            (Flavor::Read | Flavor::Upload, _) => false,
        }
    }
}

/// Requests per minute with a burst allowance; `None` in [`Tenant::rate_limit`] fields means off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per minute; 0 disables the limit.
    pub per_minute: u32,
    /// How many requests may arrive at once.
    pub burst: u32,
}

impl Tenant {
    /// The endpoint name, from the file name; the URL segment after `/endpoint/`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Confluence base URL (Cloud: `https://site.atlassian.net/wiki`).
    pub fn base_url(&self) -> &BaseUrl {
        &self.base_url
    }

    /// The space's canonical key.
    pub fn space_key(&self) -> &str {
        &self.space_key
    }

    /// The numeric id of the sandbox's root page.
    pub fn root_page_id(&self) -> &str {
        &self.root_page_id
    }

    /// How the gateway authenticates to Confluence.
    pub fn credentials(&self) -> &UpstreamAuth {
        &self.credentials
    }

    /// Cloud or Data Center.
    pub fn deployment(&self) -> Deployment {
        self.deployment
    }

    /// Which operations the endpoint publishes and allows.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The request budget of authenticated calls.
    pub fn rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    /// Deadline for one request's upstream work, retries included.
    pub fn upstream_timeout(&self) -> Duration {
        self.upstream_timeout
    }

    /// Cap on concurrent upstream calls for this endpoint.
    pub fn upstream_max_concurrent(&self) -> NonZeroUsize {
        self.upstream_max_concurrent
    }

    /// The https base that the OpenAPI `servers` entry advertises.
    pub fn public_url(&self) -> Option<&BaseUrl> {
        self.public_url.as_ref()
    }

    /// Text appended to the OpenAPI `info.description`.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Storage macros allowed in writes on top of the safe default (e.g. `html`).
    pub fn allowed_macros(&self) -> &[String] {
        &self.allowed_macros
    }

    /// Whether this endpoint publishes and serves `operation`: the flavor's operations, plus those
    /// of `operations` when a flavor is given; exactly those of `operations` when none is.
    pub fn allows(&self, operation: Operation) -> bool {
        if matches!(operation.access(), Access::Public | Access::Protocol) {
            return true;
        }
        let in_flavor = self.flavor.allows(operation.access());
        match &self.operations {
            None => in_flavor,
            Some(listed) if self.flavor_given => in_flavor || listed.contains(&operation),
            Some(listed) => listed.contains(&operation),
        }
    }

    /// What the endpoint serves, in words for a 403: `flavor `read``, `flavor `read` plus
    /// createPage` or `operations listSubpages, readPageByTitle`.
    pub fn access_summary(&self) -> &str {
        &self.access_summary
    }

    /// Every secret this endpoint accepts.
    pub fn accepted_secrets(&self) -> impl Iterator<Item = &Secret> {
        std::iter::once(&self.secret).chain(self.previous_secret.as_ref())
    }
}

/// The words of [`Tenant::access_summary`].
fn summarize_access(
    flavor: Flavor,
    flavor_given: bool,
    operations: Option<&[Operation]>,
) -> String {
    let names = |listed: &[Operation]| {
        listed
            .iter()
            .map(|operation| operation.operation_id())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match operations {
        None => format!("flavor `{}`", flavor.name()),
        Some(listed) if flavor_given => {
            format!("flavor `{}` plus {}", flavor.name(), names(listed))
        }
        Some(listed) => format!("operations {}", names(listed)),
    }
}

/// One problem in an endpoint file, located by line where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The 1-based line, or `None` for a problem of the whole file (a missing key).
    pub line: Option<usize>,
    /// What is wrong; never contains a secret's value.
    pub message: String,
    /// Whether it stops the file from loading.
    pub severity: Severity,
}

/// The outcome of validating one file: a tenant when no problem is an error, and every problem.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The tenant, present only when there is no error.
    pub tenant: Option<Tenant>,
    /// Errors and warnings, in line order (file-wide problems last).
    pub problems: Vec<Problem>,
}

/// Every key an endpoint file may contain.
pub const KNOWN_KEYS: &[&str] = &[
    "base_url",
    "space_key",
    "root_page_id",
    "gpt_shared_secret",
    "gpt_shared_secret_previous",
    "email",
    "api_token",
    "auth",
    "deployment",
    "flavor",
    "operations",
    "rate_limit_per_minute",
    "rate_limit_burst",
    "upstream_timeout_seconds",
    "upstream_max_concurrent",
    "public_url",
    "description",
    "allowed_macros",
];

/// Keys whose values are secrets: never echoed, trailing whitespace never trimmed silently.
const SECRET_KEYS: &[&str] = &[
    "gpt_shared_secret",
    "gpt_shared_secret_previous",
    "api_token",
];

/// Secrets shorter than this are accepted with a warning (older deployments use short ones).
pub const MIN_SECRET_LEN: usize = 16;

/// The longest upstream deadline: a GPT Action gives up after 45 s, and the answer must reach it first.
const MAX_UPSTREAM_TIMEOUT_SECONDS: u64 = 40;

/// Parses and validates the text of `conflagent.<name>.properties`.
pub fn validate(name: &str, text: &str) -> Validated {
    let parsed = properties::parse(text, KNOWN_KEYS);
    let mut problems: Vec<Problem> = parsed
        .problems
        .iter()
        .map(|problem| Problem {
            line: Some(problem.line),
            message: problem.message.clone(),
            severity: problem.severity,
        })
        .collect();
    let tenant = Fields {
        parsed: &parsed,
        problems: &mut problems,
    }
    .tenant(name);
    problems.sort_by_key(|problem| problem.line.unwrap_or(usize::MAX));
    let has_error = problems
        .iter()
        .any(|problem| problem.severity == Severity::Error);
    Validated {
        tenant: if has_error { None } else { tenant },
        problems,
    }
}

/// Reads typed fields out of the parsed entries, recording problems as it goes.
struct Fields<'a> {
    parsed: &'a Parsed,
    problems: &'a mut Vec<Problem>,
}

impl Fields<'_> {
    fn tenant(&mut self, name: &str) -> Option<Tenant> {
        for entry in &self.parsed.entries {
            if !KNOWN_KEYS.contains(&entry.key.as_str()) {
                let message = match properties::near_miss(&entry.key, KNOWN_KEYS) {
                    Some(known) => {
                        format!(
                            "unknown key `{}` is ignored; did you mean `{known}`?",
                            entry.key
                        )
                    }
                    None => "unknown key is ignored; it is not shown because it does not look \
                             like a configuration key and may be a secret (a value on a line of \
                             its own, or a value and key swapped)"
                        .to_owned(),
                };
                self.warn(entry.line, message);
            }
        }

        let base_url = self.required("base_url").and_then(|(value, line)| {
            self.url("base_url", &value, line, false)
                .map(|url| (url, line))
        });
        let space_key = self.required("space_key").map(|(value, _)| value);
        let root_page_id = self.required("root_page_id").and_then(|(value, line)| {
            if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
                Some(value)
            } else {
                self.error(line, "root_page_id must be a numeric page id".to_owned());
                None
            }
        });
        let secret = self.required_secret("gpt_shared_secret");
        let previous_secret = self.optional_secret("gpt_shared_secret_previous");
        let explicit_deployment = self.explicit_deployment();
        let (base_url, deployment) = match (base_url, explicit_deployment) {
            (Some((url, line)), Some(explicit)) => self.classified_base(&url, line, explicit),
            _ => (None, None),
        };
        let credentials = self.credentials();
        let flavor = self.flavor();
        let flavor_given = self.optional("flavor").is_some();
        let operations = self.operations(flavor.filter(|_| flavor_given));
        let rate_limit = RateLimit {
            per_minute: self.number("rate_limit_per_minute", 120, 0, 1_000_000)?,
            burst: self.number("rate_limit_burst", 20, 0, 100_000)?,
        };
        let upstream_timeout = Duration::from_secs(self.number(
            "upstream_timeout_seconds",
            30,
            1,
            MAX_UPSTREAM_TIMEOUT_SECONDS,
        )?);
        let upstream_max_concurrent =
            NonZeroUsize::new(self.number("upstream_max_concurrent", 8, 1, 1024)?)
                .unwrap_or(NonZeroUsize::MIN);
        let public_url = match self.optional("public_url") {
            Some((value, line)) => Some(self.url("public_url", &value, line, true)?),
            None => None,
        };
        let description = self.optional("description").map(|(value, _)| value);
        let allowed_macros = self
            .optional("allowed_macros")
            .map(|(value, _)| split_list(&value))
            .unwrap_or_default();

        if let (Some(secret), Some(previous)) = (&secret, &previous_secret)
            && secret == previous
        {
            let line = self.line_of("gpt_shared_secret_previous");
            self.warn(
                line,
                "gpt_shared_secret_previous equals gpt_shared_secret".to_owned(),
            );
        }

        let flavor = flavor?;
        let operations = operations?;
        let access_summary = summarize_access(flavor, flavor_given, operations.as_deref());
        Some(Tenant {
            name: name.to_owned(),
            base_url: base_url?,
            space_key: space_key?,
            root_page_id: root_page_id?,
            secret: secret?,
            previous_secret,
            credentials: credentials?,
            deployment: deployment?,
            flavor,
            flavor_given,
            operations,
            rate_limit,
            upstream_timeout,
            upstream_max_concurrent,
            public_url,
            description,
            allowed_macros,
            access_summary,
        })
    }

    fn line_of(&self, key: &str) -> usize {
        self.parsed.get(key).map_or(0, |entry| entry.line)
    }

    fn error(&mut self, line: usize, message: String) {
        self.problems.push(Problem {
            line: (line > 0).then_some(line),
            message,
            severity: Severity::Error,
        });
    }

    fn warn(&mut self, line: usize, message: String) {
        self.problems.push(Problem {
            line: (line > 0).then_some(line),
            message,
            severity: Severity::Warning,
        });
    }

    /// A non-secret value, trimmed; `None` when absent. An empty value counts as absent.
    fn optional(&mut self, key: &str) -> Option<(String, usize)> {
        let entry = self.parsed.get(key)?;
        let value = entry.value.trim();
        (!value.is_empty()).then(|| (value.to_owned(), entry.line))
    }

    fn required(&mut self, key: &str) -> Option<(String, usize)> {
        let found = self.optional(key);
        if found.is_none() {
            self.missing(key, "");
        }
        found
    }

    /// Reports a required key that is absent, or present with an empty value (whose value may
    /// have ended up on the next line, where it must never be echoed).
    fn missing(&mut self, key: &str, why: &str) {
        match self.parsed.get(key) {
            Some(entry) => {
                let line = entry.line;
                self.error(
                    line,
                    format!(
                        "{key} is empty{why}; its value must be on the same line (or continue \
                         it with a trailing backslash)"
                    ),
                );
            }
            None => self.error(0, format!("missing required key {key}{why}")),
        }
    }

    fn optional_secret(&mut self, key: &str) -> Option<Secret> {
        let entry = self.parsed.get(key)?;
        let value = entry.value.as_str();
        if value.is_empty() {
            return None;
        }
        if value.trim() != value {
            self.warn(
                entry.line,
                format!("{key} has leading or trailing whitespace, which is removed"),
            );
        }
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        if key != "api_token" && value.chars().count() < MIN_SECRET_LEN {
            self.warn(
                entry.line,
                format!(
                    "{key} is shorter than {MIN_SECRET_LEN} characters; use a long random secret"
                ),
            );
        }
        Some(Secret::new(value))
    }

    fn required_secret(&mut self, key: &str) -> Option<Secret> {
        let found = self.optional_secret(key);
        if found.is_none() {
            self.missing(key, "");
        }
        found
    }

    fn url(&mut self, key: &str, value: &str, line: usize, is_public: bool) -> Option<BaseUrl> {
        match BaseUrl::parse(value) {
            Ok(url) => {
                if is_public && !url.is_https() {
                    self.warn(
                        line,
                        format!("{key} is not https; Custom GPT Actions require https"),
                    );
                }
                Some(url)
            }
            Err(why) => {
                self.error(line, format!("{key} {why}"));
                None
            }
        }
    }

    /// The `deployment` key: `Some(None)` when absent, `None` when invalid (an error was recorded).
    fn explicit_deployment(&mut self) -> Option<Option<Deployment>> {
        let Some((value, line)) = self.optional("deployment") else {
            return Some(None);
        };
        match value.to_ascii_lowercase().as_str() {
            "cloud" => Some(Some(Deployment::Cloud)),
            "datacenter" | "data_center" | "server" => Some(Some(Deployment::DataCenter)),
            _ => {
                self.error(line, "deployment must be cloud or datacenter".to_owned());
                None
            }
        }
    }

    /// The base URL the client uses and the deployment, from `base_url` and `deployment`: a Cloud
    /// site, Atlassian's API gateway (both ending in `/wiki`) or Data Center. A URL that cannot be
    /// classified is an error that explains the accepted forms.
    fn classified_base(
        &mut self,
        url: &BaseUrl,
        line: usize,
        explicit: Option<Deployment>,
    ) -> (Option<BaseUrl>, Option<Deployment>) {
        match classify_base_url(url.as_str(), explicit) {
            Ok(base) => {
                if base.appended_wiki {
                    let message = if url.as_str().contains("/ex/confluence/") {
                        "base_url of the API gateway does not end in /wiki; using <base_url>/wiki"
                    } else {
                        "base_url of a Cloud site has no path; using <site>/wiki"
                    };
                    self.warn(line, message.to_owned());
                }
                (Some(BaseUrl(base.base_url)), Some(base.deployment))
            }
            Err(why) => {
                self.error(line, format!("base_url {why}"));
                (None, None)
            }
        }
    }

    fn credentials(&mut self) -> Option<UpstreamAuth> {
        let email = self.optional("email");
        let api_token = self.optional_secret("api_token");
        let auth = match self.optional("auth") {
            Some((value, line)) => match value.to_ascii_lowercase().as_str() {
                "basic" => "basic",
                "bearer" => "bearer",
                _ => {
                    self.error(line, "auth must be basic or bearer".to_owned());
                    return None;
                }
            },
            None if email.is_some() => "basic",
            None => "bearer",
        };
        let token_line = self.line_of("api_token");
        let Some(api_token) = api_token else {
            self.missing("api_token", &format!(" (needed for auth={auth})"));
            return None;
        };
        if auth == "basic" {
            let Some((email, _)) = email else {
                let line = self.line_of("auth");
                self.error(line, "auth=basic needs email".to_owned());
                return None;
            };
            Some(UpstreamAuth::Basic { email, api_token })
        } else {
            if let Some((_, line)) = email {
                self.warn(line, "email is ignored with auth=bearer".to_owned());
            }
            if !api_token
                .expose()
                .bytes()
                .all(|byte| byte.is_ascii_graphic())
            {
                self.error(
                    token_line,
                    "api_token for auth=bearer must be visible ASCII without spaces".to_owned(),
                );
                return None;
            }
            Some(UpstreamAuth::Bearer { token: api_token })
        }
    }

    fn flavor(&mut self) -> Option<Flavor> {
        match self.optional("flavor") {
            None => Some(Flavor::Default),
            Some((value, line)) => match value.to_ascii_lowercase().as_str() {
                "default" => Some(Flavor::Default),
                "read" => Some(Flavor::Read),
                "upload" => Some(Flavor::Upload),
                _ => {
                    self.error(line, "flavor must be default, read or upload".to_owned());
                    None
                }
            },
        }
    }

    /// `operations`: without a flavor, the exact list; with `flavor=read` or `upload`, operations
    /// added to the flavor's. A list that could read as narrowing a given flavor (`flavor=default`,
    /// or an operation the flavor already has) is refused, never reinterpreted: earlier versions
    /// narrowed the flavor with it.
    fn operations(&mut self, given_flavor: Option<Flavor>) -> Option<Option<Vec<Operation>>> {
        let Some((value, line)) = self.optional("operations") else {
            return Some(None);
        };
        let mut operations = Vec::new();
        let mut ok = true;
        if given_flavor == Some(Flavor::Default) {
            self.error(
                line,
                "operations adds operations to flavor=read or flavor=upload, and flavor=default \
                 already has them all; to allow only the listed operations, remove the flavor key"
                    .to_owned(),
            );
            return None;
        }
        for id in split_list(&value) {
            match Operation::from_operation_id(&id) {
                Some(operation)
                    if given_flavor.is_some_and(|flavor| flavor.allows(operation.access())) =>
                {
                    let flavor = given_flavor.map_or("", Flavor::name);
                    self.error(
                        line,
                        format!(
                            "operations: `{id}` is already part of flavor={flavor}; operations adds \
                             to the flavor and cannot narrow it (to allow only the listed \
                             operations, remove the flavor key)"
                        ),
                    );
                    ok = false;
                }
                Some(operation) if operation.is_page_operation() => operations.push(operation),
                _ => {
                    self.error(
                        line,
                        format!("operations: unknown operationId `{id}` (e.g. readPageByTitle)"),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(Some(operations))
    }

    /// An integer key with a default and an inclusive range. Returns `None` only to abort building
    /// (an error was recorded), so callers use `?` freely.
    fn number<T>(&mut self, key: &str, default: T, min: u64, max: u64) -> Option<T>
    where
        T: TryFrom<u64> + Copy,
    {
        let Some((value, line)) = self.optional(key) else {
            return Some(default);
        };
        match value.parse::<u64>() {
            Ok(number) if (min..=max).contains(&number) => T::try_from(number).ok(),
            _ => {
                self.error(
                    line,
                    format!("{key} must be a whole number from {min} to {max}"),
                );
                // Keep validating the rest of the file: the error already prevents loading.
                Some(default)
            }
        }
    }
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `secret` is one of the keys whose values must never be shown.
pub fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "base_url=https://wiki.example.com\nspace_key=DOC\nroot_page_id=12345\n\
        gpt_shared_secret=0123456789abcdef0123\napi_token=pat-token\n";

    /// Validates `text` and compares the problems rendered as `line: message` (`-` for no line).
    fn check(text: &str, expected_problems: &[&str]) -> Validated {
        let validated = validate("docs", text);
        let problems: Vec<String> = validated
            .problems
            .iter()
            .map(|problem| {
                let line = problem.line.map_or("-".to_owned(), |line| line.to_string());
                format!("{line}: {}", problem.message)
            })
            .collect();
        assert_eq!(problems, expected_problems, "problems of {text:?}");
        validated
    }

    #[test]
    fn base_urls_are_normalised_or_refused() {
        fn check(base_url: &str, expected: Result<&str, &str>) {
            assert_eq!(
                BaseUrl::parse(base_url).as_ref().map(BaseUrl::as_str),
                expected.map_err(str::to_owned).as_ref().map(|ok| *ok),
                "{base_url}"
            );
        }
        check(
            "https://x.atlassian.net/wiki",
            Ok("https://x.atlassian.net/wiki"),
        );
        check(
            "https://x.atlassian.net/wiki/",
            Ok("https://x.atlassian.net/wiki"),
        );
        check("https://host/ctx/rest/api/", Ok("https://host/ctx"));
        check("http://127.0.0.1:8090", Ok("http://127.0.0.1:8090"));
        check(
            "ftp://host/",
            Err("must be an http or https URL with a host"),
        );
        check(
            "https://me:pw@host/",
            Err("must not contain credentials; use email and api_token"),
        );
        check(
            "https://host/?a=b",
            Err("must not have a query or fragment"),
        );
        check("not a url", Err("is not a valid URL"));
    }

    #[test]
    fn a_bearer_token_that_cannot_be_sent_in_a_header_is_refused() {
        let text = VALID.replace("pat-token", "pat token");
        let validated = check(
            &text,
            &["5: api_token for auth=bearer must be visible ASCII without spaces"],
        );
        assert!(validated.tenant.is_none());
    }

    #[test]
    fn minimal_file_gives_defaults() {
        let tenant = check(VALID, &[]).tenant.expect("valid");
        assert_eq!(tenant.name, "docs");
        assert_eq!(tenant.deployment, Deployment::DataCenter);
        assert_eq!(tenant.flavor, Flavor::Default);
        assert!(matches!(tenant.credentials, UpstreamAuth::Bearer { .. }));
        assert_eq!(
            tenant.rate_limit,
            RateLimit {
                per_minute: 120,
                burst: 20
            }
        );
        assert_eq!(tenant.upstream_timeout, Duration::from_secs(30));
    }

    #[test]
    fn email_means_basic_and_atlassian_net_means_cloud() {
        let text = "base_url=https://acme.atlassian.net/\nspace_key=DOC\nroot_page_id=1\n\
            gpt_shared_secret=0123456789abcdef\nemail=bot@acme.com\napi_token=t\n";
        let tenant = check(
            text,
            &["1: base_url of a Cloud site has no path; using <site>/wiki"],
        )
        .tenant
        .expect("valid");
        assert_eq!(tenant.deployment, Deployment::Cloud);
        assert_eq!(tenant.base_url.as_str(), "https://acme.atlassian.net/wiki");
        assert!(matches!(tenant.credentials, UpstreamAuth::Basic { .. }));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_lines() {
        let text =
            "base_url=ftp://x\nroot_page_id=abc\nflavor=write\nrate_limit_burst=-1\nmystery=1\n";
        let validated = check(
            text,
            &[
                "1: base_url must be an http or https URL with a host",
                "2: root_page_id must be a numeric page id",
                "3: flavor must be default, read or upload",
                "4: rate_limit_burst must be a whole number from 0 to 100000",
                "5: unknown key is ignored; it is not shown because it does not look like a \
                 configuration key and may be a secret (a value on a line of its own, or a value \
                 and key swapped)",
                "-: missing required key space_key",
                "-: missing required key gpt_shared_secret",
                "-: missing required key api_token (needed for auth=bearer)",
            ],
        );
        assert!(validated.tenant.is_none());
    }

    #[test]
    fn a_token_on_the_line_after_its_key_is_never_echoed() {
        let token = "ATATT3xFfGF0T9nWq2cLk8s7ZpQvR1mYbXhE4uJdA6oI5gKtC1A2B3C4D";
        let text = VALID.replace("api_token=pat-token\n", &format!("api_token=\n{token}\n"));
        let validated = check(
            &text,
            &[
                "5: api_token is empty (needed for auth=bearer); its value must be on the same \
                 line (or continue it with a trailing backslash)",
                "6: unknown key is ignored; it is not shown because it does not look like a \
                 configuration key and may be a secret (a value on a line of its own, or a value \
                 and key swapped)",
            ],
        );
        assert!(validated.tenant.is_none());
        let swapped = VALID.replace(
            "gpt_shared_secret=0123456789abcdef0123",
            "0123456789abcdef0123:gpt_shared_secret",
        );
        let validated = validate("docs", &swapped);
        assert!(
            validated
                .problems
                .iter()
                .all(|problem| !problem.message.contains("0123456789abcdef0123")),
            "{:?}",
            validated.problems
        );
        let typo = check(
            &format!("{VALID}rate_limit_per_minut=5\n"),
            &[
                "6: unknown key `rate_limit_per_minut` is ignored; did you mean `rate_limit_per_minute`?",
            ],
        );
        assert!(typo.tenant.is_some());
    }

    #[test]
    fn short_secret_is_a_warning_and_never_echoed() {
        let text = VALID.replace("0123456789abcdef0123", "s3cr3t-short");
        let validated = check(
            &text,
            &["4: gpt_shared_secret is shorter than 16 characters; use a long random secret"],
        );
        assert!(validated.tenant.is_some());
        assert!(
            validated
                .problems
                .iter()
                .all(|problem| !problem.message.contains("s3cr3t"))
        );
    }

    #[test]
    fn previous_secret_is_accepted_too() {
        let text = format!("{VALID}gpt_shared_secret_previous=old-secret-0123456789\n");
        let tenant = check(&text, &[]).tenant.expect("valid");
        let secrets: Vec<&str> = tenant.accepted_secrets().map(Secret::expose).collect();
        assert_eq!(secrets, ["0123456789abcdef0123", "old-secret-0123456789"]);
    }

    #[test]
    fn credentials_in_url_are_refused_without_echo() {
        let text = VALID.replace(
            "https://wiki.example.com",
            "https://user:hunter2@wiki.example.com",
        );
        let validated = check(
            &text,
            &["1: base_url must not contain credentials; use email and api_token"],
        );
        assert!(validated.tenant.is_none());
    }

    #[test]
    fn basic_without_email_is_an_error() {
        let text = format!("{VALID}auth=basic\n");
        check(&text, &["6: auth=basic needs email"]);
    }

    #[test]
    fn flavor_and_allowlist_decide_operations() {
        let read = check(&format!("{VALID}flavor=read\n"), &[])
            .tenant
            .expect("valid");
        assert!(read.allows(Operation::ReadPage));
        assert!(read.allows(Operation::Health));
        assert!(!read.allows(Operation::CreatePage));
        let upload = check(&format!("{VALID}flavor=upload\n"), &[])
            .tenant
            .expect("valid");
        assert!(upload.allows(Operation::CreatePage));
        assert!(!upload.allows(Operation::ReadPage));
        let listed = check(
            &format!("{VALID}operations=readPageByTitle, listSubpages\n"),
            &[],
        )
        .tenant
        .expect("valid");
        assert!(listed.allows(Operation::ListPages));
        assert!(!listed.allows(Operation::PageTree));
        assert!(!listed.allows(Operation::CreatePage));
        assert_eq!(
            listed.access_summary(),
            "operations readPageByTitle, listSubpages"
        );
        // Added on top of a narrow flavor, as the README says.
        let added = check(&format!("{VALID}flavor=read\noperations=createPage\n"), &[])
            .tenant
            .expect("valid");
        for operation in [
            Operation::ReadPage,
            Operation::PageTree,
            Operation::CreatePage,
        ] {
            assert!(added.allows(operation), "{operation:?}");
        }
        assert!(!added.allows(Operation::DeletePage));
        assert_eq!(added.access_summary(), "flavor `read` plus createPage");
        // Lists that would have narrowed a flavor are refused, never silently widened.
        check(
            &format!("{VALID}flavor=read\noperations=readPageByTitle,createPage\n"),
            &[
                "7: operations: `readPageByTitle` is already part of flavor=read; operations adds \
               to the flavor and cannot narrow it (to allow only the listed operations, remove \
               the flavor key)",
            ],
        );
        check(
            &format!("{VALID}flavor=default\noperations=readPageByTitle\n"),
            &[
                "7: operations adds operations to flavor=read or flavor=upload, and flavor=default \
               already has them all; to allow only the listed operations, remove the flavor key",
            ],
        );
        check(
            &format!("{VALID}operations=readPage\n"),
            &["6: operations: unknown operationId `readPage` (e.g. readPageByTitle)"],
        );
    }

    #[test]
    fn upstream_timeout_stays_below_what_a_gpt_waits() {
        check(
            &format!("{VALID}upstream_timeout_seconds=60\n"),
            &["6: upstream_timeout_seconds must be a whole number from 1 to 40"],
        );
    }
}
