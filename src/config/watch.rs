//! Keeps the tenant table current: directory events (debounced) and a periodic safety-net rescan
//! both trigger a full rescan, which swaps in a new table when anything changed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::ConfigStore;
use crate::config::table::ReloadReport;

/// Called with the report of every rescan, after it is logged (the runtime counts it in metrics).
pub type OnReport = fn(&ReloadReport);

/// How the watcher behaves.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// Quiet time after the last event before rescanning, so a burst of events (an editor's save, a
    /// Kubernetes `..data` swap) causes one rescan.
    pub debounce: Duration,
    /// Rescan this often even without events, in case events were lost.
    pub rescan_interval: Duration,
}

impl Default for WatchSettings {
    fn default() -> WatchSettings {
        WatchSettings {
            debounce: Duration::from_millis(200),
            rescan_interval: Duration::from_secs(30),
        }
    }
}

/// Watches the store's directory until `shutdown` turns true. When the directory cannot be watched
/// (no inotify instances left, say), it logs why and relies on the periodic rescan alone.
pub async fn watch_config<T: Send + Sync + 'static>(
    store: Arc<ConfigStore<T>>,
    settings: WatchSettings,
    mut shutdown: watch::Receiver<bool>,
    on_report: OnReport,
) {
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<()>();
    let debouncer = start_debouncer(store.dir(), settings.debounce, events_tx.clone());
    if let Err(error) = &debouncer {
        tracing::error!(%error, "cannot watch the config directory; changes apply at the next periodic rescan");
    }
    // Whatever changed between the initial load and the watch taking effect has no event: look now.
    let grace = settings.debounce;
    let mut recheck = rescan(&store, grace, on_report)
        .await
        .then(|| Instant::now() + grace);

    let mut interval = tokio::time::interval(settings.rescan_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        let removal_due = async {
            match recheck {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.changed() => break,
            event = events_rx.recv() => {
                if event.is_none() {
                    break;
                }
                // Coalesce everything queued so far into one rescan.
                while events_rx.try_recv().is_ok() {}
            }
            _ = interval.tick() => {}
            () = removal_due => {}
        }
        recheck = rescan(&store, grace, on_report)
            .await
            .then(|| Instant::now() + grace);
    }
    drop(debouncer);
    drop(events_tx);
}

fn start_debouncer(
    dir: &Path,
    debounce: Duration,
    events_tx: mpsc::UnboundedSender<()>,
) -> notify::Result<impl Drop> {
    let mut debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
        let look_again = match &result {
            Err(errors) => {
                tracing::warn!(?errors, "config directory watch reported errors");
                true
            }
            Ok(events) => events.iter().any(|event| changes_content(&event.kind)),
        };
        // A change, or an error, means: look again. The receiver is gone only at shutdown.
        if look_again {
            let _ = events_tx.send(());
        }
    })?;
    debouncer.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(debouncer)
}

/// Whether an event can change what the directory holds. Reading a file (which every rescan does)
/// reports opens, closes and access times; those must not trigger the next rescan, or the watcher
/// would keep rescanning itself.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        // A file closed after writing is complete now (inotify's `IN_CLOSE_WRITE`).
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        EventKind::Any
        | EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Other => true,
    }
}

/// Rescans on a blocking thread (file IO) and logs the outcome. An endpoint whose file is gone
/// stays served for `removal_grace`; returns whether one is waiting for that, so the caller
/// rescans again once it has passed.
pub async fn rescan<T: Send + Sync + 'static>(
    store: &Arc<ConfigStore<T>>,
    removal_grace: Duration,
    on_report: OnReport,
) -> bool {
    let task_store = Arc::clone(store);
    match tokio::task::spawn_blocking(move || task_store.rescan_with_grace(removal_grace)).await {
        Ok(Ok(report)) => {
            log_report(store.dir(), &report);
            on_report(&report);
            !report.pending_removal.is_empty()
        }
        Ok(Err(error)) => {
            tracing::error!(dir = %store.dir().display(), %error, "config directory unreadable; keeping the current endpoints");
            false
        }
        Err(error) => {
            tracing::error!(%error, "config rescan task failed");
            false
        }
    }
}

/// Logs what a rescan did: one line per problem, one summary when anything changed. Endpoint names
/// appear at info level only for changes the operator made.
pub fn log_report(dir: &Path, report: &ReloadReport) {
    for file in &report.failed {
        for line in file.lines() {
            tracing::error!(problem = %line, "endpoint file rejected; its last good config stays in service");
        }
    }
    for file in &report.warned {
        for line in file.lines() {
            tracing::warn!(problem = %line, "endpoint file loaded with warnings");
        }
    }
    if report.changed_anything() {
        tracing::info!(
            dir = %dir.display(),
            added = report.added.len(),
            changed = report.changed.len(),
            removed = report.removed.len(),
            loaded = report.loaded,
            "endpoints reloaded"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, RemoveKind, RenameMode};

    #[test]
    fn reading_files_does_not_trigger_a_rescan() {
        for (kind, expected) in [
            (EventKind::Access(AccessKind::Open(AccessMode::Any)), false),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                false,
            ),
            (
                EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)),
                false,
            ),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                true,
            ),
            (EventKind::Create(CreateKind::File), true),
            (EventKind::Modify(ModifyKind::Name(RenameMode::Both)), true),
            (
                EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any)),
                true,
            ),
            (EventKind::Remove(RemoveKind::File), true),
            (EventKind::Any, true),
        ] {
            assert_eq!(changes_content(&kind), expected, "{kind:?}");
        }
    }
}
