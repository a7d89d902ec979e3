//! Block execution: one block through revm (alloy-evm's Ethereum block executor, or BSC's) over
//! any revm database, verified against its header.
//!
//! Nothing is written anywhere here: a block that fails any check returns an error and leaves
//! no trace; a block that passes returns its record for the later stages to apply.

use crate::chain::ChainSpec;
use crate::collision::CollisionCheck;
use crate::eip1283;
use crate::error::{classify, database_error, transaction_error, BlockError, StateError};
use crate::ommers::{check_ommers, Ancestors, OmmerCheckError};
use crate::validate::{check_ethereum_header, HeaderViolation};
use crate::verify::{verify_result, BlockOutput};
use alloy_consensus::{Eip658Value, Header};
use alloy_eips::eip7002::WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS;
use alloy_eips::eip7251::CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS;
use alloy_evm::block::{BlockExecutor, BlockExecutorFactory};
use alloy_evm::eth::{
    receipt_builder::AlloyReceiptBuilder, EthBlockExecutionCtx, EthBlockExecutorFactory,
};
use alloy_evm::{EthEvmFactory, Evm, EvmEnv, EvmFactory};
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::{Address, B256};
use primitives::block::ChainBlock;
use revm::database::{CacheState, State};
use revm::Database;
use std::borrow::Cow;
use std::sync::Arc;

/// Check `header` against its `parent` under the rules of `spec`'s chain (Ethereum's or
/// BSC's).
pub fn check_header(
    spec: &ChainSpec,
    header: &Header,
    parent: &Header,
) -> Result<(), HeaderViolation> {
    match &spec.bsc {
        Some(bsc) => crate::bsc::header::check_header(&bsc.forks, header, parent),
        None => check_ethereum_header(spec, header, parent),
    }
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
    let mut env = EvmEnv::for_eth_block(
        header,
        spec,
        spec.chain_id,
        spec.blob_params_at(header.timestamp),
    );
    if eip1283::applies(spec, header.number) {
        eip1283::configure(&mut env);
    }
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
/// stay in `state`; nothing is written anywhere. Blocks with ommers need `ancestors` (the
/// chain below, for the ommer rules); blocks before Byzantium with transactions need
/// `intermediate_root`.
pub fn run_block<DB>(
    spec: &Arc<ChainSpec>,
    state: &mut State<DB>,
    block: &ChainBlock,
    senders: &[Address],
    parent: &Header,
    ancestors: Option<&dyn Ancestors>,
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
    check_ethereum_header(spec, header, parent).map_err(|violation| BlockError::Header {
        block: number,
        violation,
    })?;
    check_block_ommers(spec, block, ancestors)?;
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
    if eip1283::applies(spec, number) {
        evm = eip1283::install(evm);
    }
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
    crate::dao::apply(spec, number, executor.evm_mut().db_mut())
        .map_err(|e| database_error(number, &e))?;
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

/// The ommer rules for `block`, reading the chain below it from `ancestors`.
fn check_block_ommers(
    spec: &ChainSpec,
    block: &ChainBlock,
    ancestors: Option<&dyn Ancestors>,
) -> Result<(), BlockError> {
    let number = block.number();
    if block.body.ommers.is_empty() {
        return Ok(());
    }
    let ancestors = ancestors.ok_or_else(|| BlockError::Invalid {
        block: number,
        reason: "ommers are checked against the chain below the block, which this caller \
                 cannot provide"
            .to_string(),
    })?;
    check_ommers(
        spec,
        &block.header,
        block.hash,
        &block.body.ommers,
        ancestors,
    )
    .map_err(|error| match error {
        OmmerCheckError::Invalid(error) => BlockError::Ommer {
            block: number,
            error: Box::new(error),
        },
        OmmerCheckError::State(error) => BlockError::State {
            block: number,
            error,
        },
    })
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
            a.code_hash != primitives::contract::EMPTY_CODE_HASH && !a.code_hash.is_zero()
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
