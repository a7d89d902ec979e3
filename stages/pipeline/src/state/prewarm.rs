//! Prewarming (DESIGN §2, §4): what a block will read, learned before it executes, so that the
//! execution thread loads it in one or two batched reads instead of one round trip per key.
//!
//! A spare thread takes each block waiting for execution and runs its transactions
//! speculatively (nonce check off) against the newest view of the state: the
//! state layers' caches and overlay, and values it reads from the store for itself. Its misses
//! are loaded in batches (one round trip per pass) and the block is run again, so reads that
//! depend on loaded values are found too. What it learns is a [`BlockKeys`]: nothing it read
//! is ever used for execution. The execution thread then loads those keys through the layers
//! ([`super::StateLayers::prefetch`]), in the order the layers read, so a prefetched value is
//! exactly what a read at that moment would have returned.

use super::StateLayers;
use alloy_consensus::{Header, Transaction};
use alloy_eips::eip2930::AccessList;
use alloy_evm::{Evm, EvmFactory};
use alloy_primitives::map::{HashMap, HashSet};
use alloy_primitives::{Address, B256, U256};
use evm::chain::ChainSpec;
use evm::error::StateError;
use evm::execute::ethereum_executor;
use primitives::block::ChainBlock;
use primitives::contract::EMPTY_CODE_HASH;
use primitives::record::AccountState;
use revm::bytecode::Bytecode;
use revm::database::State;
use revm::state::AccountInfo;
use revm::DatabaseRef;
use std::cell::RefCell;
use std::sync::Arc;

/// EIP-4788's ring of beacon roots (`HISTORY_BUFFER_LENGTH`).
const BEACON_ROOTS_RING: u64 = 8191;

/// Speculative passes over a block at most (each after one batched read of its misses).
const PASSES: usize = 3;

/// How the prewarmer learns what a block will read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrewarmMode {
    /// Run the block speculatively (see [`learn_keys`]): every key it reads, found at the
    /// cost of running it up to [`PASSES`] times; pays where a read is a network round trip.
    Speculate,
    /// Only the keys known without running it ([`BlockKeys::known`]): for a store whose
    /// reads cost no round trip, where speculation would only take CPU from the other stages.
    KnownKeys,
}

impl PrewarmMode {
    /// What `block` (with its `senders`) is expected to read, learned this way.
    pub fn learn(
        self,
        spec: &Arc<ChainSpec>,
        layers: &StateLayers,
        block: &ChainBlock,
        senders: &[Address],
    ) -> BlockKeys {
        match self {
            PrewarmMode::Speculate => learn_keys(spec, layers, block, senders),
            PrewarmMode::KnownKeys => BlockKeys::known(block, senders),
        }
    }
}

/// The keys a block reads: accounts, storage slots and code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockKeys {
    /// Accounts.
    pub accounts: HashSet<Address>,
    /// Storage slots.
    pub slots: HashSet<(Address, U256)>,
    /// Code by hash.
    pub codes: HashSet<B256>,
}

impl BlockKeys {
    /// The keys known without running the block: senders, recipients, access lists, the
    /// coinbase, withdrawal recipients and the system contracts the block-level rules touch.
    pub fn known(block: &ChainBlock, senders: &[Address]) -> Self {
        let mut keys = Self::default();
        keys.accounts.extend(senders.iter().copied());
        keys.accounts.insert(block.header.beneficiary);
        for tx in &block.body.transactions {
            if let Some(to) = tx.to() {
                keys.accounts.insert(to);
            }
            if let Some(list) = tx.access_list() {
                keys.add_access_list(list);
            }
        }
        for withdrawal in block.body.withdrawals.iter().flatten() {
            keys.accounts.insert(withdrawal.address);
        }
        keys.add_system_contracts(&block.header);
        keys
    }

    fn add_access_list(&mut self, list: &AccessList) {
        for item in list.iter() {
            self.accounts.insert(item.address);
            for slot in &item.storage_keys {
                self.slots.insert((item.address, (*slot).into()));
            }
        }
    }

    /// EIP-4788's and EIP-2935's contracts and the slots the block's system calls write
    /// (on chains without them, reads of absent accounts: cheap and cached as absent).
    fn add_system_contracts(&mut self, header: &Header) {
        use alloy_eips::{eip2935, eip4788, eip7002, eip7251};
        for address in [
            eip4788::BEACON_ROOTS_ADDRESS,
            eip2935::HISTORY_STORAGE_ADDRESS,
            eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
            eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
        ] {
            self.accounts.insert(address);
        }
        let ring = BEACON_ROOTS_RING;
        let timestamp_slot = U256::from(header.timestamp % ring);
        let root_slot = timestamp_slot + U256::from(ring);
        for slot in [timestamp_slot, root_slot] {
            self.slots.insert((eip4788::BEACON_ROOTS_ADDRESS, slot));
        }
        let parent = header.number.saturating_sub(1) % eip2935::HISTORY_SERVE_WINDOW as u64;
        self.slots
            .insert((eip2935::HISTORY_STORAGE_ADDRESS, U256::from(parent)));
    }

    /// Add every key of `other`.
    pub fn extend(&mut self, other: &BlockKeys) {
        self.accounts.extend(other.accounts.iter().copied());
        self.slots.extend(other.slots.iter().copied());
        self.codes.extend(other.codes.iter().copied());
    }

    /// True when there is nothing.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.slots.is_empty() && self.codes.is_empty()
    }
}

/// Values the speculation loaded for itself (never used for execution).
#[derive(Debug, Default)]
struct Loaded {
    accounts: HashMap<Address, Option<AccountState>>,
    slots: HashMap<(Address, U256), U256>,
    codes: HashMap<B256, Bytecode>,
}

/// The state as a speculation sees it: the layers' caches and overlay, then its own loads; a
/// key in none of them is recorded as missing and reads as absent.
struct SpeculativeView<'a> {
    layers: &'a StateLayers,
    loaded: &'a Loaded,
    /// Every key read, found or not.
    read: RefCell<BlockKeys>,
    /// The keys read that neither the layers nor the loads had.
    missing: RefCell<BlockKeys>,
}

impl std::fmt::Debug for SpeculativeView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpeculativeView")
    }
}

impl DatabaseRef for SpeculativeView<'_> {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        self.read.borrow_mut().accounts.insert(address);
        let found = self
            .layers
            .peek_account(&address)
            .or_else(|| self.loaded.accounts.get(&address).copied());
        let Some(account) = found else {
            self.missing.borrow_mut().accounts.insert(address);
            return Ok(None);
        };
        Ok(account.map(|account| AccountInfo {
            balance: account.balance,
            nonce: account.nonce,
            code_hash: account.code_hash,
            code: None,
            ..AccountInfo::default()
        }))
    }

    fn code_by_hash_ref(&self, hash: B256) -> Result<Bytecode, StateError> {
        if hash == EMPTY_CODE_HASH || hash.is_zero() {
            return Ok(Bytecode::default());
        }
        self.read.borrow_mut().codes.insert(hash);
        let found = self
            .layers
            .peek_code(&hash)
            .or_else(|| self.loaded.codes.get(&hash).cloned());
        Ok(found.unwrap_or_else(|| {
            self.missing.borrow_mut().codes.insert(hash);
            Bytecode::default()
        }))
    }

    fn storage_ref(&self, address: Address, slot: U256) -> Result<U256, StateError> {
        self.read.borrow_mut().slots.insert((address, slot));
        let found = self
            .layers
            .peek_storage(&address, &slot)
            .or_else(|| self.loaded.slots.get(&(address, slot)).copied());
        Ok(found.unwrap_or_else(|| {
            self.missing.borrow_mut().slots.insert((address, slot));
            U256::ZERO
        }))
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        // Speculation does not need real hashes; a read of the store would cost a round trip.
        Ok(B256::with_last_byte((number & 0xff) as u8))
    }
}

/// Learn what `block` (child of `parent`) reads by running it speculatively over `layers`:
/// the known keys first, then up to [`PASSES`] runs, each after one batched read of what the
/// last one missed. Store failures end the learning early with what is known (the execution
/// thread then reads the rest itself).
pub fn learn_keys(
    spec: &Arc<ChainSpec>,
    layers: &StateLayers,
    block: &ChainBlock,
    senders: &[Address],
) -> BlockKeys {
    let mut keys = BlockKeys::known(block, senders);
    let mut loaded = Loaded::default();
    let mut to_load = keys.clone();
    for _ in 0..PASSES {
        if load(layers, &to_load, &mut loaded).is_err() {
            break;
        }
        let view = SpeculativeView {
            layers,
            loaded: &loaded,
            read: RefCell::new(BlockKeys::default()),
            missing: RefCell::new(BlockKeys::default()),
        };
        run_speculatively(spec, &view, block, senders);
        keys.extend(&view.read.borrow());
        to_load = view.missing.into_inner();
        if to_load.is_empty() {
            break;
        }
    }
    keys
}

/// Run every transaction of `block` over `view`, each on the state the ones before it left;
/// results and failures are of no interest.
fn run_speculatively(
    spec: &Arc<ChainSpec>,
    view: &SpeculativeView<'_>,
    block: &ChainBlock,
    senders: &[Address],
) {
    let (mut env, factory) = ethereum_executor(spec, &block.header);
    // The view may be a few blocks behind: a nonce that does not fit yet must not stop the
    // run (balances, fees and gas limits come from real blocks and fit as they are).
    env.cfg_env.disable_nonce_check = true;
    let mut state = State::builder().with_database_ref(view).build();
    let mut evm = factory.evm_factory().create_evm(&mut state, env);
    for (tx, sender) in block.body.transactions.iter().zip(senders) {
        let recovered = alloy_consensus::transaction::Recovered::new_unchecked(tx, *sender);
        let _ = evm.transact_commit(recovered);
    }
}

/// Read for the speculation the keys of `wanted` it has not loaded yet: accounts and slots in
/// one batch, then the code of the accounts loaded, in a second.
fn load(layers: &StateLayers, wanted: &BlockKeys, loaded: &mut Loaded) -> Result<(), StateError> {
    let accounts: Vec<Address> = wanted
        .accounts
        .iter()
        .filter(|a| !loaded.accounts.contains_key(*a))
        .copied()
        .collect();
    let slots: Vec<(Address, U256)> = wanted
        .slots
        .iter()
        .filter(|s| !loaded.slots.contains_key(*s))
        .copied()
        .collect();
    let (found_accounts, found_slots) = layers.read_accounts_and_slots(&accounts, &slots)?;
    let mut codes: Vec<B256> = wanted.codes.iter().copied().collect();
    for (address, account) in accounts.into_iter().zip(found_accounts) {
        codes.extend(account.map(|a| a.code_hash));
        loaded.accounts.insert(address, account);
    }
    loaded.slots.extend(slots.into_iter().zip(found_slots));
    codes.retain(|hash| {
        *hash != EMPTY_CODE_HASH
            && !loaded.codes.contains_key(hash)
            && layers.peek_code(hash).is_none()
    });
    codes.sort_unstable();
    codes.dedup();
    let found = layers.read_codes(&codes)?;
    loaded.codes.extend(codes.into_iter().zip(found));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::execution::ExecutionState;
    use crate::test_utils::SyncedStore;
    use primitives::record::ExecutionRecord;

    /// Blocks executed in each run.
    const BLOCKS: u64 = 60;
    /// How far ahead of execution the speculation runs (its view that much older).
    const AHEAD: u64 = 5;

    /// Execute blocks 1..=BLOCKS on `store` block by block; before each, `prefetch` may load
    /// keys through the execution state. Returns the records.
    fn execute(
        store: &SyncedStore,
        mut prefetch: impl FnMut(&SyncedStore, &ExecutionState<'_>, u64),
    ) -> Vec<ExecutionRecord> {
        let layers = &store.shared.layers;
        let mut state = ExecutionState::new(layers, layers.cache_sizes());
        let blocks = store.recovered(1, BLOCKS);
        let genesis = store.keys().header(0);
        let mut parent = primitives::value::ContractRead::read(store.memory.as_ref(), &genesis)
            .expect("read the genesis header")
            .expect("the genesis header")
            .into_inner();
        let mut records = Vec::new();
        for (block, senders) in blocks {
            prefetch(store, &state, block.number());
            let record = state
                .execute(&store.shared.spec, &block, &senders, &parent)
                .unwrap_or_else(|e| panic!("{e}"));
            parent = block.header;
            records.push(record);
        }
        records
    }

    #[test]
    fn keys_learned_on_a_stale_view_never_change_what_blocks_produce() {
        let plain = SyncedStore::new(BLOCKS);
        let expected = execute(&plain, |_, _, _| {});

        let warmed = SyncedStore::new(BLOCKS);
        let blocks = warmed.recovered(1, BLOCKS);
        let mut learned: Vec<Option<BlockKeys>> = vec![None; BLOCKS as usize + 1];
        let mut reads = 0;
        let records = execute(&warmed, |store, state, number| {
            // Learn the keys of a block AHEAD blocks before it runs: the view is that stale
            // (its senders' nonces and balances, the tokens' slots are older).
            let ahead = number + AHEAD;
            if let Some((block, senders)) = blocks.get(ahead as usize - 1) {
                let keys = learn_keys(&store.shared.spec, &store.shared.layers, block, senders);
                learned[ahead as usize] = Some(keys);
            }
            let keys = learned[number as usize].take().unwrap_or_else(|| {
                let (block, senders) = &blocks[number as usize - 1];
                learn_keys(&store.shared.spec, &store.shared.layers, block, senders)
            });
            reads += state.prefetch(&keys).expect("prefetch");
        });
        assert_eq!(records, expected, "the same records, receipts and changes");
        assert!(reads > 0, "the prefetches read something");
    }

    #[test]
    fn known_keys_name_senders_recipients_coinbase_and_system_contracts() {
        let store = SyncedStore::new(3);
        let (block, senders) = store.recovered(3, 3).remove(0);
        let keys = BlockKeys::known(&block, &senders);
        for sender in &senders {
            assert!(keys.accounts.contains(sender), "sender {sender}");
        }
        for tx in &block.body.transactions {
            if let Some(to) = tx.to() {
                assert!(keys.accounts.contains(&to), "recipient {to}");
            }
        }
        assert!(keys.accounts.contains(&block.header.beneficiary));
        assert!(keys
            .accounts
            .contains(&alloy_eips::eip4788::BEACON_ROOTS_ADDRESS));
    }
}
