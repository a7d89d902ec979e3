//! Execution stage: executes each block over the state layers (which see the changes of blocks
//! not yet committed), verifies it, and writes its execution record `rec:{n}` with the
//! execution checkpoint, before handing the record to the commit and receipt stages (the crash
//! rule). Its unwind deletes the record and moves the checkpoint back.
//!
//! In the daemon it runs on two threads: one executes, the other writes the records. The writer
//! takes every record waiting, up to `batch_size` (while behind the syncer, waiting up to
//! [`CATCH_UP_LINGER`] for more), and stores them in one batch (one round trip, one durable
//! commit) with the checkpoint of the last, so execution never waits for the store.

use super::senders::SendersBlock;
use crate::meter::{fill_batch, thread_round_trips};
use crate::metrics::metrics;
use crate::stage::{forward, Shared, Stage, StageError, StageIo, UnwindBatch, CATCH_UP_LINGER};
use crate::state::execution::ExecutionState;
use crate::state::prewarm::{BlockKeys, PrewarmMode};
use crate::state::StateLayers;
use alloy_consensus::Header;
use alloy_primitives::Address;
use crossbeam_channel::{bounded, Receiver, Sender};
use evm::error::BlockError;
use primitives::block::ChainBlock;
use primitives::record::ExecutionRecord;
use primitives::stage_id::StageId;
use primitives::store::WriteBatch;
use std::sync::Arc;
use std::time::{Duration, Instant};

const STAGE: StageId = StageId::Execution;

/// The execution stage's settings.
#[derive(Debug, Clone)]
pub struct ExecutionSettings {
    /// The most records written in one batch.
    pub batch_size: u64,
    /// How long to wait before executing a block again after a state read failed in a way
    /// waiting can fix (the store unreachable, a header not yet written).
    pub retry_interval: Duration,
    /// How the prewarmer learns what each waiting block will read.
    pub prewarm: PrewarmMode,
    /// Log every transaction's outcome (`executor.evm_debug`).
    pub log_transactions: bool,
}

/// The execution stage: revm's state kept from block to block, and the last executed header.
pub struct ExecutionStage<'a> {
    settings: ExecutionSettings,
    state: ExecutionState<'a>,
    parent: Header,
}

/// A record waiting to be written, with the time its block's execution began.
type Unwritten = (ExecutionRecord, Instant);

impl<'a> ExecutionStage<'a> {
    /// Execute over `layers` from the child of `parent` (the last executed header) on.
    pub fn new(settings: ExecutionSettings, layers: &'a StateLayers, parent: Header) -> Self {
        Self {
            settings,
            state: ExecutionState::new(layers, layers.cache_sizes()),
            parent,
        }
    }

    /// Start again after an unwind: the kept state and the layers forget everything, and the
    /// next block is the child of `parent`.
    pub fn restart_at(&mut self, layers: &'a StateLayers, parent: Header) {
        self.state = ExecutionState::new(layers, layers.cache_sizes());
        layers.restart(&[]);
        self.parent = parent;
    }

    /// Execute every block from `io.input` and write its record, passing each written record
    /// to every output. Three threads: a prewarmer learns what each waiting block will read
    /// (see [`crate::state::prewarm`]), this one loads that in batched reads and executes, and
    /// a writer stores the records.
    pub fn run(
        &mut self,
        shared: &Shared,
        io: StageIo<SendersBlock, Arc<ExecutionRecord>>,
    ) -> Result<(), StageError> {
        let capacity = self.settings.batch_size.max(1) as usize;
        let (to_writer, writer_input) = bounded(capacity);
        let (to_executor, prewarmed) = bounded(PREWARM_AHEAD);
        std::thread::scope(|scope| {
            let thread_failed = |what: &str, e: std::io::Error| StageError::Thread {
                stage: STAGE,
                reason: format!("cannot start the {what}: {e}"),
            };
            let writer = std::thread::Builder::new()
                .name("records".into())
                .spawn_scoped(scope, || {
                    let written = write_records(shared, capacity, writer_input, &io.outputs);
                    shared.meter(STAGE).add_round_trips(thread_round_trips());
                    written
                })
                .map_err(|e| thread_failed("record writer", e))?;
            let input = &io.input;
            let mode = self.settings.prewarm;
            std::thread::Builder::new()
                .name("prewarm".into())
                .spawn_scoped(scope, move || {
                    prewarm(shared, mode, input, to_executor);
                    shared.meter(STAGE).add_round_trips(thread_round_trips());
                })
                .map_err(|e| thread_failed("prewarmer", e))?;
            // The executor owns the prewarmer's queue: when it stops, the prewarmer's next send
            // fails and it stops too.
            let executed = self.execute_all(shared, prewarmed, to_writer);
            let written = writer.join().unwrap_or_else(|_| {
                Err(StageError::Thread {
                    stage: STAGE,
                    reason: "the record writer panicked".into(),
                })
            });
            // A write failure comes first: it is why execution stopped.
            written.and(executed)
        })
        .inspect_err(|error| shared.control.stop_after(error))
    }

    /// Execute blocks until the input ends, a block fails, or the writer is gone; each block's
    /// learned keys are loaded first, in batched reads.
    fn execute_all(
        &mut self,
        shared: &Shared,
        input: Receiver<Prewarmed>,
        to_writer: Sender<Unwritten>,
    ) -> Result<(), StageError> {
        let meter = shared.meter(STAGE);
        let mut result = Ok(());
        while let Some((block, senders, keys)) = meter.recv(STAGE, &input) {
            if shared.control.stopping() {
                break;
            }
            let started = Instant::now();
            let round_trips = thread_round_trips();
            // A failed prefetch costs nothing but time: execution reads what it lacks.
            let _ = self.state.prefetch(&keys);
            // The good blocks before a failing one are still written (the writer drains its
            // input before it stops).
            let record = match self.execute_block(shared, (block, senders)) {
                Ok(record) => record,
                Err(error) => {
                    result = Err(error);
                    break;
                }
            };
            let block_round_trips = thread_round_trips() - round_trips;
            meter.add_block_round_trips(block_round_trips as u32);
            metrics()
                .execution_round_trips_per_block
                .observe(block_round_trips as f64);
            if !meter.send(STAGE, &to_writer, (record, started)) {
                break;
            }
        }
        result
    }

    /// Execute one block (again while a state read fails in a way waiting can fix); its changes
    /// join the state layers' overlay until commit applies them.
    fn execute_block(
        &mut self,
        shared: &Shared,
        (block, senders): SendersBlock,
    ) -> Result<ExecutionRecord, StageError> {
        let started = Instant::now();
        let record = loop {
            match self
                .state
                .execute(&shared.spec, &block, &senders, &self.parent)
            {
                Ok(record) => break record,
                Err(BlockError::State { block, error })
                    if error.is_retryable() && !shared.control.stopping() =>
                {
                    tracing::warn!(block, %error, "state read failed; retrying the block");
                    std::thread::sleep(self.settings.retry_interval);
                }
                Err(error) => {
                    metrics().invalid_blocks_total.inc();
                    return Err(StageError::block(STAGE, error));
                }
            }
        };
        metrics()
            .block_execution_seconds
            .observe(started.elapsed().as_secs_f64());
        if self.settings.log_transactions {
            log_transactions(&block, &senders, &record);
        }
        self.parent = block.header;
        Ok(record)
    }
}

impl Stage for ExecutionStage<'_> {
    type Input = SendersBlock;
    type Output = Arc<ExecutionRecord>;
    const ID: StageId = STAGE;

    /// Execute `input`'s blocks, then write their records and the checkpoint in one batch.
    fn execute(
        &mut self,
        shared: &Shared,
        input: Vec<SendersBlock>,
    ) -> Result<Vec<Arc<ExecutionRecord>>, StageError> {
        let mut executed = Vec::with_capacity(input.len());
        for block in input {
            let started = Instant::now();
            executed.push((self.execute_block(shared, block)?, started));
        }
        write_batch(shared, executed)
    }

    /// Move the checkpoint to the block's parent and delete the block's record, after every
    /// checkpoint moved (until then a crash must find the record to unwind the block again).
    fn unwind(
        &mut self,
        shared: &Shared,
        record: &ExecutionRecord,
        batch: &mut UnwindBatch,
    ) -> Result<(), StageError> {
        batch.checkpoint(shared, STAGE, record.number - 1, record.parent_hash);
        batch
            .after_checkpoints()
            .remove(shared.store.keys().record(record.number));
        Ok(())
    }
}

/// Log each transaction of `block` with its outcome from `record`: hash, sender, recipient,
/// status, gas used and logs.
fn log_transactions(block: &ChainBlock, senders: &[Address], record: &ExecutionRecord) {
    use alloy_consensus::Transaction;
    let mut gas_before = 0;
    for (index, ((tx, sender), receipt)) in block
        .body
        .transactions
        .iter()
        .zip(senders)
        .zip(&record.receipts)
        .enumerate()
    {
        let cumulative = receipt.cumulative_gas_used();
        tracing::info!(
            block = record.number,
            index,
            hash = %tx.tx_hash(),
            from = %sender,
            to = ?tx.to(),
            success = receipt.status(),
            gas_used = cumulative.saturating_sub(gas_before),
            logs = receipt.logs().len(),
            "transaction executed"
        );
        gas_before = cumulative;
    }
}

/// How many blocks the prewarmer runs ahead of execution: enough to hide its passes' round
/// trips, few enough that its view of the state is not far behind.
const PREWARM_AHEAD: usize = 4;

/// A block, its senders and the keys it is expected to read.
type Prewarmed = (ChainBlock, Vec<Address>, BlockKeys);

/// Learn what each block from `input` reads (the `mode` way), then pass it on to the executor;
/// ends when either side is gone.
fn prewarm(
    shared: &Shared,
    mode: PrewarmMode,
    input: &Receiver<SendersBlock>,
    out: Sender<Prewarmed>,
) {
    // Unmetered, as the writer's sends: the stage's waits are the executing thread's (its wait
    // on this thread's queue includes this thread's wait on the stage's input).
    while let Ok((block, senders)) = input.recv() {
        let keys = if shared.control.stopping() {
            BlockKeys::default()
        } else {
            mode.learn(&shared.spec, &shared.layers, &block, &senders)
        };
        if out.send((block, senders, keys)).is_err() {
            break;
        }
    }
}

/// Write the records from `input` in batches, then pass them on.
fn write_records(
    shared: &Shared,
    max: usize,
    input: Receiver<Unwritten>,
    outputs: &[Sender<Arc<ExecutionRecord>>],
) -> Result<(), StageError> {
    while let Ok(first) = input.recv() {
        let (unwritten, _) = fill_batch(&input, first, max, CATCH_UP_LINGER, |(record, _)| {
            shared.control.behind_head(record.number)
        });
        for record in write_batch(shared, unwritten)? {
            forward(outputs, record);
        }
    }
    Ok(())
}

/// Store `unwritten` (consecutive blocks) and the checkpoint of the last in one batch.
fn write_batch(
    shared: &Shared,
    unwritten: Vec<Unwritten>,
) -> Result<Vec<Arc<ExecutionRecord>>, StageError> {
    let Some((last, _)) = unwritten.last() else {
        return Ok(Vec::new());
    };
    let (last_number, last_hash) = (last.number, last.hash);
    let keys = shared.store.keys();
    let mut batch = WriteBatch::new();
    for (record, _) in &unwritten {
        batch.put(keys.record(record.number), record);
    }
    // Last: on a store without transactions the checkpoint never runs ahead of the records.
    batch.fence();
    shared
        .store
        .queue_checkpoint(&mut batch, STAGE, last_number, last_hash);
    shared.store.write(STAGE, batch)?;
    Ok(unwritten
        .into_iter()
        .map(|(record, started)| {
            shared.record_record_progress(STAGE, &record, started);
            Arc::new(record)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::{BlockFailure, ErrorAction};
    use crate::test_utils::{
        assert_record_matches_header, assert_same_snapshot, geth_chain, Snapshot, SyncedStore,
        CHAIN_LENGTH,
    };
    use alloy_primitives::{Bloom, B256};
    use primitives::value::ContractRead;
    use std::collections::BTreeSet;

    /// The execution stage at the genesis of `store`.
    fn stage_at_genesis(store: &SyncedStore) -> ExecutionStage<'_> {
        let genesis = store
            .memory
            .read(&store.keys().header(0))
            .expect("read")
            .expect("the genesis header");
        ExecutionStage::new(
            ExecutionSettings {
                batch_size: 16,
                retry_interval: Duration::from_millis(1),
                prewarm: PrewarmMode::Speculate,
                log_transactions: false,
            },
            &store.shared.layers,
            genesis.into_inner(),
        )
    }

    /// The execution checkpoint's block and hash.
    fn checkpoint(store: &SyncedStore) -> Option<(u64, B256)> {
        store
            .shared
            .store
            .checkpoint(STAGE)
            .expect("read")
            .map(|c| (c.block, c.hash))
    }

    /// The keys that differ between two snapshots.
    fn changed(before: &Snapshot, after: &Snapshot) -> BTreeSet<String> {
        let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        keys.into_iter()
            .filter(|key| before.get(*key) != after.get(*key))
            .cloned()
            .collect()
    }

    #[test]
    fn records_are_written_with_the_checkpoint_and_match_their_headers() {
        let chain = geth_chain();
        let store = SyncedStore::new(CHAIN_LENGTH);
        let mut stage = stage_at_genesis(&store);
        let before = store.snapshot();
        let first = stage
            .execute(&store.shared, store.recovered(1, 300))
            .expect("execute");
        assert_eq!(checkpoint(&store), Some((300, chain.hash(300))));
        let second = stage
            .execute(&store.shared, store.recovered(301, CHAIN_LENGTH))
            .expect("execute");
        assert_eq!(
            checkpoint(&store),
            Some((CHAIN_LENGTH, chain.hash(CHAIN_LENGTH)))
        );
        let keys = store.keys();
        for (number, passed_on) in (1..=CHAIN_LENGTH).zip(first.iter().chain(&second)) {
            let stored = store
                .memory
                .read(&keys.record(number))
                .expect("read")
                .unwrap_or_else(|| panic!("record {number} missing"));
            assert_record_matches_header(&stored, number);
            assert_eq!(&stored, passed_on.as_ref(), "record {number} as passed on");
        }
        // The stage writes its records and its checkpoint, nothing else.
        let mut expected: BTreeSet<String> = (1..=CHAIN_LENGTH)
            .map(|n| keys.record(n).into_string())
            .collect();
        expected.insert(keys.stage_checkpoint(STAGE).into_string());
        assert_eq!(changed(&before, &store.snapshot()), expected);
    }

    /// A change to a header field.
    type HeaderEdit = fn(&mut Header);

    #[test]
    fn a_block_whose_result_differs_from_its_header_fails_with_nothing_written() {
        let chain = geth_chain();
        // A block with transactions and logs, so each altered field is one execution checks.
        let number = (100..=CHAIN_LENGTH)
            .find(|&n| {
                let block = chain.block(n);
                !block.tx_hashes.is_empty() && block.header.logs_bloom != Bloom::ZERO
            })
            .expect("a block with logs");
        let alterations: [(&str, HeaderEdit); 3] = [
            ("gasUsed", |h| h.gas_used += 1),
            ("receiptsRoot", |h| {
                h.receipts_root = B256::repeat_byte(0x11)
            }),
            ("logsBloom", |h| h.logs_bloom = Bloom::repeat_byte(0xff)),
        ];
        for (field, alter) in alterations {
            let store = SyncedStore::new(number);
            let mut stage = stage_at_genesis(&store);
            stage
                .execute(&store.shared, store.recovered(1, number - 1))
                .expect("execute");
            store.replace_header(number, alter);
            let before = store.snapshot();
            let error = stage
                .execute(&store.shared, store.recovered(number, number))
                .expect_err(field);
            let StageError::Block {
                stage: STAGE,
                failure:
                    BlockFailure::Execution(BlockError::Mismatch {
                        block,
                        field: named,
                        ..
                    }),
            } = &error
            else {
                panic!("{field}: not a mismatch found by execution: {error:?}");
            };
            assert_eq!((*block, *named), (number, field));
            assert!(
                error.to_string().contains(&format!("block {number}")),
                "{error}"
            );
            assert_eq!(error.action(), ErrorAction::Stop, "{field}");
            assert_same_snapshot(
                &store.snapshot(),
                &before,
                "{field}: the failed block wrote nothing",
            );
            // The syncer's correct block then executes from the same state.
            store.sync(number..=number);
            let records = stage
                .execute(&store.shared, store.recovered(number, number))
                .expect(field);
            assert_record_matches_header(&records[0], number);
            assert_eq!(checkpoint(&store), Some((number, chain.hash(number))));
        }
    }

    #[test]
    fn a_store_outage_during_execution_is_waited_out() {
        /// Calls execution makes to the unreachable store before it comes back.
        const FAILED_READS: u64 = 5;
        let store = SyncedStore::new(8);
        let mut stage = stage_at_genesis(&store);
        let blocks = store.recovered(1, 8);
        store.memory.set_unavailable(true);
        let calls_before = store.memory.round_trips();
        let records = std::thread::scope(|scope| {
            scope.spawn(|| {
                // The store comes back once execution has tried it (and failed) a few times,
                // or after a while should execution have given up instead.
                let given_up = Instant::now() + Duration::from_secs(5);
                while store.memory.round_trips() < calls_before + FAILED_READS
                    && Instant::now() < given_up
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                store.memory.set_unavailable(false);
            });
            stage.execute(&store.shared, blocks).expect("execute")
        });
        for (number, record) in (1..=8).zip(&records) {
            assert_record_matches_header(record, number);
        }
        assert_eq!(checkpoint(&store), Some((8, geth_chain().hash(8))));
    }

    #[test]
    fn unwind_deletes_the_record_after_moving_the_checkpoint() {
        let chain = geth_chain();
        let store = SyncedStore::new(10);
        let mut stage = stage_at_genesis(&store);
        let records = stage
            .execute(&store.shared, store.recovered(1, 10))
            .expect("execute");
        let before = store.snapshot();
        let mut unwind = UnwindBatch::default();
        stage
            .unwind(&store.shared, &records[9], &mut unwind)
            .expect("unwind");
        let batch = unwind.into_batch();
        let keys = store.keys();
        let position = |key: &str| {
            batch
                .ops()
                .iter()
                .position(|op| match op {
                    primitives::store::WriteOp::Set { key: k, .. }
                    | primitives::store::WriteOp::Delete { key: k } => k == key,
                })
                .unwrap_or_else(|| panic!("{key} not in the unwind batch"))
        };
        assert!(
            position(keys.stage_checkpoint(STAGE).as_str()) < position(keys.record(10).as_str()),
            "the checkpoint moves before the record goes"
        );
        store.write(batch);
        let after = store.snapshot();
        assert_eq!(checkpoint(&store), Some((9, chain.hash(9))));
        assert!(!after.contains_key(keys.record(10).as_str()));
        let expected: BTreeSet<String> = [
            keys.record(10).into_string(),
            keys.stage_checkpoint(STAGE).into_string(),
        ]
        .into();
        assert_eq!(changed(&before, &after), expected);
    }
}
