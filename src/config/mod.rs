//! Endpoint configuration: the `.properties` parser, validation into tenants, the table of what is
//! served and the directory watcher that keeps it current. A leaf: it imports nothing of the product
//! beyond the route table and `Secret`, and builds no runtime state itself.

pub mod base_url;
pub mod properties;
pub mod table;
pub mod tenant;
pub mod watch;

pub use table::{ConfigStore, FileProblems, ReloadReport, Table};
pub use tenant::{BaseUrl, Deployment, Flavor, RateLimit, Tenant, UpstreamAuth};

/// The endpoint name of a config file name, when the file is an endpoint file:
/// `conflagent.<name>.properties` with `<name>` of 1 to 128 characters from `[A-Za-z0-9_-]`.
pub fn endpoint_name(file_name: &str) -> Option<&str> {
    let name = file_name
        .strip_prefix("conflagent.")?
        .strip_suffix(".properties")?;
    is_valid_endpoint_name(name).then_some(name)
}

/// Whether `name` is a syntactically valid endpoint name (the URL segment after `/endpoint/`).
pub fn is_valid_endpoint_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

#[cfg(test)]
mod tests {
    use super::endpoint_name;

    fn check(file_name: &str, expected: Option<&str>) {
        assert_eq!(endpoint_name(file_name), expected, "{file_name}");
    }

    #[test]
    fn only_conflagent_name_properties_files_are_endpoints() {
        check("conflagent.docs.properties", Some("docs"));
        check("conflagent.Team_A-2.properties", Some("Team_A-2"));
        check("conflagent..properties", None);
        check("conflagent.a.b.properties", None);
        check("conflagent.docs.properties.swp", None);
        check(".conflagent.docs.properties.swp", None);
        check("conflagent.docs.properties~", None);
        check("conflagent.docs.properties.tmp", None);
        check("conflagent.example.properties.example", None);
        check("..data", None);
        check("4913", None);
        check("docs.properties", None);
        check(
            &format!("conflagent.{}.properties", "a".repeat(128)),
            Some(&"a".repeat(128)),
        );
        check(&format!("conflagent.{}.properties", "a".repeat(129)), None);
    }
}
