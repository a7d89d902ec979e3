//! A genesis allocation loaded into the store as it streams from its file, in bounded memory:
//! what `init` does with a genesis of any size.
//!
//! One read of the file ([`evm::genesis::stream`]) hands over each account and slot as it is
//! read. Each goes two ways: into the store's `st:latest` (slots, accounts and `st:code`),
//! queued in write batches of [`WRITE_BATCH`] keys, and into the bucket files of
//! [`crate::trie_rebuild::spill`] by hashed address. Once the file is read the tries are built
//! bucket by bucket as `trie rebuild` builds them ([`crate::trie_rebuild::build`]), which gives
//! the state root and, when tries are kept, writes every node and the accounts that have
//! storage (whose storageRoot is known only then). The values are those
//! [`GenesisBlock::state_writes`](evm::genesis::GenesisBlock::state_writes) gives a genesis
//! held in memory, key for key: every account's storageRoot is its real one with tries and
//! zero without.
//!
//! The caller decides through [`GenesisChecks`] whether to write at all once the top-level
//! fields before `alloc` are read (a read that only computes the root writes nothing), and
//! may still refuse the genesis once its root is known. A genesis refused or unreadable after
//! writing began has its `st:latest` keys deleted again (found in the bucket files) and every
//! `trie:*` key with them; the `st:code` values it wrote stay (a value under its own hash is
//! never wrong).
//!
//! Memory: the read's buffers, one write batch, the bucket files' write buffers, then the build
//! of one bucket (about 1/256 of the state; all of a contract's slots lie in one bucket), plus
//! the EIP-7610 candidates of the allocation (accounts with storage but no code and nonce 0,
//! 52 bytes each; genesis files hold few).

use crate::trie_rebuild::build::{build_all, WRITE_BATCH};
use crate::trie_rebuild::spill::{
    bucket_of_address, Spill, SpillError, SpilledAccount, SpilledBuckets, SpilledSlot, BUCKETS,
};
use crate::trie_rebuild::{delete_tries, RebuildError};
use alloy_primitives::{Address, B256, U256};
use alloy_trie::EMPTY_ROOT_HASH;
use evm::genesis::stream::{read_genesis, AllocSink, GenesisHead, StreamError, StreamedAccount};
use evm::genesis::GenesisError;
use primitives::contract::AccountJson;
use primitives::keys::Keys;
use primitives::storage_only::StorageOnlyAccounts;
use primitives::store::{Store, WriteBatch};
use std::cell::Cell;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often a progress line is logged while the file is read.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// The read buffer over the genesis file.
const READ_BUFFER: usize = 256 * 1024;
/// A write batch is sent once its values reach this many bytes (code can be large), even
/// before it holds [`WRITE_BATCH`] keys.
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Where a genesis is loaded.
pub struct GenesisTarget<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// Its key layout.
    pub keys: &'a Keys,
    /// Write the state tries too (the merkle stage is on): every node, and the accounts with
    /// their real storageRoot (else zero, as a store without tries keeps it).
    pub tries: bool,
    /// A directory for the bucket files; it must not exist, and is removed at the end.
    pub work_dir: PathBuf,
}

/// What the caller checks while a genesis is read.
pub trait GenesisChecks {
    /// Why the caller refused the genesis.
    type Error;

    /// The allocation begins; `head` holds the top-level fields read before it. True: write
    /// the state; false: only read it (for the root); an error refuses the genesis.
    fn before_alloc(&mut self, head: &GenesisHead) -> Result<bool, Self::Error>;

    /// The whole file is read (`head` now holds every top-level field) and the tries built:
    /// an error refuses the genesis, and what was written is deleted again.
    fn after_read(&mut self, head: &GenesisHead, state_root: B256) -> Result<(), Self::Error>;
}

/// What a load read and wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadCounts {
    /// Accounts in the allocation.
    pub accounts: u64,
    /// Non-zero storage slots in the allocation.
    pub slots: u64,
    /// Keys written while the file was read: `st:latest` accounts and slots, `st:code`.
    pub state_keys: u64,
    /// Trie nodes written (none without tries).
    pub nodes: u64,
    /// Accounts written by the build with their storage root (those with storage).
    pub rewritten: u64,
    /// Seconds spent reading the file (and writing the state).
    pub read_seconds: f64,
    /// Seconds spent building the tries.
    pub build_seconds: f64,
}

impl LoadCounts {
    /// Every key written.
    pub fn keys(&self) -> u64 {
        self.state_keys + self.nodes + self.rewritten
    }

    /// Keys written per second of the whole load.
    pub fn keys_per_second(&self) -> f64 {
        self.keys() as f64 / (self.read_seconds + self.build_seconds).max(f64::EPSILON)
    }
}

/// A genesis read (and written, when [`GenesisChecks::before_alloc`] said so).
#[derive(Debug, Clone)]
pub struct LoadedGenesis {
    /// The top-level fields.
    pub head: GenesisHead,
    /// The state root of the allocation.
    pub state_root: B256,
    /// The allocation's EIP-7610 candidates.
    pub storage_only: StorageOnlyAccounts,
    /// What was read and written.
    pub counts: LoadCounts,
    /// True when the state was written.
    pub written: bool,
}

/// Why a load stopped.
#[derive(Debug)]
pub enum LoadError<E> {
    /// The caller's checks refused the genesis.
    Refused(E),
    /// The file is not a geth-style genesis (or could not be read).
    Genesis(GenesisError),
    /// The store, a bucket file or the tries failed (or the allocation lists an account or a
    /// slot twice).
    Tries(RebuildError),
}

impl<E> From<RebuildError> for LoadError<E> {
    fn from(error: RebuildError) -> Self {
        LoadError::Tries(error)
    }
}

impl<E> From<SpillError> for LoadError<E> {
    fn from(error: SpillError) -> Self {
        LoadError::Tries(error.into())
    }
}

/// Read the genesis JSON from `reader` (`origin` names it in errors; `size` is its length in
/// bytes, for the progress lines, when known) into `target`, as the module doc says.
pub fn load_genesis<R: Read, C: GenesisChecks>(
    target: &GenesisTarget<'_>,
    origin: &str,
    reader: R,
    size: Option<u64>,
    checks: &mut C,
) -> Result<LoadedGenesis, LoadError<C::Error>> {
    let read_bytes = Rc::new(Cell::new(0));
    let reader = BufReader::with_capacity(
        READ_BUFFER,
        Counting {
            inner: reader,
            read: Rc::clone(&read_bytes),
        },
    );
    let mut sink = Sink {
        target,
        checks: &mut *checks,
        spill: Spill::create(&target.work_dir)?,
        writing: false,
        batch: WriteBatch::new(),
        batch_bytes: 0,
        counts: LoadCounts::default(),
        storage_only: StorageOnlyAccounts::default(),
        last_bucket: None,
        progress: Progress {
            started: Instant::now(),
            logged: Instant::now(),
            read_bytes,
            size,
        },
    };
    let read = read_genesis(origin, reader, &mut sink);
    let flushed = match read {
        Ok(_) => sink.flush(),
        Err(_) => Ok(()),
    };
    let Sink {
        spill,
        writing,
        mut counts,
        storage_only,
        progress,
        ..
    } = sink;
    counts.read_seconds = progress.started.elapsed().as_secs_f64();
    let buckets = spill.finish()?;
    let loaded = (|| {
        let head = match read {
            Ok(head) => head,
            Err(StreamError::Genesis(error)) => return Err(LoadError::Genesis(error)),
            Err(StreamError::Sink(error)) => return Err(error),
        };
        flushed?;
        tracing::info!(
            accounts = counts.accounts,
            slots = counts.slots,
            keys = counts.state_keys,
            seconds = counts.read_seconds,
            "read the genesis allocation; building the state tries"
        );
        let store = Some(target.store).filter(|_| writing && target.tries);
        let built_at = Instant::now();
        let (state_root, built) = build_all(store, target.keys, &buckets)?;
        counts.build_seconds = built_at.elapsed().as_secs_f64();
        if store.is_some() {
            counts.nodes = built.nodes;
            counts.rewritten = built.rewritten;
        }
        checks
            .after_read(&head, state_root)
            .map_err(LoadError::Refused)?;
        Ok(LoadedGenesis {
            head,
            state_root,
            storage_only,
            counts,
            written: writing,
        })
    })();
    if loaded.is_err() && writing {
        if let Err(error) = undo(target, &buckets) {
            tracing::error!(
                %error,
                "cannot delete the state the refused genesis wrote: st:latest holds part of \
                 it (the store has no chain record; run init again)"
            );
        }
    }
    loaded
}

/// Delete the `st:latest` keys of every account and slot spilled into `buckets`, and every
/// `trie:*` key.
fn undo(target: &GenesisTarget<'_>, buckets: &SpilledBuckets) -> Result<(), RebuildError> {
    let (store, keys) = (target.store, target.keys);
    let mut batch = WriteBatch::new();
    let mut deleted = 0usize;
    for bucket in 0..BUCKETS {
        let (accounts, slots) = buckets.load(bucket)?;
        for account in &accounts {
            batch.remove(keys.latest_account(&account.address));
        }
        for slot in &slots {
            batch.remove(keys.latest_storage(&slot.address, &slot.slot));
        }
        if batch.len() >= WRITE_BATCH || bucket + 1 == BUCKETS {
            deleted += batch.len();
            store.write(&std::mem::take(&mut batch))?;
        }
    }
    let nodes = delete_tries(store, keys)?;
    tracing::warn!(
        state_keys = deleted,
        trie_keys = nodes,
        "deleted the state the refused genesis wrote"
    );
    Ok(())
}

/// A reader that counts the bytes read through it.
struct Counting<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.read.set(self.read.get() + read as u64);
        Ok(read)
    }
}

/// When the read began and how far it is.
struct Progress {
    started: Instant,
    logged: Instant,
    read_bytes: Rc<Cell<u64>>,
    size: Option<u64>,
}

/// Takes the allocation as it is read: into the write batch and the bucket files.
struct Sink<'t, 'c, C> {
    target: &'t GenesisTarget<'t>,
    checks: &'c mut C,
    spill: Spill,
    /// Whether the state is written (else only spilled).
    writing: bool,
    batch: WriteBatch,
    /// Bytes of the values queued in `batch`.
    batch_bytes: usize,
    counts: LoadCounts,
    storage_only: StorageOnlyAccounts,
    /// The bucket of the account whose slots are being read.
    last_bucket: Option<(Address, u32)>,
    progress: Progress,
}

impl<C> Sink<'_, '_, C> {
    /// The bucket of `address` (its slots come one after another, then the account).
    fn bucket(&mut self, address: &Address) -> u32 {
        match self.last_bucket {
            Some((last, bucket)) if last == *address => bucket,
            _ => {
                let bucket = bucket_of_address(address);
                self.last_bucket = Some((*address, bucket));
                bucket
            }
        }
    }

    /// Count a queued write of `bytes`, and send the batch once it is full.
    fn queued(&mut self, bytes: usize) -> Result<(), RebuildError> {
        self.batch_bytes += bytes;
        if self.batch.len() >= WRITE_BATCH || self.batch_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Send the queued writes.
    fn flush(&mut self) -> Result<(), RebuildError> {
        if !self.batch.is_empty() {
            self.counts.state_keys += self.batch.len() as u64;
            self.target.store.write(&std::mem::take(&mut self.batch))?;
            self.batch_bytes = 0;
        }
        Ok(())
    }

    /// Log a progress line every [`PROGRESS_EVERY`].
    fn log_progress(&mut self) {
        let progress = &mut self.progress;
        if progress.logged.elapsed() < PROGRESS_EVERY {
            return;
        }
        progress.logged = Instant::now();
        let seconds = progress.started.elapsed().as_secs_f64();
        let counts = &self.counts;
        let mib = |bytes: u64| bytes / (1024 * 1024);
        tracing::info!(
            accounts = counts.accounts,
            slots = counts.slots,
            keys = counts.state_keys,
            keys_per_sec = (counts.state_keys as f64 / seconds) as u64,
            read_mib = mib(progress.read_bytes.get()),
            size_mib = progress.size.map(mib),
            "reading the genesis allocation"
        );
    }
}

impl<C: GenesisChecks> AllocSink for Sink<'_, '_, C> {
    type Error = LoadError<C::Error>;

    fn begin_alloc(&mut self, head: &GenesisHead) -> Result<(), Self::Error> {
        self.writing = self.checks.before_alloc(head).map_err(LoadError::Refused)?;
        if self.writing && self.target.tries {
            // Tries of an earlier init cut short would be taken for this genesis's.
            delete_tries(self.target.store, self.target.keys).map_err(RebuildError::from)?;
        }
        Ok(())
    }

    fn slot(&mut self, address: &Address, slot: B256, value: U256) -> Result<(), Self::Error> {
        let bucket = self.bucket(address);
        let spilled = SpilledSlot {
            address: *address,
            slot,
            value,
        };
        self.spill.slot(bucket, &spilled)?;
        self.counts.slots += 1;
        if self.writing {
            let keys = self.target.keys;
            self.batch.put(keys.latest_storage(address, &slot), &value);
            self.queued(32)?;
        }
        Ok(())
    }

    fn account(&mut self, address: Address, account: StreamedAccount) -> Result<(), Self::Error> {
        let bucket = self.bucket(&address);
        let has_storage = account.lowest_slot.is_some();
        let code_hash = account.code_hash();
        self.storage_only.note(
            address,
            account.code.is_none() && account.nonce == 0,
            account.lowest_slot,
        );
        // With tries, an account with storage is written by the build, which knows its root.
        let (storage_root, written_now) = match (self.target.tries, has_storage) {
            (false, _) => (B256::ZERO, true),
            (true, false) => (EMPTY_ROOT_HASH, true),
            (true, true) => (B256::ZERO, false),
        };
        let json = AccountJson {
            balance: account.balance,
            nonce: account.nonce,
            code_hash,
            storage_root,
        };
        let spilled = SpilledAccount {
            address,
            json,
            canonical: written_now,
        };
        self.spill.account(bucket, &spilled)?;
        self.counts.accounts += 1;
        if self.writing {
            let keys = self.target.keys;
            if let Some(code) = &account.code {
                self.batch.put(keys.code(&code_hash), code);
                self.queued(code.len())?;
            }
            if written_now {
                self.batch.put(keys.latest_account(&address), &json);
                self.queued(150)?;
            }
        }
        self.log_progress();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tries::build_genesis_tries;
    use alloy_primitives::keccak256;
    use evm::collision::storage_only_accounts;
    use evm::genesis::GenesisBlock;
    use primitives::memory::MemoryStore;
    use serde_json::{json, Map, Value};
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A genesis of `count` accounts with balances, nonces, code (every eleventh, each its
    /// own), storage (every seventh, up to 39 slots, one with 3,000 so its trie is written in
    /// several batches; short keys and a zero value among them) and EIP-7610 candidates
    /// (storage, nonce 0, no code).
    fn genesis_json(count: u64) -> Value {
        let mut alloc = Map::new();
        for i in 0..count {
            let address = Address::from_slice(&keccak256(i.to_be_bytes())[12..]);
            let mut account = Map::new();
            account.insert(
                "balance".into(),
                json!(format!("{:#x}", U256::from(i) << 80)),
            );
            account.insert("nonce".into(), json!(format!("{:#x}", i % 3)));
            if i % 11 == 0 {
                let code = [&[0x60, 0x01, 0x60, 0x00, 0x55][..], &i.to_be_bytes()].concat();
                account.insert(
                    "code".into(),
                    json!(alloy_primitives::hex::encode_prefixed(code)),
                );
            }
            let slots = match i {
                5 => 3000,
                _ if i % 7 == 0 => i % 40,
                _ => 0,
            };
            if slots > 0 {
                let storage: Map<String, Value> = (0..slots)
                    .map(|s| {
                        let value = if s == 1 { 0 } else { i * 1000 + s };
                        (format!("0x{s:04x}"), json!(format!("0x{value:08x}")))
                    })
                    .collect();
                account.insert("storage".into(), Value::Object(storage));
            }
            alloc.insert(format!("{address:#x}"), Value::Object(account));
        }
        json!({
            "config": {"chainId": 4242, "londonBlock": 0},
            "gasLimit": "0x1c9c380",
            "alloc": alloc,
        })
    }

    /// The checks of a test: write or not, refuse at the end or not.
    struct Fixed {
        write: bool,
        refuse: bool,
    }

    impl GenesisChecks for Fixed {
        type Error = &'static str;

        fn before_alloc(&mut self, _head: &GenesisHead) -> Result<bool, &'static str> {
            Ok(self.write)
        }

        fn after_read(&mut self, _head: &GenesisHead, _root: B256) -> Result<(), &'static str> {
            if self.refuse {
                return Err("refused");
            }
            Ok(())
        }
    }

    fn work_dir() -> PathBuf {
        static RUN: AtomicU64 = AtomicU64::new(0);
        std::env::temp_dir().join(format!(
            "genesis-state-test-{}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// A memory store that counts the `st:latest` values set in it.
    #[derive(Default)]
    struct Counted {
        inner: MemoryStore,
        latest_set: AtomicU64,
    }

    impl Store for Counted {
        fn backend_name(&self) -> &'static str {
            "counted"
        }

        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, primitives::store::StoreError> {
            self.inner.get(key)
        }

        fn multi_get(
            &self,
            keys: &[String],
        ) -> Result<Vec<Option<Vec<u8>>>, primitives::store::StoreError> {
            self.inner.multi_get(keys)
        }

        fn write(&self, batch: &WriteBatch) -> Result<(), primitives::store::StoreError> {
            let latest = batch.ops().iter().filter(|op| {
                matches!(op, primitives::store::WriteOp::Set { key, .. } if key.starts_with("st:latest:"))
            });
            self.latest_set
                .fetch_add(latest.count() as u64, Ordering::Relaxed);
            self.inner.write(batch)
        }

        fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, primitives::store::StoreError> {
            self.inner.scan_prefix(prefix)
        }

        fn set_if_absent(
            &self,
            key: &str,
            value: &[u8],
            ttl: Duration,
        ) -> Result<bool, primitives::store::StoreError> {
            self.inner.set_if_absent(key, value, ttl)
        }
    }

    fn load(
        store: &dyn Store,
        tries: bool,
        text: &[u8],
        checks: &mut Fixed,
    ) -> Result<LoadedGenesis, LoadError<&'static str>> {
        let target = GenesisTarget {
            store,
            keys: &Keys::default(),
            tries,
            work_dir: work_dir(),
        };
        let loaded = load_genesis(&target, "genesis.json", text, None, checks);
        assert!(!target.work_dir.exists(), "the bucket files are removed");
        loaded
    }

    /// A trie key an earlier init cut short left: deleted before tries are written.
    fn add_stale_trie_key(store: &dyn Store) {
        let mut stale = WriteBatch::new();
        stale.set("trie:acc:0a", b"stale".to_vec());
        store.write(&stale).unwrap();
    }

    /// What the in-memory way writes for `block` (without the header): every value of
    /// `GenesisBlock::state_writes`, with the storage roots and nodes of `build_genesis_tries`
    /// when tries are kept.
    fn in_memory_writes(block: &GenesisBlock, tries: bool) -> BTreeMap<String, Vec<u8>> {
        let keys = Keys::default();
        let built = build_genesis_tries(block).unwrap();
        let store = MemoryStore::new();
        let batch = block.state_writes(&keys, |address| match tries {
            true => built.storage_root(address),
            false => B256::ZERO,
        });
        store.write(&batch).unwrap();
        let mut nodes = WriteBatch::new();
        for (node, rlp) in built.nodes.iter().filter(|_| tries) {
            nodes.put(keys.trie_node(node), rlp);
        }
        store.write(&nodes).unwrap();
        let mut snapshot = store.snapshot();
        snapshot.remove(keys.header(0).as_str());
        snapshot
    }

    #[test]
    fn a_streamed_genesis_writes_what_the_in_memory_way_writes() {
        let text = genesis_json(700).to_string();
        let block = GenesisBlock::parse("genesis.json", text.as_bytes()).unwrap();
        let slots: usize = block.accounts().map(|account| account.slots.len()).sum();
        for tries in [true, false] {
            let store = MemoryStore::new();
            if tries {
                add_stale_trie_key(&store);
            }
            let mut checks = Fixed {
                write: true,
                refuse: false,
            };
            let loaded = load(&store, tries, text.as_bytes(), &mut checks).unwrap();
            assert!(loaded.written);
            assert_eq!(loaded.state_root, block.header.state_root, "tries: {tries}");
            assert_eq!(loaded.storage_only, storage_only_accounts(&block.genesis));
            // Every 21st but the contracts (every 11th): 34 - 4.
            assert_eq!(loaded.storage_only.len(), 30);
            assert_eq!(loaded.head.chain_id(), 4242);
            assert_eq!(loaded.head.header(loaded.state_root), block.header);
            let counts = loaded.counts;
            assert_eq!((counts.accounts, counts.slots), (700, slots as u64));
            let snapshot = store.snapshot();
            assert_eq!(counts.keys(), snapshot.len() as u64, "tries: {tries}");
            assert_eq!(counts.nodes > 0, tries);
            assert_eq!(snapshot, in_memory_writes(&block, tries), "tries: {tries}");
        }
    }

    #[test]
    fn a_read_only_load_writes_nothing_and_gives_the_root() {
        let text = genesis_json(300).to_string();
        let block = GenesisBlock::parse("genesis.json", text.as_bytes()).unwrap();
        let store = MemoryStore::new();
        let mut checks = Fixed {
            write: false,
            refuse: false,
        };
        let loaded = load(&store, true, text.as_bytes(), &mut checks).unwrap();
        assert!(!loaded.written);
        assert_eq!(loaded.state_root, block.header.state_root);
        assert_eq!((loaded.counts.keys(), loaded.counts.accounts), (0, 300));
        assert!(store.snapshot().is_empty());
    }

    /// The keys of `store` but its `st:code` values (which a refused load leaves).
    fn without_code(store: &Counted) -> Vec<String> {
        store
            .inner
            .snapshot()
            .into_keys()
            .filter(|key| !key.starts_with("st:code:"))
            .collect()
    }

    #[test]
    fn a_genesis_refused_after_it_was_written_is_deleted_again() {
        let text = genesis_json(400).to_string();
        let store = Counted::default();
        add_stale_trie_key(&store);
        let mut checks = Fixed {
            write: true,
            refuse: true,
        };
        match load(&store, true, text.as_bytes(), &mut checks) {
            Err(LoadError::Refused("refused")) => {}
            other => panic!("{other:?}"),
        }
        assert!(
            store.latest_set.load(Ordering::Relaxed) > 400,
            "it was written"
        );
        assert_eq!(without_code(&store), Vec::<String>::new());
    }

    #[test]
    fn a_file_cut_short_is_refused_naming_the_problem_and_deleted_again() {
        // Enough keys that batches are written before the cut.
        let text = genesis_json(30_000).to_string();
        let cut = &text.as_bytes()[..text.len() * 2 / 3];
        let store = Counted::default();
        let mut checks = Fixed {
            write: true,
            refuse: false,
        };
        match load(&store, false, cut, &mut checks) {
            Err(LoadError::Genesis(error)) => {
                let message = error.to_string();
                assert!(
                    message.contains("genesis.json") && message.contains("EOF"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            store.latest_set.load(Ordering::Relaxed) >= WRITE_BATCH as u64,
            "batches were written before the cut"
        );
        assert_eq!(without_code(&store), Vec::<String>::new());
    }

    #[test]
    fn an_account_listed_twice_is_refused_and_deleted_again() {
        let text = genesis_json(50).to_string();
        let (head, alloc) = text.split_once(r#""alloc":{"#).unwrap();
        let first = &alloc[..alloc.find("},").unwrap() + 2];
        let twice = format!(r#"{head}"alloc":{{{first}{alloc}"#);
        let store = Counted::default();
        let mut checks = Fixed {
            write: true,
            refuse: false,
        };
        match load(&store, true, twice.as_bytes(), &mut checks) {
            Err(LoadError::Tries(RebuildError::DuplicateAccount { address })) => {
                assert!(first.contains(&format!("{address:#x}")), "{address}")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            store.latest_set.load(Ordering::Relaxed) > 50,
            "it was written"
        );
        assert_eq!(without_code(&store), Vec::<String>::new());
    }
}
