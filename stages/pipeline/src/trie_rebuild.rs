//! `trie rebuild`: the state tries built from an existing `st:latest` in bounded memory, for a
//! store written without them (by the original service, or with `state.verify_root = "off"`),
//! so the merkle stage verifies it from then on.
//!
//! Reads `idx:exec:progress`, `idx:stage:commit`, `blk:hdr:{n}` and, with one prefix scan
//! each, every `st:latest:acc:*` and `st:latest:stor:*`. Writes every `trie:*` node, each
//! `st:latest:acc:*` whose JSON lacks its real storageRoot, `idx:trie:rebuild` while under
//! way, and last the merkle checkpoint `idx:stage:merkle`.
//!
//! # Steps
//!
//! 1. The block: `idx:exec:progress`, which must agree with the commit checkpoint (a commit
//!    cut short is refused: `run` repairs it first). Its header gives the expected root.
//! 2. A fresh start (no `idx:trie:rebuild` for this block and hash) deletes the merkle
//!    checkpoint first, so a cut rebuild leaves the store unverified rather than verified
//!    against half-built tries, then every `trie:*` key (a previous partial run's, or tries
//!    gone stale while verification was off), then writes the progress at bucket 0.
//! 3. The two scans spill accounts and slots into [`spill::BUCKETS`] temp files by the first
//!    byte of keccak256(address) ([`spill`]).
//! 4. Bucket by bucket, as [`build`] builds tries (shared with `init`): the bucket's storage
//!    tries, then its account leaves into one account trie, the nodes written as they
//!    complete and the account's JSON rewritten with the real storageRoot where it differs;
//!    then `idx:trie:rebuild` moves past the bucket.
//! 5. The root must be the header's stateRoot (else the error names both, the progress is
//!    removed and no checkpoint is written); then the merkle checkpoint, then the progress's
//!    removal.
//!
//! # Resuming
//!
//! Nodes written before a crash are never wrong, only incomplete ([`build`]). A rerun for the
//! same block scans and spills again and resumes the build after the finished buckets (their
//! account leaves fed again with the storage roots their rewritten JSON carries; the progress
//! moves only after a bucket's nodes are written).
//!
//! # Memory
//!
//! One bucket's accounts and slots (about 1/256 of the state; an account's storage is never
//! split, so a bucket holding a big contract holds all its slots) with the storage nodes
//! waiting in each rayon worker's write batch, plus the key list of the scan under way: the
//! store trait hands a prefix scan's keys over at once (about 100 bytes a key), and they are
//! dropped chunk by chunk as they are spilled.

pub mod build;
pub mod spill;

use alloy_primitives::{Address, B256, U256};
use build::{build_buckets, BucketRange, WRITE_BATCH};
use primitives::clock::unix_now;
use primitives::contract::{AccountJson, MalformedValue, StageCheckpoint, TrieRebuildProgress};
use primitives::keys::Keys;
use primitives::stage_id::StageId;
use primitives::store::{Store, StoreError, WriteBatch};
use primitives::value::{ContractRead, Decode, ReadError};
use spill::{
    bucket_of_address, Spill, SpillError, SpilledAccount, SpilledBuckets, SpilledSlot, BUCKETS,
};
use state_trie::BuildError;
use std::path::PathBuf;
use std::time::Instant;

/// Keys read per batched read (MGET) while spilling.
const READ_BATCH: usize = 1000;

/// How to run a rebuild.
#[derive(Debug, Clone)]
pub struct RebuildSettings {
    /// A directory for the bucket files; it must not exist, and is removed at the end.
    pub work_dir: PathBuf,
    /// Stop after building this many buckets in this run (a rerun continues); `None`: all.
    pub stop_after: Option<u32>,
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    /// The block whose state the tries hold.
    pub block: u64,
    /// The state root built (checked against the header when `complete`).
    pub state_root: Option<B256>,
    /// Buckets finished before this run (a resumed rebuild).
    pub resumed_at: u32,
    /// Buckets finished now (of [`BUCKETS`]).
    pub finished: u32,
    /// Accounts in the state.
    pub accounts: u64,
    /// Accounts whose storage tries and leaves this run built.
    pub accounts_built: u64,
    /// Slots in the storage tries this run built.
    pub slots: u64,
    /// Trie nodes written.
    pub nodes: u64,
    /// `st:latest:acc` values rewritten with their real storage root.
    pub rewritten: u64,
    /// Seconds spent scanning and spilling.
    pub scan_seconds: f64,
    /// Seconds spent building and writing.
    pub build_seconds: f64,
    /// True when the tries are complete and verified (the merkle checkpoint written).
    pub complete: bool,
}

impl RebuildReport {
    /// Accounts built per second of the build.
    pub fn accounts_per_second(&self) -> f64 {
        self.accounts_built as f64 / self.build_seconds.max(f64::EPSILON)
    }
}

/// Why a rebuild stopped.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A value in the store does not decode (the error names the key).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The store holds no executed state.
    #[error("{key} is missing: the store holds no executed state (run `evm-executor init`)")]
    NotInitialised {
        /// The progress key.
        key: String,
    },
    /// The header whose stateRoot the tries must give is missing.
    #[error("block {block}: {key} is missing (its stateRoot is needed)")]
    MissingHeader {
        /// The block.
        block: u64,
        /// The header's key.
        key: String,
    },
    /// A commit was cut short: `st:latest` may hold part of the next block.
    #[error(
        "{commit_key} is at block {commit} but {progress_key} at block {progress}: a commit was \
         cut short; run `evm-executor run --exit-at-head` once (it finishes the commit), then \
         rebuild"
    )]
    CommitCutShort {
        /// The commit checkpoint's key.
        commit_key: String,
        /// Its block.
        commit: u64,
        /// The progress key.
        progress_key: String,
        /// Its block.
        progress: u64,
    },
    /// A key under a state prefix that the data contract does not spell.
    #[error("{key} is not a key of the data contract (found by a prefix scan)")]
    ForeignKey {
        /// The key.
        key: String,
    },
    /// A bucket file failed.
    #[error(transparent)]
    Spill(#[from] SpillError),
    /// The state does not build into tries.
    #[error("the state in st:latest does not build into tries: {0}")]
    Build(#[from] BuildError),
    /// The spilled state holds an account twice (a genesis allocation can list it twice).
    #[error("account {address} is listed twice")]
    DuplicateAccount {
        /// The account.
        address: Address,
    },
    /// The spilled state holds a slot of one account twice.
    #[error("account {address}: a storage slot is listed twice")]
    DuplicateSlot {
        /// The account.
        address: Address,
    },
    /// The state in `st:latest` is not the state after the block.
    #[error(
        "block {block}: stateRoot mismatch: header says {expected:#x}, st:latest gives \
         {got:#x}; the stored state is not the state after block {block} and cannot be \
         verified (no merkle checkpoint written; the trie:* keys are deleted by the next rebuild)"
    )]
    StateRoot {
        /// The block.
        block: u64,
        /// The header's state root.
        expected: B256,
        /// The root of the tries built from `st:latest`.
        got: B256,
    },
    /// The store's state moved while the tries were built.
    #[error(
        "the store moved from block {from} ({from_hash:#x}) to block {to} ({to_hash:#x}) while \
         the tries were built (did a daemon run?); rebuild again with no daemon running"
    )]
    Moved {
        /// The block the rebuild started at.
        from: u64,
        /// Its hash.
        from_hash: B256,
        /// The block the store is at now.
        to: u64,
        /// Its hash.
        to_hash: B256,
    },
}

impl From<MalformedValue> for RebuildError {
    fn from(error: MalformedValue) -> Self {
        RebuildError::Read(error.into())
    }
}

/// The block whose state `st:latest` holds, with what its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    block: u64,
    hash: B256,
    state_root: B256,
}

/// Build the state tries of `store`'s `st:latest` (see the module doc).
pub fn rebuild(
    store: &dyn Store,
    keys: &Keys,
    settings: &RebuildSettings,
) -> Result<RebuildReport, RebuildError> {
    let target = target(store, keys)?;
    let progress_key = keys.trie_rebuild();
    let resumed_at = match store.read(&progress_key)? {
        Some(p) if p.block == target.block && p.hash == target.hash => {
            tracing::info!(
                block = target.block,
                finished = p.finished,
                "resuming the rebuild of the state tries after bucket {} of {BUCKETS}",
                p.finished
            );
            p.finished.min(BUCKETS)
        }
        previous => {
            if let Some(previous) = previous {
                tracing::warn!(
                    previous = previous.block,
                    block = target.block,
                    "{progress_key} is for another state; starting over"
                );
            }
            start_fresh(store, keys, &target)?;
            0
        }
    };
    let started = Instant::now();
    let (buckets, accounts) = spill_state(store, keys, &settings.work_dir, resumed_at)?;
    let scan_seconds = started.elapsed().as_secs_f64();
    let range = BucketRange {
        built: resumed_at,
        limit: settings.stop_after,
    };
    // After the bucket's nodes and accounts: their write has returned.
    let built = build_buckets(Some(store), keys, &buckets, range, |finished| {
        Ok(write_progress(store, keys, &target, finished)?)
    })?;
    drop(buckets);
    let report = RebuildReport {
        block: target.block,
        state_root: built.root,
        resumed_at,
        finished: built.finished,
        accounts,
        accounts_built: built.counts.accounts,
        slots: built.counts.slots,
        nodes: built.counts.nodes,
        rewritten: built.counts.rewritten,
        scan_seconds,
        build_seconds: built.seconds,
        complete: false,
    };
    match built.root {
        Some(root) => verify(store, keys, target, root, report),
        None => {
            tracing::info!(
                finished = built.finished,
                "stopped after bucket {} of {BUCKETS}; rerun to continue",
                built.finished
            );
            Ok(report)
        }
    }
}

/// Check the built root against the header's (and that the store did not move meanwhile),
/// then write the merkle checkpoint and remove the progress.
fn verify(
    store: &dyn Store,
    keys: &Keys,
    target: Target,
    root: B256,
    mut report: RebuildReport,
) -> Result<RebuildReport, RebuildError> {
    // A state that moved under the build explains a wrong root too: said first.
    let now = self::target(store, keys)?;
    if (now.block, now.hash) != (target.block, target.hash) {
        return Err(RebuildError::Moved {
            from: target.block,
            from_hash: target.hash,
            to: now.block,
            to_hash: now.hash,
        });
    }
    if root != target.state_root {
        let mut batch = WriteBatch::new();
        batch.remove(keys.trie_rebuild());
        store.write(&batch)?;
        return Err(RebuildError::StateRoot {
            block: target.block,
            expected: target.state_root,
            got: root,
        });
    }
    let mut batch = WriteBatch::new();
    batch.put(
        keys.stage_checkpoint(StageId::Merkle),
        &StageCheckpoint {
            block: target.block,
            hash: target.hash,
            time: unix_now(),
        },
    );
    batch.fence().remove(keys.trie_rebuild());
    store.write(&batch)?;
    report.complete = true;
    tracing::info!(
        block = target.block,
        state_root = %root,
        accounts = report.accounts,
        nodes = report.nodes,
        "state tries rebuilt and verified against the header"
    );
    Ok(report)
}

/// The block `st:latest` holds: `idx:exec:progress`, which the commit checkpoint (when there
/// is one) must agree with.
fn target(store: &dyn Store, keys: &Keys) -> Result<Target, RebuildError> {
    let progress_key = keys.exec_progress();
    let block = store
        .read(&progress_key)?
        .ok_or_else(|| RebuildError::NotInitialised {
            key: progress_key.to_string(),
        })?
        .latest_executed_block;
    let commit_key = keys.stage_checkpoint(StageId::Commit);
    if let Some(commit) = store.read(&commit_key)? {
        if commit.block != block {
            return Err(RebuildError::CommitCutShort {
                commit_key: commit_key.into_string(),
                commit: commit.block,
                progress_key: progress_key.into_string(),
                progress: block,
            });
        }
    }
    let header_key = keys.header(block);
    let header = store
        .read(&header_key)?
        .ok_or_else(|| RebuildError::MissingHeader {
            block,
            key: header_key.into_string(),
        })?;
    Ok(Target {
        block,
        hash: header.hash(),
        state_root: header.state_root,
    })
}

/// Forget any previous tries: the merkle checkpoint first, then every `trie:*` key, then the
/// progress at bucket 0, each write after the one before has landed.
fn start_fresh(store: &dyn Store, keys: &Keys, target: &Target) -> Result<(), RebuildError> {
    delete_tries(store, keys)?;
    write_progress(store, keys, target, 0)?;
    tracing::info!(
        block = target.block,
        "building the state tries of block {} from st:latest",
        target.block
    );
    Ok(())
}

/// Write `idx:trie:rebuild`: `finished` buckets of `target`'s tries are built.
fn write_progress(
    store: &dyn Store,
    keys: &Keys,
    target: &Target,
    finished: u32,
) -> Result<(), StoreError> {
    let mut batch = WriteBatch::new();
    let progress = TrieRebuildProgress {
        block: target.block,
        hash: target.hash,
        finished,
    };
    batch.put(keys.trie_rebuild(), &progress);
    store.write(&batch)
}

/// Delete the merkle checkpoint, then (once that write has landed) every `trie:*` key: tries
/// the state no longer matches (a rebuild's or an init's cut short, or kept while verification
/// was off). Returns the number of trie keys deleted. Memory: the scan's key list.
pub fn delete_tries(store: &dyn Store, keys: &Keys) -> Result<usize, StoreError> {
    let mut batch = WriteBatch::new();
    batch.remove(keys.stage_checkpoint(StageId::Merkle));
    store.write(&batch)?;
    let stale = store.scan_prefix(&keys.trie_prefix())?;
    if !stale.is_empty() {
        tracing::warn!(
            keys = stale.len(),
            "deleting the trie keys of earlier tries"
        );
    }
    for chunk in stale.chunks(WRITE_BATCH) {
        let mut batch = WriteBatch::new();
        for key in chunk {
            batch.delete(key.clone());
        }
        store.write(&batch)?;
    }
    Ok(stale.len())
}

/// Scan `st:latest` into bucket files under `dir`: every account, and the slots of the
/// buckets from `first_bucket` on. Returns the files and the number of accounts.
fn spill_state(
    store: &dyn Store,
    keys: &Keys,
    dir: &std::path::Path,
    first_bucket: u32,
) -> Result<(SpilledBuckets, u64), RebuildError> {
    let mut spill = Spill::create(dir)?;
    let account_keys = store.scan_prefix(&keys.latest_account_prefix())?;
    tracing::info!(keys = account_keys.len(), "scanned the accounts; spilling");
    let mut accounts = 0u64;
    let mut pending = account_keys.into_iter();
    loop {
        let chunk: Vec<String> = pending.by_ref().take(READ_BATCH).collect();
        if chunk.is_empty() {
            break;
        }
        for (key, value) in chunk.iter().zip(store.multi_get(&chunk)?) {
            // Gone since the scan: nothing to build.
            let Some(bytes) = value else { continue };
            let address = keys
                .parse_latest_account(key)
                .ok_or_else(|| RebuildError::ForeignKey { key: key.clone() })?;
            let json = AccountJson::decode(key, &bytes)?;
            let account = SpilledAccount {
                address,
                json,
                canonical: json.encode() == bytes,
            };
            spill.account(bucket_of_address(&address), &account)?;
            accounts += 1;
        }
    }
    let slot_keys = store.scan_prefix(&keys.latest_storage_scan_prefix())?;
    tracing::info!(
        keys = slot_keys.len(),
        "scanned the storage slots; spilling"
    );
    // The scans return keys sorted (by the backends), so one account's slots come together.
    let mut last_bucket: Option<(Address, u32)> = None;
    let mut pending = slot_keys.into_iter();
    loop {
        let mut chunk = Vec::with_capacity(READ_BATCH);
        for key in pending.by_ref() {
            let (address, slot) = keys
                .parse_latest_storage(&key)
                .ok_or_else(|| RebuildError::ForeignKey { key: key.clone() })?;
            let bucket = match last_bucket {
                Some((last, bucket)) if last == address => bucket,
                _ => bucket_of_address(&address),
            };
            last_bucket = Some((address, bucket));
            if bucket >= first_bucket {
                chunk.push((key, address, slot, bucket));
                if chunk.len() == READ_BATCH {
                    break;
                }
            }
        }
        if chunk.is_empty() {
            break;
        }
        let texts: Vec<String> = chunk.iter().map(|(key, ..)| key.clone()).collect();
        for ((key, address, slot, bucket), value) in chunk.into_iter().zip(store.multi_get(&texts)?)
        {
            let Some(bytes) = value else { continue };
            let value = U256::decode(&key, &bytes)?;
            spill.slot(
                bucket,
                &SpilledSlot {
                    address,
                    slot,
                    value,
                },
            )?;
        }
    }
    Ok((spill.finish()?, accounts))
}

#[cfg(test)]
mod tests {
    use super::build::leaf;
    use super::*;
    use alloy_consensus::Header;
    use alloy_primitives::keccak256;
    use alloy_primitives::Sealable;
    use alloy_trie::root::{state_root_unhashed, storage_root_unhashed};
    use primitives::contract::{ExecProgress, EMPTY_CODE_HASH};
    use primitives::memory::MemoryStore;
    use state_trie::AccountFields;
    use std::collections::BTreeMap;

    /// The block whose state the tests' stores hold.
    const BLOCK: u64 = 5;

    /// A state of `count` accounts: every seventh a contract with storage (one of them with
    /// 3,000 slots, so its trie is deep and written in several batches), every fifth spelt
    /// as go-ethereum orders the fields.
    struct TestState {
        accounts: BTreeMap<Address, (AccountJson, BTreeMap<B256, U256>)>,
    }

    impl TestState {
        fn new(count: u64) -> Self {
            let accounts = (0..count)
                .map(|i| {
                    let address = Address::from_slice(&keccak256(i.to_be_bytes())[12..]);
                    let slots: BTreeMap<B256, U256> = match i {
                        3 => (0..3000u64)
                            .map(|s| (B256::from(U256::from(s)), U256::from(s + 1)))
                            .collect(),
                        _ if i % 7 == 0 => (0..i % 40)
                            .map(|s| {
                                (
                                    keccak256([i, s].map(u64::to_be_bytes).concat()),
                                    U256::from(i * s + 1),
                                )
                            })
                            .collect(),
                        _ => BTreeMap::new(),
                    };
                    let json = AccountJson {
                        balance: U256::from(i) << 100,
                        nonce: i % 3,
                        code_hash: if slots.is_empty() {
                            EMPTY_CODE_HASH
                        } else {
                            keccak256(address)
                        },
                        storage_root: B256::ZERO,
                    };
                    (address, (json, slots))
                })
                .collect();
            Self { accounts }
        }

        /// The state root, by alloy-trie.
        fn state_root(&self) -> B256 {
            state_root_unhashed(self.accounts.iter().map(|(address, (json, slots))| {
                let root = storage_root_unhashed(slots.iter().map(|(s, v)| (*s, *v)));
                (*address, leaf(json, root))
            }))
        }

        /// A store holding this state as block [`BLOCK`] (its header carrying `header_root`),
        /// as a store written without tries holds it.
        fn store(&self, header_root: B256) -> MemoryStore {
            let store = MemoryStore::new();
            let keys = Keys::default();
            let mut batch = WriteBatch::new();
            for (i, (address, (json, slots))) in self.accounts.iter().enumerate() {
                let key = keys.latest_account(address);
                if i % 5 == 0 {
                    let go = format!(
                        r#"{{"nonce":{},"balance":{},"storageRoot":"{:#x}","codeHash":"{:#x}"}}"#,
                        json.nonce, json.balance, json.storage_root, json.code_hash
                    );
                    batch.set(key.into_string(), go.into_bytes());
                } else {
                    batch.put(key, json);
                }
                for (slot, value) in slots {
                    batch.put(keys.latest_storage(address, slot), value);
                }
            }
            let header = Header {
                number: BLOCK,
                state_root: header_root,
                ..Header::default()
            };
            batch.put(keys.header(BLOCK), &header.seal_slow());
            batch.put(
                keys.exec_progress(),
                &ExecProgress {
                    latest_executed_block: BLOCK,
                    last_execution_time: 1,
                    total_txs_executed: 0,
                },
            );
            store.write(&batch).unwrap();
            store
        }
    }

    impl TestState {
        /// [`Self::store`] with the right root, rebuilt in one run: what every other way to
        /// the tries must leave.
        fn rebuilt_in_one_run(&self) -> MemoryStore {
            let store = self.store(self.state_root());
            let report = rebuild(&store, &Keys::default(), &settings(None)).unwrap();
            assert!(report.complete);
            store
        }
    }

    fn settings(stop_after: Option<u32>) -> RebuildSettings {
        static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        RebuildSettings {
            work_dir: std::env::temp_dir()
                .join(format!("trie-rebuild-test-{}-{run}", std::process::id())),
            stop_after,
        }
    }

    /// The store without the checkpoint's time.
    fn snapshot(store: &MemoryStore) -> BTreeMap<String, Vec<u8>> {
        let mut snapshot = store.snapshot();
        let key = Keys::default().stage_checkpoint(StageId::Merkle);
        if let Some(bytes) = snapshot.get_mut(key.as_str()) {
            let checkpoint = key.decode(bytes).unwrap();
            assert_eq!(
                (checkpoint.block, checkpoint.hash),
                (BLOCK, block_hash(store))
            );
            bytes.clear();
        }
        snapshot
    }

    fn block_hash(store: &MemoryStore) -> B256 {
        store
            .read(&Keys::default().header(BLOCK))
            .unwrap()
            .unwrap()
            .hash()
    }

    #[test]
    fn the_tries_of_st_latest_are_built_and_the_accounts_get_their_storage_roots() {
        let state = TestState::new(700);
        let store = state.store(state.state_root());
        let settings = settings(None);
        let report = rebuild(&store, &Keys::default(), &settings).unwrap();
        assert!(report.complete);
        assert_eq!(report.state_root, Some(state.state_root()));
        assert_eq!((report.accounts, report.accounts_built), (700, 700));
        assert!(
            !settings.work_dir.exists(),
            "the spill directory is removed"
        );

        let keys = Keys::default();
        let built =
            crate::tries::build_tries(state.accounts.iter().map(|(address, (json, slots))| {
                let fields = AccountFields {
                    nonce: json.nonce,
                    balance: json.balance,
                    code_hash: json.code_hash,
                };
                (
                    *address,
                    fields,
                    slots.iter().map(|(s, v)| (*s, *v)).collect::<Vec<_>>(),
                )
            }))
            .unwrap();
        let expected: BTreeMap<String, Vec<u8>> = built
            .nodes
            .iter()
            .map(|(node, rlp)| (keys.trie_node(node).into_string(), rlp.to_vec()))
            .collect();
        let snapshot = snapshot(&store);
        let tries: BTreeMap<String, Vec<u8>> = snapshot
            .iter()
            .filter(|(key, _)| key.starts_with("trie:"))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        assert_eq!(tries, expected, "the nodes of a build in memory");
        assert_eq!(report.nodes, expected.len() as u64);
        for (address, (json, slots)) in &state.accounts {
            let stored: AccountJson = store.read(&keys.latest_account(address)).unwrap().unwrap();
            let root = storage_root_unhashed(slots.iter().map(|(s, v)| (*s, *v)));
            assert_eq!(
                stored,
                AccountJson {
                    storage_root: root,
                    ..*json
                },
                "{address}"
            );
        }
        assert!(store.read(&keys.trie_rebuild()).unwrap().is_none());
        assert!(store
            .read(&keys.stage_checkpoint(StageId::Merkle))
            .unwrap()
            .is_some());
    }

    #[test]
    fn an_interrupted_rebuild_resumes_to_the_same_store() {
        let state = TestState::new(500);
        let whole = state.rebuilt_in_one_run();

        let store = state.store(state.state_root());
        let keys = Keys::default();
        let first = rebuild(&store, &keys, &settings(Some(3))).unwrap();
        assert!(!first.complete);
        assert_eq!((first.resumed_at, first.finished), (0, 3));
        let progress = store.read(&keys.trie_rebuild()).unwrap().unwrap();
        assert_eq!((progress.block, progress.finished), (BLOCK, 3));
        assert!(store
            .read(&keys.stage_checkpoint(StageId::Merkle))
            .unwrap()
            .is_none());
        let second = rebuild(&store, &keys, &settings(Some(200))).unwrap();
        assert_eq!((second.resumed_at, second.finished), (3, 203));
        assert!(second.accounts_built < 500 && second.accounts_built > 0);
        let last = rebuild(&store, &keys, &settings(None)).unwrap();
        assert!(last.complete);
        assert_eq!(last.resumed_at, 203);
        assert_eq!(
            first.accounts_built + second.accounts_built + last.accounts_built,
            500
        );
        assert_eq!(snapshot(&store), snapshot(&whole));
    }

    #[test]
    fn a_wrong_root_is_refused_after_stale_tries_are_deleted() {
        let state = TestState::new(50);
        let wrong = B256::repeat_byte(0xee);
        let store = state.store(wrong);
        let keys = Keys::default();
        let mut batch = WriteBatch::new();
        batch.set("trie:acc:0123", b"stale".to_vec());
        batch.set("trie:pending", b"stale".to_vec());
        batch.put(
            keys.stage_checkpoint(StageId::Merkle),
            &StageCheckpoint {
                block: 2,
                hash: B256::ZERO,
                time: 0,
            },
        );
        store.write(&batch).unwrap();
        let error = rebuild(&store, &keys, &settings(None)).unwrap_err();
        match error {
            RebuildError::StateRoot {
                block,
                expected,
                got,
            } => assert_eq!((block, expected, got), (BLOCK, wrong, state.state_root())),
            other => panic!("{other}"),
        }
        let snapshot = store.snapshot();
        assert!(!snapshot.contains_key("trie:acc:0123") && !snapshot.contains_key("trie:pending"));
        assert!(!snapshot.contains_key("idx:stage:merkle"));
        assert!(!snapshot.contains_key("idx:trie:rebuild"));
    }

    #[test]
    fn progress_for_another_state_starts_over() {
        let state = TestState::new(300);
        let whole = state.rebuilt_in_one_run();
        let store = state.store(state.state_root());
        let keys = Keys::default();
        let mut batch = WriteBatch::new();
        let other = TrieRebuildProgress {
            block: BLOCK,
            hash: B256::repeat_byte(1),
            finished: 200,
        };
        batch.put(keys.trie_rebuild(), &other);
        store.write(&batch).unwrap();
        let report = rebuild(&store, &keys, &settings(None)).unwrap();
        assert_eq!((report.resumed_at, report.accounts_built), (0, 300));
        assert_eq!(snapshot(&store), snapshot(&whole));
    }

    #[test]
    fn a_commit_cut_short_is_refused() {
        let state = TestState::new(10);
        let store = state.store(state.state_root());
        let keys = Keys::default();
        let mut batch = WriteBatch::new();
        batch.put(
            keys.stage_checkpoint(StageId::Commit),
            &StageCheckpoint {
                block: BLOCK - 1,
                hash: B256::ZERO,
                time: 0,
            },
        );
        store.write(&batch).unwrap();
        let before = store.snapshot();
        let error = rebuild(&store, &keys, &settings(None)).unwrap_err();
        assert!(
            matches!(
                error,
                RebuildError::CommitCutShort {
                    commit: 4,
                    progress: 5,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(store.snapshot(), before, "nothing written");
    }
}
