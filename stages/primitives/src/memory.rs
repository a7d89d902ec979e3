//! An in-memory [`Store`] with the semantics of the Redis commands the backends use (GET, MGET,
//! SET with EX, SET NX EX, DEL, SCAN MATCH prefix), for unit tests of the stages: no server, no
//! file, milliseconds per test. It can be told to fail like an unreachable server, so tests can
//! drive the stages' retry and stop paths, or to cut a write short as a crash in the middle of
//! a pipelined write does, so tests can drive the crash repairs.

use crate::store::{Store, StoreError, WriteBatch, WriteOp};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

const BACKEND: &str = "memory";

/// A value with its expiry.
#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

/// Keys in order, values with their expiries.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<BTreeMap<String, Entry>>,
    unavailable: AtomicBool,
    round_trips: AtomicU64,
    /// Commands of the next write to apply before it fails.
    cut_next_write: Mutex<Option<usize>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Make every call fail as an unreachable server does (`true`) or work again (`false`).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::Relaxed);
    }

    /// Cut the next write short: only its first `commands` operations are applied, then it
    /// fails as a connection dropped by a crash does (even when none was left out).
    pub fn cut_next_write(&self, commands: usize) {
        *self
            .cut_next_write
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(commands);
    }

    /// Calls made so far (each is one round trip on a server).
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Every live key with its value, in key order (to compare whole stores).
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let now = Instant::now();
        self.entries()
            .iter()
            .filter(|(_, entry)| entry.live(now))
            .map(|(key, entry)| (key.clone(), entry.value.clone()))
            .collect()
    }

    /// The time to live left on `key`, `None` when it has no expiry or is absent.
    pub fn ttl(&self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        self.entries()
            .get(key)
            .filter(|entry| entry.live(now))
            .and_then(|entry| entry.expires)
            .map(|at| at.saturating_duration_since(now))
    }

    fn entries(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Count a call; fail it when the store plays unreachable.
    fn call(&self, what: &str) -> Result<(), StoreError> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        if self.unavailable.load(Ordering::Relaxed) {
            return Err(StoreError::Unavailable {
                backend: BACKEND,
                message: format!("{what}: the in-memory store plays unreachable"),
            });
        }
        Ok(())
    }
}

impl Store for MemoryStore {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.call("GET")?;
        let now = Instant::now();
        Ok(self
            .entries()
            .get(key)
            .filter(|entry| entry.live(now))
            .map(|entry| entry.value.clone()))
    }

    fn multi_get(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.call("MGET")?;
        let now = Instant::now();
        let entries = self.entries();
        Ok(keys
            .iter()
            .map(|key| {
                entries
                    .get(key)
                    .filter(|entry| entry.live(now))
                    .map(|entry| entry.value.clone())
            })
            .collect())
    }

    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        self.call("pipelined write")?;
        if batch
            .deadline()
            .is_some_and(|deadline| crate::clock::unix_now_ms() >= deadline)
        {
            return Err(StoreError::DeadlinePassed { backend: BACKEND });
        }
        let cut = self
            .cut_next_write
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let now = Instant::now();
        let mut entries = self.entries();
        for op in batch.ops().iter().take(cut.unwrap_or(usize::MAX)) {
            match op {
                WriteOp::Set { key, value, ttl } => {
                    let expires = ttl.map(|ttl| now + ttl.max(Duration::from_secs(1)));
                    entries.insert(
                        key.clone(),
                        Entry {
                            value: value.clone(),
                            expires,
                        },
                    );
                }
                WriteOp::Delete { key } => {
                    entries.remove(key);
                }
            }
        }
        match cut {
            Some(applied) => Err(StoreError::Unavailable {
                backend: BACKEND,
                message: format!(
                    "pipelined write cut after {} of {} commands",
                    applied.min(batch.len()),
                    batch.len()
                ),
            }),
            None => Ok(()),
        }
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.call("SCAN")?;
        let now = Instant::now();
        Ok(self
            .entries()
            .range(prefix.to_string()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter(|(_, entry)| entry.live(now))
            .map(|(key, _)| key.clone())
            .collect())
    }

    fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        self.call("SET NX")?;
        let now = Instant::now();
        let mut entries = self.entries();
        if entries.get(key).is_some_and(|entry| entry.live(now)) {
            return Ok(false);
        }
        entries.insert(
            key.to_string(),
            Entry {
                value: value.to_vec(),
                expires: Some(now + ttl.max(Duration::from_secs(1))),
            },
        );
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_scans_and_expiries_behave_as_on_redis() {
        let store = MemoryStore::new();
        let mut batch = WriteBatch::new();
        batch
            .set("a:1", b"one".to_vec())
            .set("a:2", b"two".to_vec())
            .set("b:1", b"other".to_vec())
            .set_with_ttl("a:3", b"short".to_vec(), Duration::from_secs(60))
            .delete("a:2")
            .delete("absent");
        store.write(&batch).expect("write");
        assert_eq!(store.get("a:1").expect("get"), Some(b"one".to_vec()));
        assert_eq!(store.get("a:2").expect("get"), None);
        assert_eq!(
            store
                .multi_get(&["b:1".into(), "zz".into(), "a:3".into()])
                .expect("mget"),
            vec![Some(b"other".to_vec()), None, Some(b"short".to_vec())]
        );
        assert_eq!(store.scan_prefix("a:").expect("scan"), ["a:1", "a:3"]);
        let ttl = store.ttl("a:3").expect("a ttl");
        assert!(ttl > Duration::from_secs(58) && ttl <= Duration::from_secs(60));
        assert!(!store
            .set_if_absent("a:1", b"x", Duration::from_secs(5))
            .expect("nx"));
        assert!(store
            .set_if_absent("c", b"x", Duration::from_secs(5))
            .expect("nx"));
        assert_eq!(store.get("a:1").expect("get"), Some(b"one".to_vec()));
    }

    #[test]
    fn an_unreachable_store_fails_transiently_and_a_passed_deadline_writes_nothing() {
        let store = MemoryStore::new();
        store.set_unavailable(true);
        let error = store.get("k").expect_err("unreachable");
        assert!(error.is_transient(), "{error}");
        store.set_unavailable(false);
        let mut batch = WriteBatch::new();
        batch.set("k", b"v".to_vec());
        batch.set_deadline(1);
        assert!(matches!(
            store.write(&batch),
            Err(StoreError::DeadlinePassed { .. })
        ));
        assert_eq!(store.get("k").expect("get"), None);
        assert_eq!(store.round_trips(), 3);
    }

    #[test]
    fn a_cut_write_applies_only_its_first_commands_and_fails() {
        let store = MemoryStore::new();
        let mut batch = WriteBatch::new();
        batch
            .set("a", b"1".to_vec())
            .set("b", b"2".to_vec())
            .delete("a")
            .set("c", b"3".to_vec());
        store.cut_next_write(2);
        let error = store.write(&batch).expect_err("cut");
        assert!(error.to_string().contains("2 of 4"), "{error}");
        assert_eq!(store.scan_prefix("").expect("scan"), ["a", "b"]);
        // Only the next write is cut.
        store.write(&batch).expect("whole");
        assert_eq!(store.scan_prefix("").expect("scan"), ["b", "c"]);
        // A cut after every command still fails, as a crash before the reply does.
        store.cut_next_write(9);
        assert!(store.write(&batch).is_err());
    }
}
