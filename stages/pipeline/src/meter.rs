//! Where each stage spends its time: waiting for input, waiting for the next stage to take its
//! output, or working. Every stage reads and writes its channels through its [`StageMeter`],
//! which adds the waits up; `bench` turns the totals into its per-stage table and the same
//! totals feed the `stage_wait_seconds_total` metric.

use crate::metrics::metrics;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use primitives::stage_id::StageId;
use primitives::store::{Store, StoreError, WriteBatch};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One stage's running totals (nanoseconds and counts).
#[derive(Debug, Default)]
pub struct StageMeter {
    input_wait_ns: AtomicU64,
    output_wait_ns: AtomicU64,
    blocks: AtomicU64,
    transactions: AtomicU64,
    gas: AtomicU64,
    round_trips: AtomicU64,
    /// Round trips of each block, for the stages that count them per block (execution).
    block_round_trips: std::sync::Mutex<Vec<u32>>,
}

/// Blocks whose round trips a meter remembers for the median (a bench's length).
const ROUND_TRIP_SAMPLES: usize = 100_000;

/// A snapshot of one stage's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StageTotals {
    /// Blocks the stage finished.
    pub blocks: u64,
    /// Transactions in them.
    pub transactions: u64,
    /// Gas they used (0 for stages that run before execution knows it).
    pub gas: u64,
    /// Seconds spent waiting for input (an empty channel, or the syncer).
    pub input_wait_seconds: f64,
    /// Seconds spent waiting for the next stage to take output (a full channel).
    pub output_wait_seconds: f64,
    /// Store round trips the stage's threads made.
    pub round_trips: u64,
    /// The median of the store round trips per block, where the stage counts them per block.
    pub median_block_round_trips: Option<u32>,
}

impl StageMeter {
    /// Receive one item, counting the wait; `None` once the channel is closed.
    pub fn recv<T>(&self, stage: StageId, input: &Receiver<T>) -> Option<T> {
        let started = Instant::now();
        let item = input.recv().ok();
        self.add_input_wait(stage, started.elapsed());
        item
    }

    /// Receive up to `max` items: wait for the first, then take what is already queued.
    /// Empty once the channel is closed.
    pub fn recv_batch<T>(&self, stage: StageId, input: &Receiver<T>, max: usize) -> Vec<T> {
        self.recv_batch_lingering(stage, input, max, Duration::ZERO, |_| false)
    }

    /// Like [`Self::recv_batch`], but while `more_coming` says so of the last item taken, go on
    /// waiting for items until `linger` has passed since the first came: a stage that writes
    /// a batch per call then writes fewer, larger batches while it catches up.
    pub fn recv_batch_lingering<T>(
        &self,
        stage: StageId,
        input: &Receiver<T>,
        max: usize,
        linger: Duration,
        more_coming: impl Fn(&T) -> bool,
    ) -> Vec<T> {
        let Some(first) = self.recv(stage, input) else {
            return Vec::new();
        };
        let (items, waited) = fill_batch(input, first, max, linger, more_coming);
        if !waited.is_zero() {
            self.add_input_wait(stage, waited);
        }
        items
    }

    /// Send one item, counting the wait; false once the receiver is gone.
    pub fn send<T>(&self, stage: StageId, output: &Sender<T>, item: T) -> bool {
        let started = Instant::now();
        let sent = output.send(item).is_ok();
        let waited = started.elapsed();
        self.output_wait_ns
            .fetch_add(waited.as_nanos() as u64, Ordering::Relaxed);
        metrics()
            .stage_wait_seconds_total
            .with_label_values(&[stage.as_str(), "output"])
            .inc_by(waited.as_secs_f64());
        sent
    }

    /// Count time spent waiting for input that does not come through a channel (polling the
    /// syncer).
    pub fn add_input_wait(&self, stage: StageId, waited: Duration) {
        self.input_wait_ns
            .fetch_add(waited.as_nanos() as u64, Ordering::Relaxed);
        metrics()
            .stage_wait_seconds_total
            .with_label_values(&[stage.as_str(), "input"])
            .inc_by(waited.as_secs_f64());
    }

    /// Count a finished block.
    pub fn add_block(&self, transactions: u64, gas: u64) {
        self.blocks.fetch_add(1, Ordering::Relaxed);
        self.transactions.fetch_add(transactions, Ordering::Relaxed);
        self.gas.fetch_add(gas, Ordering::Relaxed);
    }

    /// Count `round_trips` store round trips of one of the stage's threads.
    pub fn add_round_trips(&self, round_trips: u64) {
        self.round_trips.fetch_add(round_trips, Ordering::Relaxed);
    }

    /// Remember the round trips one block took.
    pub fn add_block_round_trips(&self, round_trips: u32) {
        let mut samples = self
            .block_round_trips
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if samples.len() < ROUND_TRIP_SAMPLES {
            samples.push(round_trips);
        }
    }

    /// The totals so far.
    pub fn totals(&self) -> StageTotals {
        let seconds = |ns: &AtomicU64| ns.load(Ordering::Relaxed) as f64 / 1e9;
        let median_block_round_trips = {
            let mut samples = self
                .block_round_trips
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            samples.sort_unstable();
            samples.get(samples.len() / 2).copied()
        };
        StageTotals {
            round_trips: self.round_trips.load(Ordering::Relaxed),
            median_block_round_trips,
            blocks: self.blocks.load(Ordering::Relaxed),
            transactions: self.transactions.load(Ordering::Relaxed),
            gas: self.gas.load(Ordering::Relaxed),
            input_wait_seconds: seconds(&self.input_wait_ns),
            output_wait_seconds: seconds(&self.output_wait_ns),
        }
    }
}

/// A batch starting with `first`: the items already queued, up to `max`; while `more_coming`
/// says so of the last item taken, also those that come until `linger` after `first`. Returns
/// the batch and the time spent waiting for it.
pub fn fill_batch<T>(
    input: &Receiver<T>,
    first: T,
    max: usize,
    linger: Duration,
    more_coming: impl Fn(&T) -> bool,
) -> (Vec<T>, Duration) {
    let until = Instant::now() + linger;
    let mut items = vec![first];
    let mut waited = Duration::ZERO;
    while items.len() < max {
        let item = match input.try_recv() {
            Ok(item) => item,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                if !items.last().is_some_and(&more_coming) {
                    break;
                }
                let started = Instant::now();
                let item = input.recv_deadline(until);
                waited += started.elapsed();
                match item {
                    Ok(item) => item,
                    Err(_) => break,
                }
            }
        };
        items.push(item);
    }
    (items, waited)
}

thread_local! {
    /// Store calls made by this thread through a [`CountedStore`].
    static ROUND_TRIPS: Cell<u64> = const { Cell::new(0) };
}

/// Store calls this thread has made through a [`CountedStore`] so far.
pub fn thread_round_trips() -> u64 {
    ROUND_TRIPS.with(Cell::get)
}

/// A store that counts the calls each thread makes (each one round trip on a server), so a
/// stage can tell how many its own threads made ([`thread_round_trips`]).
pub struct CountedStore(pub Arc<dyn Store>);

impl CountedStore {
    fn count<T>(&self, call: impl FnOnce(&dyn Store) -> T) -> T {
        ROUND_TRIPS.with(|count| count.set(count.get() + 1));
        call(self.0.as_ref())
    }
}

impl Store for CountedStore {
    fn backend_name(&self) -> &'static str {
        self.0.backend_name()
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.count(|store| store.get(key))
    }

    fn multi_get(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.count(|store| store.multi_get(keys))
    }

    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        self.count(|store| store.write(batch))
    }

    fn writes_atomically(&self) -> bool {
        self.0.writes_atomically()
    }

    fn scan_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.count(|store| store.scan_prefix(prefix))
    }

    fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        self.count(|store| store.set_if_absent(key, value, ttl))
    }
}

/// The meters of every stage.
#[derive(Debug, Default)]
pub struct PipelineMeters {
    meters: [StageMeter; StageId::ALL.len()],
}

impl PipelineMeters {
    /// The meter of `stage`.
    pub fn stage(&self, stage: StageId) -> &StageMeter {
        &self.meters[stage as usize]
    }

    /// Every stage's totals, in pipeline order.
    pub fn totals(&self) -> Vec<(StageId, StageTotals)> {
        StageId::ALL
            .iter()
            .map(|&stage| (stage, self.stage(stage).totals()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;

    #[test]
    fn a_batch_at_the_head_takes_only_what_is_queued() {
        let meter = StageMeter::default();
        let (tx, rx) = bounded(8);
        tx.send(1).expect("send");
        let later = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let _ = tx.send(2);
        });
        let batch =
            meter.recv_batch_lingering(StageId::Commit, &rx, 8, Duration::from_secs(5), |_| false);
        assert_eq!(batch, [1]);
        later.join().expect("sender thread");
    }

    #[test]
    fn a_batch_behind_the_head_waits_for_more_until_full_or_the_linger_ends() {
        let meter = StageMeter::default();
        let (tx, rx) = bounded(8);
        let sender = std::thread::spawn(move || {
            for n in 1..=3 {
                std::thread::sleep(Duration::from_millis(20));
                tx.send(n).expect("send");
            }
            tx
        });
        // More is coming after 1 and 2; full at 3 items.
        let full =
            meter
                .recv_batch_lingering(StageId::Commit, &rx, 3, Duration::from_secs(5), |&n| n < 10);
        assert_eq!(full, [1, 2, 3]);
        let tx = sender.join().expect("sender thread");
        tx.send(4).expect("send");
        let started = Instant::now();
        let lingered =
            meter.recv_batch_lingering(StageId::Commit, &rx, 8, Duration::from_millis(100), |_| {
                true
            });
        assert_eq!(lingered, [4]);
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}
