//! Execution stage: executes each block over the state layers (which see the changes of blocks
//! not yet committed), verifies it, and writes its execution record `rec:{n}` with the
//! execution checkpoint, before handing the record to the commit and receipt stages.
//!
//! Records are written in groups: the blocks executed while more input was already waiting, up
//! to `batch_size`, go to the store in one batch (one round trip, one durable commit) with the
//! checkpoint of the last. At the head, where blocks arrive one by one, each is written at once.

use super::{PipelineContext, SendersBlock, StageError};
use crate::execute::{BlockError, ExecutionState};
use crate::metrics::metrics;
use crate::record::ExecutionRecord;
use crate::stage_id::StageId;
use crate::store::WriteBatch;
use alloy_consensus::Header;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
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

/// Execute every block from `input`, `parent` being the last executed header.
pub fn run(
    ctx: &PipelineContext,
    mut parent: Header,
    input: Receiver<SendersBlock>,
    outputs: RecordOutputs,
) -> Result<(), StageError> {
    let meter = ctx.meters.stage(STAGE);
    let mut state = ExecutionState::new(&ctx.layers, ctx.layers.cache_sizes());
    let max_unwritten = ctx.batch_size.max(1) as usize;
    let mut unwritten: Vec<(ExecutionRecord, Instant)> = Vec::new();
    loop {
        let next = if unwritten.is_empty() {
            meter.recv(STAGE, &input)
        } else {
            match input.try_recv() {
                Ok(item) => Some(item),
                Err(TryRecvError::Empty) => {
                    if !write_records(ctx, &mut unwritten, &outputs)? {
                        return Ok(());
                    }
                    continue;
                }
                Err(TryRecvError::Disconnected) => None,
            }
        };
        let Some((block, senders)) = next.filter(|_| !ctx.stopping()) else {
            break;
        };
        let started = Instant::now();
        let record = loop {
            match state.execute(&ctx.spec, &block, &senders, &parent) {
                Ok(record) => break record,
                Err(BlockError::State { block, error }) if !ctx.stopping() => {
                    tracing::warn!(block, %error, "state read failed; retrying the block");
                    std::thread::sleep(ctx.poll_interval);
                }
                Err(error) => {
                    metrics().invalid_blocks_total.inc();
                    // The good blocks before this one are kept.
                    write_records(ctx, &mut unwritten, &outputs)?;
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
        unwritten.push((record, started));
        if unwritten.len() >= max_unwritten && !write_records(ctx, &mut unwritten, &outputs)? {
            return Ok(());
        }
    }
    write_records(ctx, &mut unwritten, &outputs)?;
    Ok(())
}

/// Write `unwritten` records and the checkpoint of the last in one batch, then pass them on.
/// False once a later stage is gone.
fn write_records(
    ctx: &PipelineContext,
    unwritten: &mut Vec<(ExecutionRecord, Instant)>,
    outputs: &RecordOutputs,
) -> Result<bool, StageError> {
    let Some((last, _)) = unwritten.last() else {
        return Ok(true);
    };
    let (last_number, last_hash) = (last.number, last.hash);
    let mut batch = WriteBatch::new();
    for (record, _) in unwritten.iter() {
        batch.set(ctx.keys.record(record.number), record.encode());
    }
    // Last: on a store without transactions the checkpoint never runs ahead of the records.
    ctx.queue_checkpoint(&mut batch, STAGE, last_number, last_hash);
    ctx.write(STAGE, batch)?;
    let meter = ctx.meters.stage(STAGE);
    for (record, started) in unwritten.drain(..) {
        let totals = (record.tx_count() as u64, record.gas_used);
        ctx.record_stage_progress(STAGE, record.number, totals, started);
        let record = Arc::new(record);
        if !meter.send(STAGE, &outputs.commit, Arc::clone(&record))
            || !meter.send(STAGE, &outputs.receipts, record)
        {
            return Ok(false);
        }
    }
    Ok(true)
}
