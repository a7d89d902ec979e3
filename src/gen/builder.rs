//! One block built on top of the world: its transactions executed by the executor's block
//! executor (alloy-evm's Ethereum executor over the chain spec) to fill gasUsed,
//! receiptsRoot, logsBloom, blobGasUsed and requestsHash; then run through
//! `evm::execute::run_block`, exactly as the daemon checks it, and its state changes applied
//! to the world to fill stateRoot.

use super::world::World;
use super::GenError;
use alloy_consensus::transaction::Recovered;
use alloy_consensus::{
    proofs, BlockBody, Header, ReceiptEnvelope, TxEnvelope, TxReceipt, EMPTY_OMMER_ROOT_HASH,
};
use alloy_eips::eip1559::BaseFeeParams;
use alloy_eips::eip4895::{Withdrawal, Withdrawals};
use alloy_evm::block::{BlockExecutionResult, BlockExecutor, BlockExecutorFactory};
use alloy_evm::eth::EthBlockExecutionCtx;
use alloy_evm::EvmFactory;
use alloy_primitives::{Address, Bloom, Bytes, B256, B64, U256};
use evm::chain::ChainSpec;
use evm::execute::{ethereum_executor, run_block};
use primitives::block::ChainBlock;
use revm::database::states::bundle_state::BundleRetention;
use revm::database::State;
use std::borrow::Cow;
use std::sync::Arc;

/// What goes into a block besides its parent and the execution's results.
pub struct BlockInput {
    /// The transactions, in order.
    pub transactions: Vec<TxEnvelope>,
    /// Their senders.
    pub senders: Vec<Address>,
    /// The beacon-chain withdrawals.
    pub withdrawals: Vec<Withdrawal>,
    /// The header's parentBeaconBlockRoot.
    pub beacon_root: B256,
    /// The header's prevRandao (mixHash).
    pub prev_randao: B256,
    /// Seconds after the parent.
    pub interval: u64,
    /// The fee recipient.
    pub beneficiary: Address,
    /// The header's extraData.
    pub extra_data: Bytes,
}

/// A finished block with its receipts.
pub struct BuiltBlock {
    /// The block, every header field filled.
    pub block: ChainBlock,
    /// Its receipts.
    pub receipts: Vec<ReceiptEnvelope>,
}

/// The header of the child of `parent`, execution's fields still empty.
fn header_template(
    spec: &ChainSpec,
    parent: &Header,
    parent_hash: B256,
    input: &BlockInput,
) -> Result<Header, GenError> {
    let number = parent.number + 1;
    let timestamp = parent.timestamp + input.interval;
    let blob_params = spec
        .blob_params_at(timestamp)
        .ok_or_else(|| GenError::Internal(format!("block {number}: no blob parameters")))?;
    Ok(Header {
        parent_hash,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: input.beneficiary,
        state_root: B256::ZERO,
        transactions_root: proofs::calculate_transaction_root(&input.transactions),
        receipts_root: B256::ZERO,
        logs_bloom: Bloom::ZERO,
        difficulty: U256::ZERO,
        number,
        gas_limit: parent.gas_limit,
        gas_used: 0,
        timestamp,
        extra_data: input.extra_data.clone(),
        mix_hash: input.prev_randao,
        nonce: B64::ZERO,
        base_fee_per_gas: parent.next_block_base_fee(BaseFeeParams::ethereum()),
        withdrawals_root: Some(proofs::calculate_withdrawals_root(&input.withdrawals)),
        blob_gas_used: Some(0),
        excess_blob_gas: parent.next_block_excess_blob_gas(blob_params),
        parent_beacon_block_root: Some(input.beacon_root),
        requests_hash: None,
        ..Header::default()
    })
}

/// Execute the block's transactions over `world` (nothing is kept) and return the results.
fn execute(
    spec: &Arc<ChainSpec>,
    world: &World,
    header: &Header,
    input: &BlockInput,
) -> Result<BlockExecutionResult<ReceiptEnvelope>, GenError> {
    let mut state = State::builder().with_database_ref(world).build();
    let (env, factory) = ethereum_executor(spec, header);
    let evm = factory.evm_factory().create_evm(&mut state, env);
    let ctx = EthBlockExecutionCtx {
        parent_hash: header.parent_hash,
        parent_beacon_block_root: header.parent_beacon_block_root,
        ommers: &[],
        withdrawals: Some(Cow::Borrowed(input.withdrawals.as_slice())),
        extra_data: header.extra_data.clone(),
        tx_count_hint: Some(input.transactions.len()),
        slot_number: None,
    };
    factory
        .create_executor(evm, ctx)
        .execute_block(
            input
                .transactions
                .iter()
                .zip(&input.senders)
                .map(|(tx, sender)| Recovered::new_unchecked(tx, *sender)),
        )
        .map_err(|e| GenError::Execution {
            block: header.number,
            reason: e.to_string(),
        })
}

/// Build the child of `parent` (whose hash is `parent_hash`) from `input`, and apply its
/// changes to `world`.
pub fn build_block(
    spec: &Arc<ChainSpec>,
    world: &mut World,
    parent: &Header,
    parent_hash: B256,
    input: BlockInput,
) -> Result<BuiltBlock, GenError> {
    let mut header = header_template(spec, parent, parent_hash, &input)?;
    let result = execute(spec, world, &header, &input)?;
    header.gas_used = result.gas_used;
    header.receipts_root = proofs::calculate_receipt_root(&result.receipts);
    header.logs_bloom = result
        .receipts
        .iter()
        .fold(Bloom::ZERO, |mut bloom, receipt| {
            bloom.accrue_bloom(&receipt.bloom());
            bloom
        });
    header.blob_gas_used = Some(result.blob_gas_used);
    header.requests_hash = Some(result.requests.requests_hash());
    let mut block = ChainBlock {
        hash: B256::ZERO,
        header,
        body: BlockBody {
            transactions: input.transactions,
            ommers: Vec::new(),
            withdrawals: Some(Withdrawals::new(input.withdrawals)),
        },
    };
    // The daemon's own check of the block; its changes are what the world takes on.
    let mut state = State::builder()
        .with_database_ref(&*world)
        .with_bundle_update()
        .build();
    run_block(spec, &mut state, &block, &input.senders, parent, None, None).map_err(|e| {
        GenError::Execution {
            block: block.number(),
            reason: e.to_string(),
        }
    })?;
    state.merge_transitions(BundleRetention::PlainState);
    let bundle = state.take_bundle();
    drop(state);
    world.apply(&bundle);
    block.header.state_root = world.state_root();
    block.hash = block.header.hash_slow();
    world.push_block_hash(block.hash);
    Ok(BuiltBlock {
        block,
        receipts: result.receipts,
    })
}
