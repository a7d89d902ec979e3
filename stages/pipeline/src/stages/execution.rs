//! Execution stage: executes each block over the state layers (which see the changes of blocks
//! not yet committed), verifies it, and writes its execution record `rec:{n}` with the
//! execution checkpoint, before handing the record to the commit and receipt stages.
//!
//! Two threads: one executes, the other writes the records. The writer takes every record
//! waiting, up to `batch_size` (while behind the syncer, waiting up to [`CATCH_UP_LINGER`] for
//! more), and stores them in one batch (one round trip, one durable commit) with the checkpoint
//! of the last, so execution never waits for the store; only then do the records go on to
//! commit and receipts (the crash rule).

use crate::meter::fill_batch;
use crate::metrics::metrics;
use crate::state::execution::ExecutionState;
use crate::{PipelineContext, SendersBlock, StageError, CATCH_UP_LINGER};
use alloy_consensus::Header;
use crossbeam_channel::{bounded, Receiver, Sender};
use evm::error::BlockError;
use primitives::record::ExecutionRecord;
use primitives::stage_id::StageId;
use primitives::store::WriteBatch;
use std::sync::Arc;
use std::time::Instant;

const STAGE: StageId = StageId::Execution;

/// The stages the records go to.
pub struct RecordOutputs {
    /// The commit stage.
    pub commit: Sender<Arc<ExecutionRecord>>,
    /// The receipts stage.
    pub receipts: Sender<Arc<ExecutionRecord>>,
}

/// A record waiting to be written, with the time its block's execution began.
type Unwritten = (ExecutionRecord, Instant);

/// Execute every block from `input`, `parent` being the last executed header.
pub fn run(
    ctx: &PipelineContext,
    parent: Header,
    input: Receiver<SendersBlock>,
    outputs: RecordOutputs,
) -> Result<(), StageError> {
    let capacity = ctx.batch_size.max(1) as usize;
    let (to_writer, writer_input) = bounded(capacity);
    std::thread::scope(|scope| {
        let writer = std::thread::Builder::new()
            .name("records".into())
            .spawn_scoped(scope, || write_records(ctx, writer_input, outputs))
            .map_err(|e| {
                StageError::Inconsistent(format!("cannot start the record writer: {e}"))
            })?;
        let executed = execute_blocks(ctx, parent, input, to_writer);
        let written = writer.join().unwrap_or_else(|_| {
            Err(StageError::Inconsistent(
                "the record writer panicked".into(),
            ))
        });
        // A write failure comes first: it is why execution stopped.
        written.and(executed)
    })
}

/// Execute blocks until the input ends, a block fails, or the writer is gone.
fn execute_blocks(
    ctx: &PipelineContext,
    mut parent: Header,
    input: Receiver<SendersBlock>,
    to_writer: Sender<Unwritten>,
) -> Result<(), StageError> {
    let meter = ctx.meters.stage(STAGE);
    let mut state = ExecutionState::new(&ctx.layers, ctx.layers.cache_sizes());
    while let Some((block, senders)) = meter.recv(STAGE, &input) {
        if ctx.stopping() {
            break;
        }
        let started = Instant::now();
        let record = loop {
            match state.execute(&ctx.spec, &block, &senders, &parent) {
                Ok(record) => break record,
                Err(BlockError::State { block, error })
                    if error.is_retryable() && !ctx.stopping() =>
                {
                    tracing::warn!(block, %error, "state read failed; retrying the block");
                    std::thread::sleep(ctx.poll_interval);
                }
                Err(error) => {
                    // The good blocks before this one are still written (the writer drains
                    // its input before it stops).
                    metrics().invalid_blocks_total.inc();
                    return Err(StageError::Block {
                        stage: STAGE,
                        message: error.to_string(),
                    });
                }
            }
        };
        // Later blocks read this block's changes from the overlay until commit releases them.
        ctx.layers.absorb(&record);
        metrics()
            .block_execution_seconds
            .observe(started.elapsed().as_secs_f64());
        parent = block.header;
        if !meter.send(STAGE, &to_writer, (record, started)) {
            break;
        }
    }
    Ok(())
}

/// Write the records from `input` in batches, then pass them on.
fn write_records(
    ctx: &PipelineContext,
    input: Receiver<Unwritten>,
    outputs: RecordOutputs,
) -> Result<(), StageError> {
    let max = ctx.batch_size.max(1) as usize;
    let meter = ctx.meters.stage(STAGE);
    while let Ok(first) = input.recv() {
        let (unwritten, _) = fill_batch(&input, first, max, CATCH_UP_LINGER, |(record, _)| {
            ctx.behind_head(record.number)
        });
        let Some((last, _)) = unwritten.last() else {
            continue;
        };
        let (last_number, last_hash) = (last.number, last.hash);
        let mut batch = WriteBatch::new();
        for (record, _) in &unwritten {
            batch.set(ctx.keys.record(record.number), record.encode());
        }
        // Last: on a store without transactions the checkpoint never runs ahead of the records.
        ctx.queue_checkpoint(&mut batch, STAGE, last_number, last_hash);
        ctx.write(STAGE, batch)?;
        for (record, started) in unwritten {
            let totals = (record.tx_count() as u64, record.gas_used);
            ctx.record_stage_progress(STAGE, record.number, totals, started);
            let record = Arc::new(record);
            if !meter.send(STAGE, &outputs.commit, Arc::clone(&record))
                || !meter.send(STAGE, &outputs.receipts, record)
            {
                return Ok(());
            }
        }
    }
    Ok(())
}
