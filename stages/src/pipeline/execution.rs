//! Execution stage: executes each block over the state layers (which see the changes of blocks
//! not yet committed), verifies it, and writes its execution record `rec:{n}` with the
//! execution checkpoint, before handing the record to the commit and receipt stages.

use super::{PipelineContext, SendersBlock, StageError};
use crate::execute::{execute_block, BlockError};
use crate::metrics::metrics;
use crate::record::ExecutionRecord;
use crate::stage_id::StageId;
use crate::store::WriteBatch;
use alloy_consensus::Header;
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::time::Instant;

const STAGE: StageId = StageId::Execution;

/// Execute every block from `input`, `parent` being the last executed header.
pub fn run(
    ctx: &PipelineContext,
    mut parent: Header,
    input: Receiver<SendersBlock>,
    to_commit: Sender<Arc<ExecutionRecord>>,
    to_receipts: Sender<Arc<ExecutionRecord>>,
) -> Result<(), StageError> {
    for (block, senders) in input {
        if ctx.stopping() {
            break;
        }
        let started = Instant::now();
        let record = loop {
            match execute_block(&ctx.spec, &ctx.layers, &block, &senders, &parent) {
                Ok(record) => break record,
                Err(BlockError::State { block, error }) if !ctx.stopping() => {
                    tracing::warn!(block, %error, "state read failed; retrying the block");
                    std::thread::sleep(ctx.poll_interval);
                }
                Err(error) => {
                    metrics().invalid_blocks_total.inc();
                    return Err(StageError::Block {
                        stage: STAGE,
                        message: error.to_string(),
                    });
                }
            }
        };
        let mut batch = WriteBatch::new();
        batch.set(ctx.keys.record(record.number), record.encode());
        ctx.queue_checkpoint(&mut batch, STAGE, record.number, record.hash);
        ctx.write(STAGE, &batch)?;
        ctx.layers.absorb(&record);
        metrics()
            .block_execution_seconds
            .observe(started.elapsed().as_secs_f64());
        ctx.record_stage_progress(STAGE, record.number, started);
        let record = Arc::new(record);
        parent = block.header;
        if to_commit.send(Arc::clone(&record)).is_err() || to_receipts.send(record).is_err() {
            break;
        }
    }
    Ok(())
}
