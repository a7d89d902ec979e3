//! `run`: the daemon (see [`crate::daemon`]): follow the syncer and execute every new block.
//! With `--exit-at-head` it stops once caught up; SIGINT/SIGTERM stop it cleanly.

use super::{CommandError, Context};
use crate::config::Backend;
use crate::lease::LeaderLease;
use alloy_consensus::Header;
use alloy_genesis::ChainConfig;
use evm::bsc::BscChain;
use evm::chain::ChainSpec;
use evm::chain_data;
use pipeline::meter::StageTotals;
use pipeline::metrics::metrics;
use primitives::contract::ChainRecord;
use primitives::stage_id::StageId;
use primitives::value::ContractRead;
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
    Ok(ChainSpec::from_genesis_config(&config, genesis.difficulty))
}

fn stored_header(ctx: &Context, number: u64) -> Result<Header, CommandError> {
    let key = ctx.keys.header(number);
    let header = ctx
        .store
        .read(&key)?
        .ok_or_else(|| CommandError::NotInitialised(format!("{key} is missing")))?;
    Ok(header.into_inner())
}

/// Run the daemon until the syncer's head (with `exit_at_head`) or SIGINT/SIGTERM.
pub fn run(ctx: &Context, exit_at_head: bool) -> Result<RunOutcome, CommandError> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(CommandError::Signal)?;
    }
    if ctx.config.metrics.enabled {
        let listen_addr = &ctx.config.metrics.listen_addr;
        let server_error = |reason: String| CommandError::MetricsServer {
            addr: listen_addr.clone(),
            reason,
        };
        let addr = listen_addr
            .parse()
            .map_err(|e: std::net::AddrParseError| server_error(e.to_string()))?;
        crate::http::serve(addr, ctx.config.metrics.ready_max_lag).map_err(server_error)?;
        tracing::info!(%addr, "serving /metrics, /health, /ready");
    }
    let spec = chain_spec(ctx, &super::adopt::chain_for_run(ctx)?)?;
    let progress_key = ctx.keys.exec_progress();
    let before = ctx.store.read(&progress_key)?;
    let started = Instant::now();
    // The embedded store's file lock already lets only one process in: no replica can share
    // it, so there is no leader to elect (and no renewal to queue behind the stages' writes).
    let elect_leader = ctx.config.leader.enabled && ctx.config.storage.backend != Backend::Embedded;
    if ctx.config.leader.enabled && !elect_leader {
        tracing::info!("embedded store: its file lock admits one process, no leader lease needed");
    }
    let outcome = loop {
        if !elect_leader {
            metrics().leader.set(1);
            break crate::daemon::run(ctx, spec, exit_at_head, Arc::clone(&stop), None)?;
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
        // Dropped when the pipeline returns: the renewals stop at once.
        let (renewing, renewing_done) = crossbeam_channel::bounded::<()>(0);
        let result = std::thread::scope(|scope| {
            scope.spawn(|| lease.keep(&deadline, &renewing_done));
            let result = crate::daemon::run(
                ctx,
                spec.clone(),
                exit_at_head,
                Arc::clone(&stop),
                Some(Arc::clone(&deadline)),
            );
            drop(renewing);
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
    let after = ctx.store.read(&progress_key)?;
    let txs = |p: Option<primitives::contract::ExecProgress>| p.map_or(0, |p| p.total_txs_executed);
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
        gas += stored_header(ctx, number)?.gas_used;
    }
    Ok(gas)
}
