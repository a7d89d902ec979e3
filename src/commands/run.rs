//! `run`: the daemon (see [`crate::daemon`]): follow the syncer and execute every new block.
//! With `--exit-at-head` it stops once caught up; SIGINT/SIGTERM stop it cleanly.

use super::{CommandError, Context};
use crate::lease::LeaderLease;
use alloy_consensus::Header;
use alloy_genesis::ChainConfig;
use alloy_primitives::B256;
use stages::block::decode_header;
use stages::bsc::BscChain;
use stages::chain::ChainSpec;
use stages::chain_data;
use stages::contract::{decode_json, ChainRecord, ExecProgress};
use stages::metrics::metrics;
use stages::pipeline::meter::StageTotals;
use stages::stage_id::StageId;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// What `run` did.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// Blocks executed in this run.
    pub blocks: u64,
    /// Transactions in them.
    pub transactions: u64,
    /// Gas they used.
    pub gas: u64,
    /// The last executed block.
    pub head: u64,
    /// Where each stage's time went.
    pub stages: Vec<(StageId, StageTotals)>,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

/// The chain spec for the chain the store was initialised with, with its EIP-7610 candidates.
pub fn chain_spec(ctx: &Context, record: &ChainRecord) -> Result<ChainSpec, CommandError> {
    Ok(schedule(ctx, record)?.with_storage_only_accounts(record.storage_only_accounts.clone()))
}

/// The fork schedule of the chain the store was initialised with: a built-in chain's from the
/// data built into the program, a custom Parlia chain's from `chain.data_dir`, any other
/// chain's from its genesis `config`.
fn schedule(ctx: &Context, record: &ChainRecord) -> Result<ChainSpec, CommandError> {
    let dir = &ctx.config.chain.data_dir;
    if let Some(chain) = chain_data::built_in(&record.name) {
        if !dir.as_os_str().is_empty() {
            tracing::warn!(
                chain = chain.name,
                data_dir = %dir.display(),
                "chain.data_dir is ignored: the chain data of a built-in chain is built in"
            );
        }
        return Ok(chain.spec()?);
    }
    if record.config.get("parlia").is_some() {
        if dir.as_os_str().is_empty() {
            return Err(CommandError::ChainMismatch(format!(
                "chain {:?} (id {}) uses Parlia (BNB Smart Chain): set chain.data_dir to a \
                 directory holding its hardforks.json and systemcontracts/",
                record.name, record.chain_id
            )));
        }
        let chain = BscChain::load(dir, record.chain_id).map_err(|e| {
            CommandError::ChainMismatch(format!(
                "chain {:?} uses Parlia (BNB Smart Chain) and needs its chain data \
                 (chain.data_dir = {}): {e}",
                record.name,
                dir.display()
            ))
        })?;
        return Ok(ChainSpec::parlia(chain));
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

/// Run the daemon until the syncer's head (with `exit_at_head`) or SIGINT/SIGTERM.
pub fn run(ctx: &Context, exit_at_head: bool) -> Result<RunOutcome, CommandError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| CommandError::Block(format!("cannot install signal handler: {e}")))?;
    }
    if ctx.config.metrics.enabled {
        let addr = ctx.config.metrics.listen_addr.parse().map_err(|e| {
            CommandError::Block(format!(
                "metrics.listen_addr {:?}: {e}",
                ctx.config.metrics.listen_addr
            ))
        })?;
        crate::http::serve(addr, ctx.config.metrics.ready_max_lag).map_err(CommandError::Block)?;
        tracing::info!(%addr, "serving /metrics, /health, /ready");
    }
    let progress_key = ctx.keys.exec_progress();
    let before: Option<ExecProgress> = read_json(ctx, &progress_key)?;
    let started = Instant::now();
    let outcome = loop {
        if !ctx.config.leader.enabled {
            metrics().leader.set(1);
            break crate::daemon::run(ctx, exit_at_head, Arc::clone(&stop), None)?;
        }
        let lease = LeaderLease::new(Arc::clone(&ctx.store), &ctx.keys, ctx.config.leader.lease());
        let Some(deadline) = lease.acquire(&stop)? else {
            return Ok(RunOutcome {
                blocks: 0,
                transactions: 0,
                gas: 0,
                head: 0,
                stages: Vec::new(),
                seconds: started.elapsed().as_secs_f64(),
            });
        };
        metrics().leader.set(1);
        let renewing_done = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            scope.spawn(|| lease.keep(&deadline, &renewing_done));
            let result = crate::daemon::run(
                ctx,
                exit_at_head,
                Arc::clone(&stop),
                Some(Arc::clone(&deadline)),
            );
            renewing_done.store(true, std::sync::atomic::Ordering::Relaxed);
            result
        });
        metrics().leader.set(0);
        match result {
            Err(CommandError::LeaseLost) => {
                tracing::warn!("lost the leader lease; back to standby");
                continue;
            }
            other => {
                lease.release();
                break other?;
            }
        }
    };
    let after: Option<ExecProgress> = read_json(ctx, &progress_key)?;
    let txs = |p: Option<ExecProgress>| p.map_or(0, |p| p.total_txs_executed);
    let blocks = outcome.head.saturating_sub(outcome.start.committed);
    let gas = executed_gas(ctx, outcome.start.committed + 1, outcome.head)?;
    let seconds = started.elapsed().as_secs_f64().max(f64::EPSILON);
    tracing::info!(
        blocks,
        head = outcome.head,
        mgas_per_sec = format!("{:.1}", gas as f64 / seconds / 1e6),
        "stopped"
    );
    Ok(RunOutcome {
        blocks,
        transactions: txs(after) - txs(before).min(txs(after)),
        gas,
        head: outcome.head,
        stages: outcome.stages,
        seconds,
    })
}

/// Gas used by blocks `first..=last`, from their headers.
fn executed_gas(ctx: &Context, first: u64, last: u64) -> Result<u64, CommandError> {
    let mut gas = 0;
    for number in first..=last {
        gas += stored_header(ctx, number)?.0.gas_used;
    }
    Ok(gas)
}
