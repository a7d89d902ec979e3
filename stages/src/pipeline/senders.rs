//! Senders stage: recovers every transaction's sender on a rayon pool (secp256k1, the C
//! library). No durable output.

use super::{PipelineContext, SendersBlock, StageError};
use crate::block::ChainBlock;
use crate::load::recover_senders;
use crate::stage_id::StageId;
use alloy_hardforks::EthereumHardforks;
use crossbeam_channel::{Receiver, Sender};

const STAGE: StageId = StageId::Senders;

/// Recover senders of every block from `input` on `pool` into `out`.
pub fn run(
    ctx: &PipelineContext,
    pool: &rayon::ThreadPool,
    input: Receiver<ChainBlock>,
    out: Sender<SendersBlock>,
) -> Result<(), StageError> {
    let meter = ctx.meters.stage(STAGE);
    while let Some(block) = meter.recv(STAGE, &input) {
        if ctx.stopping() {
            break;
        }
        let started = std::time::Instant::now();
        let homestead = ctx.spec.is_homestead_active_at_block(block.number());
        let senders = pool
            .install(|| recover_senders(&block, homestead))
            .map_err(|e| StageError::Block {
                stage: STAGE,
                message: e.to_string(),
            })?;
        let totals = (block.body.transactions.len() as u64, block.header.gas_used);
        ctx.record_stage_progress(STAGE, block.number(), totals, started);
        if !meter.send(STAGE, &out, (block, senders)) {
            break;
        }
    }
    Ok(())
}
