//! Block execution: one block through revm (alloy-evm's Ethereum block executor) over the state
//! layers, verified against its header, turned into an [`ExecutionRecord`].
//!
//! Nothing is written anywhere here: a block that fails any check returns an error and leaves
//! no trace; a block that passes returns its record for the later stages to apply.

use crate::block::ChainBlock;
use crate::chain::ChainSpec;
use crate::collision::CollisionCheck;
use crate::record::{AccountChange, AccountState, ExecutionRecord, StorageChange};
use crate::state::cache::CacheSizes;
use crate::state::{StateError, StateLayers, StateReader};
use crate::validate::{check_header, HeaderViolation};
use alloy_consensus::{proofs, Eip658Value, Header, ReceiptEnvelope, TxEnvelope, TxReceipt};
use alloy_eips::eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS;
use alloy_eips::eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS;
use alloy_evm::block::{
    BlockExecutionError, BlockExecutor, BlockExecutorFactory, BlockValidationError,
    InternalBlockExecutionError,
};
use alloy_evm::eth::{
    receipt_builder::AlloyReceiptBuilder, EthBlockExecutionCtx, EthBlockExecutorFactory,
};
use alloy_evm::{EthEvmFactory, Evm, EvmEnv, EvmFactory};
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::{Address, Bloom, B256, U256};
use revm::database::states::bundle_state::BundleRetention;
use revm::database::{BundleState, CacheState, State};
use revm::database_interface::bal::EvmDatabaseError;
use revm::database_interface::WrapDatabaseRef;
use revm::Database;
use std::borrow::Cow;
use std::sync::Arc;

/// Why a block was rejected or could not be executed.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The header breaks a rule relative to its parent.
    #[error("block {block}: invalid header: {violation}")]
    Header {
        /// Block number.
        block: u64,
        /// The rule broken.
        violation: HeaderViolation,
    },
    /// A transaction is invalid (nonce, balance, intrinsic gas, gas caps, blob rules, …).
    #[error("block {block}: transaction {index} ({hash:#x}) invalid: {reason}")]
    Transaction {
        /// Block number.
        block: u64,
        /// Position in the block.
        index: usize,
        /// Transaction hash.
        hash: B256,
        /// What revm found.
        reason: String,
    },
    /// Execution's result differs from what the header commits to.
    #[error("block {block}: {field} mismatch: header says {expected}, execution gives {got}")]
    Mismatch {
        /// Block number.
        block: u64,
        /// The header field (`gasUsed`, `receiptsRoot`, `logsBloom`, `blobGasUsed`, `requestsHash`).
        field: &'static str,
        /// What execution produced.
        got: String,
        /// What the header says.
        expected: String,
    },
    /// The block breaks a block-level rule (system contracts, requests, withdrawals, …).
    #[error("block {block}: {reason}")]
    Invalid {
        /// Block number.
        block: u64,
        /// What is wrong.
        reason: String,
    },
    /// State could not be read (store down, corrupt value): not the block's fault.
    #[error("block {block}: cannot read state: {error}")]
    State {
        /// Block number.
        block: u64,
        /// The failure.
        error: StateError,
    },
}

/// Find a [`StateError`] in an error's chain. revm and alloy-evm wrap database errors without
/// always naming them as the source: alloy-evm keeps revm's error in an `EVM { error }` field,
/// and revm's `State` wraps ours in an `EvmDatabaseError`; both are looked into.
pub(crate) fn state_error_in<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a StateError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<StateError>() {
            return Some(found);
        }
        current = wrapped_error(e).or_else(|| e.source());
    }
    None
}

/// The error held by one of the wrappers [`state_error_in`] looks into.
fn wrapped_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    let boxed: &'a (dyn std::error::Error + Send + Sync + 'static) = match error
        .downcast_ref::<BlockExecutionError>()
    {
        Some(BlockExecutionError::Internal(InternalBlockExecutionError::EVM { error, .. }))
        | Some(BlockExecutionError::Validation(BlockValidationError::EVM { error, .. })) => {
            error.as_ref()
        }
        _ => match error.downcast_ref::<EvmDatabaseError<StateError>>() {
            Some(EvmDatabaseError::Database(inner)) => return Some(inner),
            _ => return None,
        },
    };
    Some(boxed)
}

/// A failed state read outside a transaction's own result: a store failure when it comes from
/// the state layers, else the block cannot be executed.
pub(crate) fn database_error(block: u64, error: &(dyn std::error::Error + 'static)) -> BlockError {
    match state_error_in(error) {
        Some(state) => BlockError::State {
            block,
            error: state.clone(),
        },
        None => BlockError::Invalid {
            block,
            reason: error.to_string(),
        },
    }
}

fn classify(block: u64, error: BlockExecutionError) -> BlockError {
    if let Some(state) = state_error_in(&error) {
        return BlockError::State {
            block,
            error: state.clone(),
        };
    }
    BlockError::Invalid {
        block,
        reason: error.to_string(),
    }
}

/// What running a block produced (before its changes are turned into a record).
#[derive(Debug)]
pub struct BlockOutput {
    /// Receipts in transaction order.
    pub receipts: Vec<ReceiptEnvelope>,
    /// Gas used by the block.
    pub gas_used: u64,
}

/// alloy-evm's Ethereum block executor factory over a [`ChainSpec`].
pub type EthereumExecutorFactory =
    EthBlockExecutorFactory<AlloyReceiptBuilder, Arc<ChainSpec>, EthEvmFactory>;

/// The EVM environment of `header` under `spec`, and the factory of Ethereum block executors
/// for `spec`.
pub fn ethereum_executor(
    spec: &Arc<ChainSpec>,
    header: &Header,
) -> (EvmEnv, EthereumExecutorFactory) {
    let env = EvmEnv::for_eth_block(
        header,
        spec,
        spec.chain_id,
        spec.blob_params_at(header.timestamp),
    );
    let factory = EthBlockExecutorFactory::new(
        AlloyReceiptBuilder::default(),
        Arc::clone(spec),
        EthEvmFactory::default(),
    );
    (env, factory)
}

/// Computes the whole state root with a block's pending changes on top: needed before
/// Byzantium, where every receipt commits to the state root after its transaction.
pub type IntermediateRoot<'a> = &'a dyn Fn(&CacheState) -> Result<B256, StateError>;

/// Run `block` (its transactions sent by `senders`) on top of `parent` against `state`, with
/// every block-level rule of its fork, and verify the outcome against the header. The changes
/// stay in `state`; nothing is written anywhere. Blocks before Byzantium with transactions
/// need `intermediate_root`.
pub fn run_block<DB>(
    spec: &Arc<ChainSpec>,
    state: &mut State<DB>,
    block: &ChainBlock,
    senders: &[Address],
    parent: &Header,
    intermediate_root: Option<IntermediateRoot<'_>>,
) -> Result<BlockOutput, BlockError>
where
    DB: Database + std::fmt::Debug,
    DB::Error: std::error::Error + Send + Sync + 'static,
{
    if let Some(bsc) = &spec.bsc {
        return crate::bsc::executor::run_block(bsc, state, block, senders, parent);
    }
    let number = block.number();
    let header = &block.header;
    check_header(spec, header, parent).map_err(|violation| BlockError::Header {
        block: number,
        violation,
    })?;
    if senders.len() != block.body.transactions.len() {
        return Err(BlockError::Invalid {
            block: number,
            reason: format!(
                "{} senders for {} transactions",
                senders.len(),
                block.body.transactions.len()
            ),
        });
    }
    let (env, factory) = ethereum_executor(spec, header);
    let mut evm = factory.evm_factory().create_evm_with_inspector(
        state,
        env,
        CollisionCheck::new(&spec.storage_only_accounts),
    );
    // Inspecting costs time; only chains with EIP-7610 candidates need the check.
    evm.set_inspector_enabled(!spec.storage_only_accounts.is_empty());
    let ctx = EthBlockExecutionCtx {
        parent_hash: header.parent_hash,
        parent_beacon_block_root: header.parent_beacon_block_root,
        ommers: &block.body.ommers,
        withdrawals: block
            .body
            .withdrawals
            .as_ref()
            .map(|w| Cow::Borrowed(w.as_slice())),
        extra_data: header.extra_data.clone(),
        tx_count_hint: Some(block.body.transactions.len()),
        slot_number: None,
    };
    let mut executor = factory.create_executor(evm, ctx);
    executor
        .apply_pre_execution_changes()
        .map_err(|e| classify(number, e))?;
    let post_state_roots = !spec.is_byzantium_active_at_block(number);
    for (index, (tx, sender)) in block.body.transactions.iter().zip(senders).enumerate() {
        let recovered = alloy_consensus::transaction::Recovered::new_unchecked(tx, *sender);
        executor
            .execute_transaction(recovered)
            .map_err(|error| transaction_error(number, index, tx, error))?;
        if let Some(error) = executor.evm_mut().inspector_mut().take_error() {
            return Err(database_error(number, &error));
        }
        if post_state_roots {
            let root_of = intermediate_root.ok_or_else(|| BlockError::Invalid {
                block: number,
                reason: "receipts before Byzantium need intermediate state roots, which this \
                         state cannot provide"
                    .to_string(),
            })?;
            let root = root_of(&executor.evm().db().cache).map_err(|error| BlockError::State {
                block: number,
                error,
            })?;
            if let Some(with_bloom) = executor
                .receipts
                .last_mut()
                .and_then(|r| r.as_receipt_with_bloom_mut())
            {
                with_bloom.receipt.status = Eip658Value::PostState(root);
            }
        }
    }
    if spec.is_prague_active_at_timestamp(header.timestamp) {
        require_system_contracts(number, executor.evm_mut())?;
    }
    let (_, result) = executor.finish().map_err(|e| classify(number, e))?;
    verify_result(
        spec,
        header,
        &result.receipts,
        result.gas_used,
        result.blob_gas_used,
        &result.requests,
    )?;
    Ok(BlockOutput {
        receipts: result.receipts,
        gas_used: result.gas_used,
    })
}

/// Execute `block` over a fresh view of `layers` (see [`ExecutionState`] for the daemon's
/// way, which keeps revm's cache from block to block).
pub fn execute_block(
    spec: &Arc<ChainSpec>,
    layers: &StateLayers,
    block: &ChainBlock,
    senders: &[Address],
    parent: &Header,
) -> Result<ExecutionRecord, BlockError> {
    ExecutionState::new(layers, CacheSizes::default()).execute(spec, block, senders, parent)
}

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
        layers.new_epoch();
        State::builder()
            .with_database_ref(layers.reader())
            .with_bundle_update()
            .build()
    }

    /// Execute and verify `block` (child of `parent`) and return its record, which the caller
    /// absorbs into the layers before executing the next block. On any error nothing of the
    /// block stays behind.
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
        if result.is_err() {
            self.discard();
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
        let output = run_block(spec, state, block, senders, parent, Some(&root_of))?;
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

fn transaction_error(
    block: u64,
    index: usize,
    tx: &TxEnvelope,
    error: BlockExecutionError,
) -> BlockError {
    if let Some(state) = state_error_in(&error) {
        return BlockError::State {
            block,
            error: state.clone(),
        };
    }
    let reason = match &error {
        BlockExecutionError::Validation(BlockValidationError::InvalidTx { error, .. }) => {
            error.to_string()
        }
        other => other.to_string(),
    };
    BlockError::Transaction {
        block,
        index,
        hash: *tx.tx_hash(),
        reason,
    }
}

/// go-ethereum's gas limit for system calls (`params.SystemTxGas`).
const SYSTEM_CALL_GAS: u64 = 30_000_000;

/// From Prague the EIP-7002 and EIP-7251 contracts must exist and their end-of-block calls must
/// succeed within 30M gas. alloy-evm treats a call to empty code as success, and revm 43 grants
/// system calls an extra EIP-8037 reservoir, so both are checked here with a dry run (its
/// state is discarded; the real calls happen in `finish`).
fn require_system_contracts<E>(block: u64, evm: &mut E) -> Result<(), BlockError>
where
    E: Evm,
    E::DB: Database,
    <E::DB as Database>::Error: std::error::Error + 'static,
{
    for (name, address) in [
        (
            "EIP-7002 withdrawal request",
            WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
        ),
        (
            "EIP-7251 consolidation request",
            CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
        ),
    ] {
        let account = evm
            .db_mut()
            .basic(address)
            .map_err(|e| database_error(block, &e))?;
        let has_code = account.is_some_and(|a| {
            a.code_hash != crate::contract::EMPTY_CODE_HASH && !a.code_hash.is_zero()
        });
        if !has_code {
            return Err(BlockError::Invalid {
                block,
                reason: format!("{name} contract {address} has no code"),
            });
        }
        let dry_run = evm
            .transact_system_call(
                alloy_eips::eip7002::SYSTEM_ADDRESS,
                address,
                Default::default(),
            )
            .map_err(|e| BlockError::Invalid {
                block,
                reason: format!("{name} system call failed: {e}"),
            })?;
        let gas_used = dry_run.result.tx_gas_used();
        if gas_used > SYSTEM_CALL_GAS {
            return Err(BlockError::Invalid {
                block,
                reason: format!(
                    "{name} system call used {gas_used} gas, more than {SYSTEM_CALL_GAS}"
                ),
            });
        }
    }
    Ok(())
}

fn mismatch(
    block: u64,
    field: &'static str,
    got: impl std::fmt::Display,
    expected: impl std::fmt::Display,
) -> BlockError {
    BlockError::Mismatch {
        block,
        field,
        got: got.to_string(),
        expected: expected.to_string(),
    }
}

/// Compare execution's outcome with the header: gasUsed, receiptsRoot, logsBloom, blobGasUsed
/// where the fork has blobs, requestsHash from Prague.
fn verify_result(
    spec: &ChainSpec,
    header: &Header,
    receipts: &[ReceiptEnvelope],
    gas_used: u64,
    blob_gas_used: u64,
    requests: &alloy_eips::eip7685::Requests,
) -> Result<(), BlockError> {
    let cancun = spec.is_cancun_active_at_timestamp(header.timestamp);
    verify_receipts(header, receipts, gas_used, cancun.then_some(blob_gas_used))?;
    if spec.is_prague_active_at_timestamp(header.timestamp) {
        let hash = requests.requests_hash();
        if Some(hash) != header.requests_hash {
            return Err(mismatch(
                header.number,
                "requestsHash",
                format!("{hash:#x}"),
                format!("{:?}", header.requests_hash),
            ));
        }
    }
    Ok(())
}

/// Compare gasUsed, receiptsRoot, logsBloom and, when the fork has blobs (`blob_gas_used` is
/// `Some`), blobGasUsed with the header.
pub(crate) fn verify_receipts(
    header: &Header,
    receipts: &[ReceiptEnvelope],
    gas_used: u64,
    blob_gas_used: Option<u64>,
) -> Result<(), BlockError> {
    let block = header.number;
    if gas_used != header.gas_used {
        return Err(mismatch(block, "gasUsed", gas_used, header.gas_used));
    }
    let root = proofs::calculate_receipt_root(receipts);
    if root != header.receipts_root {
        return Err(mismatch(
            block,
            "receiptsRoot",
            format!("{root:#x}"),
            format!("{:#x}", header.receipts_root),
        ));
    }
    let mut bloom = Bloom::ZERO;
    for receipt in receipts {
        bloom.accrue_bloom(&receipt.bloom());
    }
    if bloom != header.logs_bloom {
        return Err(mismatch(block, "logsBloom", bloom, header.logs_bloom));
    }
    if let Some(blob_gas_used) = blob_gas_used.filter(|used| Some(*used) != header.blob_gas_used) {
        return Err(mismatch(
            block,
            "blobGasUsed",
            blob_gas_used,
            format!("{:?}", header.blob_gas_used),
        ));
    }
    Ok(())
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
        let pre = account.original_info.as_ref().map(AccountState::from);
        let post = account.info.as_ref().map(AccountState::from);
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
        if pre != post || wiped {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::MalformedValue;
    use revm::context::result::EVMError;

    #[test]
    fn a_state_error_inside_revm_errors_is_a_state_error() {
        let state = StateError::Malformed(MalformedValue::new("st:latest:acc:0xAb", "bad"));
        let from_revm: EVMError<EvmDatabaseError<StateError>> =
            EVMError::Database(EvmDatabaseError::Database(state));
        let wrapped = BlockExecutionError::evm(from_revm, B256::ZERO);
        assert!(matches!(
            classify(7, wrapped),
            BlockError::State {
                block: 7,
                error: StateError::Malformed(_)
            }
        ));
        let other: EVMError<EvmDatabaseError<StateError>> = EVMError::Custom("x".to_string());
        assert!(matches!(
            classify(7, BlockExecutionError::evm(other, B256::ZERO)),
            BlockError::Invalid { block: 7, .. }
        ));
    }
}
