//! `status`: where the syncer and every stage stand, which chain and backend the store holds.

use super::{CommandError, Context};
use primitives::contract::{ExecProgress, StageCheckpoint, SyncProgress};
use primitives::stage_id::StageId;
use primitives::value::ContractRead;
use serde::Serialize;

/// A snapshot of the store's progress markers.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// `embedded` or `pika`.
    pub backend: &'static str,
    /// Where the backend is (file path or host:port).
    pub location: String,
    /// The key prefix in use.
    pub key_prefix: String,
    /// The chain record `init` wrote, if any.
    pub chain: Option<primitives::contract::ChainRecord>,
    /// `idx:sync:progress`.
    pub sync: Option<SyncProgress>,
    /// `idx:exec:progress`.
    pub execution: Option<ExecProgress>,
    /// Blocks synced but not executed.
    pub lag: Option<u64>,
    /// Each stage's checkpoint, in pipeline order.
    pub stages: Vec<(&'static str, Option<StageCheckpoint>)>,
    /// True when the store keeps state tries (the merkle stage has a checkpoint): its state is
    /// verified against the headers' stateRoot. False: unverified until `trie rebuild`.
    pub state_verified: bool,
}

/// Read the progress markers.
pub fn run(ctx: &Context) -> Result<StatusReport, CommandError> {
    let sync = ctx.store.read(&ctx.keys.sync_progress())?;
    let execution = ctx.store.read(&ctx.keys.exec_progress())?;
    let mut stages = Vec::new();
    for stage in StageId::ALL {
        let checkpoint = ctx.store.read(&ctx.keys.stage_checkpoint(stage))?;
        stages.push((stage.as_str(), checkpoint));
    }
    let storage = &ctx.config.storage;
    let location = match ctx.store.backend_name() {
        "embedded" => storage.embedded.path.display().to_string(),
        _ => storage.pika.addr.clone(),
    };
    let lag = match (sync, execution) {
        (Some(s), Some(e)) => Some(
            s.latest_synced_block
                .saturating_sub(e.latest_executed_block),
        ),
        _ => None,
    };
    let state_verified = stages
        .iter()
        .any(|(name, checkpoint)| *name == StageId::Merkle.as_str() && checkpoint.is_some());
    Ok(StatusReport {
        state_verified,
        backend: ctx.store.backend_name(),
        location,
        key_prefix: storage.key_prefix.clone(),
        chain: ctx.chain_record()?,
        sync,
        execution,
        lag,
        stages,
    })
}

impl std::fmt::Display for StatusReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "backend:      {} ({})", self.backend, self.location)?;
        if !self.key_prefix.is_empty() {
            writeln!(f, "key prefix:   {}", self.key_prefix)?;
        }
        match &self.chain {
            Some(chain) => writeln!(
                f,
                "chain:        {} (chain id {}), genesis {:#x}",
                chain.name, chain.chain_id, chain.genesis_hash
            )?,
            None => writeln!(f, "chain:        not initialised (run `evm-executor init`)")?,
        }
        let show = |block: Option<u64>| block.map_or("-".to_string(), |b| b.to_string());
        writeln!(
            f,
            "synced:       {}",
            show(self.sync.map(|s| s.latest_synced_block))
        )?;
        writeln!(
            f,
            "executed:     {}",
            show(self.execution.map(|e| e.latest_executed_block))
        )?;
        writeln!(f, "lag:          {}", show(self.lag))?;
        if self.chain.is_some() {
            let state = if self.state_verified {
                "verified against every header's stateRoot (state tries kept)"
            } else {
                "UNVERIFIED: no state tries; run `evm-executor trie rebuild` to build them"
            };
            writeln!(f, "state:        {state}")?;
        }
        if let Some(execution) = self.execution {
            writeln!(f, "txs executed: {}", execution.total_txs_executed)?;
        }
        writeln!(f, "stages:")?;
        for (name, checkpoint) in &self.stages {
            match checkpoint {
                Some(c) => writeln!(f, "  {name:<10} block {} ({:#x})", c.block, c.hash)?,
                None => writeln!(f, "  {name:<10} -")?,
            }
        }
        Ok(())
    }
}
