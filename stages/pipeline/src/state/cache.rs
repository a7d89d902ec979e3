//! LRU caches of accounts, storage slots and code between the overlay and the store, with hit
//! and miss counts.
//!
//! Entries come from store reads and from the execution state's own cache when that is started
//! again ([`super::StateLayers::keep_cached`]). A block's changes are not written here as it is
//! absorbed: until the execution state is started again, every key a block changed is in that
//! state's cache, so its reads never come down to these layers. Whenever an execution state is
//! discarded without handing its values over, these caches are emptied
//! ([`super::StateLayers::forget_cached`]), so a cached value is never older than the overlay's.
//! Storage of an account whose storage was wiped is invalidated by bumping the account's wipe
//! epoch instead of searching the cache.

use alloy_primitives::{map::HashMap, Address, B256, U256};
use lru::LruCache;
use revm::bytecode::Bytecode;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};

/// An account as cached: `None` when it does not exist.
pub type CachedAccount = Option<primitives::record::AccountState>;

/// Hits and misses of one cache.
#[derive(Debug, Default)]
pub struct HitCounter {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl HitCounter {
    fn record(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// (hits, misses) so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// Entry counts of the three caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    /// Accounts.
    pub accounts: usize,
    /// Storage slots.
    pub storage_slots: usize,
    /// Contract codes.
    pub code: usize,
}

impl Default for CacheSizes {
    fn default() -> Self {
        Self {
            accounts: 100_000,
            storage_slots: 1_000_000,
            code: 10_000,
        }
    }
}

/// The three LRU caches.
pub struct StateCache {
    accounts: LruCache<Address, CachedAccount>,
    /// Slot values tagged with the account's wipe epoch at the time they were cached.
    storage: LruCache<(Address, U256), (u64, U256)>,
    code: LruCache<B256, Bytecode>,
    /// Accounts whose storage was wiped, with how many times; absent means 0.
    wipe_epochs: HashMap<Address, u64>,
    /// Account cache hits and misses.
    pub account_hits: HitCounter,
    /// Storage cache hits and misses.
    pub storage_hits: HitCounter,
    /// Code cache hits and misses.
    pub code_hits: HitCounter,
}

fn capacity(entries: usize) -> NonZeroUsize {
    NonZeroUsize::new(entries).unwrap_or(NonZeroUsize::MIN)
}

impl StateCache {
    /// Empty caches of the given sizes.
    pub fn new(sizes: CacheSizes) -> Self {
        Self {
            accounts: LruCache::new(capacity(sizes.accounts)),
            storage: LruCache::new(capacity(sizes.storage_slots)),
            code: LruCache::new(capacity(sizes.code)),
            wipe_epochs: HashMap::default(),
            account_hits: HitCounter::default(),
            storage_hits: HitCounter::default(),
            code_hits: HitCounter::default(),
        }
    }

    fn epoch(&self, address: &Address) -> u64 {
        self.wipe_epochs.get(address).copied().unwrap_or_default()
    }

    /// A cached account.
    pub fn account(&mut self, address: &Address) -> Option<CachedAccount> {
        let found = self.accounts.get(address).copied();
        self.account_hits.record(found.is_some());
        found
    }

    /// A cached account without touching the LRU order or the hit counts (prewarming).
    pub fn peek_account(&self, address: &Address) -> Option<CachedAccount> {
        self.accounts.peek(address).copied()
    }

    /// A cached slot value without touching the LRU order or the hit counts (prewarming).
    pub fn peek_storage(&self, address: &Address, slot: &U256) -> Option<U256> {
        let epoch = self.epoch(address);
        self.storage
            .peek(&(*address, *slot))
            .filter(|(cached_epoch, _)| *cached_epoch == epoch)
            .map(|(_, value)| *value)
    }

    /// Cached code without touching the LRU order or the hit counts (prewarming).
    pub fn peek_code(&self, hash: &B256) -> Option<Bytecode> {
        self.code.peek(hash).cloned()
    }

    /// Cache an account.
    pub fn put_account(&mut self, address: Address, account: CachedAccount) {
        self.accounts.put(address, account);
    }

    /// A cached slot value, unless the account's storage was wiped since it was cached.
    pub fn storage(&mut self, address: &Address, slot: &U256) -> Option<U256> {
        let epoch = self.epoch(address);
        let found = self
            .storage
            .get(&(*address, *slot))
            .filter(|(cached_epoch, _)| *cached_epoch == epoch)
            .map(|(_, value)| *value);
        self.storage_hits.record(found.is_some());
        found
    }

    /// Cache a slot value.
    pub fn put_storage(&mut self, address: Address, slot: U256, value: U256) {
        let epoch = self.epoch(&address);
        self.storage.put((address, slot), (epoch, value));
    }

    /// Forget every cached slot of `address`.
    pub fn wipe_storage(&mut self, address: Address) {
        *self.wipe_epochs.entry(address).or_default() += 1;
    }

    /// Cached code.
    pub fn code(&mut self, hash: &B256) -> Option<Bytecode> {
        let found = self.code.get(hash).cloned();
        self.code_hits.record(found.is_some());
        found
    }

    /// Cache code.
    pub fn put_code(&mut self, hash: B256, code: Bytecode) {
        self.code.put(hash, code);
    }

    /// Drop everything (after an unwind, or when an execution state is discarded).
    pub fn clear(&mut self) {
        self.accounts.clear();
        self.storage.clear();
        self.code.clear();
        self.wipe_epochs.clear();
    }

    /// The caches' capacities.
    pub fn sizes(&self) -> CacheSizes {
        CacheSizes {
            accounts: self.accounts.cap().get(),
            storage_slots: self.storage.cap().get(),
            code: self.code.cap().get(),
        }
    }

    /// Accounts currently cached.
    pub fn accounts_cached(&self) -> usize {
        self.accounts.len()
    }
}
