//! The daemon (`run`) through the built binary, against a real redis-server and the embedded
//! store, under the conditions it exists for: SIGKILL at random instants, the store going away
//! mid-run, a history window, and bad blocks from the syncer that the syncer later repairs
//! (reorgs are `reorg.rs`'s). Every expected store is either fixture data or what one uninterrupted run of the
//! binary leaves on a fresh store (a "reference run"); stores are compared key for key and byte
//! for byte, the run times (`lastExecutionTime`, the checkpoints' `time`) aside.

use crate::common::chain::{
    block_keys, raw_blocks, word, write_file, ChainFixture, RawBlock, HEADER_TIMESTAMP_INDEX,
    HEADER_TRANSACTIONS_ROOT_INDEX,
};
use crate::common::daemon::{
    executed_block, init_and_import, log_uniform, redis_server, run_to_head_with, test_seed,
    uninterrupted_run, without_lease, Daemon, Reference, SEED_ENV,
};
use crate::common::exec::{history_entry, without_run_times};
use crate::common::redis_server::RedisServer;
use crate::common::{
    assert_same_snapshot, expect_exit_code, expect_success, names_block, raw_json_fields, var,
    Backend, COMMAND_FAILED,
};
use alloy_primitives::Address;
use evm_executor::gen::workload::Rng;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

type Snapshot = BTreeMap<String, Vec<u8>>;

/// `executor.poll_interval_ms` for a daemon that must notice the syncer quickly.
fn fast_poll() -> (String, String) {
    var("EVM_EXECUTOR_EXECUTOR_POLL_INTERVAL_MS", "100")
}

/// `state.window_size` override.
fn window(blocks: u64) -> (String, String) {
    var("EVM_EXECUTOR_STATE_WINDOW_SIZE", blocks.to_string())
}

/// The longest a test waits for the daemon to reach a block.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest a daemon may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The sync progress key.
const SYNC_PROGRESS_KEY: &str = "idx:sync:progress";
/// The prune checkpoint key.
const PRUNE_CHECKPOINT_KEY: &str = "idx:stage:prune";

/// `chain_file` cut right before block `first_left_out` (so it ends at `first_left_out - 1`),
/// written into `dir`.
fn chain_cut_before(dir: &tempfile::TempDir, chain: &ChainFixture, first_left_out: u64) -> PathBuf {
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    let cut = blocks[first_left_out as usize - 1].offset;
    write_file(dir, &format!("to-{}.rlp", first_left_out - 1), &file[..cut])
}

// ---------------------------------------------------------------------------------------------
// reference runs, shared by the tests of this binary

static HIVE_EMBEDDED: OnceLock<Reference> = OnceLock::new();
static HIVE_REDIS: OnceLock<Reference> = OnceLock::new();
static GETH_REDIS: OnceLock<Reference> = OnceLock::new();

/// hive-sync run once, uninterrupted, on a fresh store of `like`'s kind (default config).
fn hive_reference(like: &Backend) -> &'static Reference {
    let cell = match like {
        Backend::Redis(_) => &HIVE_REDIS,
        Backend::Embedded(_) => &HIVE_EMBEDDED,
    };
    cell.get_or_init(|| {
        let chain = ChainFixture::hive_sync();
        uninterrupted_run(
            like.fresh_like(),
            &chain.genesis_path(),
            &chain.chain_path(),
            &[],
        )
    })
}

/// geth-ethtest run once, uninterrupted, on a fresh Redis store (default config).
fn geth_reference() -> &'static Reference {
    GETH_REDIS.get_or_init(|| {
        let chain = ChainFixture::geth_ethtest();
        uninterrupted_run(
            Backend::redis(),
            &chain.genesis_path(),
            &chain.chain_path(),
            &[],
        )
    })
}

// ---------------------------------------------------------------------------------------------
// 1. kill -9 at random instants

/// `leader.enabled = false`. On a Redis store a killed leader's lease outlives it by up to
/// `lease_seconds` (15 s), during which a restarted process waits as a standby: with the lease
/// on, most kills would land in that wait instead of in the pipeline. One executor per store is
/// the case here (the embedded store takes no lease anyway).
fn without_leader_lease() -> (String, String) {
    var("EVM_EXECUTOR_LEADER_ENABLED", "false")
}

/// The shortest delay before a kill: inside process start-up.
const MIN_KILL_DELAY: Duration = Duration::from_millis(20);
/// The default seed of the kill instants (`DAEMON_TEST_SEED` replaces it).
const DEFAULT_KILL_SEED: u64 = 0x6b69_6c6c_2d39_2d39;

/// hive-sync on fresh stores like `first` (which is the first of them): `run --exit-at-head`
/// (without the leader lease) started and SIGKILLed after a seeded log-uniform delay between
/// 20 ms and the reference run's duration, restarted, again and again until `min_kills` kills
/// have landed, and then left to finish. A run that finishes before its kill ends the round: its store must equal
/// the uninterrupted reference run's, key for key and byte for byte, and the next round starts
/// on a fresh store.
fn survives_kill_9(first: Backend, min_kills: usize) {
    let chain = ChainFixture::hive_sync();
    let reference = hive_reference(&first);
    let fresh: fn() -> Backend = match &first {
        Backend::Redis(_) => Backend::redis,
        Backend::Embedded(_) => Backend::embedded,
    };
    let seed = test_seed(DEFAULT_KILL_SEED);
    let longest = reference.run_time.max(MIN_KILL_DELAY * 2);
    println!(
        "kill -9 on {}: seed {seed:#x} ({SEED_ENV} replaces it), delays log-uniform in \
         {MIN_KILL_DELAY:?}..{longest:?} (the reference run's duration)",
        first.name()
    );
    // Stream 0 starts at `seed` itself.
    let mut rng = Rng::new(seed, 0);
    let mut kills = 0;
    let mut backend = Some(first);
    for round in 1.. {
        let backend = backend.take().unwrap_or_else(fresh);
        init_and_import(&backend, &chain.genesis_path(), &chain.chain_path());
        let started = Instant::now();
        loop {
            if kills >= min_kills {
                expect_success(&run_to_head_with(&backend, &[without_leader_lease()]));
                println!("round {round}: the last run finished");
                break;
            }
            let delay = log_uniform(&mut rng, MIN_KILL_DELAY, longest);
            let mut daemon = Daemon::start(
                &backend,
                &[without_leader_lease()],
                &["run", "--exit-at-head"],
            );
            let status = match daemon.wait_for_exit(delay) {
                Some(status) => status,
                None => daemon.kill9(),
            };
            if status.signal() == Some(9) {
                kills += 1;
                // The embedded file is read only by the next run, which must recover it itself.
                let executed = match &backend {
                    Backend::Redis(server) => format!("{:?}", executed_block(server)),
                    Backend::Embedded(_) => "not read".into(),
                };
                println!("round {round}: kill {kills} after {delay:?}; executed {executed}");
                continue;
            }
            assert!(
                status.success(),
                "round {round}: run exited with {status}; stderr:\n{}",
                daemon.stderr()
            );
            println!("round {round}: the run finished within {delay:?}");
            break;
        }
        println!(
            "round {round} took {:?}; {kills} kills so far",
            started.elapsed()
        );
        assert_same_snapshot(
            &without_run_times(backend.snapshot()),
            &reference.snapshot,
            &format!(
                "round {round} (seed {seed:#x}, {kills} kills so far) vs an uninterrupted run"
            ),
        );
        if kills >= min_kills {
            return;
        }
    }
}

/// At least 20 SIGKILLs on the embedded store.
#[test]
fn kill_9_at_random_instants_embedded() {
    survives_kill_9(Backend::embedded(), 20);
}

/// At least 10 SIGKILLs on Redis (a cut pipeline leaves part of a batch written).
#[test]
fn kill_9_at_random_instants_redis() {
    survives_kill_9(Backend::redis(), 10);
}

// ---------------------------------------------------------------------------------------------
// 2. the store goes away mid-run

/// Block the daemon must have passed before the server is stopped.
const OUTAGE_AFTER_BLOCK: u64 = 1000;
/// How long the server stays down.
const OUTAGE: Duration = Duration::from_secs(1);

/// hive-sync on Redis with `max_retries = 0` (retry for ever): redis-server is shut down once
/// the daemon has executed block 1000 (and before it reaches the head), stays down for a
/// second with the daemon still alive, and comes back on the same port and data (AOF,
/// appendfsync always). The daemon finishes by itself with exit 0, and the store equals an
/// uninterrupted run's.
#[test]
fn redis_restart_mid_run() {
    let chain = ChainFixture::hive_sync();
    let mut backend = Backend::redis();
    let reference = hive_reference(&backend);
    init_and_import(&backend, &chain.genesis_path(), &chain.chain_path());
    let retry_for_ever = var("EVM_EXECUTOR_STORAGE_PIKA_MAX_RETRIES", "0");
    let mut daemon = Daemon::start(&backend, &[retry_for_ever], &["run", "--exit-at-head"]);
    let Backend::Redis(server) = &mut backend else {
        unreachable!("a Redis backend")
    };
    let mut before_outage = None;
    daemon.wait_until(PROGRESS_TIMEOUT, "block 1000 executed", || {
        before_outage = executed_block(server).filter(|n| *n >= OUTAGE_AFTER_BLOCK);
        before_outage.is_some()
    });
    server.stop();
    let executed = before_outage.expect("progress read before the outage");
    assert!(
        executed < chain.block_count as u64,
        "the run reached the head ({executed}) before the outage; the test needs a slower run"
    );
    std::thread::sleep(OUTAGE);
    daemon.assert_running(&format!(
        "while redis-server was down (progress was {executed})"
    ));
    server.start_again();
    let status = daemon
        .wait_for_exit(PROGRESS_TIMEOUT)
        .unwrap_or_else(|| panic!("no exit after the outage; stderr:\n{}", daemon.stderr()));
    let stderr = daemon.stderr();
    assert!(
        status.success(),
        "run exited with {status} after the outage; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "a panic:\n{stderr}");
    assert_same_snapshot(
        &without_run_times(backend.snapshot()),
        &reference.snapshot,
        &format!("after an outage at block {executed} vs an uninterrupted run"),
    );
}

// ---------------------------------------------------------------------------------------------
// 3. the history window

/// EIP-4788's beacon roots contract (in both test chains' genesis).
const BEACON_ROOTS_ADDRESS: &str = "0x000F3df6D732807Ef1319fB7B8bB8522d0Beac02";
/// EIP-4788's `HISTORY_BUFFER_LENGTH`.
const BEACON_ROOTS_BUFFER: u64 = 8191;

/// The block number of a record key `rec:{n}`.
fn record_number(key: &str) -> Option<u64> {
    key.strip_prefix("rec:")?.parse().ok()
}

/// The block whose window entry `key` is: `rec:{n}`, `st:{n}:acc:*` or `st:{n}:stor:*`.
fn window_entry_block(key: &str) -> Option<u64> {
    record_number(key).or_else(|| history_entry(key).map(|(n, _)| n))
}

/// True for a window entry of a block <= `cut` (which pruning to `cut` deletes).
fn pruned_by(key: &str, cut: u64) -> bool {
    window_entry_block(key).is_some_and(|n| n <= cut)
}

/// `idx:stage:prune.block`.
fn prune_checkpoint(store: &Snapshot) -> u64 {
    let fields = raw_json_fields(store, PRUNE_CHECKPOINT_KEY);
    fields["block"]
        .parse()
        .unwrap_or_else(|_| panic!("{PRUNE_CHECKPOINT_KEY}.block is {}", fields["block"]))
}

/// `store` (executed to `head`) is pruned to `cut`: the prune checkpoint is exactly `cut` (the
/// prune stage moves to `min(commit, receipts) - window` in steps that end on it); no record
/// or history key of a block <= `cut` is left; every block above `cut` still has its record;
/// and everything else is exactly what `unpruned` (a reference run with a wider window) holds.
fn assert_pruned_to(store: &Snapshot, unpruned: &Reference, cut: u64, head: u64) {
    assert_eq!(prune_checkpoint(store), cut, "{PRUNE_CHECKPOINT_KEY}");
    let stale: Vec<&String> = store
        .keys()
        .filter(|key| pruned_by(key, cut))
        .take(10)
        .collect();
    assert!(
        stale.is_empty(),
        "records or history of blocks <= {cut} left: {stale:?}"
    );
    for n in cut + 1..=head {
        assert!(store.contains_key(&format!("rec:{n}")), "rec:{n} is gone");
    }
    let mut expected = unpruned.snapshot.clone();
    expected.retain(|key, _| key != PRUNE_CHECKPOINT_KEY && !pruned_by(key, cut));
    let mut actual = without_run_times(store.clone());
    actual.remove(PRUNE_CHECKPOINT_KEY);
    assert_same_snapshot(
        &actual,
        &expected,
        &format!("pruned to {cut} vs an unpruned run without the pruned blocks"),
    );
}

/// hive-sync with `state.window_size = 16`: after `run --exit-at-head` the prune checkpoint is
/// 3000 - 16, no record or history of a block <= 2984 remains (by key name), every block
/// above it keeps its record and the history of the EIP-4788 timestamp slot it wrote (slot
/// `timestamp % 8191`, from the header), and the rest of the store is the default-window
/// reference run's.
#[test]
fn prune_keeps_only_the_window() {
    let window_size = 16;
    let chain = ChainFixture::hive_sync();
    let backend = Backend::redis();
    let unpruned = hive_reference(&backend);
    let head = chain.block_count as u64;
    let cut = head - window_size;
    assert!(
        prune_checkpoint(&unpruned.snapshot) < cut,
        "the default window keeps more than {window_size} blocks"
    );
    init_and_import(&backend, &chain.genesis_path(), &chain.chain_path());
    expect_success(&run_to_head_with(&backend, &[window(window_size)]));
    let store = backend.snapshot();
    assert_pruned_to(&store, unpruned, cut, head);
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    let beacon = Address::from_str(BEACON_ROOTS_ADDRESS).expect("address");
    for block in &blocks[cut as usize..] {
        let n = block.number();
        let slot = block.header_u64(HEADER_TIMESTAMP_INDEX) % BEACON_ROOTS_BUFFER;
        let key = format!(
            "st:{n}:stor:{}:{:#x}",
            beacon.to_checksum(None),
            word(&format!("{slot:x}"))
        );
        assert!(store.contains_key(&key), "{key} (block {n}'s beacon root)");
    }
}

/// geth-ethtest executed to 600 with the default window (nothing pruned), then
/// `run --exit-at-head` again with `state.window_size = 16`: with no new block to execute,
/// the restart alone must prune to 600 - 16, leaving the unpruned reference minus blocks
/// <= 584.
#[test]
fn restart_with_a_smaller_window_prunes_at_the_head() {
    let window_size = 16;
    let chain = ChainFixture::geth_ethtest();
    let reference = geth_reference();
    let head = chain.block_count as u64;
    let backend = Backend::redis();
    init_and_import(&backend, &chain.genesis_path(), &chain.chain_path());
    expect_success(&run_to_head_with(&backend, &[]));
    assert!(
        !backend.snapshot().contains_key(PRUNE_CHECKPOINT_KEY),
        "the default window prunes nothing of 600 blocks"
    );
    expect_success(&run_to_head_with(&backend, &[window(window_size)]));
    assert_pruned_to(&backend.snapshot(), reference, head - window_size, head);
}

// ---------------------------------------------------------------------------------------------
// 4. bad blocks from the syncer

/// The damaged block.
const BAD: u64 = 300;
/// What a damaged header holds.
const GARBAGE: &[u8] = b"\xde\xad\xbe\xef not a header";

static GETH_TO_299_REDIS: OnceLock<Reference> = OnceLock::new();

/// geth-ethtest cut after block 299, run uninterrupted on a fresh Redis store.
fn reference_before_bad_block() -> &'static Reference {
    GETH_TO_299_REDIS.get_or_init(|| {
        let chain = ChainFixture::geth_ethtest();
        let dir = tempfile::tempdir().expect("temp dir");
        uninterrupted_run(
            Backend::redis(),
            &chain.genesis_path(),
            &chain_cut_before(&dir, &chain, BAD),
            &[],
        )
    })
}

/// How block 300's data is damaged in the store.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// `blk:txs:300` and `blk:body:300` deleted.
    BodyDeleted,
    /// `blk:hdr:300` overwritten with bytes that are not RLP.
    HeaderGarbage,
    /// `blk:body:300` and `blk:txs:300` replaced by block 301's.
    NextBlocksBody,
}

impl Damage {
    /// Damage block 300 in `server`.
    fn apply(self, server: &RedisServer) {
        let next = BAD + 1;
        match self {
            Self::BodyDeleted => {
                server.delete(&[format!("blk:txs:{BAD}"), format!("blk:body:{BAD}")]);
            }
            Self::HeaderGarbage => {
                server.set_many(&[(format!("blk:hdr:{BAD}"), GARBAGE.to_vec())]);
            }
            Self::NextBlocksBody => {
                let copy = |what: &str| {
                    let from = format!("blk:{what}:{next}");
                    let bytes = server
                        .get(&from)
                        .unwrap_or_else(|| panic!("{from} imported"));
                    (format!("blk:{what}:{BAD}"), bytes)
                };
                server.set_many(&[copy("body"), copy("txs")]);
            }
        }
    }

    /// `text` names block 300 and what is wrong with it: a deleted key, the garbage header's
    /// key, or the transactionsRoot the foreign body has (block 301's, from its header) next to
    /// the one block 300's header claims.
    fn assert_named(self, text: &str, blocks: &[RawBlock<'_>]) {
        assert!(names_block(text, BAD), "block {BAD} in:\n{text}");
        let named = |words: &[String]| {
            assert!(
                words.iter().any(|word| text.contains(word.as_str())),
                "one of {words:?} in:\n{text}"
            );
        };
        match self {
            Self::BodyDeleted => named(&[format!("blk:txs:{BAD}"), format!("blk:body:{BAD}")]),
            Self::HeaderGarbage => named(&[format!("blk:hdr:{BAD}")]),
            Self::NextBlocksBody => {
                let root = |n: u64| {
                    format!(
                        "{:#x}",
                        blocks[n as usize - 1].header_hash(HEADER_TRANSACTIONS_ROOT_INDEX)
                    )
                };
                let (foreign, claimed) = (root(BAD + 1), root(BAD));
                assert_ne!(foreign, claimed, "blocks {BAD} and {} differ", BAD + 1);
                for word in ["transactionsRoot".to_string(), foreign, claimed] {
                    named(&[word]);
                }
            }
        }
    }
}

/// `store` holds what executing blocks 1..=299 alone leaves (the reference run over the chain
/// cut after 299) plus, untouched, the syncer's data for blocks 300..=600 and its progress as
/// `damaged` (the store right after it was damaged) holds them.
fn assert_executed_before_bad_block(store: Snapshot, damaged: &Snapshot, blocks: &[RawBlock<'_>]) {
    let mut syncer_keys = block_keys(&blocks[BAD as usize - 1..]);
    syncer_keys.insert(SYNC_PROGRESS_KEY.to_string());
    let mut expected = reference_before_bad_block().snapshot.clone();
    expected.remove(SYNC_PROGRESS_KEY);
    expected.extend(
        damaged
            .iter()
            .filter(|(key, _)| syncer_keys.contains(*key))
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    assert_same_snapshot(
        &without_run_times(store),
        &expected,
        &format!("the store stopped at the damaged block {BAD} vs a run over blocks 1..{BAD}"),
    );
}

/// A fresh Redis store with geth-ethtest imported, and block 300's data as imported.
fn imported_geth_store() -> (Backend, Vec<(String, Vec<u8>)>) {
    let chain = ChainFixture::geth_ethtest();
    let backend = Backend::redis();
    init_and_import(&backend, &chain.genesis_path(), &chain.chain_path());
    let server = redis_server(&backend);
    let original = ["hdr", "txs", "body"]
        .iter()
        .map(|what| {
            let key = format!("blk:{what}:{BAD}");
            let bytes = server.get(&key).unwrap_or_else(|| panic!("{key} imported"));
            (key, bytes)
        })
        .collect();
    (backend, original)
}

/// geth-ethtest with block 300 damaged in the store: `run --exit-at-head` exits 1 naming block
/// 300 and the damage, having executed exactly blocks 1..=299 (the good blocks before the bad
/// one are not abandoned).
fn exit_at_head_stops_at_a_damaged_block(damage: Damage) {
    let file = ChainFixture::geth_ethtest().chain_bytes();
    let blocks = raw_blocks(&file);
    let (backend, _) = imported_geth_store();
    damage.apply(redis_server(&backend));
    let damaged = backend.snapshot();
    let stderr = expect_exit_code(&run_to_head_with(&backend, &[]), COMMAND_FAILED);
    damage.assert_named(&stderr, &blocks);
    assert_executed_before_bad_block(backend.snapshot(), &damaged, &blocks);
}

/// geth-ethtest with block 300 damaged in the store: the daemon (`run`, polling every 100 ms)
/// executes to 299 and stays there, alive, for a second, with stderr naming block 300 and the
/// damage and the store as after blocks 1..=299 alone. Once the original bytes of block 300
/// are back, it goes on by itself to 600; SIGTERM then stops it with exit 0, leaving the store
/// of an uninterrupted run over the whole chain.
fn daemon_waits_out_a_damaged_block(damage: Damage) {
    let file = ChainFixture::geth_ethtest().chain_bytes();
    let blocks = raw_blocks(&file);
    let head = blocks.len() as u64;
    let (backend, original) = imported_geth_store();
    let server = redis_server(&backend);
    damage.apply(server);
    let damaged = backend.snapshot();
    let mut daemon = Daemon::start(&backend, &[fast_poll()], &["run"]);
    daemon.wait_until(PROGRESS_TIMEOUT, "block 299 executed", || {
        let executed = executed_block(server);
        assert!(executed < Some(BAD), "block {BAD} was executed");
        executed == Some(BAD - 1)
    });
    let hold_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < hold_until {
        daemon.assert_running(&format!("while block {BAD} was damaged"));
        assert_eq!(
            executed_block(server),
            Some(BAD - 1),
            "progress at block {BAD}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    damage.assert_named(&daemon.stderr(), &blocks);
    assert_executed_before_bad_block(without_lease(backend.snapshot()), &damaged, &blocks);

    server.set_many(&original);
    daemon.wait_until(
        PROGRESS_TIMEOUT,
        "block 600 executed after the repair",
        || executed_block(server) == Some(head),
    );
    let status = daemon.terminate(STOP_TIMEOUT);
    let stderr = daemon.stderr();
    assert!(
        status.success(),
        "SIGTERM: exit {status}, expected 0; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "a panic:\n{stderr}");
    assert_same_snapshot(
        &without_run_times(backend.snapshot()),
        &geth_reference().snapshot,
        "after the repair vs an uninterrupted run",
    );
}

/// One test per kind of damage for each scenario.
macro_rules! on_each_damage {
    ($($name:ident => $scenario:ident;)+) => {$(
        mod $name {
            use super::Damage;

            #[test]
            fn body_deleted() {
                super::$scenario(Damage::BodyDeleted);
            }

            #[test]
            fn header_garbage() {
                super::$scenario(Damage::HeaderGarbage);
            }

            #[test]
            fn next_blocks_body() {
                super::$scenario(Damage::NextBlocksBody);
            }
        }
    )+};
}

on_each_damage! {
    exit_at_head_stops_at_damaged_block => exit_at_head_stops_at_a_damaged_block;
    daemon_waits_out_damaged_block => daemon_waits_out_a_damaged_block;
}
