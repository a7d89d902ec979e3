//! `embedded`: the store in a local redb file, for a first run without any server.
//!
//! redb is pure Rust, crash-safe (copy-on-write B-trees with checksummed commits), and takes a
//! file lock so two processes cannot corrupt one file. History keys (`st:{n}:*`) live in a
//! table of their own, one value per block listing its entries ([`history`]); every other key
//! in the `kv` table, its value kept as an 8-byte big-endian expiry (Unix milliseconds, 0 for
//! none) followed by the bytes. History entries carry the same expiry. Expired values read as
//! absent and are replaced by later writes to the same key; the prune stage deletes history
//! keys outright once they leave the window.
//!
//! Durability: a commit is made durable (flushed and fsynced) when `sync_interval` has passed
//! since the last durable one; the commits between are atomic and ordered but live in memory
//! until then. A crash therefore loses at most the last `sync_interval` of progress and leaves
//! the file at a consistent earlier commit: every stage resumes from the checkpoints it finds
//! there, as after any crash (the crash rule), and re-does that work from the blocks. Dropping
//! the store makes everything durable.

pub mod history;

use history::HistoryEntry;
use primitives::keys::HistoryKey;
use primitives::store::{Store, StoreError, WriteBatch, WriteOp};
use redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, Table, TableDefinition,
    TableHandle, WriteTransaction,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Every key but the history keys: expiry and value.
const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// History by block ([`history`]): the block part of the keys, then the block's entries.
const HISTORY: TableDefinition<&str, &[u8]> = TableDefinition::new("history");
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

/// The expiry of a value written now with `ttl` (at least a millisecond ahead).
fn expiry_after(now: u64, ttl: Duration) -> u64 {
    now + ttl.as_millis().max(1) as u64
}

/// A damaged history value, naming its block part.
fn damaged_history(block: &str, reason: String) -> StoreError {
    backend_error(&format!("history of {block}"), reason)
}

/// The live value of history key `key` in `table`.
fn history_value(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: HistoryKey<'_>,
    now: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(stored) = table
        .get(key.block)
        .map_err(|e| backend_error(key.block, e))?
    else {
        return Ok(None);
    };
    let entry = history::find(stored.value(), key.name.as_bytes())
        .map_err(|r| damaged_history(key.block, r))?;
    Ok(entry
        .filter(|entry| !entry.expired(now))
        .map(|entry| entry.value.to_vec()))
}

/// A write of one key: the expiry and value to set, or `None` to delete.
type KeyWrite<'a> = Option<(Option<u64>, &'a [u8])>;

/// A history write waiting for its block: the key's name part and the write.
type HistoryWrite<'a> = (&'a str, KeyWrite<'a>);

/// The live value at `key`: in `history` for a history key, else in `kv`.
fn live_value_at(
    kv: &impl ReadableTable<&'static str, &'static [u8]>,
    history: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
    now: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    if let Some(split) = HistoryKey::split(key) {
        return history_value(history, split, now);
    }
    let entry = kv.get(key).map_err(|e| backend_error(key, e))?;
    Ok(entry.and_then(|guard| live_value(guard.value(), now).map(<[u8]>::to_vec)))
}

/// Apply `writes` in order inside `txn`: history keys gathered by block and applied once per
/// block, every other key in the `kv` table.
fn apply<'a>(
    txn: &WriteTransaction,
    writes: impl IntoIterator<Item = (&'a str, KeyWrite<'a>)>,
    now: u64,
) -> Result<(), StoreError> {
    let mut kv = txn
        .open_table(TABLE)
        .map_err(|e| backend_error("open table", e))?;
    let mut history_writes: BTreeMap<&str, Vec<HistoryWrite<'_>>> = BTreeMap::new();
    let mut entry = Vec::new();
    for (key, write) in writes {
        if let Some(split) = HistoryKey::split(key) {
            history_writes
                .entry(split.block)
                .or_default()
                .push((split.name, write));
            continue;
        }
        match write {
            Some((expiry, value)) => {
                entry.clear();
                entry.extend_from_slice(&expiry.unwrap_or(0).to_be_bytes());
                entry.extend_from_slice(value);
                kv.insert(key, entry.as_slice())
                    .map_err(|e| backend_error(key, e))?;
            }
            None => {
                kv.remove(key).map_err(|e| backend_error(key, e))?;
            }
        }
    }
    let mut history = txn
        .open_table(HISTORY)
        .map_err(|e| backend_error("open history table", e))?;
    for (block, writes) in &history_writes {
        write_history(&mut history, block, writes, now)?;
    }
    Ok(())
}

/// Apply `writes` (in order, the last write of a name winning) to the history of `block`.
fn write_history(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    block: &str,
    writes: &[HistoryWrite<'_>],
    now: u64,
) -> Result<(), StoreError> {
    let existing = table
        .get(block)
        .map_err(|e| backend_error(block, e))?
        .map(|stored| stored.value().to_vec());
    let mut merged: BTreeMap<&[u8], HistoryEntry<'_>> = BTreeMap::new();
    if let Some(existing) = &existing {
        for entry in history::decode(existing).map_err(|r| damaged_history(block, r))? {
            merged.insert(entry.name, entry);
        }
    }
    for &(name, write) in writes {
        match write {
            Some((expiry_ms, value)) => merged.insert(
                name.as_bytes(),
                HistoryEntry {
                    name: name.as_bytes(),
                    expiry_ms,
                    value,
                },
            ),
            None => merged.remove(name.as_bytes()),
        };
    }
    let mut stored = Vec::new();
    for entry in merged.values().filter(|entry| !entry.expired(now)) {
        history::encode(entry, &mut stored).map_err(|r| damaged_history(block, r))?;
    }
    if stored.is_empty() {
        table.remove(block).map_err(|e| backend_error(block, e))?;
    } else {
        table
            .insert(block, stored.as_slice())
            .map_err(|e| backend_error(block, e))?;
    }
    Ok(())
}

/// Move the history keys of a file written before the history table existed into it.
fn move_history_out_of_kv(txn: &WriteTransaction) -> Result<(), StoreError> {
    let moved = {
        let mut kv = txn
            .open_table(TABLE)
            .map_err(|e| backend_error("open table", e))?;
        let mut moved: Vec<(String, Vec<u8>)> = Vec::new();
        for item in kv
            .iter()
            .map_err(|e| backend_error("scan for history", e))?
        {
            let (key, entry) = item.map_err(|e| backend_error("scan for history", e))?;
            if HistoryKey::split(key.value()).is_some() {
                moved.push((key.value().to_string(), entry.value().to_vec()));
            }
        }
        for (key, _) in &moved {
            kv.remove(key.as_str()).map_err(|e| backend_error(key, e))?;
        }
        moved
    };
    if moved.is_empty() {
        return Ok(());
    }
    tracing::info!(
        keys = moved.len(),
        "moving history keys into the history table"
    );
    let writes = moved.iter().filter_map(|(key, entry)| {
        let (expiry, value) = entry.split_first_chunk::<EXPIRY_LEN>()?;
        let expiry = u64::from_be_bytes(*expiry);
        Some((key.as_str(), Some(((expiry != 0).then_some(expiry), value))))
    });
    apply(txn, writes, now_ms())
}

/// How often commits are made durable unless configured otherwise.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(10);

/// Default memory for redb's page cache and write buffer (`storage.embedded.cache_mb`).
pub const DEFAULT_CACHE_BYTES: usize = 1 << 30;

/// The store in one redb file.
pub struct EmbeddedStore {
    db: Database,
    sync_interval: Duration,
    /// When the last durable commit was.
    last_durable: Mutex<Instant>,
}

impl EmbeddedStore {
    /// Open (or create) the store at `path`, creating parent directories, with redb's default
    /// cache ([`DEFAULT_CACHE_BYTES`]).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`Self::open`] with `cache_bytes` of memory for redb's page cache and write buffer.
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let shown = path.display();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| backend_error(&format!("cannot create {}", parent.display()), e))?;
        }
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => backend_error(
                    &format!("{shown}"),
                    "already opened by another evm-executor process",
                ),
                other => backend_error(&format!("cannot open {shown}"), other),
            })?;
        let txn = db
            .begin_write()
            .map_err(|e| backend_error("begin write", e))?;
        let has_history_table = txn
            .list_tables()
            .map_err(|e| backend_error("list tables", e))?
            .any(|table| table.name() == HISTORY.name());
        if !has_history_table {
            move_history_out_of_kv(&txn)?;
        }
        txn.open_table(TABLE)
            .map_err(|e| backend_error("create table", e))?;
        txn.open_table(HISTORY)
            .map_err(|e| backend_error("create history table", e))?;
        txn.commit().map_err(|e| backend_error("commit", e))?;
        pipeline::metrics::metrics().store_up.set(1);
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

    /// Both tables in a fresh read transaction (a consistent snapshot); one round trip.
    fn read_tables(&self) -> Result<[ReadOnlyTable<&'static str, &'static [u8]>; 2], StoreError> {
        pipeline::metrics::metrics().store_round_trips_total.inc();
        let txn = self
            .db
            .begin_read()
            .map_err(|e| backend_error("begin read", e))?;
        let open = |definition| {
            txn.open_table(definition)
                .map_err(|e| backend_error("open table", e))
        };
        Ok([open(TABLE)?, open(HISTORY)?])
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
        let [table, history] = self.read_tables()?;
        keys.iter()
            .map(|key| live_value_at(&table, &history, key, now))
            .collect()
    }

    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        pipeline::metrics::metrics().store_round_trips_total.inc();
        if batch.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let txn = self
            .db
            .begin_write()
            .map_err(|e| backend_error("begin write", e))?;
        let writes = batch.ops().iter().map(|op| match op {
            WriteOp::Set { key, value, ttl } => (
                key.as_str(),
                Some((ttl.map(|ttl| expiry_after(now, ttl)), value.as_slice())),
            ),
            WriteOp::Delete { key } => (key.as_str(), None),
        });
        apply(&txn, writes, now)?;
        self.commit(txn)
    }

    /// One redb transaction per write: a crash leaves the file at a commit boundary.
    fn writes_atomically(&self) -> bool {
        true
    }

    fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, StoreError> {
        pipeline::metrics::metrics().store_round_trips_total.inc();
        let now = now_ms();
        let txn = self
            .db
            .begin_write()
            .map_err(|e| backend_error("begin write", e))?;
        let live = {
            let open = |definition| {
                txn.open_table(definition)
                    .map_err(|e| backend_error("open table", e))
            };
            live_value_at(&open(TABLE)?, &open(HISTORY)?, key, now)?.is_some()
        };
        if !live {
            let expiry = expiry_after(now, ttl);
            apply(&txn, [(key, Some((Some(expiry), value)))], now)?;
        }
        self.commit(txn)?;
        Ok(!live)
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let [table, history] = self.read_tables()?;
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
        scan_history(&history, prefix, now, &mut keys)?;
        Ok(keys)
    }
}

/// Add every live history key starting with `prefix` to `keys`. A block part either starts
/// with `prefix` (all its keys match) or is itself a start of `prefix` ending at a `:` (some
/// of its keys may match).
fn scan_history(
    history: &ReadOnlyTable<&'static str, &'static [u8]>,
    prefix: &str,
    now: u64,
    keys: &mut Vec<String>,
) -> Result<(), StoreError> {
    let mut add_block = |block: &str, stored: &[u8]| -> Result<(), StoreError> {
        for entry in history::decode(stored).map_err(|r| damaged_history(block, r))? {
            if entry.expired(now) {
                continue;
            }
            let name = std::str::from_utf8(entry.name)
                .map_err(|e| damaged_history(block, e.to_string()))?;
            let key = format!("{block}{name}");
            if key.starts_with(prefix) {
                keys.push(key);
            }
        }
        Ok(())
    };
    for (end, _) in prefix.match_indices(':') {
        let block = &prefix[..=end];
        if block.len() < prefix.len() {
            if let Some(stored) = history.get(block).map_err(|e| backend_error(block, e))? {
                add_block(block, stored.value())?;
            }
        }
    }
    for item in history
        .range(prefix..)
        .map_err(|e| backend_error(prefix, e))?
    {
        let (block, stored) = item.map_err(|e| backend_error(prefix, e))?;
        if !block.value().starts_with(prefix) {
            break;
        }
        add_block(block.value(), stored.value())?;
    }
    Ok(())
}
