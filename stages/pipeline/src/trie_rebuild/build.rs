//! The state tries built bucket by bucket from spilled accounts and slots ([`super::spill`]),
//! in bounded memory: what `trie rebuild` does with a store's `st:latest` and `init` with a
//! genesis file, each after spilling the state its own way.
//!
//! Bucket by bucket in ascending order: the bucket's accounts sorted by hashed address; their
//! storage tries built on the rayon pool (slots sorted by hashed slot, nodes batched as they
//! complete, the batches written by the calling thread); then each account leaf, with its storage root, fed to one
//! [`AccountTrieBuilder`] across buckets, whose completed nodes are written likewise, and the
//! account's JSON written with the real storageRoot where the spilled one differs (or was not
//! in the contract's spelling). A caller's hook runs after each bucket's writes have returned.
//! Without a store nothing is written: the build gives the root only.
//!
//! Every node the builders hand out is a node of the final tries (the layout depends on the
//! state alone), so a build cut short leaves nodes that are never wrong, only incomplete; and
//! a build resumed after `built` buckets feeds those buckets' account leaves to the account
//! builder once more (with the storage roots their spilled JSON carries), dropping the nodes
//! it hands out, and builds storage tries only for the rest.
//!
//! Memory: one bucket's accounts and slots (an account's storage is never split, so a bucket
//! holding a big contract holds all its slots) and one write batch per rayon worker, with as
//! many more waiting to be written.

use super::spill::{SpilledAccount, SpilledBuckets, SpilledSlot, BUCKETS};
use super::RebuildError;
use crate::tries::node_id;
use alloy_primitives::{keccak256, map::HashMap, Address, Bytes, B256, U256};
use alloy_trie::{TrieAccount, EMPTY_ROOT_HASH};
use crossbeam_channel::Sender;
use primitives::contract::AccountJson;
use primitives::keys::Keys;
use primitives::store::{Store, StoreError, WriteBatch};
use rayon::prelude::*;
use state_trie::{AccountTrieBuilder, NodeKey, StorageTrieBuilder};
use std::time::{Duration, Instant};

/// Writes per store write: trie nodes and rewritten accounts. Each rayon worker holds at most
/// one such batch (about 10,000 × 100–600 bytes).
pub const WRITE_BATCH: usize = 10_000;
/// How often a progress line is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What a build did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildCounts {
    /// Accounts whose storage tries and leaves were built (the resumed buckets' not counted).
    pub accounts: u64,
    /// Slots in the storage tries built.
    pub slots: u64,
    /// Trie nodes written (or, without a store, that would have been).
    pub nodes: u64,
    /// `st:latest:acc` values written with their real storage root.
    pub rewritten: u64,
}

/// How a build ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketBuild {
    /// The state root, when every bucket was built.
    pub root: Option<B256>,
    /// Buckets finished (of [`BUCKETS`]), the resumed ones included.
    pub finished: u32,
    /// What this build did.
    pub counts: BuildCounts,
    /// Seconds it took.
    pub seconds: f64,
}

/// Which buckets a build takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketRange {
    /// Buckets below this were built by an earlier run (their leaves are only fed again).
    pub built: u32,
    /// Build at most this many buckets now; `None`: all the rest.
    pub limit: Option<u32>,
}

/// Build the tries of the state spilled into `buckets` (see the module doc), writing nodes and
/// accounts to `store` under `keys` (with `None`, computing the root only), over `range`.
/// `after_bucket` runs with the number of finished buckets once a bucket's writes have
/// returned.
pub fn build_buckets(
    store: Option<&dyn Store>,
    keys: &Keys,
    buckets: &SpilledBuckets,
    range: BucketRange,
    mut after_bucket: impl FnMut(u32) -> Result<(), RebuildError>,
) -> Result<BucketBuild, RebuildError> {
    let mut build = Build::new(store, keys);
    for bucket in 0..BUCKETS {
        let (accounts, slots) = buckets.load(bucket)?;
        if bucket < range.built {
            build.refeed(accounts)?;
            continue;
        }
        if range
            .limit
            .is_some_and(|limit| bucket - range.built >= limit)
        {
            return Ok(BucketBuild {
                root: None,
                finished: bucket,
                counts: build.counts,
                seconds: build.started.elapsed().as_secs_f64(),
            });
        }
        build.bucket(bucket, accounts, slots)?;
        after_bucket(bucket + 1)?;
    }
    let (root, counts) = build.finish()?;
    Ok(BucketBuild {
        root: Some(root),
        finished: BUCKETS,
        counts,
        seconds: build.started.elapsed().as_secs_f64(),
    })
}

/// Build every bucket of `buckets` at once (nothing resumed, no hook): the state root and what
/// was done. With `store` `None` nothing is written.
pub fn build_all(
    store: Option<&dyn Store>,
    keys: &Keys,
    buckets: &SpilledBuckets,
) -> Result<(B256, BuildCounts), RebuildError> {
    let mut build = Build::new(store, keys);
    for bucket in 0..BUCKETS {
        let (accounts, slots) = buckets.load(bucket)?;
        build.bucket(bucket, accounts, slots)?;
    }
    build.finish()
}

/// An account of the bucket being built, keyed by its hashed address.
struct BucketAccount {
    hashed: B256,
    spilled: SpilledAccount,
    /// Its slots (unhashed until its storage trie is built).
    slots: Vec<(B256, U256)>,
}

/// The build across buckets: the account trie's builder and what was done so far.
struct Build<'a> {
    store: Option<&'a dyn Store>,
    keys: &'a Keys,
    builder: AccountTrieBuilder,
    counts: BuildCounts,
    started: Instant,
    logged: Instant,
}

impl<'a> Build<'a> {
    fn new(store: Option<&'a dyn Store>, keys: &'a Keys) -> Self {
        Self {
            store,
            keys,
            builder: AccountTrieBuilder::new(),
            counts: BuildCounts::default(),
            started: Instant::now(),
            logged: Instant::now(),
        }
    }

    /// Feed a finished bucket's account leaves again (their storage roots from their spilled
    /// JSON), dropping the nodes handed out: they were written before the bucket was finished.
    fn refeed(&mut self, accounts: Vec<SpilledAccount>) -> Result<(), RebuildError> {
        let mut accounts: Vec<(B256, SpilledAccount)> = accounts
            .into_iter()
            .map(|account| (keccak256(account.address), account))
            .collect();
        accounts.sort_unstable_by_key(|(hashed, _)| *hashed);
        for (hashed, account) in &accounts {
            let json = &account.json;
            self.builder
                .add_account(*hashed, &leaf(json, json.storage_root))?;
            self.builder.drain_nodes().for_each(drop);
        }
        Ok(())
    }

    /// Build bucket `bucket` from its spilled accounts and slots and write it.
    fn bucket(
        &mut self,
        bucket: u32,
        accounts: Vec<SpilledAccount>,
        slots: Vec<SpilledSlot>,
    ) -> Result<(), RebuildError> {
        let slot_count = slots.len() as u64;
        let mut by_account: HashMap<Address, Vec<(B256, U256)>> = HashMap::default();
        for slot in slots {
            by_account
                .entry(slot.address)
                .or_default()
                .push((slot.slot, slot.value));
        }
        let mut accounts: Vec<BucketAccount> = accounts
            .into_iter()
            .map(|spilled| BucketAccount {
                hashed: keccak256(spilled.address),
                slots: by_account.remove(&spilled.address).unwrap_or_default(),
                spilled,
            })
            .collect();
        if let Some((address, orphans)) = by_account.iter().next() {
            tracing::warn!(
                bucket,
                accounts = by_account.len(),
                example = %address,
                slots = orphans.len(),
                "slots in st:latest:stor of accounts absent from st:latest:acc are not in any trie"
            );
        }
        accounts.sort_unstable_by_key(|account| account.hashed);
        if let Some(twice) = accounts.windows(2).find(|w| w[0].hashed == w[1].hashed) {
            return Err(RebuildError::DuplicateAccount {
                address: twice[0].spilled.address,
            });
        }
        let (roots, storage_nodes) = self.storage_roots(&mut accounts)?;
        let mut writer = NodeWriter::new(self.store, self.keys);
        for (account, root) in accounts.iter().zip(roots) {
            let json = &account.spilled.json;
            self.builder
                .add_account(account.hashed, &leaf(json, root))?;
            for (key, rlp) in self.builder.drain_nodes() {
                writer.node(&key, &rlp)?;
            }
            if !account.spilled.canonical || json.storage_root != root {
                let rewritten = AccountJson {
                    storage_root: root,
                    ..*json
                };
                writer.account(&account.spilled.address, &rewritten)?;
            }
        }
        writer.flush()?;
        let counts = &mut self.counts;
        counts.accounts += accounts.len() as u64;
        counts.slots += slot_count;
        counts.nodes += storage_nodes + writer.nodes;
        counts.rewritten += writer.accounts;
        if self.logged.elapsed() >= PROGRESS_EVERY {
            self.logged = Instant::now();
            let seconds = self.started.elapsed().as_secs_f64();
            tracing::info!(
                bucket = bucket + 1,
                buckets = BUCKETS,
                accounts = counts.accounts,
                slots = counts.slots,
                nodes = counts.nodes,
                accounts_per_sec = (counts.accounts as f64 / seconds) as u64,
                keys_per_sec = ((counts.nodes + counts.rewritten) as f64 / seconds) as u64,
                "building the state tries"
            );
        }
        Ok(())
    }

    /// The storage root of every account of the bucket, in order, and the nodes written: the
    /// storage tries built in parallel, each worker handing its full write batches to this
    /// thread, which writes them. (Every store write from one thread: an embedded store's page
    /// cache, allocated by the writing thread, then stays in one allocator arena instead of
    /// one per worker, which took 0.8 GiB more on a 1M-account genesis.)
    fn storage_roots(
        &self,
        accounts: &mut [BucketAccount],
    ) -> Result<(Vec<B256>, u64), RebuildError> {
        let keys = self.keys;
        let Some(store) = self.store else {
            return storage_tries(accounts, || NodeWriter::new(None, keys));
        };
        let (sender, batches) = crossbeam_channel::bounded(rayon::current_num_threads());
        std::thread::scope(|scope| {
            let building = scope.spawn(move || {
                storage_tries(accounts, || NodeWriter::to_channel(sender.clone(), keys))
            });
            // Until every worker's sender is gone; after a failed write the rest is dropped.
            let mut written = Ok(());
            for batch in batches {
                if written.is_ok() {
                    written = store.write(&batch);
                }
            }
            let built = building
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            written?;
            built
        })
    }

    /// Complete the account trie and write its last nodes: the state root and the counts.
    fn finish(&mut self) -> Result<(B256, BuildCounts), RebuildError> {
        let builder = std::mem::take(&mut self.builder);
        let (root, rest) = builder.finish();
        let mut writer = NodeWriter::new(self.store, self.keys);
        for (key, rlp) in &rest {
            writer.node(key, rlp)?;
        }
        writer.flush()?;
        self.counts.nodes += writer.nodes;
        Ok((root, self.counts))
    }
}

/// The storage root of every account of `accounts`, in order, and the nodes written: the
/// tries built on the rayon pool, each worker writing through a writer `writer` makes.
fn storage_tries<'a>(
    accounts: &mut [BucketAccount],
    writer: impl Fn() -> NodeWriter<'a> + Send + Sync,
) -> Result<(Vec<B256>, u64), RebuildError> {
    let (built, nodes) = accounts
        .par_iter_mut()
        .enumerate()
        .filter(|(_, account)| !account.slots.is_empty())
        .try_fold(
            || (writer(), Vec::new()),
            |(mut writer, mut roots), (index, account)| {
                roots.push((index, storage_trie(&mut writer, account)?));
                Ok::<_, RebuildError>((writer, roots))
            },
        )
        .map(|folded| {
            let (mut writer, roots) = folded?;
            writer.flush()?;
            Ok::<_, RebuildError>((roots, writer.nodes))
        })
        .try_reduce(
            || (Vec::new(), 0),
            |(mut all, nodes), (part, more)| {
                all.extend(part);
                Ok((all, nodes + more))
            },
        )?;
    let mut roots = vec![EMPTY_ROOT_HASH; accounts.len()];
    for (index, root) in built {
        roots[index] = root;
    }
    Ok((roots, nodes))
}

/// Build `account`'s storage trie, writing its nodes through `writer`; its root.
fn storage_trie(
    writer: &mut NodeWriter<'_>,
    account: &mut BucketAccount,
) -> Result<B256, RebuildError> {
    for (slot, _) in account.slots.iter_mut() {
        *slot = keccak256(*slot);
    }
    account.slots.sort_unstable_by_key(|(hashed, _)| *hashed);
    let address = account.spilled.address;
    if account.slots.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(RebuildError::DuplicateSlot { address });
    }
    let mut builder = StorageTrieBuilder::new(address);
    for (hashed, value) in &account.slots {
        builder.add_slot(*hashed, *value)?;
        for (key, rlp) in builder.drain_nodes() {
            writer.node(&key, &rlp)?;
        }
    }
    let (root, rest) = builder.finish();
    for (key, rlp) in &rest {
        writer.node(key, rlp)?;
    }
    Ok(root)
}

/// The account-trie leaf of an account with `storage_root`.
pub(super) fn leaf(json: &AccountJson, storage_root: B256) -> TrieAccount {
    TrieAccount::new(json.nonce, json.balance, storage_root, json.code_hash)
}

/// Where a [`NodeWriter`] sends its full batches.
enum Out<'a> {
    /// Written to the store.
    Store(&'a dyn Store),
    /// Handed to the thread that writes them.
    Channel(Sender<WriteBatch>),
    /// Nowhere: only counted.
    Nowhere,
}

/// Writes trie nodes and rewritten accounts in batches of [`WRITE_BATCH`]; without a store it
/// only counts them.
struct NodeWriter<'a> {
    out: Out<'a>,
    keys: &'a Keys,
    batch: WriteBatch,
    /// Nodes written so far.
    nodes: u64,
    /// Accounts rewritten so far.
    accounts: u64,
}

impl<'a> NodeWriter<'a> {
    fn new(store: Option<&'a dyn Store>, keys: &'a Keys) -> Self {
        Self::with_out(store.map_or(Out::Nowhere, Out::Store), keys)
    }

    fn to_channel(sender: Sender<WriteBatch>, keys: &'a Keys) -> Self {
        Self::with_out(Out::Channel(sender), keys)
    }

    fn with_out(out: Out<'a>, keys: &'a Keys) -> Self {
        Self {
            out,
            keys,
            batch: WriteBatch::new(),
            nodes: 0,
            accounts: 0,
        }
    }

    fn writes(&self) -> bool {
        !matches!(self.out, Out::Nowhere)
    }

    fn node(&mut self, key: &NodeKey, rlp: &Bytes) -> Result<(), StoreError> {
        self.nodes += 1;
        if self.writes() {
            self.batch.put(self.keys.trie_node(&node_id(key)), rlp);
        }
        self.flush_when_full()
    }

    fn account(&mut self, address: &Address, json: &AccountJson) -> Result<(), StoreError> {
        self.accounts += 1;
        if self.writes() {
            self.batch.put(self.keys.latest_account(address), json);
        }
        self.flush_when_full()
    }

    fn flush_when_full(&mut self) -> Result<(), StoreError> {
        if self.batch.len() >= WRITE_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        match &self.out {
            Out::Store(store) => store.write(&batch),
            // The receiving thread drains the channel until every sender is gone.
            Out::Channel(sender) => sender.send(batch).map_err(|_| StoreError::Backend {
                backend: "trie build",
                message: "the thread writing the trie nodes stopped".into(),
            }),
            Out::Nowhere => Ok(()),
        }
    }
}
