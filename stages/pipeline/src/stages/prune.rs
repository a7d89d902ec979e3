//! Prune stage: once a block is more than `window_size` blocks below both the commit and the
//! receipts checkpoints, deletes its history keys (`st:{n}:*`, listed in its record) and its
//! execution record, in bounded batches, then moves the prune checkpoint. Nothing to unwind:
//! a reorg never reaches below the window (the reorg code refuses it).

use crate::stage::{Shared, Stage, StageError, StageIo};
use alloy_primitives::B256;
use primitives::stage_id::StageId;
use primitives::store::WriteBatch;

const STAGE: StageId = StageId::Prune;
/// Blocks pruned per store batch: bounds one batch to a few thousand deletes.
const BLOCKS_PER_BATCH: u64 = 32;

/// The prune stage's settings.
#[derive(Debug, Clone)]
pub struct PruneSettings {
    /// Blocks of history and records kept below the head.
    pub window_size: u64,
}

/// The prune stage: its checkpoint.
#[derive(Debug)]
pub struct PruneStage {
    settings: PruneSettings,
    pruned: u64,
}

impl PruneStage {
    /// Prune above the checkpoint `pruned`.
    pub fn new(settings: PruneSettings, pruned: u64) -> Self {
        Self { settings, pruned }
    }

    /// Prune once at start, again whenever the commit or receipts stage reports blocks (all
    /// reports already queued count as one), and a last time when both have finished (so the
    /// head is pruned too).
    /// An error asks the other stages to stop.
    pub fn run(&mut self, shared: &Shared, io: StageIo<u64, ()>) -> Result<(), StageError> {
        let meter = shared.meter(STAGE);
        let mut prune = || self.execute(shared, Vec::new()).map(drop);
        let result = prune().and_then(|()| {
            while !meter.recv_batch(STAGE, &io.input, usize::MAX).is_empty() {
                prune()?;
            }
            prune()
        });
        result.inspect_err(|error| shared.control.stop_after(error))
    }
}

impl Stage for PruneStage {
    /// Blocks applied by the commit or receipts stage (only their arrival matters: the
    /// checkpoints say how far both got).
    type Input = u64;
    type Output = ();
    const ID: StageId = STAGE;

    /// Delete every block more than the window below both the commit and receipts
    /// checkpoints.
    fn execute(&mut self, shared: &Shared, _input: Vec<u64>) -> Result<Vec<()>, StageError> {
        let store = &shared.store;
        let applied = store
            .checkpoint_block(StageId::Commit)?
            .zip(store.checkpoint_block(StageId::Receipts)?)
            .map_or(0, |(commit, receipts)| commit.min(receipts));
        let target = applied.saturating_sub(self.settings.window_size);
        // A shutdown still prunes (the batches are bounded); only a failing stage stops it.
        while self.pruned < target && !shared.control.aborted() {
            let started = std::time::Instant::now();
            let last = target.min(self.pruned + BLOCKS_PER_BATCH);
            let mut batch = WriteBatch::new();
            let totals = queue_block_deletes(shared, self.pruned + 1..=last, &mut batch)?;
            batch.fence();
            store.queue_checkpoint(&mut batch, STAGE, last, B256::ZERO);
            store.write(STAGE, batch)?;
            crate::metrics::metrics()
                .pruned_blocks_total
                .inc_by(last - self.pruned);
            for (number, block_totals) in totals {
                shared.record_progress(STAGE, number, block_totals, started);
            }
            self.pruned = last;
        }
        Ok(Vec::new())
    }
}

/// A pruned block: its number with its transaction count and gas.
type PrunedBlock = (u64, (u64, u64));

/// Queue the deletes of the history and records of `blocks` (read in one round trip; nothing
/// for a block already gone); returns each deleted block with its transaction count and gas.
fn queue_block_deletes(
    shared: &Shared,
    blocks: std::ops::RangeInclusive<u64>,
    batch: &mut WriteBatch,
) -> Result<Vec<PrunedBlock>, StageError> {
    let keys = shared.store.keys();
    let summaries: Vec<_> = blocks.clone().map(|n| keys.record_summary(n)).collect();
    let found =
        primitives::value::ContractRead::read_many(shared.store.store().as_ref(), &summaries)
            .map_err(|error| StageError::read(STAGE, error))?;
    let mut deleted = Vec::new();
    for (number, summary) in blocks.zip(found) {
        let Some(summary) = summary else {
            continue;
        };
        for address in &summary.accounts {
            batch.remove(keys.history_account(number, address));
        }
        for (address, slot) in &summary.storage {
            batch.remove(keys.history_storage(number, address, &B256::from(*slot)));
        }
        deleted.push((number, (summary.tx_count as u64, summary.gas_used)));
    }
    // A record lists its block's history: it goes after the history, so a cut leaves none of
    // the history without the record that finds it.
    batch.fence();
    for (number, _) in &deleted {
        batch.remove(keys.record(*number));
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::{
        assert_same_snapshot, geth_chain, history_keys, Snapshot, SyncedStore,
    };
    use primitives::contract::StageCheckpoint;
    use std::collections::BTreeSet;

    const WINDOW: u64 = 10;

    fn prune_stage(pruned: u64) -> PruneStage {
        PruneStage::new(
            PruneSettings {
                window_size: WINDOW,
            },
            pruned,
        )
    }

    /// The prune checkpoint's block.
    fn pruned(store: &SyncedStore) -> Option<u64> {
        store.shared.store.checkpoint_block(STAGE).expect("read")
    }

    /// The store now is `before` without the history and records of blocks up to `floor`
    /// (the prune checkpoint, now at `floor`, aside).
    fn assert_pruned_to(store: &SyncedStore, before: &Snapshot, floor: u64) {
        let keys = store.keys();
        let mut gone: BTreeSet<String> = history_keys(before)
            .into_iter()
            .filter(|(number, _)| *number <= floor)
            .map(|(_, key)| key)
            .collect();
        assert!(!gone.is_empty(), "history at or below {floor} to prune");
        assert!(
            history_keys(before)
                .iter()
                .any(|(number, _)| *number > floor),
            "history above {floor} to keep"
        );
        gone.extend((1..=floor).map(|n| keys.record(n).into_string()));
        gone.insert(keys.stage_checkpoint(STAGE).into_string());
        let mut expected = before.clone();
        expected.retain(|key, _| !gone.contains(key));
        let mut after = store.snapshot();
        after.remove(keys.stage_checkpoint(STAGE).as_str());
        assert_same_snapshot(
            &after,
            &expected,
            "exactly the history and records up to {floor} are gone",
        );
        assert!(store
            .snapshot()
            .contains_key(keys.record(floor + 1).as_str()));
        assert_eq!(pruned(store), Some(floor));
    }

    #[test]
    fn history_and_records_below_the_window_go_and_those_inside_stay() {
        let store = SyncedStore::new(110);
        store.execute_to(100);
        let before = store.snapshot();
        let mut stage = prune_stage(0);
        stage.execute(&store.shared, Vec::new()).expect("prune");
        assert_pruned_to(&store, &before, 100 - WINDOW);
        // Nothing more to do until the head moves.
        let pruned_once = store.snapshot();
        stage.execute(&store.shared, Vec::new()).expect("prune");
        assert_same_snapshot(
            &store.snapshot(),
            &pruned_once,
            "pruning again changes nothing",
        );
        store.execute_to(110);
        let before = store.snapshot();
        stage.execute(&store.shared, vec![110]).expect("prune");
        assert_pruned_to(&store, &before, 110 - WINDOW);
    }

    #[test]
    fn pruning_waits_for_the_slower_of_commit_and_receipts() {
        let store = SyncedStore::new(100);
        store.execute_to(100);
        // The receipts stage is behind at block 50.
        let mut batch = WriteBatch::new();
        batch.put(
            store.keys().stage_checkpoint(StageId::Receipts),
            &StageCheckpoint {
                block: 50,
                hash: geth_chain().hash(50),
                time: 0,
            },
        );
        store.write(batch);
        let before = store.snapshot();
        prune_stage(0)
            .execute(&store.shared, Vec::new())
            .expect("prune");
        assert_pruned_to(&store, &before, 50 - WINDOW);
    }
}
