//! Senders stage: recovers every transaction's sender on a rayon pool (secp256k1, the C
//! library). No durable output.
//!
//! Several blocks are recovered at once and passed on in order. One block at a time would make
//! each block a barrier: a pool thread that finishes its share waits for the others, and on a
//! machine where the other stages want the same cores, a descheduled pool thread holds the
//! whole stage up.
//!
//! A block whose senders cannot be recovered ends the stage without stopping the others: the
//! headers stage loads no more, the blocks before it go on through execution, commit and
//! receipts, and then the error is reported.

use crate::{PipelineContext, SendersBlock, StageError};
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::Address;
use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError};
use primitives::block::ChainBlock;
use primitives::load::{recover_senders, LoadError};
use primitives::stage_id::StageId;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Instant;

const STAGE: StageId = StageId::Senders;

/// Blocks under recovery at once, per pool thread.
const BLOCKS_IN_FLIGHT_PER_THREAD: usize = 4;

/// A block's recovery as the pool reports it: `None` if it panicked.
type Recovered = (ChainBlock, Option<Result<Vec<Address>, LoadError>>);

/// A block handed to the pool: where its result will come, and when it was handed over.
type InFlight = (Receiver<Recovered>, Instant);

/// Recover senders of every block from `input` on `pool` into `out`, in block order.
pub fn run(
    ctx: &PipelineContext,
    pool: &rayon::ThreadPool,
    input: Receiver<ChainBlock>,
    out: Sender<SendersBlock>,
) -> Result<(), StageError> {
    let meter = ctx.meters.stage(STAGE);
    let window = BLOCKS_IN_FLIGHT_PER_THREAD * pool.current_num_threads().max(1);
    let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(window);
    let mut input_open = true;
    loop {
        // Hand over what is waiting (waiting for input only when nothing is in flight).
        while input_open && in_flight.len() < window && !ctx.stopping() {
            let block = if in_flight.is_empty() {
                meter.recv(STAGE, &input)
            } else {
                match input.try_recv() {
                    Ok(block) => Some(block),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => None,
                }
            };
            let Some(block) = block else {
                input_open = false;
                break;
            };
            in_flight.push_back(spawn_recovery(ctx, pool, block));
        }
        if ctx.stopping() {
            break;
        }
        let Some((result, started)) = in_flight.pop_front() else {
            break;
        };
        let (block, senders) = result
            .recv()
            .map_err(|_| failed(ctx, "the recovery job vanished"))?;
        let senders = senders
            .ok_or_else(|| {
                failed(
                    ctx,
                    &format!("block {}: sender recovery panicked", block.number()),
                )
            })?
            .map_err(|e| failed(ctx, &e.to_string()))?;
        let totals = (block.body.transactions.len() as u64, block.header.gas_used);
        ctx.record_stage_progress(STAGE, block.number(), totals, started);
        if !meter.send(STAGE, &out, (block, senders)) {
            break;
        }
    }
    Ok(())
}

/// Start recovering `block`'s senders on `pool`.
fn spawn_recovery(ctx: &PipelineContext, pool: &rayon::ThreadPool, block: ChainBlock) -> InFlight {
    let homestead = ctx.spec.is_homestead_active_at_block(block.number());
    let (result_tx, result_rx) = bounded(1);
    pool.spawn(move || {
        let senders = catch_unwind(AssertUnwindSafe(|| recover_senders(&block, homestead))).ok();
        // The stage may have stopped and dropped the receiver: nothing then waits for it.
        let _ = result_tx.send((block, senders));
    });
    (result_rx, Instant::now())
}

/// The stage's error for a block that failed; the headers stage is told to load no more.
fn failed(ctx: &PipelineContext, message: &str) -> StageError {
    ctx.loading_stopped.store(true, Ordering::Relaxed);
    StageError::Block {
        stage: STAGE,
        message: message.to_string(),
    }
}
