//! `embedded`: the store in a local redb file, for a first run without any server.
//!
//! redb is pure Rust, crash-safe (copy-on-write B-trees with checksummed commits), and takes a
//! file lock so two processes cannot corrupt one file. Each value is kept as an 8-byte
//! big-endian expiry (Unix milliseconds, 0 for none) followed by the bytes; expired values read
//! as absent and are replaced by later writes to the same key; the prune stage deletes history
//! keys outright once they leave the window.
//!
//! Durability: a commit is made durable (flushed and fsynced) when `sync_interval` has passed
//! since the last durable one; the commits between are atomic and ordered but live in memory
//! until then. A crash therefore loses at most the last `sync_interval` of progress and leaves
//! the file at a consistent earlier commit: every stage resumes from the checkpoints it finds
//! there, as after any crash (the crash rule), and re-does that work from the blocks. Dropping
//! the store makes everything durable.

use redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};
use stages::store::{Store, StoreError, WriteBatch, WriteOp};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const BACKEND: &str = "embedded";
const EXPIRY_LEN: usize = 8;

fn backend_error(context: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend {
        backend: BACKEND,
        message: format!("{context}: {error}"),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The value part of a stored entry, or `None` when it has expired (or is malformed).
fn live_value(entry: &[u8], now: u64) -> Option<&[u8]> {
    let (expiry, value) = entry.split_at_checked(EXPIRY_LEN)?;
    let expiry = u64::from_be_bytes(expiry.try_into().ok()?);
    (expiry == 0 || expiry > now).then_some(value)
}

/// How often commits are made durable unless configured otherwise.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// The store in one redb file.
pub struct EmbeddedStore {
    db: Database,
    sync_interval: Duration,
    /// When the last durable commit was.
    last_durable: Mutex<Instant>,
}

impl EmbeddedStore {
    /// Open (or create) the store at `path`, creating parent directories.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| backend_error(&format!("cannot create {}", parent.display()), e))?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => backend_error(
                &format!("{shown}"),
                "already opened by another evm-executor process",
            ),
            other => backend_error(&format!("cannot open {shown}"), other),
        })?;
        let txn = db
            .begin_write()
            .map_err(|e| backend_error("begin write", e))?;
        txn.open_table(TABLE)
            .map_err(|e| backend_error("create table", e))?;
        txn.commit().map_err(|e| backend_error("commit", e))?;
        stages::metrics::metrics().store_up.set(1);
        Ok(Self {
            db,
            sync_interval: DEFAULT_SYNC_INTERVAL,
            last_durable: Mutex::new(Instant::now()),
        })
    }

    /// Make commits durable at most `interval` apart (zero: every commit).
    pub fn with_sync_interval(mut self, interval: Duration) -> Self {
        self.sync_interval = interval;
        self
    }

    /// Commit `txn`, durably when the sync interval has passed since the last durable commit.
    fn commit(&self, mut txn: WriteTransaction) -> Result<(), StoreError> {
        // Poisoning only means another writer panicked; the timestamps stay meaningful.
        let mut last_durable = self.last_durable.lock().unwrap_or_else(|p| p.into_inner());
        let durable = last_durable.elapsed() >= self.sync_interval;
        if !durable {
            txn.set_durability(Durability::None)
                .map_err(|e| backend_error("set durability", e))?;
        }
        txn.commit().map_err(|e| backend_error("commit", e))?;
        if durable {
            *last_durable = Instant::now();
        }
        Ok(())
    }

    /// Make every commit so far durable (an empty durable commit).
    fn sync_now(&self) -> Result<(), StoreError> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| backend_error("begin write", e))?;
        txn.commit().map_err(|e| backend_error("commit", e))
    }

    /// The table in a fresh read transaction (a consistent snapshot); one round trip.
    fn read_table(&self) -> Result<ReadOnlyTable<&'static str, &'static [u8]>, StoreError> {
        stages::metrics::metrics().store_round_trips_total.inc();
        let txn = self
            .db
            .begin_read()
            .map_err(|e| backend_error("begin read", e))?;
        txn.open_table(TABLE)
            .map_err(|e| backend_error("open table", e))
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        if let Err(error) = self.sync_now() {
            tracing::error!(
                %error,
                "the last commits of the embedded store were not made durable; \
                 the next run resumes from an earlier checkpoint"
            );
        }
    }
}

impl Store for EmbeddedStore {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .multi_get(std::slice::from_ref(&key.to_string()))?
            .pop()
            .flatten())
    }

    fn multi_get(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let now = now_ms();
        let table = self.read_table()?;
        keys.iter()
            .map(|key| {
                let entry = table.get(key.as_str()).map_err(|e| backend_error(key, e))?;
                Ok(entry.and_then(|guard| live_value(guard.value(), now).map(<[u8]>::to_vec)))
            })
            .collect()
    }

    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        stages::metrics::metrics().store_round_trips_total.inc();
        if batch.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let txn = self
            .db
            .begin_write()
            .map_err(|e| backend_error("begin write", e))?;
        {
            let mut table = txn
                .open_table(TABLE)
                .map_err(|e| backend_error("open table", e))?;
            let mut entry = Vec::new();
            for op in batch.ops() {
                match op {
                    WriteOp::Set { key, value, ttl } => {
                        let expiry = ttl.map_or(0, |ttl| now + ttl.as_millis().max(1) as u64);
                        entry.clear();
                        entry.extend_from_slice(&expiry.to_be_bytes());
                        entry.extend_from_slice(value);
                        table
                            .insert(key.as_str(), entry.as_slice())
                            .map_err(|e| backend_error(key, e))?;
                    }
                    WriteOp::Delete { key } => {
                        table
                            .remove(key.as_str())
                            .map_err(|e| backend_error(key, e))?;
                    }
                }
            }
        }
        self.commit(txn)
    }

    fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        stages::metrics::metrics().store_round_trips_total.inc();
        let now = now_ms();
        let txn = self
            .db
            .begin_write()
            .map_err(|e| backend_error("begin write", e))?;
        let inserted = {
            let mut table = txn
                .open_table(TABLE)
                .map_err(|e| backend_error("open table", e))?;
            let live = table
                .get(key)
                .map_err(|e| backend_error(key, e))?
                .is_some_and(|entry| live_value(entry.value(), now).is_some());
            if !live {
                let mut entry = (now + ttl.as_millis().max(1) as u64).to_be_bytes().to_vec();
                entry.extend_from_slice(value);
                table
                    .insert(key, entry.as_slice())
                    .map_err(|e| backend_error(key, e))?;
            }
            !live
        };
        self.commit(txn)?;
        Ok(inserted)
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let table = self.read_table()?;
        let mut keys = Vec::new();
        for item in table
            .range(prefix..)
            .map_err(|e| backend_error(prefix, e))?
        {
            let (key, entry) = item.map_err(|e| backend_error(prefix, e))?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            if live_value(entry.value(), now).is_some() {
                keys.push(key.to_string());
            }
        }
        Ok(keys)
    }
}
