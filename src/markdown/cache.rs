//! Recently rendered stored bodies, so that a body is rendered to Markdown once for the reads of it
//! in slices and for the Markdown write that usually follows (pure: no IO).
//!
//! Rendering is a pure function of the stored XHTML, so an entry can never be stale: it is found by
//! the exact bytes it was rendered from (compared in full on every hit, the hash only narrows the
//! search) and the scope it was rendered for, which keeps one endpoint's entries apart from
//! another's. Entries are dropped least recently used first once their bytes pass the budget.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use super::XhtmlError;
use super::from_storage::{Blocks, blocks_of};

/// The bytes an entry is charged for besides its text: the block list and bookkeeping.
const ENTRY_OVERHEAD: usize = 128;

/// A bounded cache of rendered stored bodies.
pub struct RenderCache {
    max_bytes: usize,
    hasher: foldhash::quality::RandomState,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_hash: HashMap<u64, Entry>,
    bytes: usize,
    clock: u64,
}

struct Entry {
    scope: Box<str>,
    storage: Arc<str>,
    blocks: Arc<Blocks>,
    cost: usize,
    last_used: u64,
}

impl RenderCache {
    /// A cache that holds at most `max_bytes` of stored and rendered text; a body that alone would
    /// take more than a quarter of that is rendered every time instead.
    pub fn new(max_bytes: usize) -> RenderCache {
        RenderCache {
            max_bytes,
            hasher: foldhash::quality::RandomState::default(),
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The blocks of `storage`, rendered now or earlier for the same `scope`.
    pub(crate) fn blocks(&self, scope: &str, storage: &str) -> Result<Arc<Blocks>, XhtmlError> {
        let hash = self.hash(scope, storage);
        if let Some(blocks) = self.lookup(hash, scope, storage) {
            return Ok(blocks);
        }
        let blocks = Arc::new(blocks_of(storage)?);
        self.insert(hash, scope, storage, &blocks);
        Ok(blocks)
    }

    fn hash(&self, scope: &str, storage: &str) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        hasher.write(scope.as_bytes());
        hasher.write_u8(0xff);
        hasher.write(storage.as_bytes());
        hasher.finish()
    }

    fn lookup(&self, hash: u64, scope: &str, storage: &str) -> Option<Arc<Blocks>> {
        let (cached_storage, blocks) = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            entries.clock += 1;
            let now = entries.clock;
            let entry = entries.by_hash.get_mut(&hash)?;
            if *entry.scope != *scope {
                return None;
            }
            entry.last_used = now;
            (Arc::clone(&entry.storage), Arc::clone(&entry.blocks))
        };
        // Compared outside the lock: a large body takes a while, and other requests need the cache.
        (*cached_storage == *storage).then_some(blocks)
    }

    fn insert(&self, hash: u64, scope: &str, storage: &str, blocks: &Arc<Blocks>) {
        let cost = ENTRY_OVERHEAD
            + scope.len()
            + storage.len()
            + blocks
                .iter()
                .map(|(text, _)| text.len() + ENTRY_OVERHEAD / 4)
                .sum::<usize>();
        if cost > self.max_bytes / 4 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.clock += 1;
        let entry = Entry {
            scope: scope.into(),
            storage: storage.into(),
            blocks: Arc::clone(blocks),
            cost,
            last_used: entries.clock,
        };
        // Two bodies with one hash: the newer one takes the slot.
        if let Some(replaced) = entries.by_hash.insert(hash, entry) {
            entries.bytes -= replaced.cost;
        }
        entries.bytes += cost;
        while entries.bytes > self.max_bytes {
            let Some(oldest) = entries
                .by_hash
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(hash, _)| *hash)
            else {
                break;
            };
            if let Some(evicted) = entries.by_hash.remove(&oldest) {
                entries.bytes -= evicted.cost;
            }
        }
    }

    /// The bytes the cache holds now.
    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::RenderCache;

    #[test]
    fn a_body_is_rendered_once_per_scope_and_found_by_its_exact_bytes() {
        let cache = RenderCache::new(1 << 20);
        let first = cache.blocks("a", "<p>one</p><p>two</p>").expect("renders");
        let again = cache.blocks("a", "<p>one</p><p>two</p>").expect("renders");
        assert!(Arc::ptr_eq(&first, &again), "the second read is a hit");
        let other_scope = cache.blocks("b", "<p>one</p><p>two</p>").expect("renders");
        assert!(!Arc::ptr_eq(&first, &other_scope), "scopes do not share");
        let other_body = cache
            .blocks("a", "<p>one</p><p>three</p>")
            .expect("renders");
        assert_eq!(other_body[1].0, "three");
    }

    #[test]
    fn the_budget_drops_the_least_recently_used_and_skips_bodies_too_big_to_keep() {
        let body = |n: usize| format!("<p>{}</p>", "x".repeat(n));
        let cache = RenderCache::new(4096);
        let kept = cache.blocks("a", &body(300)).expect("renders");
        for n in 301..320 {
            cache.blocks("a", &body(n)).expect("renders");
            // Touch the first body so that it stays the most recently used.
            let touched = cache.blocks("a", &body(300)).expect("renders");
            assert!(Arc::ptr_eq(&kept, &touched), "still cached after {n}");
        }
        assert!(cache.held_bytes() <= 4096);
        let big = body(2000);
        let once = cache.blocks("a", &big).expect("renders");
        let twice = cache.blocks("a", &big).expect("renders");
        assert!(
            !Arc::ptr_eq(&once, &twice),
            "a body over a quarter of the budget is not kept"
        );
    }

    #[test]
    fn malformed_storage_is_an_error_and_not_kept() {
        let cache = RenderCache::new(1 << 20);
        assert!(cache.blocks("a", "<p>open").is_err());
        assert_eq!(cache.held_bytes(), 0);
    }
}
