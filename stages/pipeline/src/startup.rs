//! Where each stage resumes after a start or a crash: the checkpoints, read and checked
//! against each other (DESIGN §2, crash rule), with what is out of order repaired and logged,
//! and a store written by the original service (no checkpoints) taken over at
//! `idx:exec:progress`. Reads `idx:exec:progress`, `idx:stage:*` and `rec:{n}`; writes only
//! repaired checkpoints.

use crate::stage::{Inconsistency, Shared, StageError};
use crate::stages::merkle::{finish_pending, stored_storage_roots, VerifiedBatch};
use primitives::record::ExecutionRecord;
use primitives::stage_id::StageId;
use primitives::store::WriteBatch;
use std::sync::Arc;

/// Where each stage resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartPoint {
    /// Last block whose record is written.
    pub executed: u64,
    /// Last block whose state the tries hold; `None` when the store keeps no tries (written
    /// before the merkle stage existed, or by the original service): its state is unverified.
    pub merkle: Option<u64>,
    /// Last block applied to `st:latest`.
    pub committed: u64,
    /// Last block whose receipts are written.
    pub receipts: u64,
    /// Last block pruned.
    pub pruned: u64,
    /// Transactions executed up to `committed`.
    pub total_txs: u64,
}

impl StartPoint {
    /// The records the merkle stage has still to verify (written before a restart): none when
    /// `verifying` is false (no tries are kept).
    pub fn merkle_pending(
        &self,
        shared: &Shared,
        verifying: bool,
    ) -> Result<Vec<Arc<ExecutionRecord>>, StageError> {
        match self.merkle.filter(|_| verifying) {
            Some(merkle) => records(shared, merkle + 1, self.executed),
            None => Ok(Vec::new()),
        }
    }

    /// The verified blocks after `applied` (a consumer's checkpoint: commit's or receipts')
    /// it has still to apply, as one batch: with tries, those up to the merkle checkpoint
    /// with their storage roots in the tries; without, every executed block, unverified.
    pub fn verified_pending(
        &self,
        shared: &Shared,
        applied: u64,
        verifying: bool,
    ) -> Result<Vec<Arc<VerifiedBatch>>, StageError> {
        let verified = self.merkle.filter(|_| verifying);
        let blocks = records(shared, applied + 1, verified.unwrap_or(self.executed))?;
        if blocks.is_empty() {
            return Ok(Vec::new());
        }
        let storage_roots = match verified {
            Some(_) => Some(stored_storage_roots(shared, &blocks)?),
            None => None,
        };
        Ok(vec![Arc::new(VerifiedBatch::new(blocks, storage_roots))])
    }
}

/// Records `first..=last` from the store.
fn records(
    shared: &Shared,
    first: u64,
    last: u64,
) -> Result<Vec<Arc<ExecutionRecord>>, StageError> {
    (first..=last)
        .map(|n| shared.store.record(StageId::Execution, n).map(Arc::new))
        .collect()
}

/// Read the checkpoints, take over a store without them, and repair what is out of order.
pub fn start_point(shared: &Shared) -> Result<StartPoint, StageError> {
    let store = &shared.store;
    const STAGE: StageId = StageId::Execution;
    let progress_key = store.keys().exec_progress();
    let progress =
        store
            .read(STAGE, &progress_key)?
            .ok_or_else(|| Inconsistency::NotInitialised {
                key: progress_key.into_string(),
            })?;
    let (executed, merkle, committed, receipts, pruned) = (
        store.checkpoint_block(StageId::Execution)?,
        store.checkpoint_block(StageId::Merkle)?,
        store.checkpoint_block(StageId::Commit)?,
        store.checkpoint_block(StageId::Receipts)?,
        store.checkpoint_block(StageId::Prune)?.unwrap_or(0),
    );
    let legacy = progress.latest_executed_block;
    let Some(executed) = executed else {
        // A store written by the original service (or fresh from `init`): its state is
        // complete up to latestExecutedBlock and nothing is in flight.
        tracing::info!(
            block = legacy,
            "no stage checkpoints: taking over at {}",
            store.keys().exec_progress()
        );
        // The consumers' checkpoints start at the takeover point too: without them a restart
        // could not tell blocks the receipts stage had not reached yet from blocks before the
        // takeover once commit has moved idx:exec:progress.
        let header_key = store.keys().header(legacy);
        let hash = store
            .read(STAGE, &header_key)?
            .ok_or_else(|| Inconsistency::MissingHeader {
                key: header_key.into_string(),
            })?
            .hash();
        let mut batch = WriteBatch::new();
        for stage in [StageId::Commit, StageId::Receipts] {
            if store.checkpoint(stage)?.is_none() {
                store.queue_checkpoint(&mut batch, stage, legacy, hash);
            }
        }
        store.write(STAGE, batch)?;
        return Ok(StartPoint {
            executed: legacy,
            merkle: merkle.filter(|m| *m == legacy),
            committed: legacy,
            receipts: legacy,
            pruned,
            total_txs: progress.total_txs_executed,
        });
    };
    // A store whose takeover predates writing these checkpoints may lack them.
    let committed = committed.unwrap_or(legacy);
    let receipts = receipts.unwrap_or(legacy);
    let merkle = match merkle {
        Some(merkle) => Some(finish_pending(shared, merkle)?),
        None => None,
    };
    let mut start = StartPoint {
        executed,
        merkle,
        committed,
        receipts,
        pruned,
        total_txs: progress.total_txs_executed,
    };
    if committed > executed || receipts > executed {
        let ahead = committed.max(receipts);
        tracing::warn!(
            executed,
            committed,
            receipts,
            "execution checkpoint behind its consumers; moving it to {ahead}"
        );
        let record = store.record(STAGE, ahead)?;
        let mut batch = WriteBatch::new();
        store.queue_checkpoint(&mut batch, STAGE, ahead, record.hash);
        store.write(STAGE, batch)?;
        start.executed = ahead;
    }
    if legacy != committed {
        // Commit writes progress and its checkpoint in one ordered batch; a cut between them
        // leaves progress ahead, which re-applying those records repairs.
        tracing::warn!(
            progress = legacy,
            committed,
            "{} differs from the commit checkpoint; re-applying from {}",
            store.keys().exec_progress(),
            committed + 1
        );
        // The running transaction total must not count the re-applied records twice.
        let mut total = progress.total_txs_executed;
        for number in committed + 1..=legacy {
            let record = store.record(StageId::Commit, number)?;
            total = total.saturating_sub(record.tx_count() as u64);
        }
        start.total_txs = total;
    }
    if pruned > committed.min(receipts) {
        return Err(Inconsistency::PrunedAhead {
            pruned,
            committed,
            receipts,
        }
        .into());
    }
    Ok(start)
}
