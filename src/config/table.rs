//! The table of what is served: an immutable map from endpoint name to whatever the caller builds
//! from each [`Tenant`], rebuilt from the config directory and swapped atomically. In-flight requests
//! keep the table they started with. The store builds nothing itself: it validates files and hands
//! each new or changed tenant to the build function it was given, with the value it replaces.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use crate::config::endpoint_name;
use crate::config::properties::Severity;
use crate::config::tenant::{self, Problem, Tenant};

/// One served entry: the value built from a file, and the SHA-256 of the file's content.
struct Entry<T> {
    value: Arc<T>,
    source_hash: [u8; 32],
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Entry<T> {
        Entry {
            value: Arc::clone(&self.value),
            source_hash: self.source_hash,
        }
    }
}

/// An immutable snapshot of every loaded endpoint.
pub struct Table<T> {
    endpoints: HashMap<String, Entry<T>>,
}

impl<T> Default for Table<T> {
    fn default() -> Table<T> {
        Table {
            endpoints: HashMap::new(),
        }
    }
}

impl<T> Table<T> {
    /// The endpoint called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<T>> {
        self.endpoints.get(name).map(|entry| &entry.value)
    }

    /// How many endpoints are loaded.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether no endpoint is loaded.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The loaded endpoints, in no particular order.
    pub fn endpoints(&self) -> impl Iterator<Item = &Arc<T>> {
        self.endpoints.values().map(|entry| &entry.value)
    }
}

/// The problems of one file, for logs and `conflagent check`.
#[derive(Debug, Clone)]
pub struct FileProblems {
    /// The file.
    pub path: PathBuf,
    /// Its problems; at least one is an error when the file failed to load.
    pub problems: Vec<Problem>,
}

impl FileProblems {
    /// Renders each problem as `file:line: message` (or `file: message` without a line), warnings
    /// marked as such. Never contains a secret's value.
    pub fn lines(&self) -> Vec<String> {
        self.problems
            .iter()
            .map(|problem| {
                let location = match problem.line {
                    Some(line) => format!("{}:{line}", self.path.display()),
                    None => self.path.display().to_string(),
                };
                let kind = match problem.severity {
                    Severity::Error => "",
                    Severity::Warning => "warning: ",
                };
                format!("{location}: {kind}{}", problem.message)
            })
            .collect()
    }

    /// Whether any problem stops the file from loading.
    pub fn has_errors(&self) -> bool {
        self.problems
            .iter()
            .any(|problem| problem.severity == Severity::Error)
    }
}

/// What one rescan changed.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Endpoints that appeared.
    pub added: Vec<String>,
    /// Endpoints whose file changed and loaded.
    pub changed: Vec<String>,
    /// Endpoints whose file disappeared.
    pub removed: Vec<String>,
    /// Files that failed to load (the endpoint keeps its last good config, if it had one).
    pub failed: Vec<FileProblems>,
    /// Files that loaded with warnings.
    pub warned: Vec<FileProblems>,
    /// Endpoints in the new table.
    pub loaded: usize,
    /// Endpoints whose file is gone but that are still served until it has stayed gone for the
    /// removal grace (a delete-and-recreate save must not show a 404 in between).
    pub pending_removal: Vec<String>,
}

impl ReloadReport {
    /// Whether the rescan changed what is served.
    pub fn changed_anything(&self) -> bool {
        !(self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty())
    }
}

/// Builds what is served from a tenant; the second argument is the value it replaces (same
/// endpoint name, earlier content), whose state may carry over.
pub type BuildFn<T> = dyn Fn(Tenant, Option<&T>) -> T + Send + Sync;

/// The config directory and the table built from it.
pub struct ConfigStore<T> {
    dir: PathBuf,
    table: ArcSwap<Table<T>>,
    /// What rescans remember; the lock also serialises rescans.
    memory: Mutex<RescanMemory>,
    build: Box<BuildFn<T>>,
}

/// What one rescan leaves for the next.
#[derive(Default)]
struct RescanMemory {
    /// Hashes of files that failed validation, so an unchanged bad file is not re-parsed and
    /// re-logged on every rescan.
    failed_hashes: HashMap<String, [u8; 32]>,
    /// When each served endpoint's file was first seen missing.
    vanished: HashMap<String, Instant>,
}

impl<T> ConfigStore<T> {
    /// Loads the directory for the first time, building each endpoint with `build`. Fails only when
    /// the directory cannot be read; bad files are reported and skipped.
    pub fn load(
        dir: &Path,
        build: impl Fn(Tenant, Option<&T>) -> T + Send + Sync + 'static,
    ) -> io::Result<(ConfigStore<T>, ReloadReport)> {
        let store = ConfigStore {
            dir: dir.to_owned(),
            table: ArcSwap::from_pointee(Table::default()),
            memory: Mutex::new(RescanMemory::default()),
            build: Box::new(build),
        };
        let report = store.rescan()?;
        Ok((store, report))
    }

    /// The directory being served.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current table. Hold the returned `Arc` for the whole request.
    pub fn table(&self) -> Arc<Table<T>> {
        self.table.load_full()
    }

    /// Rescans the whole directory and swaps in a new table when anything changed. A file whose
    /// content is unchanged keeps its endpoint (and so its rate-limit budget); a file that fails to
    /// validate keeps its last good endpoint; a file that is gone removes its endpoint at once. An
    /// unreadable directory changes nothing.
    pub fn rescan(&self) -> io::Result<ReloadReport> {
        self.rescan_with_grace(Duration::ZERO)
    }

    /// Like [`ConfigStore::rescan`], but an endpoint whose file is gone stays served until the file
    /// has been missing for `removal_grace` (the report lists it in `pending_removal`; rescan again
    /// after the grace to remove it).
    pub fn rescan_with_grace(&self, removal_grace: Duration) -> io::Result<ReloadReport> {
        let mut memory = self
            .memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let RescanMemory {
            failed_hashes,
            vanished,
        } = &mut *memory;
        let now = Instant::now();
        let files = read_endpoint_files(&self.dir)?;
        let previous = self.table.load_full();
        let mut report = ReloadReport::default();
        let mut endpoints = HashMap::with_capacity(files.len());

        let seen: HashSet<String> = files.iter().map(|file| file.name.clone()).collect();
        for file in files {
            let old = previous.endpoints.get(&file.name);
            let content = match file.content {
                Ok(content) => content,
                Err(error) => {
                    report.failed.push(FileProblems {
                        path: file.path,
                        problems: vec![read_problem(&error)],
                    });
                    if let Some(old) = old {
                        endpoints.insert(file.name, old.clone());
                    }
                    continue;
                }
            };
            let hash: [u8; 32] = Sha256::digest(&content).into();
            if let Some(old) = old.filter(|old| old.source_hash == hash) {
                // Back to (or still) the served content: a bad content seen meanwhile is forgotten,
                // so it is reported again if it comes back.
                failed_hashes.remove(&file.name);
                endpoints.insert(file.name, old.clone());
                continue;
            }
            if failed_hashes.get(&file.name) == Some(&hash) {
                // Still the same bad content: already reported.
                if let Some(old) = old {
                    endpoints.insert(file.name, old.clone());
                }
                continue;
            }
            let validated = validate_bytes(&file.name, content);
            let problems = FileProblems {
                path: file.path,
                problems: validated.problems,
            };
            match validated.tenant {
                Some(tenant) => {
                    failed_hashes.remove(&file.name);
                    if !problems.problems.is_empty() {
                        report.warned.push(problems);
                    }
                    if old.is_some() {
                        report.changed.push(file.name.clone());
                    } else {
                        report.added.push(file.name.clone());
                    }
                    let value = (self.build)(tenant, old.map(|old| old.value.as_ref()));
                    endpoints.insert(
                        file.name,
                        Entry {
                            value: Arc::new(value),
                            source_hash: hash,
                        },
                    );
                }
                None => {
                    failed_hashes.insert(file.name.clone(), hash);
                    report.failed.push(problems);
                    if let Some(old) = old {
                        endpoints.insert(file.name, old.clone());
                    }
                }
            }
        }

        for (name, entry) in &previous.endpoints {
            if endpoints.contains_key(name) {
                continue;
            }
            let missing_since = *vanished.entry(name.clone()).or_insert(now);
            if now.duration_since(missing_since) < removal_grace {
                report.pending_removal.push(name.clone());
                endpoints.insert(name.clone(), entry.clone());
            } else {
                report.removed.push(name.clone());
            }
        }
        vanished.retain(|name, _| report.pending_removal.contains(name));
        failed_hashes.retain(|name, _| seen.contains(name));
        report.loaded = endpoints.len();
        if report.changed_anything() {
            self.table.store(Arc::new(Table { endpoints }));
        }
        Ok(report)
    }
}

/// One endpoint file found in the directory.
struct EndpointFile {
    name: String,
    path: PathBuf,
    content: io::Result<Vec<u8>>,
}

/// Reads every endpoint file of `dir`, following symlinks (Kubernetes mounts are symlinks into
/// `..data`). Other names are ignored.
fn read_endpoint_files(dir: &Path) -> io::Result<Vec<EndpointFile>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(endpoint_name) else {
            continue;
        };
        let path = entry.path();
        let content = std::fs::read(&path);
        if matches!(&content, Err(error) if error.kind() == io::ErrorKind::NotFound) {
            // Deleted (or a dangling link mid-swap) between listing and reading: it is gone.
            continue;
        }
        files.push(EndpointFile {
            name: name.to_owned(),
            path,
            content,
        });
    }
    Ok(files)
}

fn validate_bytes(name: &str, content: Vec<u8>) -> tenant::Validated {
    match String::from_utf8(content) {
        Ok(text) => tenant::validate(name, &text),
        Err(error) => {
            let valid_up_to = error.utf8_error().valid_up_to();
            let line = error.as_bytes()[..valid_up_to]
                .iter()
                .filter(|&&byte| byte == b'\n')
                .count()
                + 1;
            tenant::Validated {
                tenant: None,
                problems: vec![Problem {
                    line: Some(line),
                    message: "file is not valid UTF-8".to_owned(),
                    severity: Severity::Error,
                }],
            }
        }
    }
}

fn read_problem(error: &io::Error) -> Problem {
    Problem {
        line: None,
        message: format!("cannot read file: {error}"),
        severity: Severity::Error,
    }
}

/// Validates every endpoint file of `dir` without loading anything: what `conflagent check` prints.
/// Returns the problems of each file that has any.
pub fn check_dir(dir: &Path) -> io::Result<Vec<FileProblems>> {
    let mut out = Vec::new();
    for file in read_endpoint_files(dir)? {
        let problems = match file.content {
            Ok(content) => validate_bytes(&file.name, content).problems,
            Err(error) => vec![read_problem(&error)],
        };
        if !problems.is_empty() {
            out.push(FileProblems {
                path: file.path,
                problems,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "conflagent.docs.properties";
    const VALID: &str = "base_url=https://wiki.example.com\nspace_key=DOC\nroot_page_id=1\n\
        gpt_shared_secret=0123456789abcdef0123\napi_token=pat-token\n";

    fn served(store: &ConfigStore<String>) -> bool {
        store.table().get("docs").is_some()
    }

    #[test]
    fn a_vanished_file_keeps_its_endpoint_for_the_removal_grace() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(FILE), VALID).expect("write");
        let (store, _) =
            ConfigStore::load(dir.path(), |tenant, _| tenant.name().to_owned()).expect("load");
        assert!(served(&store));

        // Deleted: still served while the grace runs, and reported as pending.
        std::fs::remove_file(dir.path().join(FILE)).expect("remove");
        let report = store
            .rescan_with_grace(Duration::from_secs(3600))
            .expect("rescan");
        assert_eq!(report.pending_removal, ["docs"]);
        assert!(report.removed.is_empty());
        assert!(served(&store));

        // Recreated within the grace: served throughout, nothing pending.
        std::fs::write(dir.path().join(FILE), VALID).expect("write");
        let report = store
            .rescan_with_grace(Duration::from_secs(3600))
            .expect("rescan");
        assert!(report.pending_removal.is_empty());
        assert!(!report.changed_anything());
        assert!(served(&store));

        // Deleted for good: removed once the grace has passed.
        std::fs::remove_file(dir.path().join(FILE)).expect("remove");
        let report = store.rescan_with_grace(Duration::ZERO).expect("rescan");
        assert_eq!(report.removed, ["docs"]);
        assert!(!served(&store));
    }

    #[test]
    fn a_bad_content_that_comes_back_is_reported_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(FILE), VALID).expect("write");
        let (store, _) =
            ConfigStore::load(dir.path(), |tenant, _| tenant.name().to_owned()).expect("load");
        let bad = "base_url=nope\n";
        for round in 0..2 {
            std::fs::write(dir.path().join(FILE), bad).expect("write");
            let report = store.rescan().expect("rescan");
            assert_eq!(report.failed.len(), 1, "bad content, round {round}");
            let report = store.rescan().expect("rescan");
            assert!(report.failed.is_empty(), "already reported, round {round}");
            std::fs::write(dir.path().join(FILE), VALID).expect("write");
            store.rescan().expect("rescan");
            assert!(served(&store));
        }
    }
}
