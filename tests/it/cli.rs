//! The `conflagent` binary's `check` command, as an operator's script runs it.

use std::process::Command;

use crate::support::{SECRET, endpoint_file};

fn check(files: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).expect("write");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_conflagent"))
        .arg("check")
        .arg(dir.path())
        .output()
        .expect("run conflagent check");
    let stdout =
        String::from_utf8_lossy(&output.stdout).replace(&format!("{}/", dir.path().display()), "");
    (output.status.code().unwrap_or(-1), stdout)
}

#[test]
fn check_exits_zero_for_valid_files_and_ignores_other_names() {
    let valid = endpoint_file(SECRET, "https://wiki.example.com");
    let (code, stdout) = check(&[
        ("conflagent.docs.properties", &valid),
        ("conflagent.example.properties.example", "not = valid"),
        ("notes.txt", "anything"),
    ]);
    assert_eq!((code, stdout.as_str()), (0, ""));
}

#[test]
fn check_prints_file_line_problems_without_secrets_and_exits_one() {
    let broken = "base_url=ftp://wiki\nspace_key=DOC\nroot_page_id=12x\n\
                  gpt_shared_secret=tiny-secret\napi_token=upstream-token-value\n";
    let (code, stdout) = check(&[("conflagent.broken.properties", broken)]);
    assert_eq!(code, 1);
    assert_eq!(
        stdout,
        "conflagent.broken.properties:1: base_url must be an http or https URL with a host\n\
         conflagent.broken.properties:3: root_page_id must be a numeric page id\n\
         conflagent.broken.properties:4: warning: gpt_shared_secret is shorter than 16 characters; \
         use a long random secret\n"
    );
    assert!(!stdout.contains("tiny-secret") && !stdout.contains("upstream-token-value"));
}

#[test]
fn check_of_a_missing_directory_fails() {
    let output = Command::new(env!("CARGO_BIN_EXE_conflagent"))
        .args(["check", "/nonexistent/config.d"])
        .output()
        .expect("run conflagent check");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read directory"));
}

#[test]
fn serve_refuses_a_bad_public_url_before_binding_anything() {
    for (bad, problem) in [
        ("gpt-gateway.example.com", "not an absolute URL"),
        ("http://gpt-gateway.example.com", "not https"),
        ("ftp://gpt-gateway.example.com", "scheme `ftp`"),
        ("https://gpt-gateway.example.com/?a=b", "query"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_conflagent"))
            .args(["serve", "--config-dir", "/nonexistent/config.d"])
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--public-url", bad])
            .output()
            .expect("run conflagent serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            stderr.contains("--public-url") && stderr.contains(problem),
            "{bad}: {stderr}"
        );
    }
}

#[test]
fn serve_refuses_a_markdown_cache_size_it_cannot_hold() {
    for bad in ["-1", "lots", "65537"] {
        let output = Command::new(env!("CARGO_BIN_EXE_conflagent"))
            .args(["serve", "--config-dir", "/nonexistent/config.d"])
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .arg(format!("--markdown-cache-mib={bad}"))
            .output()
            .expect("run conflagent serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("--markdown-cache-mib"), "{bad}: {stderr}");
    }
}

#[test]
fn check_accepts_both_cloud_url_forms_and_explains_the_ones_it_cannot_classify() {
    let cloud = |base_url: &str, extra: &str| {
        format!(
            "base_url={base_url}\nspace_key=DOC\nroot_page_id=1\ngpt_shared_secret={SECRET}\n\
             email=bot@example.com\napi_token=upstream-token\n{extra}"
        )
    };
    let site = cloud("https://acme.atlassian.net/wiki", "");
    let gateway = cloud(
        "https://api.atlassian.com/ex/confluence/0a1b2c3d-4e5f/wiki",
        "",
    );
    let (code, stdout) = check(&[
        ("conflagent.site.properties", &site),
        ("conflagent.gateway.properties", &gateway),
    ]);
    assert_eq!((code, stdout.as_str()), (0, ""));

    let bare_gateway = cloud("https://api.atlassian.com/ex/confluence/0a1b2c3d-4e5f", "");
    let (code, stdout) = check(&[("conflagent.gw.properties", &bare_gateway)]);
    assert_eq!(
        (code, stdout.as_str()),
        (
            0,
            "conflagent.gw.properties:1: warning: base_url of the API gateway does not end in \
             /wiki; using <base_url>/wiki\n"
        )
    );

    let gateway_without_cloud_id = cloud("https://api.atlassian.com/wiki", "");
    let page_address = cloud("https://acme.atlassian.net/wiki/spaces/DOC/overview", "");
    let cloud_as_data_center = cloud("https://acme.atlassian.net", "deployment=datacenter\n");
    let (code, stdout) = check(&[
        ("conflagent.a.properties", &gateway_without_cloud_id),
        ("conflagent.b.properties", &page_address),
        ("conflagent.c.properties", &cloud_as_data_center),
    ]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with(
            "conflagent.a.properties:1: base_url on api.atlassian.com must be \
             https://api.atlassian.com/ex/confluence/<cloudId>"
        ),
        "{stdout}"
    );
    assert!(lines[0].contains("_edge/tenant_info"), "{stdout}");
    assert!(
        lines[1]
            .starts_with("conflagent.b.properties:1: base_url of a Confluence Cloud site must be"),
        "{stdout}"
    );
    assert!(lines[2].contains("has no Data Center API"), "{stdout}");
}
