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
            shared.record_record_progress(STAGE, record, started);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::{
        assert_same_snapshot, consensus_bytes, geth_chain, list_items, ordered_root, under,
        without_run_times, SyncedStore, CHAIN_LENGTH,
    };
    use primitives::value::ContractRead;

    #[test]
    fn stored_receipts_decode_and_their_root_is_the_headers_receipts_root() {
        let chain = geth_chain();
        let store = SyncedStore::new(CHAIN_LENGTH);
        store.execute_to(CHAIN_LENGTH);
        let snapshot = store.snapshot();
        let keys = store.keys();
        assert_eq!(
            under(&snapshot, "blk:rcpt:").len() as u64,
            CHAIN_LENGTH,
            "one receipts key per block"
        );
        for number in 1..=CHAIN_LENGTH {
            let block = chain.block(number);
            let key = keys.receipts(number);
            let bytes = &snapshot[key.as_str()];
            // The root over the stored bytes, framed here, not by the project's codecs.
            let items = list_items(bytes);
            assert_eq!(
                items.len(),
                block.tx_hashes.len(),
                "{key}: one per transaction"
            );
            let consensus: Vec<&[u8]> = items.into_iter().map(consensus_bytes).collect();
            assert_eq!(
                ordered_root(&consensus),
                block.header.receipts_root,
                "{key}"
            );
            // And it decodes as the data contract says.
            let receipts = store.memory.read(&key).expect("read").expect("present");
            let types: Vec<u8> = receipts.iter().map(|r| r.tx_type() as u8).collect();
            assert_eq!(types, block.tx_types, "{key}: receipt types");
            let last_gas = receipts.last().map_or(0, |r| r.cumulative_gas_used());
            assert_eq!(last_gas, block.header.gas_used, "{key}: cumulative gas");
        }
        let types: std::collections::BTreeSet<u8> = chain
            .blocks
            .iter()
            .flat_map(|b| b.tx_types.clone())
            .collect();
        assert_eq!(
            types,
            [0, 1, 2, 3, 4].into(),
            "every transaction type is covered"
        );
        let checkpoint = store
            .shared
            .store
            .checkpoint(STAGE)
            .expect("read")
            .expect("set");
        assert_eq!(
            (checkpoint.block, checkpoint.hash),
            (CHAIN_LENGTH, chain.hash(CHAIN_LENGTH))
        );
    }

    #[test]
    fn unwind_deletes_the_receipts_and_writing_them_again_restores_the_bytes() {
        let chain = geth_chain();
        let store = SyncedStore::new(12);
        store.execute_to(12);
        let keys = store.keys().clone();
        let before = store.snapshot();
        let record = Arc::new(store.shared.store.record(STAGE, 12).expect("record"));
        let mut stage = ReceiptsStage::new(12);
        // At its checkpoint, the stage skips a block handed over again.
        let again = VerifiedBatch::new(vec![record.clone()], None);
        let written = stage
            .execute(&store.shared, vec![Arc::new(again)])
            .expect("receipts");
        assert!(written.is_empty(), "{written:?}");
        assert_same_snapshot(&store.snapshot(), &before, "nothing written");
        let mut unwind = UnwindBatch::default();
        stage
            .unwind(&store.shared, &record, &mut unwind)
            .expect("unwind");
        store.write(unwind.into_batch());
        let unwound = store.snapshot();
        let checkpoint = keys.stage_checkpoint(STAGE).into_string();
        let receipts = keys.receipts(12).into_string();
        let mut expected = before.clone();
        expected.remove(&receipts);
        expected.remove(&checkpoint);
        let mut others = unwound.clone();
        others.remove(&checkpoint);
        assert_same_snapshot(
            &others,
            &expected,
            "only blk:rcpt:12 and the checkpoint change",
        );
        let moved = store
            .shared
            .store
            .checkpoint(STAGE)
            .expect("read")
            .expect("set");
        assert_eq!((moved.block, moved.hash), (11, chain.hash(11)));
        // Receipts need no storage roots.
        let unverified = VerifiedBatch::new(vec![record], None);
        stage
            .execute(&store.shared, vec![Arc::new(unverified)])
            .expect("receipts");
        assert_same_snapshot(
            &store.timeless_snapshot(),
            &without_run_times(&keys, &before),
            "written again, the same bytes",
        );
    }
}
