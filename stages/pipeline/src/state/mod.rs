//! The state layers (DESIGN §4): reads go (1) the overlay of blocks executed but not yet
//! committed → (2) LRU caches → (3) the store. A block's changes join the overlay when
//! [`execution::ExecutionState`] has executed it and leave it with [`StateLayers::release`] once
//! the commit stage has applied them; [`StateLayers::restart`] starts a pipeline run. What
//! enters the caches and when they are emptied is private to this module and its
//! `execution` child.
//!
//! [`StateReader`] adapts the layers to revm's `DatabaseRef`; the layers also read the chain
//! below a block for the ommer rules (`ancestors`).

mod ancestors;
pub mod cache;
pub mod execution;

pub use evm::error::StateError;

use alloy_primitives::map::{HashMap, HashSet};
use alloy_primitives::{Address, Bytes, B256, U256};
use cache::{CacheSizes, StateCache};
use lru::LruCache;

use primitives::contract::{MalformedValue, EMPTY_CODE_HASH};
use primitives::keys::Keys;
use primitives::record::{AccountState, ExecutionRecord};
use primitives::store::Store;
use primitives::value::ContractRead;
use revm::bytecode::Bytecode;
use revm::database::CacheState;
use revm::state::AccountInfo;
use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

/// Block hashes kept for BLOCKHASH (it reaches 256 back).
const BLOCK_HASH_CACHE: usize = 512;

/// One in-flight block's changes, as the overlay holds them.
#[derive(Debug, Default)]
struct BlockChanges {
    number: u64,
    /// The layers' epoch when the block was absorbed (see [`StateLayers::epoch`]).
    epoch: u64,
    accounts: HashMap<Address, Option<AccountState>>,
    storage: HashMap<(Address, U256), U256>,
    wiped: HashSet<Address>,
    codes: HashMap<B256, Bytes>,
}

impl BlockChanges {
    fn from_record(record: &ExecutionRecord) -> Self {
        let mut changes = Self {
            number: record.number,
            ..Self::default()
        };
        for account in &record.accounts {
            changes.accounts.insert(account.address, account.post);
            if account.storage_wiped {
                changes.wiped.insert(account.address);
            }
        }
        for slot in &record.storage {
            changes.storage.insert((slot.address, slot.slot), slot.post);
        }
        changes.codes.extend(record.codes.iter().cloned());
        changes
    }
}

/// The overlay, the caches and the store, read as one state.
pub struct StateLayers {
    store: Arc<dyn Store>,
    keys: Keys,
    cache: Mutex<StateCache>,
    /// In-flight blocks, oldest first.
    overlay: RwLock<VecDeque<BlockChanges>>,
    block_hashes: Mutex<LruCache<u64, B256>>,
    /// Counts the execution states the layers have served ([`Self::new_epoch`] as each
    /// starts). While one runs, every key changed by a block absorbed since it started is in
    /// its own cache, so a read that comes down here is never of such a key, and those blocks
    /// need not be searched.
    epoch: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StateLayers {
    /// Layers over `store` with caches of the given sizes.
    pub fn new(store: Arc<dyn Store>, keys: Keys, sizes: CacheSizes) -> Self {
        Self {
            store,
            keys,
            cache: Mutex::new(StateCache::new(sizes)),
            overlay: RwLock::new(VecDeque::new()),
            epoch: AtomicU64::new(0),
            block_hashes: Mutex::new(LruCache::new(
                NonZeroUsize::new(BLOCK_HASH_CACHE).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// The store below the layers.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The capacities of the caches.
    pub fn cache_sizes(&self) -> CacheSizes {
        lock(&self.cache).sizes()
    }

    /// Run `f` on the caches (for metrics).
    pub fn with_cache<T>(&self, f: impl FnOnce(&StateCache) -> T) -> T {
        f(&lock(&self.cache))
    }

    fn overlay(&self) -> std::sync::RwLockReadGuard<'_, VecDeque<BlockChanges>> {
        self.overlay.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new execution state starts over these layers.
    fn new_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Run `f` over the in-flight blocks absorbed before the current epoch, oldest first.
    fn with_earlier_epochs<T>(
        &self,
        f: impl FnOnce(std::collections::vec_deque::Iter<'_, BlockChanges>) -> T,
    ) -> T {
        let epoch = self.epoch.load(Ordering::Relaxed);
        let overlay = self.overlay();
        let earlier = overlay.partition_point(|block| block.epoch < epoch);
        f(overlay.range(..earlier))
    }

    /// The account at the head of the layers.
    pub fn account(&self, address: &Address) -> Result<Option<AccountState>, StateError> {
        // A cached value is the newest (see `cache`); what the caches lack is in the overlay
        // or the store.
        if let Some(found) = lock(&self.cache).account(address) {
            return Ok(found);
        }
        if let Some(found) = self.with_earlier_epochs(|blocks| {
            blocks.rev().find_map(|b| b.accounts.get(address).copied())
        }) {
            return Ok(found);
        }
        let account = self
            .store
            .read(&self.keys.latest_account(address))?
            .map(|json| AccountState {
                balance: json.balance,
                nonce: json.nonce,
                code_hash: json.code_hash,
            });
        lock(&self.cache).put_account(*address, account);
        Ok(account)
    }

    /// A storage slot at the head of the layers (zero when unset).
    pub fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        if let Some(value) = lock(&self.cache).storage(address, slot) {
            return Ok(value);
        }
        let in_overlay = self.with_earlier_epochs(|blocks| {
            blocks.rev().find_map(|block| {
                let wiped = block.wiped.contains(address).then_some(U256::ZERO);
                block.storage.get(&(*address, *slot)).copied().or(wiped)
            })
        });
        if let Some(value) = in_overlay {
            return Ok(value);
        }
        let value = self
            .store
            .read(&self.keys.latest_storage(address, &B256::from(*slot)))?
            .unwrap_or_default();
        lock(&self.cache).put_storage(*address, *slot, value);
        Ok(value)
    }

    /// Every non-zero slot of `address` at the head of the layers (for a self-destruct, whose
    /// record must carry the pre-values of all the storage it wipes).
    fn existing_slots(&self, address: &Address) -> Result<Vec<(U256, U256)>, StateError> {
        let found = self
            .store
            .scan_prefix(&self.keys.latest_storage_prefix(address))?;
        let slot_keys = found
            .iter()
            .map(|key| {
                self.keys
                    .parse_latest_storage_slot(address, key)
                    .ok_or_else(|| MalformedValue::new(key, "key does not end in a 32-byte slot"))
            })
            .collect::<Result<Vec<B256>, _>>()?;
        let typed: Vec<_> = slot_keys
            .iter()
            .map(|slot| self.keys.latest_storage(address, slot))
            .collect();
        let values = self.store.read_many(&typed)?;
        let mut slots: BTreeMap<U256, U256> = slot_keys
            .into_iter()
            .zip(values)
            .filter_map(|(slot, value)| Some((slot.into(), value?)))
            .collect();
        for block in self.overlay().iter() {
            if block.wiped.contains(address) {
                slots.clear();
            }
            for ((owner, slot), value) in &block.storage {
                if owner == address {
                    slots.insert(*slot, *value);
                }
            }
        }
        Ok(slots
            .into_iter()
            .filter(|(_, value)| !value.is_zero())
            .collect())
    }

    /// The root of the whole state at the head of the layers with `pending` (a block's changes
    /// so far) on top. It reads every account and slot in the store, so it is only for small
    /// states: receipts before Byzantium commit to this root after each transaction.
    fn state_root_with(&self, pending: &CacheState) -> Result<B256, StateError> {
        let mut accounts: BTreeMap<Address, (AccountState, BTreeMap<U256, U256>)> = BTreeMap::new();
        for key in self.store.scan_prefix(&self.keys.latest_account_prefix())? {
            let address = self
                .keys
                .parse_latest_account(&key)
                .ok_or_else(|| MalformedValue::new(&key, "key does not end in an address"))?;
            if let Some(account) = self.account(&address)? {
                let storage = self.existing_slots(&address)?.into_iter().collect();
                accounts.insert(address, (account, storage));
            }
        }
        for (address, cached) in &pending.accounts {
            let Some(plain) = &cached.account else {
                accounts.remove(address);
                continue;
            };
            let entry = accounts.entry(*address).or_default();
            entry.0 = account_state(&plain.info);
            if cached.status.was_destroyed() {
                entry.1.clear();
            }
            for (slot, value) in &plain.storage {
                if value.is_zero() {
                    entry.1.remove(slot);
                } else {
                    entry.1.insert(*slot, *value);
                }
            }
        }
        Ok(alloy_trie::root::state_root_unhashed(
            accounts.into_iter().map(|(address, (account, storage))| {
                let trie_account = alloy_trie::TrieAccount {
                    nonce: account.nonce,
                    balance: account.balance,
                    storage_root: alloy_trie::root::storage_root_unhashed(
                        storage
                            .into_iter()
                            .map(|(slot, value)| (B256::from(slot), value)),
                    ),
                    code_hash: account.code_hash,
                };
                (address, trie_account)
            }),
        ))
    }

    /// Code by hash.
    pub fn code(&self, hash: &B256) -> Result<Bytecode, StateError> {
        if *hash == EMPTY_CODE_HASH || hash.is_zero() {
            return Ok(Bytecode::default());
        }
        if let Some(code) = lock(&self.cache).code(hash) {
            return Ok(code);
        }
        if let Some(code) = self.overlay().iter().rev().find_map(|b| b.codes.get(hash)) {
            return Ok(Bytecode::new_raw(code.clone()));
        }
        let key = self.keys.code(hash);
        let bytes = self
            .store
            .read(&key)?
            .ok_or_else(|| StateError::MissingCode {
                hash: *hash,
                key: key.into_string(),
            })?;
        let code = Bytecode::new_raw(bytes);
        lock(&self.cache).put_code(*hash, code.clone());
        Ok(code)
    }

    /// The hash of block `number`, from its stored header.
    pub fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        if let Some(hash) = lock(&self.block_hashes).get(&number) {
            return Ok(*hash);
        }
        let key = self.keys.header(number);
        let hash = self
            .store
            .read(&key)?
            .ok_or_else(|| StateError::MissingHeader {
                number,
                key: key.into_string(),
            })?
            .hash();
        lock(&self.block_hashes).put(number, hash);
        Ok(hash)
    }

    /// Remember a block hash (known from the block being executed), sparing a store read.
    fn note_block_hash(&self, number: u64, hash: B256) {
        lock(&self.block_hashes).put(number, hash);
    }

    /// Take a freshly executed block's changes into the overlay. The cached accounts and slots
    /// are left as they are: the execution state that produced the block holds its changes, and
    /// hands them over ([`Self::keep_cached`]) or empties the caches ([`Self::forget_cached`])
    /// before anything reads them here. Wiped storage is invalidated at once.
    fn absorb(&self, record: &ExecutionRecord) {
        let mut changes = BlockChanges::from_record(record);
        changes.epoch = self.epoch.load(Ordering::Relaxed);
        {
            let mut cache = lock(&self.cache);
            for address in &changes.wiped {
                cache.wipe_storage(*address);
            }
            for (hash, code) in &changes.codes {
                cache.put_code(*hash, Bytecode::new_raw(code.clone()));
            }
        }
        self.note_block_hash(record.number, record.hash);
        self.overlay
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(changes);
    }

    /// Drop block `number` (and anything older) from the overlay: the store now has it.
    pub fn release(&self, number: u64) {
        let mut overlay = self.overlay.write().unwrap_or_else(PoisonError::into_inner);
        while overlay.front().is_some_and(|b| b.number <= number) {
            overlay.pop_front();
        }
    }

    /// Cache the accounts and slots an execution state ends with, all of them absorbed blocks'
    /// values: the newest there are, so they replace whatever the caches hold.
    fn keep_cached(&self, state: &CacheState) {
        let mut cache = lock(&self.cache);
        for (address, cached) in &state.accounts {
            let Some(plain) = &cached.account else {
                cache.put_account(*address, None);
                continue;
            };
            cache.put_account(*address, Some(account_state(&plain.info)));
            for (slot, value) in &plain.storage {
                cache.put_storage(*address, *slot, *value);
            }
        }
    }

    /// Empty the caches of accounts, slots and code: an execution state whose changes they
    /// never saw has been discarded.
    fn forget_cached(&self) {
        lock(&self.cache).clear();
    }

    /// Start over (a pipeline run begins): forget every in-flight change and cached value,
    /// then take `pending` (blocks executed but not yet committed, oldest first) into the
    /// overlay.
    pub fn restart(&self, pending: &[Arc<ExecutionRecord>]) {
        self.overlay
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        lock(&self.cache).clear();
        lock(&self.block_hashes).clear();
        for record in pending {
            self.absorb(record);
        }
    }

    /// revm's view of these layers.
    fn reader(&self) -> StateReader<'_> {
        StateReader { layers: self }
    }
}

/// The layers as a revm database.
#[derive(Clone, Copy)]
pub struct StateReader<'a> {
    layers: &'a StateLayers,
}

impl std::fmt::Debug for StateReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateReader")
    }
}

impl revm::DatabaseRef for StateReader<'_> {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        Ok(self.layers.account(&address)?.map(|account| AccountInfo {
            balance: account.balance,
            nonce: account.nonce,
            code_hash: account.code_hash,
            code: None,
            ..AccountInfo::default()
        }))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        self.layers.code(&code_hash)
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StateError> {
        self.layers.storage(&address, &index)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        self.layers.block_hash(number)
    }
}

/// An account's fields as the state keeps them, from revm's account info.
pub fn account_state(info: &AccountInfo) -> AccountState {
    AccountState {
        balance: info.balance,
        nonce: info.nonce,
        code_hash: info.code_hash,
    }
}
