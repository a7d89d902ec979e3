//! revm's state over the layers, kept by the execution stage from one block to the next, and
//! the conversion of a block's revm bundle into the changes of its execution record.

use super::cache::CacheSizes;
use super::{StateLayers, StateReader};
use alloy_consensus::Header;
use alloy_primitives::{Address, U256};
use evm::chain::ChainSpec;
use evm::error::{BlockError, StateError};
use evm::execute::run_block;
use primitives::block::ChainBlock;
use primitives::record::{AccountChange, ExecutionRecord, StorageChange};
use revm::database::states::bundle_state::BundleRetention;
use revm::database::{BundleState, CacheState, State};
use revm::database_interface::WrapDatabaseRef;
use std::sync::Arc;

/// revm's state over the layers, kept from one block to the next by the execution stage so
/// that what a block read or wrote is at hand for the next without a trip through the layers
/// (as a node keeps its state between blocks). It is only ever the head state: it starts
/// empty, every block that fails throws it away, and it is started again once it holds more
/// than the layers' cache sizes, so its memory stays bounded. The layers' caches learn the
/// blocks' changes from it, when it starts again; dropping or throwing it away empties them.
pub struct ExecutionState<'a> {
    layers: &'a StateLayers,
    limits: CacheSizes,
    state: State<WrapDatabaseRef<StateReader<'a>>>,
}

impl<'a> ExecutionState<'a> {
    /// An empty state over `layers`, started again when it holds more than `limits`.
    pub fn new(layers: &'a StateLayers, limits: CacheSizes) -> Self {
        Self {
            layers,
            limits,
            state: Self::fresh(layers),
        }
    }

    fn fresh(layers: &'a StateLayers) -> State<WrapDatabaseRef<StateReader<'a>>> {
        State::builder()
            .with_database_ref(layers.reader())
            .with_bundle_update()
            .build()
    }

    /// Load into the layers' caches, in batched reads, the keys of `wanted` the next block
    /// would otherwise read from the store one by one; returns the batched reads made.
    pub fn prefetch(&self, wanted: &super::prewarm::BlockKeys) -> Result<u32, StateError> {
        self.layers.prefetch(wanted, &self.state.cache)
    }

    /// Execute and verify `block` (child of `parent`) and return its record; its changes join
    /// the layers' overlay (later blocks read them there until the commit stage applies them
    /// and calls [`StateLayers::release`]). On any error nothing of the block stays behind.
    pub fn execute(
        &mut self,
        spec: &Arc<ChainSpec>,
        block: &ChainBlock,
        senders: &[Address],
        parent: &Header,
    ) -> Result<ExecutionRecord, BlockError> {
        if self.over_limits() {
            // Every block this state holds is absorbed by now: its values are the newest.
            self.layers.keep_cached(&self.state.cache);
            self.state = Self::fresh(self.layers);
        }
        let result = self.execute_in_place(spec, block, senders, parent);
        match &result {
            Ok(record) => self.layers.absorb(record),
            Err(_) => self.discard(),
        }
        result
    }

    /// Throw the state away, and with it the layers' cached accounts and slots, which may be
    /// older than the changes it held.
    fn discard(&mut self) {
        self.layers.forget_cached();
        self.state = Self::fresh(self.layers);
    }

    fn execute_in_place(
        &mut self,
        spec: &Arc<ChainSpec>,
        block: &ChainBlock,
        senders: &[Address],
        parent: &Header,
    ) -> Result<ExecutionRecord, BlockError> {
        let number = block.number();
        let layers = self.layers;
        let root_of = |pending: &CacheState| layers.state_root_with(pending);
        let state = &mut self.state;
        let output = run_block(
            spec,
            state,
            block,
            senders,
            parent,
            Some(layers),
            Some(&root_of),
        )?;
        state.merge_transitions(BundleRetention::Reverts);
        let bundle = state.take_bundle();
        let (accounts, storage) =
            changes_from_bundle(layers, &bundle).map_err(|error| BlockError::State {
                block: number,
                error,
            })?;
        // Sorted: a record must be byte-identical however often its block is executed.
        let mut codes: Vec<_> = bundle
            .contracts
            .iter()
            .map(|(hash, code)| (*hash, code.original_bytes()))
            .collect();
        codes.sort_by_key(|(hash, _)| *hash);
        Ok(ExecutionRecord {
            number,
            hash: block.hash,
            parent_hash: block.header.parent_hash,
            gas_used: output.gas_used,
            receipts: output.receipts,
            accounts,
            storage,
            codes,
        })
    }

    /// True once the kept state holds more accounts, slots or codes than the limits.
    fn over_limits(&self) -> bool {
        let cache = &self.state.cache;
        let slots: usize = cache
            .accounts
            .values()
            .filter_map(|account| account.account.as_ref())
            .map(|account| account.storage.len())
            .sum();
        cache.accounts.len() > self.limits.accounts
            || slots > self.limits.storage_slots
            || cache.contracts.len() > self.limits.code
    }
}

impl Drop for ExecutionState<'_> {
    fn drop(&mut self) {
        // The changes it held may not all be absorbed: cached values could be older.
        self.layers.forget_cached();
    }
}

/// The block's account and storage changes with pre-values, sorted. For an account whose
/// storage was wiped, every slot it held before is listed (from the layers), not just the ones
/// the block touched.
fn changes_from_bundle(
    layers: &StateLayers,
    bundle: &BundleState,
) -> Result<(Vec<AccountChange>, Vec<StorageChange>), StateError> {
    let mut accounts = Vec::new();
    let mut storage = Vec::new();
    for (address, account) in &bundle.state {
        let pre = account.original_info.as_ref().map(super::account_state);
        let post = account.info.as_ref().map(super::account_state);
        let wiped = account.was_destroyed();
        if wiped {
            let before = layers.existing_slots(address)?;
            for (slot, pre_value) in &before {
                let post_value = account
                    .storage
                    .get(slot)
                    .map_or(U256::ZERO, |s| s.present_value);
                if post_value != *pre_value {
                    storage.push(StorageChange {
                        address: *address,
                        slot: *slot,
                        pre: *pre_value,
                        post: post_value,
                    });
                }
            }
            for (slot, value) in &account.storage {
                if !value.present_value.is_zero() && !before.iter().any(|(s, _)| s == slot) {
                    storage.push(StorageChange {
                        address: *address,
                        slot: *slot,
                        pre: U256::ZERO,
                        post: value.present_value,
                    });
                }
            }
        } else {
            for (slot, value) in &account.storage {
                if value.is_changed() {
                    storage.push(StorageChange {
                        address: *address,
                        slot: *slot,
                        pre: value.previous_or_original_value,
                        post: value.present_value,
                    });
                }
            }
        }
        // An account whose storage changed is listed even when its fields did not: its
        // storage root (in `st:latest:acc`) changes with it.
        let storage_changed = storage.last().is_some_and(|s| s.address == *address);
        if pre != post || wiped || storage_changed {
            accounts.push(AccountChange {
                address: *address,
                pre,
                post,
                storage_wiped: wiped,
            });
        }
    }
    accounts.sort_by_key(|a| a.address);
    storage.sort_by_key(|s| (s.address, s.slot));
    Ok((accounts, storage))
}
