//! Headers stage: follows `idx:sync:progress`, loads blocks in batches (one pipelined MGET per
//! batch), checks each body against its header and each parent hash against the block before.
//! No durable output, so nothing to unwind: after a restart it resumes from the execution
//! checkpoint.
//!
//! A block whose data is missing or inconsistent stops the pipeline at that block: the error is
//! logged and the block retried every poll interval, so a syncer that repairs the data lets the
//! daemon continue by itself (with `exit_at_head` the run ends with the error instead).

use crate::stage::{BlockFailure, ErrorAction, Shared, Stage, StageError};
use alloy_primitives::B256;
use crossbeam_channel::Sender;
use primitives::block::ChainBlock;
use primitives::load::{load_blocks, LoadError};
use primitives::stage_id::StageId;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// How the headers stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersEnd {
    /// Stopped (signal, head reached with `exit_at_head`, or downstream gone).
    Done,
    /// The syncer replaced block `block`, which this pipeline already loaded: the chain
    /// reorganised and must be unwound.
    Reorg {
        /// The highest block whose stored hash no longer matches.
        block: u64,
    },
}

/// The headers stage's settings.
#[derive(Debug, Clone)]
pub struct HeadersSettings {
    /// Blocks loaded per store round trip.
    pub batch_size: u64,
    /// How often the syncer's progress is polled when caught up, and a bad block retried.
    pub poll_interval: Duration,
    /// Stop once every synced block is loaded (and fail on a bad block instead of waiting).
    pub exit_at_head: bool,
}

/// The headers stage: where it is in the chain.
#[derive(Debug)]
pub struct HeadersStage {
    settings: HeadersSettings,
    /// The next block to load.
    next: u64,
    /// The hash the next block must name as its parent.
    parent_hash: B256,
}

impl HeadersStage {
    /// Load from block `first` on, which must extend `parent_hash`.
    pub fn new(settings: HeadersSettings, first: u64, parent_hash: B256) -> Self {
        Self {
            settings,
            next: first,
            parent_hash,
        }
    }

    /// Load blocks as the syncer publishes them into `out` until stopped, the head (with
    /// `exit_at_head`), a reorg, or an error.
    pub fn run(
        &mut self,
        shared: &Shared,
        out: Sender<ChainBlock>,
    ) -> Result<HeadersEnd, StageError> {
        let meter = shared.meter(StageId::Headers);
        let mut reported: Option<u64> = None;
        while !shared.control.stopping() && !shared.control.loading_stopped() {
            let synced = synced_height(shared)?;
            if self.next > synced {
                // A reorg to a branch no longer than ours shows only as a replaced header.
                if let Some(end) = self.replaced_head(shared)? {
                    return Ok(end);
                }
                if self.settings.exit_at_head {
                    return Ok(HeadersEnd::Done);
                }
                std::thread::sleep(self.settings.poll_interval);
                meter.add_input_wait(StageId::Headers, self.settings.poll_interval);
                continue;
            }
            let last = synced.min(self.next + self.settings.batch_size.max(1) - 1);
            match self.execute(shared, vec![self.next..=last]) {
                Ok(blocks) => {
                    reported = None;
                    for block in blocks {
                        if !meter.send(StageId::Headers, &out, block) {
                            return Ok(HeadersEnd::Done);
                        }
                    }
                }
                Err(error) => {
                    if let StageError::Block {
                        failure: BlockFailure::NotAChild { .. },
                        ..
                    } = &error
                    {
                        if let Some(end) = self.replaced_head(shared)? {
                            return Ok(end);
                        }
                    }
                    if self.settings.exit_at_head || error.action() != ErrorAction::WaitForSyncer {
                        return Err(error);
                    }
                    if reported != Some(self.next) {
                        tracing::error!(
                            block = self.next,
                            "{error}; waiting for the syncer to fix it"
                        );
                        reported = Some(self.next);
                    }
                    std::thread::sleep(self.settings.poll_interval);
                }
            }
        }
        Ok(HeadersEnd::Done)
    }

    /// [`HeadersEnd::Reorg`] when the syncer replaced the block this stage loaded last.
    fn replaced_head(&self, shared: &Shared) -> Result<Option<HeadersEnd>, StageError> {
        let number = self.next - 1;
        if self.next <= 1 {
            return Ok(None);
        }
        let stored = shared
            .store
            .store()
            .get(shared.store.keys().header(number).as_str())
            .map_err(|error| StageError::store(StageId::Headers, error))?;
        let replaced = stored.is_some_and(|bytes| {
            shared
                .store
                .keys()
                .header(number)
                .decode(&bytes)
                .is_ok_and(|header| header.hash() != self.parent_hash)
        });
        if replaced {
            tracing::warn!(
                block = number,
                "the syncer replaced an executed block: reorg"
            );
        }
        Ok(replaced.then_some(HeadersEnd::Reorg { block: number }))
    }
}

impl Stage for HeadersStage {
    /// Ranges of block numbers to load.
    type Input = RangeInclusive<u64>;
    type Output = ChainBlock;
    const ID: StageId = StageId::Headers;

    /// Load `input`'s blocks with one batched read per range, checking every body against its
    /// header and every block against its parent. A bad block ends the call: with the good
    /// blocks before it when there are any (the next call starts at the bad one), else with
    /// its error.
    fn execute(
        &mut self,
        shared: &Shared,
        input: Vec<Self::Input>,
    ) -> Result<Vec<ChainBlock>, StageError> {
        let mut blocks = Vec::new();
        for range in input {
            let started = Instant::now();
            let loaded = load_blocks(
                shared.store.store().as_ref(),
                shared.store.keys(),
                *range.start(),
                *range.end(),
            )
            .map_err(|error| StageError::store(StageId::Headers, error))?;
            for result in loaded {
                let failure = match result {
                    Ok(block) if block.header.parent_hash == self.parent_hash => {
                        shared.record_block_progress(StageId::Headers, &block, started);
                        self.parent_hash = block.hash;
                        self.next += 1;
                        blocks.push(block);
                        continue;
                    }
                    Ok(block) => BlockFailure::NotAChild {
                        block: block.number(),
                        parent_hash: block.header.parent_hash,
                        expected: self.parent_hash,
                    },
                    Err(LoadError::Store(error)) => {
                        return Err(StageError::store(StageId::Headers, error))
                    }
                    Err(error) => error.into(),
                };
                if blocks.is_empty() {
                    return Err(StageError::block(StageId::Headers, failure));
                }
                return Ok(blocks);
            }
        }
        Ok(blocks)
    }
}

/// The syncer's height, noted for the other stages and the metrics (0 before it wrote any).
fn synced_height(shared: &Shared) -> Result<u64, StageError> {
    let key = shared.store.keys().sync_progress();
    let height = shared
        .store
        .read(StageId::Headers, &key)?
        .map_or(0, |p| p.latest_synced_block);
    shared.control.note_synced(height);
    let m = crate::metrics::metrics();
    m.sync_height.set(height as i64);
    // Updated here too, so a stalled pipeline shows a growing lag.
    m.execution_lag
        .set((height as i64 - m.execution_height.get()).max(0));
    Ok(height)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::{geth_chain, headers_from, load_settings, other_branch, SyncedStore};
    use alloy_primitives::Address;
    use primitives::keys::Keys;

    /// Each block's number and hash.
    fn identities(blocks: &[ChainBlock]) -> Vec<(u64, B256)> {
        blocks.iter().map(|b| (b.number(), b.hash)).collect()
    }

    /// The fixture's numbers and hashes of `range`.
    fn expected(range: RangeInclusive<u64>) -> Vec<(u64, B256)> {
        range.map(|n| (n, geth_chain().hash(n))).collect()
    }

    #[test]
    fn loads_synced_blocks_in_order_with_one_batched_read_per_range() {
        let chain = geth_chain();
        let store = SyncedStore::new(130);
        let mut stage = headers_from(1);
        let before = store.memory.round_trips();
        let blocks = stage
            .execute(&store.shared, vec![1..=64, 65..=130])
            .expect("load");
        assert_eq!(store.memory.round_trips() - before, 2, "one read per range");
        assert_eq!(identities(&blocks), expected(1..=130));
        for block in &blocks {
            let fixture = chain.block(block.number());
            assert_eq!(block.header, fixture.header);
            let hashes: Vec<B256> = block
                .body
                .transactions
                .iter()
                .map(|tx| *tx.tx_hash())
                .collect();
            assert_eq!(hashes, fixture.tx_hashes, "block {}", block.number());
            // The full body wins over the transaction list: it carries the withdrawals.
            let withdrawals: Vec<(Address, u64)> = block
                .body
                .withdrawals
                .iter()
                .flatten()
                .map(|w| (w.address, w.amount))
                .collect();
            let known = chain.withdrawals.get(&block.number());
            assert_eq!(withdrawals, known.cloned().unwrap_or_default());
        }
        assert!(
            chain.withdrawals.keys().filter(|&&n| n <= 130).count() >= 5,
            "the range covers blocks with withdrawals"
        );
        // The stage goes on from where it got to.
        store.sync(131..=131);
        let next = stage.execute(&store.shared, vec![131..=131]).expect("load");
        assert_eq!(identities(&next), expected(131..=131));
    }

    /// A way the syncer's data for block `BAD` can be wrong, and what the error must say.
    struct Damage {
        what: &'static str,
        damage: fn(&SyncedStore),
        /// The key the error names; `None` where the error is about the link to the parent.
        key: fn(&Keys) -> Option<String>,
        matches: fn(&BlockFailure) -> bool,
    }

    /// The load error of a failure, if it is one.
    fn load_error(failure: &BlockFailure) -> Option<&LoadError> {
        match failure {
            BlockFailure::Load(error) => Some(error),
            _ => None,
        }
    }

    /// A block with transactions, so a body swapped in from another block differs.
    const BAD: u64 = 7;
    /// The block whose body is swapped in.
    const OTHER: u64 = 8;

    /// Every way of damaging block `BAD` the tests try.
    fn damages() -> [Damage; 8] {
        [
            Damage {
                what: "header missing",
                damage: |s| s.remove(s.keys().header(BAD).as_str()),
                key: |k| Some(k.header(BAD).into_string()),
                matches: |f| matches!(load_error(f), Some(LoadError::Missing { block: BAD, .. })),
            },
            Damage {
                what: "body and transactions missing",
                damage: |s| {
                    s.remove(s.keys().body(BAD).as_str());
                    s.remove(s.keys().transactions(BAD).as_str());
                },
                key: |k| Some(k.transactions(BAD).into_string()),
                matches: |f| matches!(load_error(f), Some(LoadError::Missing { block: BAD, .. })),
            },
            Damage {
                what: "header RLP corrupt",
                damage: |s| s.truncate(s.keys().header(BAD).as_str()),
                key: |k| Some(k.header(BAD).into_string()),
                matches: |f| matches!(load_error(f), Some(LoadError::Corrupt { block: BAD, .. })),
            },
            Damage {
                what: "body RLP corrupt",
                damage: |s| s.truncate(s.keys().body(BAD).as_str()),
                key: |k| Some(k.body(BAD).into_string()),
                matches: |f| matches!(load_error(f), Some(LoadError::Corrupt { block: BAD, .. })),
            },
            Damage {
                what: "transactions RLP corrupt, no body",
                damage: |s| {
                    s.remove(s.keys().body(BAD).as_str());
                    s.truncate(s.keys().transactions(BAD).as_str());
                },
                key: |k| Some(k.transactions(BAD).into_string()),
                matches: |f| matches!(load_error(f), Some(LoadError::Corrupt { block: BAD, .. })),
            },
            Damage {
                what: "header stored under another number",
                damage: |s| {
                    let other = &geth_chain().block(OTHER).header_rlp;
                    s.set_raw(s.keys().header(BAD).as_str(), other);
                },
                key: |k| Some(k.header(BAD).into_string()),
                matches: |f| {
                    matches!(
                        f,
                        BlockFailure::Load(LoadError::WrongNumber {
                            block: BAD,
                            found: OTHER,
                            ..
                        })
                    )
                },
            },
            Damage {
                what: "body of another block",
                damage: |s| s.swap_body(BAD, OTHER),
                key: |_| None,
                matches: |f| {
                    matches!(f, BlockFailure::Load(LoadError::BodyMismatch(m))
                        if m.block == BAD && m.field == "transactionsRoot")
                },
            },
            Damage {
                what: "parent hash of another chain",
                damage: |s| {
                    s.replace_header(BAD, |h| h.parent_hash = B256::repeat_byte(0xab));
                },
                key: |_| None,
                matches: |f| {
                    matches!(f, BlockFailure::NotAChild { block: BAD, parent_hash, expected }
                        if *parent_hash == B256::repeat_byte(0xab)
                            && *expected == geth_chain().hash(BAD - 1))
                },
            },
        ]
    }

    #[test]
    fn stops_at_a_bad_block_with_the_good_blocks_before_it_then_an_error_naming_it() {
        assert!(
            !geth_chain().block(BAD).tx_hashes.is_empty()
                && geth_chain().block(BAD).tx_hashes != geth_chain().block(OTHER).tx_hashes,
            "blocks {BAD} and {OTHER} have different transactions"
        );
        for case in damages() {
            let store = SyncedStore::new(12);
            (case.damage)(&store);
            let mut stage = headers_from(1);
            let good = stage.execute(&store.shared, vec![1..=12]).expect(case.what);
            assert_eq!(identities(&good), expected(1..=BAD - 1), "{}", case.what);
            let error = stage
                .execute(&store.shared, vec![BAD..=12])
                .expect_err(case.what);
            assert_eq!(
                error.action(),
                ErrorAction::WaitForSyncer,
                "{}: {error}",
                case.what
            );
            let StageError::Block {
                stage: StageId::Headers,
                failure,
            } = &error
            else {
                panic!(
                    "{}: not a block error of the headers stage: {error}",
                    case.what
                );
            };
            assert!((case.matches)(failure), "{}: {error:?}", case.what);
            let message = error.to_string();
            assert!(
                message.contains(&format!("block {BAD}")),
                "{}: {message}",
                case.what
            );
            if let Some(key) = (case.key)(store.keys()) {
                assert!(
                    message.contains(&key),
                    "{}: {message} names {key}",
                    case.what
                );
            }
            // The syncer writes the block again: loading goes on from it.
            store.sync(BAD..=BAD);
            let rest = stage
                .execute(&store.shared, vec![BAD..=12])
                .expect(case.what);
            assert_eq!(identities(&rest), expected(BAD..=12), "{}", case.what);
        }
    }

    #[test]
    fn an_unreachable_store_is_retried_and_loads_nothing() {
        let store = SyncedStore::new(5);
        let mut stage = headers_from(1);
        store.memory.set_unavailable(true);
        let error = stage
            .execute(&store.shared, vec![1..=5])
            .expect_err("unreachable");
        assert_eq!(error.action(), ErrorAction::Retry, "{error}");
        let (tx, _rx) = crossbeam_channel::unbounded();
        let error = stage.run(&store.shared, tx).expect_err("unreachable");
        assert_eq!(error.action(), ErrorAction::Retry, "{error}");
        store.memory.set_unavailable(false);
        let blocks = stage.execute(&store.shared, vec![1..=5]).expect("load");
        assert_eq!(identities(&blocks), expected(1..=5));
    }

    #[test]
    fn run_passes_every_synced_block_on_and_fails_at_a_bad_one_with_exit_at_head() {
        let store = SyncedStore::new(9);
        store.truncate(store.keys().header(6).as_str());
        let (tx, rx) = crossbeam_channel::unbounded();
        let error = headers_from(1).run(&store.shared, tx).expect_err("block 6");
        assert!(error.to_string().contains("block 6"), "{error}");
        assert_eq!(
            identities(&rx.try_iter().collect::<Vec<_>>()),
            expected(1..=5)
        );
    }

    /// Asks the stages to stop when dropped.
    struct StopOnDrop<'a>(&'a Shared);

    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.control.request_stop();
        }
    }

    #[test]
    fn run_waits_at_a_bad_block_until_the_syncer_repairs_it() {
        let store = SyncedStore::new(5);
        store.remove(store.keys().header(3).as_str());
        let mut stage = HeadersStage::new(
            HeadersSettings {
                exit_at_head: false,
                ..load_settings()
            },
            1,
            geth_chain().hash(0),
        );
        let (tx, rx) = crossbeam_channel::unbounded();
        let wait = Duration::from_secs(10);
        std::thread::scope(|scope| {
            // However the checks below end, the stage stops (a failed one must not hang).
            let _stop = StopOnDrop(&store.shared);
            let running = scope.spawn(|| stage.run(&store.shared, tx));
            let first: Vec<ChainBlock> = (0..2)
                .map(|_| rx.recv_timeout(wait).expect("a block"))
                .collect();
            assert_eq!(identities(&first), expected(1..=2));
            // Block 3 is retried every poll interval, and nothing passes it meanwhile.
            assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
            store.sync(3..=3);
            let rest: Vec<ChainBlock> = (0..3)
                .map(|_| rx.recv_timeout(wait).expect("a block"))
                .collect();
            assert_eq!(identities(&rest), expected(3..=5));
            store.shared.control.request_stop();
            assert_eq!(
                running.join().expect("no panic").expect("run"),
                HeadersEnd::Done
            );
        });
    }

    #[test]
    fn a_replaced_head_is_reported_by_run_as_a_reorg() {
        let store = SyncedStore::new(5);
        let mut stage = headers_from(1);
        let (tx, rx) = crossbeam_channel::unbounded();
        assert_eq!(
            stage.run(&store.shared, tx.clone()).expect("run"),
            HeadersEnd::Done
        );
        assert_eq!(
            identities(&rx.try_iter().collect::<Vec<_>>()),
            expected(1..=5)
        );
        // At the head, the syncer replaces the last block loaded.
        store.replace_header(5, other_branch);
        assert_eq!(
            stage.run(&store.shared, tx).expect("run"),
            HeadersEnd::Reorg { block: 5 }
        );
        assert!(
            rx.try_recv().is_err(),
            "nothing of the other branch is passed on"
        );
    }

    #[test]
    fn a_longer_branch_is_reported_by_run_as_a_reorg_at_the_replaced_block() {
        let store = SyncedStore::new(5);
        let mut stage = headers_from(1);
        let (tx, rx) = crossbeam_channel::unbounded();
        assert_eq!(
            stage.run(&store.shared, tx.clone()).expect("run"),
            HeadersEnd::Done
        );
        // The syncer replaces block 5 and adds block 6 on top of its replacement.
        let replaced = store.replace_header(5, other_branch);
        store.sync(6..=6);
        store.replace_header(6, |h| h.parent_hash = replaced);
        assert_eq!(
            stage.run(&store.shared, tx).expect("run"),
            HeadersEnd::Reorg { block: 5 }
        );
        assert_eq!(
            identities(&rx.try_iter().collect::<Vec<_>>()),
            expected(1..=5)
        );
    }
}
