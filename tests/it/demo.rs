//! `conflagent demo`: what it prints works as printed.

use conflagent::config::Deployment;
use conflagent::demo::Demo;
use tokio::sync::oneshot;

/// Splits one shell command line into words: whitespace separates, single quotes quote verbatim, a
/// backslash outside quotes escapes the next character. Enough for the commands the demo prints,
/// and it fails loudly on anything else.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(quoted) => current.push(quoted),
                        None => panic!("unterminated quote in `{line}`"),
                    }
                }
            }
            '\\' => {
                let escaped = chars.next().expect("a character after a backslash");
                word.get_or_insert_with(String::new).push(escaped);
            }
            '"' | '$' | '`' | ';' | '|' | '&' | '<' | '>' => {
                panic!("`{c}` would need a real shell: `{line}`")
            }
            c if c.is_whitespace() => {
                if let Some(done) = word.take() {
                    words.push(done);
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// The `curl` commands of the instructions, continuation lines joined, as argument lists.
fn curl_commands(instructions: &str) -> Vec<Vec<String>> {
    let joined = instructions.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("curl "))
        .map(shell_words)
        .collect()
}

/// Runs one `curl` argument list with reqwest, understanding exactly the options the demo uses.
async fn run_curl(http: &reqwest::Client, args: &[String]) -> (u16, serde_json::Value) {
    let mut method = reqwest::Method::GET;
    let mut headers = Vec::new();
    let mut data = None;
    let mut url = None;
    let mut words = args.iter().skip(1);
    while let Some(word) = words.next() {
        match word.as_str() {
            "-s" => {}
            "-X" => method = words.next().expect("-X value").parse().expect("method"),
            "-H" => {
                let header = words.next().expect("-H value");
                let (name, value) = header.split_once(':').expect("Name: value");
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
            "-d" => {
                data = Some(words.next().expect("-d value").clone());
                if method == reqwest::Method::GET {
                    method = reqwest::Method::POST;
                }
            }
            other if other.starts_with("http://") => url = Some(other.to_owned()),
            other => panic!("the demo prints a curl option this test does not know: {other}"),
        }
    }
    let mut request = http.request(method, url.expect("a URL"));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    if let Some(data) = data {
        request = request.body(data);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

#[test]
fn shell_words_follow_the_shell() {
    assert_eq!(
        shell_words(r#"curl -s -H 'Authorization: Bearer x' 'http://h/a b?c=d' -d '{"a":"b\n"}'"#),
        [
            "curl",
            "-s",
            "-H",
            "Authorization: Bearer x",
            "http://h/a b?c=d",
            "-d",
            r#"{"a":"b\n"}"#
        ]
    );
}

#[tokio::test]
async fn demo_serves_its_handbook_and_prints_curl_commands_that_work_on_cloud() {
    check_demo(Deployment::Cloud).await;
}

#[tokio::test]
async fn demo_serves_its_handbook_and_prints_curl_commands_that_work_on_data_center() {
    check_demo(Deployment::DataCenter).await;
}

async fn check_demo(deployment: Deployment) {
    let demo = Demo::start(
        "127.0.0.1:0".parse().expect("addr"),
        "127.0.0.1:0".parse().expect("addr"),
        120,
        deployment,
    )
    .await
    .expect("demo starts");
    let sim = demo.sim.clone();
    let base = demo.endpoint_url();
    let secret = demo.secret.clone();
    let instructions = demo.instructions();
    assert!(instructions.contains(&format!("Endpoint:  {base}\n")));
    assert!(instructions.contains(&format!("Secret:    {secret}\n")));
    assert!(instructions.contains(&format!("{base}/openapi.json")));
    // 128 bits from the OS generator, as hex.
    let random = secret.strip_prefix("demo-").expect("demo- prefix");
    assert_eq!(random.len(), 32);
    assert!(random.bytes().all(|byte| byte.is_ascii_hexdigit()));
    let commands = curl_commands(&instructions);
    assert_eq!(commands.len(), 3, "{instructions}");

    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    assert!(sim.page_by_title("TEAM", "Retro notes").is_none());
    let served = tokio::spawn(demo.serve(conflagent::RunSettings::default(), async move {
        let _ = stop_rx.await;
    }));
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for command in &commands {
        let (status, body) = run_curl(&http, command).await;
        assert_eq!(status, 200, "{command:?}: {body}");
        assert_eq!(body["success"], true, "{command:?}: {body}");
        answers.push(body);
    }
    // The listing shows the sandbox, never the page outside it.
    let paths = answers[0]["data"].as_array().expect("paths");
    assert!(
        paths
            .iter()
            .any(|path| path == "Engineering/Release Process")
    );
    assert!(!answers[0].to_string().contains("HR Confidential"));
    // The read comes back as Markdown.
    assert_eq!(answers[1]["data"]["format"], "markdown");
    assert!(
        answers[1]["data"]["body"]
            .as_str()
            .is_some_and(|body| body.contains("git tag -s v1.2.0")),
        "{}",
        answers[1]
    );
    // The create made the page upstream, under the parent it names.
    assert_eq!(
        answers[2]["data"]["path"],
        serde_json::json!(["Team Handbook", "Meeting Notes", "Retro notes"])
    );
    let created = sim.page_by_title("TEAM", "Retro notes").expect("created");
    assert!(created.body.contains("Release Process"), "{}", created.body);
    if deployment == Deployment::Cloud {
        // A page in a folder is listed under the folder's page; the demo never touches v1 content.
        assert!(
            paths.iter().any(|path| path == "Travel Policy"),
            "{}",
            answers[0]
        );
        assert_eq!(sim.v1_requests(), 0);
    }
    let _ = stop_tx.send(());
    served.await.expect("demo stops");
}
