//! `run`: follow the syncer and execute every new block, in order, over the store.
//!
//! This is the sequential form of the pipeline: for each block it loads and checks the stored
//! block, recovers senders (in parallel on rayon), executes and verifies it, then writes the
//! state changes, receipts and finally `idx:exec:progress`. A block that fails is never
//! written; the error names it. With `--exit-at-head` it stops once caught up.

use super::{unix_now, CommandError, Context};
use alloy_consensus::Header;
use alloy_genesis::ChainConfig;
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::B256;
use stages::block::decode_header;
use stages::chain::ChainSpec;
use stages::commit::{exec_progress, queue_receipts, queue_state_writes};
use stages::contract::{decode_json, ChainRecord, ExecProgress, SyncProgress};
use stages::execute::execute_block;
use stages::load::{load_block, recover_senders};
use stages::state::{cache::CacheSizes, StateLayers};
use stages::store::WriteBatch;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a progress line is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What `run` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOutcome {
    /// Blocks executed in this run.
    pub blocks: u64,
    /// Transactions in them.
    pub transactions: u64,
    /// Gas they used.
    pub gas: u64,
    /// The last executed block.
    pub head: u64,
}

/// The chain spec for the chain the store was initialised with.
pub fn chain_spec(ctx: &Context, record: &ChainRecord) -> Result<ChainSpec, CommandError> {
    if let Some(spec) = ChainSpec::by_name(&record.name) {
        return Ok(spec);
    }
    if record.config.get("parlia").is_some() {
        return Err(CommandError::ChainMismatch(format!(
            "chain {:?} uses Parlia (BNB Smart Chain); its execution rules are not implemented yet",
            record.name
        )));
    }
    let config: ChainConfig = serde_json::from_value(record.config.clone()).map_err(|e| {
        CommandError::ChainMismatch(format!("the stored chain config does not parse: {e}"))
    })?;
    let genesis = stored_header(ctx, 0)?;
    Ok(ChainSpec::from_genesis_config(
        &config,
        genesis.0.difficulty,
    ))
}

fn stored_header(ctx: &Context, number: u64) -> Result<(Header, B256), CommandError> {
    let key = ctx.keys.header(number);
    let bytes = ctx
        .store
        .get(&key)?
        .ok_or_else(|| CommandError::NotInitialised(format!("{key} is missing")))?;
    Ok(decode_header(&key, &bytes)?)
}

fn read_json<T: serde::de::DeserializeOwned>(
    ctx: &Context,
    key: &str,
) -> Result<Option<T>, CommandError> {
    match ctx.store.get(key)? {
        Some(bytes) => Ok(Some(decode_json(key, &bytes)?)),
        None => Ok(None),
    }
}

/// Execute blocks until the syncer's head (then stop when `exit_at_head`, else keep polling).
pub fn run(ctx: &Context, exit_at_head: bool) -> Result<RunOutcome, CommandError> {
    let record = ctx.checked_chain()?;
    let spec = Arc::new(chain_spec(ctx, &record)?);
    let cache = &ctx.config.cache;
    let sizes = CacheSizes {
        accounts: cache.accounts as usize,
        storage_slots: cache.storage_slots as usize,
        code: cache.code as usize,
    };
    let layers = StateLayers::new(Arc::clone(&ctx.store), ctx.keys.clone(), sizes);
    let progress_key = ctx.keys.exec_progress();
    let mut progress: ExecProgress = read_json(ctx, &progress_key)?
        .ok_or_else(|| CommandError::NotInitialised(format!("{progress_key} is missing")))?;
    let (mut parent, mut parent_hash) = stored_header(ctx, progress.latest_executed_block)?;
    let history_ttl = ctx.config.state.history_ttl();
    let poll = Duration::from_millis(ctx.config.executor.poll_interval_ms);
    let mut outcome = RunOutcome {
        blocks: 0,
        transactions: 0,
        gas: 0,
        head: progress.latest_executed_block,
    };
    let started = Instant::now();
    let mut last_report = Instant::now();

    loop {
        let synced = read_json::<SyncProgress>(ctx, &ctx.keys.sync_progress())?
            .map_or(0, |s| s.latest_synced_block);
        let number = progress.latest_executed_block + 1;
        if number > synced {
            if exit_at_head {
                return Ok(outcome);
            }
            std::thread::sleep(poll);
            continue;
        }
        let block = load_block(ctx.store.as_ref(), &ctx.keys, number)
            .map_err(|e| CommandError::Block(e.to_string()))?;
        if block.header.parent_hash != parent_hash {
            return Err(CommandError::Block(format!(
                "block {number}: parentHash {:#x} is not the executed block {}'s hash {parent_hash:#x} (reorg handling arrives with the staged pipeline)",
                block.header.parent_hash, number - 1
            )));
        }
        let homestead = spec.is_homestead_active_at_block(number);
        let senders =
            recover_senders(&block, homestead).map_err(|e| CommandError::Block(e.to_string()))?;
        let executed = execute_block(&spec, &layers, &block, &senders, &parent)
            .map_err(|e| CommandError::Block(e.to_string()))?;

        let mut batch = WriteBatch::new();
        queue_state_writes(&ctx.keys, &executed, history_ttl, &mut batch);
        queue_receipts(&ctx.keys, &executed, &mut batch);
        // Progress goes last in the same ordered batch: it only moves once the state is in.
        let progress_bytes = exec_progress(&executed, progress.total_txs_executed, unix_now());
        batch.set(progress_key.clone(), progress_bytes.clone());
        layers.absorb(&executed);
        ctx.store.write(&batch)?;
        layers.release(number);

        progress = decode_json(&progress_key, &progress_bytes)?;
        outcome.blocks += 1;
        outcome.transactions += executed.tx_count() as u64;
        outcome.gas += executed.gas_used;
        outcome.head = number;
        (parent, parent_hash) = (block.header, block.hash);
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(
                block = number,
                lag = synced - number,
                tx_per_sec = (outcome.transactions as f64 / secs) as u64,
                mgas_per_sec = format!("{:.1}", outcome.gas as f64 / secs / 1e6),
                "executing"
            );
        }
    }
}
