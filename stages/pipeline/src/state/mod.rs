//! The state layers (DESIGN §4): execution's reads go (1) the LRU caches, whose values are
//! never older than the overlay's → (2) the overlay of blocks executed but not yet committed
//! (`overlay`: each key's newest value) → (3) the store. A block's changes join the overlay when
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
mod overlay;
pub mod prewarm;

pub use evm::error::StateError;

use alloy_primitives::{Address, B256, U256};
use cache::{CacheSizes, StateCache};
use lru::LruCache;

use overlay::{BlockChanges, Overlay};
use prewarm::BlockKeys;
use primitives::contract::{AccountJson, MalformedValue, EMPTY_CODE_HASH};
use primitives::keys::Keys;
use primitives::record::{AccountState, ExecutionRecord};
use primitives::store::Store;
use primitives::value::ContractRead;
use revm::bytecode::Bytecode;
use revm::database::CacheState;
use revm::state::AccountInfo;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

/// Block hashes kept for BLOCKHASH (it reaches 256 back).
const BLOCK_HASH_CACHE: usize = 512;

/// The overlay, the caches and the store, read as one state.
pub struct StateLayers {
    store: Arc<dyn Store>,
    keys: Keys,
    cache: Mutex<StateCache>,
    /// In-flight blocks. An execution state's reads come down to the layers only for keys
    /// no block it executed itself has changed (those are in its own cache), so the overlay's
    /// newest value of a key is the one such a read must see.
    overlay: RwLock<Overlay>,
    block_hashes: Mutex<LruCache<u64, B256>>,
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
            overlay: RwLock::new(Overlay::default()),
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

    fn overlay(&self) -> std::sync::RwLockReadGuard<'_, Overlay> {
        self.overlay.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn overlay_mut(&self) -> std::sync::RwLockWriteGuard<'_, Overlay> {
        self.overlay.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest value of `address` the caches or any in-flight block hold, without reading
    /// the store (prewarming's view).
    fn peek_account(&self, address: &Address) -> Option<Option<AccountState>> {
        if let Some(found) = self.overlay().account(address) {
            return Some(found);
        }
        lock(&self.cache).peek_account(address)
    }

    /// The newest value of a slot the caches or any in-flight block hold, without reading the
    /// store (prewarming's view).
    fn peek_storage(&self, address: &Address, slot: &U256) -> Option<U256> {
        let in_overlay = self.overlay().storage(address, slot);
        in_overlay.or_else(|| lock(&self.cache).peek_storage(address, slot))
    }

    /// Code the caches or an in-flight block hold, without reading the store.
    fn peek_code(&self, hash: &B256) -> Option<Bytecode> {
        if let Some(code) = self.overlay().code(hash) {
            return Some(Bytecode::new_raw(code.clone()));
        }
        lock(&self.cache).peek_code(hash)
    }

    /// Accounts and slots straight from the store, in one batched read (absent accounts
    /// `None`, absent slots zero); nothing is cached.
    fn read_accounts_and_slots(
        &self,
        accounts: &[Address],
        slots: &[(Address, U256)],
    ) -> Result<(Vec<Option<AccountState>>, Vec<U256>), StateError> {
        if accounts.is_empty() && slots.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let account_keys: Vec<_> = accounts
            .iter()
            .map(|a| self.keys.latest_account(a))
            .collect();
        let slot_keys: Vec<_> = slots
            .iter()
            .map(|(a, s)| self.keys.latest_storage(a, &B256::from(*s)))
            .collect();
        let texts: Vec<String> = account_keys
            .iter()
            .map(|k| k.as_str().to_string())
            .chain(slot_keys.iter().map(|k| k.as_str().to_string()))
            .collect();
        let values = self.store.multi_get(&texts)?;
        let (account_values, slot_values) = values.split_at(accounts.len());
        let found_accounts = account_keys
            .iter()
            .zip(account_values)
            .map(|(key, bytes)| {
                bytes
                    .as_ref()
                    .map(|b| key.decode(b).map(|json| account_state_of(&json)))
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let found_slots = slot_keys
            .iter()
            .zip(slot_values)
            .map(|(key, bytes)| bytes.as_ref().map_or(Ok(U256::ZERO), |b| key.decode(b)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((found_accounts, found_slots))
    }

    /// Code by hash straight from the store, in one batched read; a code the store lacks is an
    /// error (an account names it).
    fn read_codes(&self, hashes: &[B256]) -> Result<Vec<Bytecode>, StateError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<_> = hashes.iter().map(|h| self.keys.code(h)).collect();
        let found = self.store.read_many(&keys)?;
        hashes
            .iter()
            .zip(keys)
            .zip(found)
            .map(|((hash, key), code)| {
                code.map(Bytecode::new_raw).ok_or(StateError::MissingCode {
                    hash: *hash,
                    key: key.into_string(),
                })
            })
            .collect()
    }

    /// Load into the caches, in at most two batched reads, the keys of `wanted` that executing
    /// the next block over `pending` (the execution state's own cache) would read from the
    /// store: those neither `pending`, the caches nor an earlier in-flight block hold. Called
    /// by the execution thread between blocks, so what it caches is what a read at that moment
    /// would have returned. Returns the batched reads made.
    pub fn prefetch(&self, wanted: &BlockKeys, pending: &CacheState) -> Result<u32, StateError> {
        let needs_read = |address: &Address| {
            !pending.accounts.contains_key(address)
                && lock(&self.cache).peek_account(address).is_none()
                && self.overlay().account(address).is_none()
        };
        let accounts: Vec<Address> = wanted
            .accounts
            .iter()
            .filter(|a| needs_read(a))
            .copied()
            .collect();
        let slots: Vec<(Address, U256)> = wanted
            .slots
            .iter()
            .filter(|(address, slot)| self.slot_needs_read(address, slot, pending))
            .copied()
            .collect();
        let mut reads = 0;
        let (found_accounts, found_slots) = self.read_accounts_and_slots(&accounts, &slots)?;
        reads += u32::from(!accounts.is_empty() || !slots.is_empty());
        let mut codes: Vec<B256> = wanted.codes.iter().copied().collect();
        {
            let mut cache = lock(&self.cache);
            for (address, account) in accounts.iter().zip(&found_accounts) {
                codes.extend(account.map(|a| a.code_hash));
                cache.put_account(*address, *account);
            }
            for ((address, slot), value) in slots.iter().zip(found_slots) {
                cache.put_storage(*address, *slot, value);
            }
        }
        codes.retain(|hash| {
            *hash != EMPTY_CODE_HASH
                && !hash.is_zero()
                && !pending.contracts.contains_key(hash)
                && self.peek_code(hash).is_none()
        });
        codes.sort_unstable();
        codes.dedup();
        let found_codes = self.read_codes(&codes)?;
        reads += u32::from(!codes.is_empty());
        let mut cache = lock(&self.cache);
        for (hash, code) in codes.into_iter().zip(found_codes) {
            cache.put_code(hash, code);
        }
        Ok(reads)
    }

    /// True when reading slot `slot` of `address` next would come down to the store.
    fn slot_needs_read(&self, address: &Address, slot: &U256, pending: &CacheState) -> bool {
        if let Some(cached) = pending.accounts.get(address) {
            // The execution state knows this account's storage when it created or destroyed it
            // since it started; otherwise it reads slots it lacks from the layers.
            let known = cached.status.is_storage_known()
                || cached
                    .account
                    .as_ref()
                    .is_some_and(|account| account.storage.contains_key(slot));
            if known {
                return false;
            }
        }
        if lock(&self.cache).peek_storage(address, slot).is_some() {
            return false;
        }
        self.overlay().storage(address, slot).is_none()
    }

    /// The account at the head of the layers.
    pub fn account(&self, address: &Address) -> Result<Option<AccountState>, StateError> {
        // A cached value is the newest (see `cache`); what the caches lack is in the overlay
        // or the store.
        if let Some(found) = lock(&self.cache).account(address) {
            return Ok(found);
        }
        if let Some(found) = self.overlay().account(address) {
            return Ok(found);
        }
        let account = self
            .store
            .read(&self.keys.latest_account(address))?
            .map(|json| account_state_of(&json));
        lock(&self.cache).put_account(*address, account);
        Ok(account)
    }

    /// A storage slot at the head of the layers (zero when unset).
    pub fn storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        if let Some(value) = lock(&self.cache).storage(address, slot) {
            return Ok(value);
        }
        if let Some(value) = self.overlay().storage(address, slot) {
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
        for block in self.overlay().blocks() {
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
        let in_overlay = self.overlay().code(hash).cloned();
        if let Some(code) = in_overlay {
            return Ok(Bytecode::new_raw(code));
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
        let changes = BlockChanges::from_record(record);
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
        self.overlay_mut().push(changes);
    }

    /// Drop block `number` (and anything older) from the overlay: the store now has it.
    pub fn release(&self, number: u64) {
        self.overlay_mut().pop_while(|block| block.number <= number);
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
        self.overlay_mut().clear();
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

/// An account's fields from its stored JSON.
fn account_state_of(json: &AccountJson) -> AccountState {
    AccountState {
        balance: json.balance,
        nonce: json.nonce,
        code_hash: json.code_hash,
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
