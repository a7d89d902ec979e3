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
    if legacy > committed {
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
    } else if legacy < committed {
        // An unwind writes progress with the restored state, before it moves the checkpoints
        // (crate::stage::UnwindBatch); a cut between them leaves progress behind, while the
        // checkpoints and the records still name the blocks above it, whose unwind is done
        // again (the syncer's branch still replaces them). That unwind takes their
        // transactions out of the total, so they are counted in here.
        tracing::warn!(
            progress = legacy,
            committed,
            "{} is behind the commit checkpoint: an unwind was cut short; it is done again",
            store.keys().exec_progress()
        );
        let mut total = progress.total_txs_executed;
        for number in legacy + 1..=committed {
            total += store.record(StageId::Commit, number)?.tx_count() as u64;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::{ErrorAction, Stage};
    use crate::stages::commit::{CommitSettings, CommitStage};
    use crate::stages::merkle::VerifyRoot;
    use crate::stages::receipts::ReceiptsStage;
    use crate::test_utils::{
        assert_same_snapshot, assert_same_store, geth_chain, state_keys, SyncedStore, HISTORY_TTL,
    };
    use alloy_primitives::B256;
    use primitives::contract::{ExecProgress, StageCheckpoint};
    use primitives::value::ContractRead;

    /// A stage's checkpoint as (block, hash).
    fn checkpoint(store: &SyncedStore, stage: StageId) -> Option<(u64, B256)> {
        store
            .shared
            .store
            .checkpoint(stage)
            .expect("read")
            .map(|c| (c.block, c.hash))
    }

    /// Move a stage's checkpoint to `block` of the fixture chain.
    fn set_checkpoint(store: &SyncedStore, stage: StageId, block: u64) {
        let mut batch = WriteBatch::new();
        batch.put(
            store.keys().stage_checkpoint(stage),
            &StageCheckpoint {
                block,
                hash: geth_chain().hash(block),
                time: 0,
            },
        );
        store.write(batch);
    }

    /// `idx:exec:progress` at `block` with the fixture's transactions up to it.
    fn set_progress(store: &SyncedStore, block: u64) {
        let mut batch = WriteBatch::new();
        batch.put(
            store.keys().exec_progress(),
            &ExecProgress {
                latest_executed_block: block,
                last_execution_time: 0,
                total_txs_executed: geth_chain().txs_up_to(block),
            },
        );
        store.write(batch);
    }

    /// Where the stages resume (transactions counted from the fixture).
    fn start(
        executed: u64,
        merkle: Option<u64>,
        committed: u64,
        receipts: u64,
        pruned: u64,
    ) -> StartPoint {
        StartPoint {
            executed,
            merkle,
            committed,
            receipts,
            pruned,
            total_txs: geth_chain().txs_up_to(committed),
        }
    }

    #[test]
    fn a_store_fresh_from_init_is_taken_over_at_genesis() {
        let genesis = Some((0, geth_chain().hash(0)));
        for (store, merkle) in [
            (SyncedStore::new(5), Some(0)),
            (SyncedStore::without_tries(5), None),
        ] {
            let expected = start(0, merkle, 0, 0, 0);
            assert_eq!(start_point(&store.shared).expect("start"), expected);
            assert_eq!(checkpoint(&store, StageId::Commit), genesis);
            assert_eq!(checkpoint(&store, StageId::Receipts), genesis);
            assert_eq!(checkpoint(&store, StageId::Execution), None);
            let merkle = checkpoint(&store, StageId::Merkle);
            assert_eq!(merkle, expected.merkle.and(genesis), "as init wrote it");
            let taken_over = store.snapshot();
            assert_eq!(start_point(&store.shared).expect("start"), expected);
            assert_same_snapshot(
                &store.snapshot(),
                &taken_over,
                "a second start changes nothing",
            );
        }
    }

    #[test]
    fn a_store_of_the_original_service_is_taken_over_at_its_progress() {
        let store = SyncedStore::without_tries(30);
        store.execute_to(20);
        // The original service kept neither checkpoints nor records (nor tries).
        let keys = store.keys().clone();
        let mut batch = WriteBatch::new();
        for stage in StageId::ALL {
            batch.remove(keys.stage_checkpoint(stage));
        }
        for number in 1..=20 {
            batch.remove(keys.record(number));
        }
        store.write(batch);
        assert_eq!(
            start_point(&store.shared).expect("start"),
            start(20, None, 20, 20, 0)
        );
        for stage in [StageId::Commit, StageId::Receipts] {
            assert_eq!(checkpoint(&store, stage), Some((20, geth_chain().hash(20))));
        }
        // The stages go on from there to the state of a run that never stopped.
        store.execute_to(30);
        let straight = SyncedStore::without_tries(30);
        straight.execute_to(30);
        assert_same_snapshot(
            &state_keys(&store.snapshot()),
            &state_keys(&straight.snapshot()),
            "the state of a run that never stopped",
        );
        let progress = store
            .memory
            .read(&keys.exec_progress())
            .expect("read")
            .expect("progress");
        assert_eq!(
            (progress.latest_executed_block, progress.total_txs_executed),
            (30, geth_chain().txs_up_to(30))
        );
    }

    #[test]
    fn a_store_without_progress_is_not_initialised() {
        let store = SyncedStore::new(5);
        let key = store.keys().exec_progress().into_string();
        store.remove(&key);
        let error = start_point(&store.shared).expect_err("not initialised");
        let StageError::Inconsistent(Inconsistency::NotInitialised { key: named }) = &error else {
            panic!("not a missing initialisation: {error:?}");
        };
        assert_eq!(*named, key);
        assert_eq!(error.action(), ErrorAction::Stop);
    }

    #[test]
    fn an_execution_checkpoint_behind_its_consumers_is_moved_up() {
        let store = SyncedStore::new(20);
        store.execute_to(20);
        set_checkpoint(&store, StageId::Execution, 17);
        assert_eq!(
            start_point(&store.shared).expect("start"),
            start(20, Some(20), 20, 20, 0)
        );
        assert_eq!(
            checkpoint(&store, StageId::Execution),
            Some((20, geth_chain().hash(20)))
        );
    }

    /// A store through block 40, and the same store `cut` by a crash as `cut` says.
    fn cut_at_40(cut: impl FnOnce(&SyncedStore)) -> (SyncedStore, SyncedStore) {
        let straight = SyncedStore::new(40);
        straight.execute_to(40);
        let crashed = SyncedStore::new(40);
        crashed.execute_to(40);
        cut(&crashed);
        (straight, crashed)
    }

    #[test]
    fn progress_ahead_of_the_commit_checkpoint_counts_each_transaction_once() {
        let chain = geth_chain();
        assert!(
            chain.txs_up_to(40) > chain.txs_up_to(35),
            "blocks 36..=40 have transactions"
        );
        // Commit wrote progress for block 40 but its checkpoint stayed at 35.
        let (straight, crashed) = cut_at_40(|s| set_checkpoint(s, StageId::Commit, 35));
        let start = start_point(&crashed.shared).expect("start");
        assert_eq!(start, self::start(40, Some(40), 35, 40, 0));
        let pending = start
            .verified_pending(&crashed.shared, start.committed, true)
            .expect("records");
        assert_eq!(numbers(&pending), (36..=40).collect::<Vec<_>>());
        CommitStage::new(
            CommitSettings {
                history_ttl: HISTORY_TTL,
            },
            start.committed,
            start.total_txs,
        )
        .execute(&crashed.shared, pending)
        .expect("commit");
        assert_same_store(&crashed, &straight, "the store of a run never cut");
    }

    #[test]
    fn progress_behind_the_commit_checkpoint_counts_the_transactions_up_to_it() {
        let chain = geth_chain();
        assert!(
            chain.txs_up_to(40) > chain.txs_up_to(39),
            "block 40 has transactions"
        );
        // An unwind of block 40 was cut after restoring the state and progress of block 39,
        // before the checkpoints moved: block 40 is still the commit checkpoint's.
        let (_, crashed) = cut_at_40(|s| set_progress(s, 39));
        assert_eq!(
            start_point(&crashed.shared).expect("start"),
            start(40, Some(40), 40, 40, 0)
        );
    }

    #[test]
    fn receipts_behind_are_given_the_records_they_miss() {
        let (straight, crashed) = cut_at_40(|s| set_checkpoint(s, StageId::Receipts, 37));
        let start = start_point(&crashed.shared).expect("start");
        assert_eq!(start, self::start(40, Some(40), 40, 37, 0));
        let pending = start
            .verified_pending(&crashed.shared, start.receipts, true)
            .expect("records");
        assert_eq!(numbers(&pending), [38, 39, 40]);
        ReceiptsStage::new(start.receipts)
            .execute(&crashed.shared, pending)
            .expect("receipts");
        assert_same_store(&crashed, &straight, "the same store");
    }

    /// The blocks of verified batches, in order.
    fn numbers(batches: &[Arc<VerifiedBatch>]) -> Vec<u64> {
        batches
            .iter()
            .flat_map(|batch| batch.records.iter().map(|r| r.number))
            .collect()
    }

    #[test]
    fn blocks_executed_but_not_verified_are_verified_then_applied() {
        let straight = SyncedStore::new(40);
        straight.execute_to(40);
        // The records of blocks 36..=40 were written; the merkle stage had not got to them.
        let crashed = SyncedStore::new(40);
        crashed.execute_to(35);
        crashed.execute_batch(36, 40);
        let start = start_point(&crashed.shared).expect("start");
        assert_eq!(start, self::start(40, Some(35), 35, 35, 0));
        for applied in [start.committed, start.receipts] {
            let pending = start.verified_pending(&crashed.shared, applied, true);
            assert!(pending.expect("none").is_empty(), "none verified yet");
        }
        let pending = start
            .merkle_pending(&crashed.shared, true)
            .expect("records");
        let pending_numbers: Vec<u64> = pending.iter().map(|r| r.number).collect();
        assert_eq!(pending_numbers, (36..=40).collect::<Vec<_>>());
        let verified = crashed
            .merkle(VerifyRoot::Batch)
            .execute(&crashed.shared, pending)
            .expect("verify");
        let settings = CommitSettings {
            history_ttl: HISTORY_TTL,
        };
        CommitStage::new(settings, start.committed, start.total_txs)
            .execute(&crashed.shared, verified.clone())
            .expect("commit");
        ReceiptsStage::new(start.receipts)
            .execute(&crashed.shared, verified)
            .expect("receipts");
        assert_same_store(&crashed, &straight, "the store of a run never cut");
    }

    #[test]
    fn without_verification_every_executed_block_is_pending_unverified() {
        let crashed = SyncedStore::new(40);
        crashed.execute_to(35);
        crashed.execute_batch(36, 40);
        let start = start_point(&crashed.shared).expect("start");
        let merkle_pending = start.merkle_pending(&crashed.shared, false);
        assert!(merkle_pending.expect("none").is_empty(), "no tries kept");
        let pending = start
            .verified_pending(&crashed.shared, start.committed, false)
            .expect("records");
        assert_eq!(numbers(&pending), (36..=40).collect::<Vec<_>>());
        assert!(pending.iter().all(|batch| batch.storage_roots.is_none()));
    }

    #[test]
    fn a_prune_checkpoint_above_the_applied_blocks_is_refused() {
        let store = SyncedStore::new(20);
        store.execute_to(20);
        set_checkpoint(&store, StageId::Prune, 25);
        let before = store.snapshot();
        let error = start_point(&store.shared).expect_err("pruned ahead");
        assert!(
            matches!(
                error,
                StageError::Inconsistent(Inconsistency::PrunedAhead {
                    pruned: 25,
                    committed: 20,
                    receipts: 20
                })
            ),
            "{error:?}"
        );
        assert_eq!(error.action(), ErrorAction::Stop);
        assert_same_snapshot(&store.snapshot(), &before, "nothing written");
    }
}
