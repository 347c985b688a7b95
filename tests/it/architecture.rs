//! The layering rules, checked on the source tree (in the tidy style): every module imports only
//! modules below it, the leaves import nothing above them, only `demo` uses the simulator, and the
//! page domain mentions no HTTP type. A broken rule fails with the file and line that break it.

use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module and its rank: a module may import only modules of a lower rank. `lib`
/// stands for items of the crate root (`run`, `RunSettings`).
const LAYERS: &[(&str, u32)] = &[
    ("main", 100),
    ("demo", 90),
    ("lib", 80),
    ("http", 70),
    ("endpoint", 60),
    ("pages", 50),
    ("openapi", 50),
    ("ratelimit", 50),
    ("confluence", 40),
    ("sim", 35),
    ("config", 30),
    ("markdown", 20),
    ("routes", 10),
    ("secret", 10),
    ("sections", 10),
    ("titles", 10),
    ("metrics", 10),
    ("logging", 10),
    ("clock", 0),
];

/// The only modules that may use the simulator (tests may too).
const SIM_USERS: &[&str] = &["demo", "main"];

/// Words that mark an HTTP or wire type; the page domain must not mention them.
const HTTP_WORDS: &[&str] = &[
    "http::",
    "hyper",
    "StatusCode",
    "HeaderMap",
    "serde",
    "ApiError",
    "json!",
];

fn rank(module: &str) -> Option<u32> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, rank)| *rank)
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read src dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The top-level module a file of `src/` belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("file under src");
    let first = relative
        .components()
        .next()
        .expect("non-empty path")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The top-level names a line refers to through `prefix` (`crate::` or `conflagent::`), including
/// each item of a `prefix{a, b::c}` group.
fn referenced(line: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

/// A referenced name as a module of [`LAYERS`]: names that are not modules are crate-root items.
fn as_module(name: &str) -> &str {
    if rank(name).is_some() { name } else { "lib" }
}

/// Every broken rule, as `file:line: message`.
fn violations(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files(src) {
        let module = module_of(src, &file);
        let shown = file.display();
        let Some(own_rank) = rank(&module) else {
            found.push(format!(
                "{shown}: module `{module}` has no layer; add it to LAYERS in tests/it/architecture.rs"
            ));
            continue;
        };
        let text = fs::read_to_string(&file).expect("read source file");
        let prefix = if module == "main" {
            "conflagent::"
        } else {
            "crate::"
        };
        for (index, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let number = index + 1;
            for name in referenced(code, prefix) {
                let target = as_module(&name);
                if target == module {
                    continue;
                }
                let target_rank = rank(target).expect("as_module returns a ranked module");
                if target_rank >= own_rank {
                    found.push(format!(
                        "{shown}:{number}: `{module}` imports `{target}`, which is not below it"
                    ));
                }
                if target == "sim" && !SIM_USERS.contains(&module.as_str()) {
                    found.push(format!(
                        "{shown}:{number}: `{module}` uses the simulator; only {SIM_USERS:?} may"
                    ));
                }
            }
            if module == "pages" {
                for word in HTTP_WORDS {
                    if code.contains(word) {
                        found.push(format!(
                            "{shown}:{number}: the page domain mentions `{word}`, an HTTP or wire type"
                        ));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn every_module_imports_only_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

#[test]
fn the_checker_names_the_file_and_line_of_an_upward_import() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    fs::create_dir(src.join("pages")).expect("mkdir");
    fs::write(
        src.join("pages/mod.rs"),
        "//! pages\nuse crate::titles::Title;\nuse crate::{http::error::ApiError, config};\n",
    )
    .expect("write");
    fs::write(src.join("config.rs"), "use crate::endpoint::Endpoint;\n").expect("write");
    fs::write(src.join("metrics.rs"), "use crate::sim::Simulator;\n").expect("write");
    fs::write(src.join("surprise.rs"), "\n").expect("write");
    let found = violations(src);
    let shown = |file: &str| src.join(file).display().to_string();
    assert_eq!(
        found,
        [
            format!(
                "{}:1: `config` imports `endpoint`, which is not below it",
                shown("config.rs")
            ),
            format!(
                "{}:1: `metrics` imports `sim`, which is not below it",
                shown("metrics.rs")
            ),
            format!(
                "{}:1: `metrics` uses the simulator; only [\"demo\", \"main\"] may",
                shown("metrics.rs")
            ),
            format!(
                "{}:3: `pages` imports `http`, which is not below it",
                shown("pages/mod.rs")
            ),
            format!(
                "{}:3: the page domain mentions `http::`, an HTTP or wire type",
                shown("pages/mod.rs")
            ),
            format!(
                "{}:3: the page domain mentions `ApiError`, an HTTP or wire type",
                shown("pages/mod.rs")
            ),
            format!(
                "{}: module `surprise` has no layer; add it to LAYERS in tests/it/architecture.rs",
                shown("surprise.rs")
            ),
        ]
    );
}
