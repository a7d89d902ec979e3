//! Unwinding a reorganised chain (DESIGN §2, reorgs): find the fork point by comparing the
//! syncer's headers with the executed records, then undo blocks newest first, each with every
//! stage's own unwind ([`crate::stage::Stage::unwind`]) put together into one ordered batch
//! ([`UnwindBatch`]: undo, checkpoints, then the record), so an unwind cut short by a crash is
//! simply done again.

use crate::stage::{Inconsistency, Shared, StageError, Unwind, UnwindBatch};
use primitives::stage_id::StageId;

const STAGE: StageId = StageId::Execution;

/// The highest block at or below `executed` whose executed record matches the syncer's
/// header; an error when the fork is at or below `pruned` (outside the window).
pub fn fork_point(shared: &Shared, executed: u64, pruned: u64) -> Result<u64, StageError> {
    let store = &shared.store;
    let mut number = executed;
    while number > pruned {
        let record = store.record(STAGE, number)?;
        let stored = store.read(STAGE, &store.keys().header(number))?;
        if stored.is_some_and(|header| header.hash() == record.hash) {
            return Ok(number);
        }
        number -= 1;
    }
    if number == 0 {
        return Ok(0);
    }
    Err(Inconsistency::ForkBelowWindow { pruned }.into())
}

/// Undo blocks `executed` down to `fork + 1` with `stages` (each undoes its own output; the
/// execution stage, whose record the others read, last).
pub fn unwind_to(
    shared: &Shared,
    fork: u64,
    executed: u64,
    stages: &mut [&mut dyn Unwind],
) -> Result<(), StageError> {
    for number in (fork + 1..=executed).rev() {
        let record = shared.store.record(STAGE, number)?;
        let mut batch = UnwindBatch::default();
        for stage in stages.iter_mut() {
            stage.unwind_block(shared, &record, &mut batch)?;
        }
        shared.store.write(STAGE, batch.into_batch())?;
        tracing::info!(block = number, "unwound");
    }
    Ok(())
}
