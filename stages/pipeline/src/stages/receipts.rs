//! Receipts stage: writes `blk:rcpt:{n}` from each execution record, then its checkpoint; its
//! unwind deletes them. The records already waiting, up to `batch_size`, go in one batch; while
//! the pipeline is behind the syncer the stage waits up to
//! [`crate::stage::CATCH_UP_LINGER`] for a fuller one.

use super::merkle::VerifiedBatch;
use crate::stage::{Shared, Stage, StageError, UnwindBatch};
use primitives::record::ExecutionRecord;
use primitives::stage_id::StageId;
use primitives::store::WriteBatch;
use std::sync::Arc;
use std::time::Instant;

const STAGE: StageId = StageId::Receipts;

/// The receipts stage: its checkpoint.
#[derive(Debug, Default)]
pub struct ReceiptsStage {
    written: u64,
}

impl ReceiptsStage {
    /// Write receipts after block `written`.
    pub fn new(written: u64) -> Self {
        Self { written }
    }
}

impl Stage for ReceiptsStage {
    /// Blocks the merkle stage verified.
    type Input = Arc<VerifiedBatch>;
    /// The last block whose receipts were written (for the prune stage).
    type Output = u64;
    const ID: StageId = STAGE;

    /// Write the receipts of `input` (consecutive blocks; those at or below the checkpoint are
    /// skipped) and the checkpoint of the last.
    fn execute(
        &mut self,
        shared: &Shared,
        input: Vec<Arc<VerifiedBatch>>,
    ) -> Result<Vec<u64>, StageError> {
        let input: Vec<&Arc<ExecutionRecord>> = input
            .iter()
            .flat_map(|verified| verified.records.iter())
            .filter(|r| r.number > self.written)
            .collect();
        let Some(last) = input.last().copied() else {
            return Ok(Vec::new());
        };
        let started = Instant::now();
        let mut batch = WriteBatch::new();
        for record in &input {
            batch.put(
                shared.store.keys().receipts(record.number),
                &record.receipts,
            );
        }
        batch.fence();
        shared
            .store
            .queue_checkpoint(&mut batch, STAGE, last.number, last.hash);
        shared.store.write(STAGE, batch)?;
        self.written = last.number;
        shared.control.note_written(STAGE, last.number);
        for record in &input {
            let totals = (record.tx_count() as u64, record.gas_used);
            shared.record_progress(STAGE, record.number, totals, started);
        }
        Ok(vec![last.number])
    }

    /// Delete the block's receipts and move the checkpoint to its parent.
    fn unwind(
        &mut self,
        shared: &Shared,
        record: &ExecutionRecord,
        batch: &mut UnwindBatch,
    ) -> Result<(), StageError> {
        if record.number > self.written {
            return Ok(());
        }
        batch
            .undo()
            .remove(shared.store.keys().receipts(record.number));
        batch.checkpoint(shared, STAGE, record.number - 1, record.parent_hash);
        self.written = record.number - 1;
        Ok(())
    }
}
