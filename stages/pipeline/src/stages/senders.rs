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

use crate::stage::{Shared, Stage, StageError, StageIo};
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::Address;
use crossbeam_channel::{bounded, Receiver, TryRecvError};
use evm::chain::ChainSpec;
use primitives::block::ChainBlock;
use primitives::load::{recover_senders, LoadError};
use primitives::stage_id::StageId;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

const STAGE: StageId = StageId::Senders;

/// A block with its recovered senders, in transaction order.
pub type SendersBlock = (ChainBlock, Vec<Address>);

/// Blocks under recovery at once, per pool thread.
const BLOCKS_IN_FLIGHT_PER_THREAD: usize = 4;

/// A block's recovery as the pool reports it: `None` if it panicked.
type Recovered = (ChainBlock, Option<Result<Vec<Address>, LoadError>>);

/// A block handed to the pool: where its result will come, and when it was handed over.
type InFlight = (Receiver<Recovered>, Instant);

/// The senders stage: the rayon pool that recovers signatures.
pub struct SendersStage<'a> {
    /// A pool of the stage's own, or `None` for the rayon pool the caller runs in.
    pool: Option<&'a rayon::ThreadPool>,
}

impl<'a> SendersStage<'a> {
    /// Recover on `pool` (the daemon's: the stage's own threads).
    pub fn new(pool: &'a rayon::ThreadPool) -> Self {
        Self { pool: Some(pool) }
    }

    /// Recover on the rayon pool the caller runs in (`ef-test`, whose cases already run in
    /// parallel: waiting on another pool from inside one would let a worker start more cases
    /// on the same stack).
    pub fn in_current_pool() -> Self {
        Self { pool: None }
    }

    /// Run `work` on the stage's pool.
    fn install<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        match self.pool {
            Some(pool) => pool.install(work),
            None => work(),
        }
    }

    /// Recover the senders of every block from `io.input`, several blocks at a time, and pass
    /// them on in block order.
    pub fn run(
        &mut self,
        shared: &Shared,
        io: StageIo<ChainBlock, SendersBlock>,
    ) -> Result<(), StageError> {
        let meter = shared.meter(STAGE);
        let threads = self.pool.map_or_else(rayon::current_num_threads, |pool| {
            pool.current_num_threads()
        });
        let window = BLOCKS_IN_FLIGHT_PER_THREAD * threads.max(1);
        let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(window);
        let mut input_open = true;
        loop {
            // Hand over what is waiting (waiting for input only when nothing is in flight).
            while input_open && in_flight.len() < window && !shared.control.stopping() {
                let block = if in_flight.is_empty() {
                    meter.recv(STAGE, &io.input)
                } else {
                    match io.input.try_recv() {
                        Ok(block) => Some(block),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => None,
                    }
                };
                let Some(block) = block else {
                    input_open = false;
                    break;
                };
                in_flight.push_back(spawn_recovery(&shared.spec, self.pool, block));
            }
            if shared.control.stopping() {
                break;
            }
            let Some((result, started)) = in_flight.pop_front() else {
                break;
            };
            let (block, senders) = result.recv().map_err(|_| {
                failed(
                    shared,
                    StageError::Thread {
                        stage: STAGE,
                        reason: "a recovery job vanished".into(),
                    },
                )
            })?;
            let senders = senders
                .ok_or_else(|| {
                    failed(
                        shared,
                        StageError::Thread {
                            stage: STAGE,
                            reason: format!("block {}: sender recovery panicked", block.number()),
                        },
                    )
                })?
                .map_err(|error| failed(shared, StageError::block(STAGE, error)))?;
            let totals = (block.body.transactions.len() as u64, block.header.gas_used);
            shared.record_progress(STAGE, block.number(), totals, started);
            crate::stage::send_all(shared, STAGE, &io.outputs, vec![(block, senders)]);
        }
        Ok(())
    }
}

impl Stage for SendersStage<'_> {
    type Input = ChainBlock;
    type Output = SendersBlock;
    const ID: StageId = STAGE;

    /// Recover the senders of `input`'s blocks on the pool.
    fn execute(
        &mut self,
        shared: &Shared,
        input: Vec<ChainBlock>,
    ) -> Result<Vec<SendersBlock>, StageError> {
        input
            .into_iter()
            .map(|block| {
                let started = Instant::now();
                let homestead = shared.spec.is_homestead_active_at_block(block.number());
                let senders = self
                    .install(|| recover_senders(&block, homestead))
                    .map_err(|error| StageError::block(STAGE, error))?;
                let totals = (block.body.transactions.len() as u64, block.header.gas_used);
                shared.record_progress(STAGE, block.number(), totals, started);
                Ok((block, senders))
            })
            .collect()
    }
}

/// Start recovering `block`'s senders on `pool`.
fn spawn_recovery(
    spec: &Arc<ChainSpec>,
    pool: Option<&rayon::ThreadPool>,
    block: ChainBlock,
) -> InFlight {
    let homestead = spec.is_homestead_active_at_block(block.number());
    let (result_tx, result_rx) = bounded(1);
    let job = move || {
        let senders = catch_unwind(AssertUnwindSafe(|| recover_senders(&block, homestead))).ok();
        // The stage may have stopped and dropped the receiver: nothing then waits for it.
        let _ = result_tx.send((block, senders));
    };
    match pool {
        Some(pool) => pool.spawn(job),
        None => rayon::spawn(job),
    }
    (result_rx, Instant::now())
}

/// `error` for a block that failed; the headers stage is told to load no more, while the
/// stages after this one finish the blocks before it.
fn failed(shared: &Shared, error: StageError) -> StageError {
    shared.control.stop_loading();
    error
}
