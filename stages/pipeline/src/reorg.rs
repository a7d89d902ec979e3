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
/// execution stage, whose record the others read, last). The merkle stage, wherever `stages`
/// has it, goes first: commit's unwind restores the accounts with the storage roots it notes.
pub fn unwind_to(
    shared: &Shared,
    fork: u64,
    executed: u64,
    stages: &mut [&mut dyn Unwind],
) -> Result<(), StageError> {
    stages.sort_by_key(|stage| stage.id() != StageId::Merkle);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::{ErrorAction, Stage};
    use crate::stages::commit::{CommitSettings, CommitStage};
    use crate::stages::execution::ExecutionStage;
    use crate::stages::merkle::{MerkleStage, VerifyRoot};
    use crate::stages::prune::{PruneSettings, PruneStage};
    use crate::stages::receipts::ReceiptsStage;
    use crate::startup::start_point;
    use crate::test_utils::{
        assert_same_snapshot, assert_same_store, geth_chain, other_branch, SyncedStore,
        HISTORY_TTL, KEY_PREFIX,
    };

    /// The syncer's other branch: blocks `fork + 1..=head` replaced by headers of their own,
    /// each naming the one before as its parent.
    fn switch_branch(store: &SyncedStore, fork: u64, head: u64) {
        let mut parent = geth_chain().hash(fork);
        for number in fork + 1..=head {
            parent = store.replace_header(number, |header| {
                other_branch(header);
                header.parent_hash = parent;
            });
        }
    }

    /// The stages that undo blocks, set up as the daemon sets them up after a (re)start.
    struct Unwinders<'a> {
        receipts: ReceiptsStage,
        commit: CommitStage,
        merkle: MerkleStage,
        execution: ExecutionStage<'a>,
    }

    impl<'a> Unwinders<'a> {
        fn new(store: &'a SyncedStore) -> Self {
            let start = start_point(&store.shared).expect("start");
            Self {
                receipts: ReceiptsStage::new(start.receipts),
                commit: CommitStage::new(
                    CommitSettings {
                        history_ttl: HISTORY_TTL,
                    },
                    start.committed,
                    start.total_txs,
                ),
                merkle: store.merkle(VerifyRoot::Batch),
                execution: store.execution_after(start.executed),
            }
        }

        /// The stages in the order the daemon unwinds them (execution, whose record the others
        /// read, last).
        fn stages(&mut self) -> [&mut dyn Unwind; 4] {
            [
                &mut self.receipts,
                &mut self.commit,
                &mut self.merkle,
                &mut self.execution,
            ]
        }
    }

    /// Find the fork from the executed head and unwind to it, as the daemon does.
    fn unwind_reorg(store: &SyncedStore) -> u64 {
        let mut unwinders = Unwinders::new(store);
        let start = start_point(&store.shared).expect("start");
        let fork = fork_point(&store.shared, start.executed, start.pruned).expect("fork");
        unwind_to(&store.shared, fork, start.executed, &mut unwinders.stages()).expect("unwind");
        fork
    }

    /// A store that executed only up to `fork` while the syncer holds the other branch above
    /// it.
    fn stopped_at_fork(fork: u64, head: u64) -> SyncedStore {
        let store = SyncedStore::new(head);
        store.execute_to(fork);
        switch_branch(&store, fork, head);
        store
    }

    /// `unwound` holds what `reference` holds, the run times aside and for the code of the
    /// unwound blocks, which stays (`st:code:*` is never deleted).
    fn assert_unwound_to(unwound: &SyncedStore, reference: &SyncedStore, what: &str) {
        let (mut unwound, reference) = (unwound.timeless_snapshot(), reference.timeless_snapshot());
        let code = format!("{KEY_PREFIX}st:code:");
        unwound.retain(|key, _| !key.starts_with(&code) || reference.contains_key(key));
        assert_same_snapshot(&unwound, &reference, what);
    }

    #[test]
    fn fork_point_is_the_last_block_both_branches_share() {
        let store = SyncedStore::new(30);
        store.execute_to(30);
        assert_eq!(fork_point(&store.shared, 30, 0).expect("fork"), 30);
        switch_branch(&store, 26, 30);
        assert_eq!(fork_point(&store.shared, 30, 0).expect("fork"), 26);
        switch_branch(&store, 0, 30);
        assert_eq!(fork_point(&store.shared, 30, 0).expect("fork"), 0);
    }

    #[test]
    fn unwinding_to_the_fork_leaves_the_store_of_a_run_that_stopped_there() {
        for (fork, head) in [(36, 40), (2, 40)] {
            let store = SyncedStore::new(head);
            store.execute_to(head);
            switch_branch(&store, fork, head);
            assert_eq!(unwind_reorg(&store), fork);
            let what = format!("{} blocks unwound to {fork}", head - fork);
            assert_unwound_to(&store, &stopped_at_fork(fork, head), &what);
            // Should the syncer go back to the first branch, it is executed again to the
            // store of a run that never unwound.
            store.sync(fork + 1..=head);
            store.execute_to(head);
            let straight = SyncedStore::new(head);
            straight.execute_to(head);
            assert_same_store(&store, &straight, &format!("{what}, then executed again"));
        }
    }

    #[test]
    fn an_unwind_cut_short_by_a_crash_is_done_again_to_the_same_store() {
        let (fork, head) = (36, 40);
        for cut in [head, head - 2] {
            let store = SyncedStore::new(head);
            store.execute_to(head);
            switch_branch(&store, fork, head);
            // The blocks above `cut` are unwound; the unwind of `cut` stops after the stages'
            // undo writes, before the checkpoints move.
            {
                let mut unwinders = Unwinders::new(&store);
                unwind_to(&store.shared, cut, head, &mut unwinders.stages()).expect("unwind");
                let record = store.shared.store.record(STAGE, cut).expect("record");
                let mut batch = UnwindBatch::default();
                for stage in unwinders.stages() {
                    stage
                        .unwind_block(&store.shared, &record, &mut batch)
                        .expect("unwind");
                }
                store.write(batch.undo().clone());
            }
            // The restart finds the replaced head and unwinds again.
            assert_eq!(unwind_reorg(&store), fork);
            let what = format!("unwound again after a crash in block {cut}'s unwind");
            assert_unwound_to(&store, &stopped_at_fork(fork, head), &what);
        }
    }

    #[test]
    fn a_fork_below_the_window_is_refused() {
        let store = SyncedStore::new(30);
        store.execute_to(30);
        PruneStage::new(PruneSettings { window_size: 5 }, 0)
            .execute(&store.shared, Vec::new())
            .expect("prune");
        let pruned = store
            .shared
            .store
            .checkpoint_block(StageId::Prune)
            .expect("read")
            .expect("pruned");
        assert_eq!(pruned, 25);
        // Inside the window: found.
        switch_branch(&store, 26, 30);
        assert_eq!(fork_point(&store.shared, 30, pruned).expect("fork"), 26);
        // At the window's floor and below, the records that would show the fork are gone.
        for fork in [25, 20] {
            switch_branch(&store, fork, 30);
            let before = store.snapshot();
            let error = fork_point(&store.shared, 30, pruned).expect_err("below the window");
            assert!(
                matches!(
                    error,
                    StageError::Inconsistent(Inconsistency::ForkBelowWindow { pruned: 25 })
                ),
                "{error:?}"
            );
            assert_eq!(error.action(), ErrorAction::Stop);
            assert_same_snapshot(&store.snapshot(), &before, "nothing written");
        }
    }
}
