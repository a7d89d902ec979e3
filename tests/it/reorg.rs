//! Reorgs through the built binary against a real redis-server: geth-ethtest executed to its
//! head (600), then the syncer replaces its last blocks with a branch of empty blocks forked off
//! block 596, built by the tests alone (`crate::common::branch`). The executor must unwind 600..597
//! with the records' pre-values and execute the branch, leaving exactly the store of a fresh
//! run over blocks 1..=596 and the branch (the branch imported as a chain file through
//! `import`): state, code, receipts, history, records, progress and checkpoints, the run
//! times aside. Both when the branch is found at a restart (`run --exit-at-head`) and by a
//! daemon following the syncer; both for a branch as long as the replaced chain (597'..600')
//! and one block longer (597'..601'). A fork outside `state.window_size` stops the run with an
//! error naming the window and changes nothing.

use crate::common::branch::{checkpoint, Branch};
use crate::common::chain::{raw_blocks, tx_hash, write_file, ChainFixture};
use crate::common::daemon::{init_and_import_with, redis_server, uninterrupted_run, Daemon};
use crate::common::exec::{
    exec_progress, history_entry, tx_count, without_run_times, ExecProgress,
};
use crate::common::{
    assert_same_snapshot, expect_exit_code, expect_success, raw_json_fields, run_to_head,
    unverified, var, Backend, COMMAND_FAILED,
};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

type Snapshot = BTreeMap<String, Vec<u8>>;

/// The last block both branches share.
const FORK: u64 = 596;
/// geth-ethtest's head: the last block executed on the first branch.
const OLD_HEAD: u64 = 600;
/// `state.window_size` small enough that the records of blocks 597 and 598 are pruned at 600.
const SMALL_WINDOW: u64 = 2;
/// The longest a test waits for the daemon to execute the first branch, or to stop.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a test waits for a daemon to meet the second branch (a few blocks, executed in
/// well under a second on an idle machine).
const REORG_TIMEOUT: Duration = Duration::from_secs(15);
/// The leader lease key.
const LOCK_KEY: &str = "lock:leader";
/// The stages that keep a checkpoint per executed block, with the block's hash.
const BLOCK_STAGES: [&str; 3] = ["execution", "commit", "receipts"];

/// How long the second branch is.
#[derive(Debug, Clone, Copy)]
enum Length {
    /// 597'..600': the syncer's head does not move.
    SameHeight,
    /// 597'..601': the syncer's head moves one block past the old head.
    OneLonger,
}

impl Length {
    fn head(self) -> u64 {
        match self {
            Self::SameHeight => OLD_HEAD,
            Self::OneLonger => OLD_HEAD + 1,
        }
    }
}

/// When the executor meets the second branch.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Written while no executor runs; the next `run --exit-at-head` finds it.
    AtRestart,
    /// Written while a daemon (`run`, polling every 100 ms) waits at the old head.
    WhileFollowing,
}

/// The second branch of the given length.
fn branch(length: Length) -> Branch {
    let chain = ChainFixture::geth_ethtest();
    let file = chain.chain_bytes();
    Branch::empty(
        &raw_blocks(&file),
        &chain.genesis_path(),
        FORK,
        length.head(),
    )
}

static SAME_HEIGHT_REFERENCE: OnceLock<Snapshot> = OnceLock::new();
static ONE_LONGER_REFERENCE: OnceLock<Snapshot> = OnceLock::new();

/// A fresh Redis store: `init`, `import` of geth-ethtest cut after block 596 followed by the
/// branch (one chain file), one uninterrupted `run --exit-at-head`; its snapshot without run
/// times. This also shows the executor accepts the branch.
fn reference(length: Length) -> &'static Snapshot {
    let cell = match length {
        Length::SameHeight => &SAME_HEIGHT_REFERENCE,
        Length::OneLonger => &ONE_LONGER_REFERENCE,
    };
    cell.get_or_init(|| {
        let chain = ChainFixture::geth_ethtest();
        let file = chain.chain_bytes();
        let blocks = raw_blocks(&file);
        let cut = blocks[FORK as usize].offset;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write_file(
            &dir,
            "second-branch.rlp",
            &[&file[..cut], &branch(length).chain_file()].concat(),
        );
        let reference = uninterrupted_run(
            Backend::redis(),
            &chain.genesis_path(),
            &path,
            &[unverified()],
        );
        let progress = raw_json_fields(&reference.snapshot, "idx:exec:progress");
        let expected_txs = tx_count(&blocks[..FORK as usize]);
        assert_eq!(
            (
                progress["latestExecutedBlock"].as_str(),
                progress["totalTxsExecuted"].as_str()
            ),
            (
                length.head().to_string().as_str(),
                expected_txs.to_string().as_str()
            ),
            "the reference run's progress over the second branch"
        );
        reference.snapshot
    })
}

/// The overrides of a run with `state.window_size = window` (the default window without).
fn window_env(window: Option<u64>) -> Vec<(String, String)> {
    window
        .map(|blocks| var("EVM_EXECUTOR_STATE_WINDOW_SIZE", blocks.to_string()))
        .into_iter()
        .collect()
}

/// True when every per-block stage's checkpoint is at `number` with hash `hash`.
fn stages_at(backend: &Backend, number: u64, hash: alloy_primitives::B256) -> bool {
    let server = redis_server(backend);
    BLOCK_STAGES
        .iter()
        .all(|stage| checkpoint(server, stage).is_some_and(|c| c.block == number && c.hash == hash))
}

/// True when the store is settled at the old head: every per-block stage at block 600 with
/// the fixture's hash and, with `window`, the prune checkpoint at `600 - window`.
fn settled_at_old_head(backend: &Backend, window: Option<u64>) -> bool {
    let file = ChainFixture::geth_ethtest().chain_bytes();
    let head_hash = raw_blocks(&file)[OLD_HEAD as usize - 1].hash();
    let pruned = |window| {
        checkpoint(redis_server(backend), "prune").map(|c| c.block) == Some(OLD_HEAD - window)
    };
    stages_at(backend, OLD_HEAD, head_hash) && window.is_none_or(pruned)
}

/// A Redis store with geth-ethtest imported and executed to 600 with `state.window_size =
/// window` (if set): by one `run --exit-at-head` (`AtRestart`), or by a daemon (polling every
/// 100 ms) started now and left running at the head (`WhileFollowing`, returned).
fn executed_to_old_head(mode: Mode, window: Option<u64>) -> (Backend, Option<Daemon>) {
    let mut env = window_env(window);
    let chain = ChainFixture::geth_ethtest();
    let backend = Backend::redis();
    init_and_import_with(
        &backend,
        &[unverified()],
        &chain.genesis_path(),
        &chain.chain_path(),
    );
    match mode {
        Mode::AtRestart => {
            expect_success(&backend.cli(&env, &["run", "--exit-at-head"]));
            assert!(
                settled_at_old_head(&backend, window),
                "run --exit-at-head left the store settled at block {OLD_HEAD}"
            );
            (backend, None)
        }
        Mode::WhileFollowing => {
            env.push(var("EVM_EXECUTOR_EXECUTOR_POLL_INTERVAL_MS", "100"));
            let mut daemon = Daemon::start(&backend, &env, &["run"]);
            daemon.wait_until(TIMEOUT, "the first branch executed to 600", || {
                settled_at_old_head(&backend, window)
            });
            (backend, Some(daemon))
        }
    }
}

/// The `blk:txhash` keys of the replaced fixture blocks' transactions: the syncer's index,
/// which neither the reference store (that never saw them) nor this test's syncer touches.
fn replaced_tx_index_keys() -> Vec<String> {
    let file = ChainFixture::geth_ethtest().chain_bytes();
    let blocks = raw_blocks(&file);
    let replaced = &blocks[FORK as usize..OLD_HEAD as usize];
    let keys: Vec<String> = replaced
        .iter()
        .flat_map(|block| block.transactions())
        .map(|tx| format!("blk:txhash:{:#x}", tx_hash(&tx)))
        .collect();
    assert!(!keys.is_empty(), "the replaced blocks carry transactions");
    keys
}

/// Block `n`'s window entries in `store`: its record and its history keys.
fn entries_of_block(store: &Snapshot, n: u64) -> Snapshot {
    store
        .iter()
        .filter(|(key, _)| {
            **key == format!("rec:{n}") || history_entry(key).is_some_and(|(block, _)| block == n)
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// The executor executed the first branch to 600 and then meets the second (`length`, found
/// as `mode` says): `run --exit-at-head` exits 0, or the daemon executes the branch's head by
/// itself and exits 0 on SIGTERM. The store then equals the reference run's over the second
/// branch, the replaced blocks' transaction index aside.
fn reorg_is_unwound(mode: Mode, length: Length) {
    let expected = reference(length);
    let branch = branch(length);
    let (backend, daemon) = executed_to_old_head(mode, None);
    let before = backend.snapshot();
    for n in FORK + 1..=OLD_HEAD {
        assert_ne!(
            entries_of_block(&before, n),
            entries_of_block(expected, n),
            "block {n}'s record and history differ between the branches"
        );
    }
    branch.write_to(redis_server(&backend));
    let head = branch.head();
    match daemon {
        None => {
            expect_success(&run_to_head(&backend));
        }
        Some(mut daemon) => {
            daemon.wait_until(
                REORG_TIMEOUT,
                &format!("block {}' executed on the second branch", head.number),
                || stages_at(&backend, head.number, head.hash()),
            );
            let status = daemon.terminate(TIMEOUT);
            let stderr = daemon.stderr();
            assert!(
                status.success(),
                "SIGTERM: exit {status}; stderr:\n{stderr}"
            );
            assert!(!stderr.contains("panicked"), "a panic:\n{stderr}");
        }
    }
    assert!(
        stages_at(&backend, head.number, head.hash()),
        "every stage's checkpoint is on block {}' of the second branch",
        head.number
    );
    let actual = backend.snapshot();
    let file = ChainFixture::geth_ethtest().chain_bytes();
    assert_eq!(
        exec_progress(&actual),
        ExecProgress {
            latest_executed_block: head.number,
            total_txs_executed: tx_count(&raw_blocks(&file)[..FORK as usize]),
        },
        "the progress after the reorg"
    );
    let mut actual = without_run_times(actual);
    for key in replaced_tx_index_keys() {
        actual.remove(&key);
    }
    assert_same_snapshot(
        &actual,
        expected,
        &format!("{mode:?}, {length:?}: after the reorg vs a run over the second branch alone"),
    );
}

/// `state.window_size = 2`: at 600 the records of blocks up to 598 are pruned, so the fork after
/// 596 lies outside the window. When the executor meets the second branch (`length`, as `mode`
/// says), the run exits 1 with an error naming the window, and the store is as before but for
/// the syncer's writes.
fn reorg_beyond_the_window_stops(mode: Mode, length: Length) {
    let (backend, daemon) = executed_to_old_head(mode, Some(SMALL_WINDOW));
    let server = redis_server(&backend);
    let mut expected = without_run_times(backend.snapshot());
    let records: Vec<u64> = expected
        .keys()
        .filter_map(|key| key.strip_prefix("rec:")?.parse().ok())
        .collect();
    assert_eq!(
        records,
        [OLD_HEAD - 1, OLD_HEAD],
        "records left with a window of {SMALL_WINDOW}"
    );
    let branch = branch(length);
    branch.write_to(server);
    expected.extend(branch.store_entries());
    let stderr = match daemon {
        None => expect_exit_code(
            &backend.cli(&window_env(Some(SMALL_WINDOW)), &["run", "--exit-at-head"]),
            COMMAND_FAILED,
        ),
        Some(mut daemon) => {
            let status = daemon.wait_for_exit(REORG_TIMEOUT);
            let stderr = daemon.stderr();
            assert_eq!(
                status.and_then(|status| status.code()),
                Some(COMMAND_FAILED),
                "the daemon's exit after a reorg beyond the window; stderr:\n{stderr}"
            );
            assert!(!stderr.contains("panicked"), "a panic:\n{stderr}");
            stderr
        }
    };
    assert!(
        stderr.to_lowercase().contains("window"),
        "the error names the window:\n{stderr}"
    );
    // A daemon held the leader lease when the store was read; whether a failed run releases
    // it is not the point here.
    let mut actual = without_run_times(backend.snapshot());
    for store in [&mut actual, &mut expected] {
        store.remove(LOCK_KEY);
    }
    assert_same_snapshot(
        &actual,
        &expected,
        &format!("{mode:?}, {length:?}: after a reorg beyond the window vs before it"),
    );
}

/// The syncer's head stays at 600 while 597..600 are replaced; found at a restart.
#[test]
fn reorg_at_restart_same_height() {
    reorg_is_unwound(Mode::AtRestart, Length::SameHeight);
}

/// 597..600 replaced and 601' added; found at a restart.
#[test]
fn reorg_at_restart_one_block_longer() {
    reorg_is_unwound(Mode::AtRestart, Length::OneLonger);
}

/// The syncer's head stays at 600 while 597..600 are replaced under a waiting daemon.
#[test]
fn reorg_while_following_same_height() {
    reorg_is_unwound(Mode::WhileFollowing, Length::SameHeight);
}

/// 597..600 replaced and 601' added under a waiting daemon.
#[test]
fn reorg_while_following_one_block_longer() {
    reorg_is_unwound(Mode::WhileFollowing, Length::OneLonger);
}

/// The same-height branch beyond the window, found at a restart.
#[test]
fn reorg_beyond_the_window_at_restart() {
    reorg_beyond_the_window_stops(Mode::AtRestart, Length::SameHeight);
}

/// The one-block-longer branch beyond the window, met by a waiting daemon.
#[test]
fn reorg_beyond_the_window_while_following() {
    reorg_beyond_the_window_stops(Mode::WhileFollowing, Length::OneLonger);
}
