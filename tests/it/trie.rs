//! The state tries through the built binary, against real redis-servers and the embedded
//! store: `trie rebuild` on a store executed without verification leaves exactly the store of
//! a verified run (trie nodes, `st:latest:acc` with real storage roots, the merkle checkpoint),
//! also when stopped after some buckets or killed at random instants and run again, and the
//! next blocks then verify; it refuses a store whose state does not give the header's root
//! (naming both) and a store a daemon holds. A block whose header carries an altered stateRoot
//! stops `run` with both roots, nothing of it written. A reorg between two generated branches
//! with real state roots leaves the tries of executing the new branch from scratch. Expected
//! stores come from verified runs of the same blocks; expected roots from the fixture headers
//! or from alloy-trie over the stored state.

use crate::common::chain::{
    raw_blocks, relinked, tx_hash, write_file, ChainFixture, RawBlock, HEADER_STATE_ROOT_INDEX,
};
use crate::common::daemon::{
    init_and_import_with, log_uniform, redis_reference, redis_server, run_to_head_with, test_seed,
    uninterrupted_run, Daemon,
};
use crate::common::exec::{exec_progress, tx_count, without_run_times, ExecProgress, ZERO_HASH};
use crate::common::rlp::encode_string;
use crate::common::trie::assert_tries_hold;
use crate::common::{
    assert_same_snapshot, expect_exit_code, expect_success, import, names_block, raw_fields_of,
    run_cli, unverified, var, Backend, COMMAND_FAILED,
};
use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_trie::TrieAccount;
use evm_executor::gen::workload::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

type Snapshot = BTreeMap<String, Vec<u8>>;

/// The geth-ethtest block a store is rebuilt at before the rest of the chain runs verified.
const MIDDLE: u64 = 300;
/// geth-ethtest's head.
const HEAD: u64 = 600;
/// The geth-ethtest block whose header gets an altered stateRoot.
const ALTERED: u64 = 250;
/// Relinked blocks after the altered one, when the run verifies every block.
const AFTER_ALTERED: usize = 10;
/// The rebuild's progress key.
const PROGRESS_KEY: &str = "idx:trie:rebuild";
/// The merkle stage's checkpoint.
const MERKLE_KEY: &str = "idx:stage:merkle";
/// Buckets of a rebuild.
const BUCKETS: u64 = 256;
/// The longest a killed test's rebuild may take to get where the test waits for.
const KILL_TIMEOUT: Duration = Duration::from_secs(60);

/// geth-ethtest.
fn geth() -> ChainFixture {
    ChainFixture::geth_ethtest()
}

/// The first `blocks` blocks of geth-ethtest as a chain file in `dir`.
fn geth_prefix(dir: &tempfile::TempDir, blocks: u64) -> PathBuf {
    let file = geth().chain_bytes();
    let end = raw_blocks(&file)[blocks as usize].offset;
    write_file(dir, &format!("first-{blocks}.rlp"), &file[..end])
}

/// A verified run (the default config) of geth-ethtest's first `blocks` blocks on a fresh
/// redis-server: its snapshot without run times.
fn verified_prefix(blocks: u64) -> Snapshot {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = geth_prefix(&dir, blocks);
    uninterrupted_run(Backend::redis(), &geth().genesis_path(), &path, &[]).snapshot
}

/// [`verified_prefix`] of blocks 1..=[`MIDDLE`], once per test binary.
fn middle_reference() -> &'static Snapshot {
    static REFERENCE: OnceLock<Snapshot> = OnceLock::new();
    REFERENCE.get_or_init(|| verified_prefix(MIDDLE))
}

/// `trie rebuild` with `args` against `backend`.
fn rebuild(backend: &Backend, args: &[&str]) -> Output {
    let mut all = vec!["trie", "rebuild"];
    all.extend_from_slice(args);
    backend.cli(&[], &all)
}

/// `init` with verification off, `import` of `chain_file` and `run --exit-at-head` with
/// verification off: a store without tries, its accounts carrying the zero storage root.
fn unverified_run(backend: &Backend, genesis: &Path, chain_file: &Path) {
    init_and_import_with(backend, &[unverified()], genesis, chain_file);
    expect_success(&run_to_head_with(backend, &[unverified()]));
    let snapshot = backend.snapshot();
    let tries: Vec<_> = snapshot.keys().filter(|k| k.starts_with("trie:")).collect();
    assert!(
        tries.is_empty(),
        "an unverified run keeps no tries: {tries:?}"
    );
    assert!(
        !snapshot.contains_key(MERKLE_KEY),
        "{MERKLE_KEY} without tries"
    );
    let zero_roots = snapshot
        .iter()
        .filter(|(key, _)| key.starts_with("st:latest:acc:"))
        .filter(|(key, value)| {
            raw_fields_of(key, value)["storageRoot"] == format!("\"{ZERO_HASH}\"")
        })
        .count();
    assert!(
        zero_roots > 0,
        "the unverified accounts carry the zero storage root"
    );
}

/// Every account `st:latest:acc` holds in `snapshot`.
fn latest_accounts(snapshot: &Snapshot) -> Vec<Address> {
    snapshot
        .keys()
        .filter_map(|key| key.strip_prefix("st:latest:acc:"))
        .map(|address| Address::from_str(address).expect("an address"))
        .collect()
}

/// The state root of the state `st:latest` holds in `snapshot`, by alloy-trie.
fn latest_state_root(snapshot: &Snapshot) -> B256 {
    let mut slots: BTreeMap<Address, Vec<(B256, U256)>> = BTreeMap::new();
    for (key, value) in snapshot {
        let Some(rest) = key.strip_prefix("st:latest:stor:") else {
            continue;
        };
        let (address, slot) = rest.split_once(':').expect("st:latest:stor:{Addr}:{slot}");
        let value = std::str::from_utf8(value).expect("a hex word");
        slots
            .entry(Address::from_str(address).expect("an address"))
            .or_default()
            .push((
                B256::from_str(slot).expect("a slot"),
                U256::from_str(value).expect("a word"),
            ));
    }
    alloy_trie::root::state_root_unhashed(latest_accounts(snapshot).into_iter().map(|address| {
        let key = format!("st:latest:acc:{}", address.to_checksum(None));
        let fields = raw_fields_of(&key, &snapshot[&key]);
        let hash = |name: &str| B256::from_str(fields[name].trim_matches('"')).expect("a hash");
        let storage = slots.remove(&address).unwrap_or_default();
        let account = TrieAccount {
            nonce: fields["nonce"].parse().expect("a nonce"),
            balance: U256::from_str(&fields["balance"]).expect("a balance"),
            storage_root: alloy_trie::root::storage_root_unhashed(storage),
            code_hash: hash("codeHash"),
        };
        (address, account)
    }))
}

/// The stateRoot of `block`'s header.
fn header_state_root(block: &RawBlock<'_>) -> B256 {
    block.header_hash(HEADER_STATE_ROOT_INDEX)
}

/// `stderr` names every root of `roots` (as `0x` + 64 hex digits).
fn assert_names_roots(stderr: &str, roots: [B256; 2]) {
    for root in roots {
        let root = format!("{root:#x}");
        assert!(stderr.contains(&root), "{root} in:\n{stderr}");
    }
}

/// `idx:trie:rebuild` in `snapshot`: its block, hash and finished buckets.
fn rebuild_progress(snapshot: &Snapshot) -> Option<(u64, String, u64)> {
    let bytes = snapshot.get(PROGRESS_KEY)?;
    let json: serde_json::Value = serde_json::from_slice(bytes).expect("progress JSON");
    let field = |name: &str| {
        json[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{PROGRESS_KEY}.{name} in {json}"))
    };
    let hash = json["hash"].as_str().expect("a hash").to_string();
    Some((field("block"), hash, field("finished")))
}

/// A store executed to block 300 without verification, rebuilt, equals a verified run to
/// 300 (tries, accounts, checkpoints: every key); the tries walk independently to block 300's
/// stateRoot; the rest of the chain then runs verified (no warning) to the store of a verified
/// run of the whole chain.
fn rebuilt_store_verifies_the_rest_of_the_chain(backend: Backend) {
    let chain = geth();
    let dir = tempfile::tempdir().expect("temp dir");
    let first = geth_prefix(&dir, MIDDLE);
    unverified_run(&backend, &chain.genesis_path(), &first);
    let stdout = expect_success(&rebuild(&backend, &[]));
    assert!(names_block(&stdout, MIDDLE), "block {MIDDLE} in:\n{stdout}");
    let rebuilt = without_run_times(backend.snapshot());
    assert_same_snapshot(
        &rebuilt,
        middle_reference(),
        "the store rebuilt at block 300 vs a verified run to 300",
    );
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    assert_tries_hold(
        &rebuilt,
        header_state_root(&blocks[MIDDLE as usize - 1]),
        latest_accounts(&rebuilt),
    );

    expect_success(&import(&backend, &chain.chain_path()));
    let output = run_to_head_with(&backend, &[]);
    expect_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("UNVERIFIED"),
        "the run verified:\n{stderr}"
    );
    assert_same_snapshot(
        &without_run_times(backend.snapshot()),
        &redis_reference(&chain).snapshot,
        "blocks 301..=600 run verified on the rebuilt store vs a verified run of the chain",
    );
}

/// A rebuild stopped after 40 buckets, then after 100 more, then finished, leaves exactly the
/// store of a verified run; in between, the progress names the block and the buckets done and
/// no merkle checkpoint exists.
fn stopped_rebuild_resumes(backend: Backend) {
    let chain = geth();
    unverified_run(&backend, &chain.genesis_path(), &chain.chain_path());
    let file = chain.chain_bytes();
    let head_hash = format!("{:#x}", raw_blocks(&file)[HEAD as usize - 1].hash());
    for (stop_after, finished) in [(40, 40), (100, 140)] {
        let stdout = expect_success(&rebuild(
            &backend,
            &["--stop-after-buckets", &stop_after.to_string()],
        ));
        assert!(
            stdout.contains(&format!("stopped after bucket {finished} of {BUCKETS}")),
            "{stdout}"
        );
        let snapshot = backend.snapshot();
        assert_eq!(
            rebuild_progress(&snapshot),
            Some((HEAD, head_hash.clone(), finished))
        );
        assert!(
            !snapshot.contains_key(MERKLE_KEY),
            "no checkpoint before the end"
        );
    }
    let stdout = expect_success(&rebuild(&backend, &[]));
    assert!(names_block(&stdout, HEAD), "block {HEAD} in:\n{stdout}");
    assert_same_snapshot(
        &without_run_times(backend.snapshot()),
        &redis_reference(&chain).snapshot,
        "a rebuild stopped twice vs a verified run",
    );
}

/// A chain of `gen` with 20,000 accounts (each holding the genesis tokens): long enough a
/// rebuild on redis-server to kill it at chosen buckets.
fn many_accounts_chain(dir: &tempfile::TempDir) -> (PathBuf, PathBuf) {
    let out = dir.path().join("chain");
    let out_text = out.to_str().expect("utf-8 path");
    expect_success(&run_cli(
        &[],
        &[
            "gen",
            "--blocks",
            "3",
            "--txs-per-block",
            "50",
            "--accounts",
            "20000",
            "--out",
            out_text,
        ],
    ));
    (out.join("genesis.json"), out.join("chain.rlp"))
}

/// SIGKILL a rebuild five times (once at a random instant, which may fall in the scans, then
/// each time once it has finished a randomly chosen bucket, further each time), then let one
/// finish: the store equals a verified run's, byte for byte. `DAEMON_TEST_SEED` replays a
/// sequence.
#[test]
fn killed_rebuilds_resume_to_the_store_of_a_verified_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (genesis, chain) = many_accounts_chain(&dir);
    let verified = uninterrupted_run(Backend::redis(), &genesis, &chain, &[]).snapshot;
    let backend = Backend::redis();
    unverified_run(&backend, &genesis, &chain);
    let server = redis_server(&backend);
    let work = tempfile::tempdir().expect("work dir");
    let work_dir = work.path().to_str().expect("utf-8 path");
    let seed = test_seed(0x7e1e);
    let mut rng = Rng::new(seed, 0);
    let mut targets: Vec<u64> = (0..4).map(|_| 1 + rng.below(BUCKETS - 2)).collect();
    targets.sort_unstable();
    let finished = |server: &crate::common::redis_server::RedisServer| {
        rebuild_progress(&BTreeMap::from_iter(
            server
                .get(PROGRESS_KEY)
                .map(|v| (PROGRESS_KEY.to_string(), v)),
        ))
        .map(|(_, _, finished)| finished)
    };
    let mut landed = Vec::new();
    let early = log_uniform(
        &mut rng,
        Duration::from_millis(1),
        Duration::from_millis(300),
    );
    for target in std::iter::once(None).chain(targets.into_iter().map(Some)) {
        let mut run = Daemon::start(&backend, &[], &["trie", "rebuild", "--work-dir", work_dir]);
        match target {
            None => std::thread::sleep(early),
            Some(target) => {
                let deadline = Instant::now() + KILL_TIMEOUT;
                while finished(server).is_none_or(|done| done < target) {
                    run.assert_running(&format!("before bucket {target} (seed {seed:#x})"));
                    assert!(Instant::now() < deadline, "bucket {target} not reached");
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        run.kill9();
        landed.push(finished(server));
    }
    assert!(
        landed[1..]
            .iter()
            .all(|done| done.is_some_and(|done| done < BUCKETS)),
        "the bucket-targeted kills landed mid-rebuild: {landed:?} (seed {seed:#x})"
    );
    expect_success(&rebuild(&backend, &["--work-dir", work_dir]));
    assert_same_snapshot(
        &without_run_times(backend.snapshot()),
        &verified,
        &format!("a rebuild killed after buckets {landed:?} vs a verified run (seed {seed:#x})"),
    );
}

/// A rebuild is refused while `lock:leader` is held (naming the key and the holder), and,
/// forced, refused when `st:latest` is not the state after the block: the error names the
/// block, the header's root and the root of the stored state (by alloy-trie here), and no
/// checkpoint or progress is left. Repaired, the forced rebuild gives a verified run's store.
#[test]
fn rebuild_refuses_a_held_lease_and_a_state_that_is_not_the_block_s() {
    let chain = geth();
    let backend = Backend::redis();
    unverified_run(&backend, &chain.genesis_path(), &chain.chain_path());
    let server = redis_server(&backend);
    let holder = "other-host:4242:1700000000000";
    server.set_many(&[("lock:leader".to_string(), holder.as_bytes().to_vec())]);
    let before = backend.snapshot();
    let stderr = expect_exit_code(&rebuild(&backend, &[]), COMMAND_FAILED);
    assert!(
        stderr.contains("lock:leader") && stderr.contains(holder),
        "{stderr}"
    );
    assert_eq!(backend.snapshot(), before, "nothing written");

    let slot_key = before
        .keys()
        .find(|key| key.starts_with("st:latest:stor:"))
        .expect("a storage slot")
        .clone();
    let original = before[&slot_key].clone();
    let tampered = format!("{:#x}", B256::from(U256::from(0xdead_beefu64)));
    server.set_many(&[(slot_key.clone(), tampered.into_bytes())]);
    let file = chain.chain_bytes();
    let expected = header_state_root(&raw_blocks(&file)[HEAD as usize - 1]);
    let got = latest_state_root(&backend.snapshot());
    assert_ne!(got, expected);
    let stderr = expect_exit_code(&rebuild(&backend, &["--force"]), COMMAND_FAILED);
    assert!(names_block(&stderr, HEAD), "block {HEAD} in:\n{stderr}");
    assert_names_roots(&stderr, [expected, got]);
    let after = backend.snapshot();
    assert!(!after.contains_key(MERKLE_KEY) && !after.contains_key(PROGRESS_KEY));

    server.set_many(&[(slot_key, original)]);
    expect_success(&rebuild(&backend, &["--force"]));
    let mut rebuilt = without_run_times(backend.snapshot());
    assert_eq!(
        rebuilt.remove("lock:leader"),
        Some(holder.as_bytes().to_vec())
    );
    assert_same_snapshot(
        &rebuilt,
        &redis_reference(&chain).snapshot,
        "the repaired store rebuilt",
    );
}

/// geth-ethtest's block [`ALTERED`] with its header's stateRoot replaced (everything else as it
/// was, so only the state root check can reject it), its real root, and the altered root.
fn altered_block(block: &RawBlock<'_>) -> (Vec<u8>, B256, B256) {
    let real = header_state_root(block);
    let altered = keccak256(real);
    let mut fields = block.header_fields();
    fields[HEADER_STATE_ROOT_INDEX] = encode_string(&altered.0);
    (block.with_header(&fields), real, altered)
}

/// geth-ethtest up to block [`ALTERED`] with its stateRoot altered, and `after` blocks after it
/// relinked, run with `extra` overrides on a fresh redis-server: the run stops naming the block
/// and both roots, with `idx:exec:progress` at the block before it and the store exactly that of
/// a verified run of the blocks before it (nothing of the block: state, history, receipts,
/// record), the imported blocks aside.
fn altered_state_root_stops_the_run(after: usize, extra: &[(String, String)]) {
    let chain = geth();
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    let index = ALTERED as usize - 1;
    let (bad, real, altered) = altered_block(&blocks[index]);
    let bad_hash = raw_blocks(&bad)[0].hash();
    let mut bad_file = [&file[..blocks[index].offset], &bad[..]].concat();
    bad_file.extend(relinked(&blocks[index + 1..index + 1 + after], bad_hash));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_file(&dir, "altered.rlp", &bad_file);

    let backend = Backend::redis();
    init_and_import_with(&backend, &[], &chain.genesis_path(), &path);
    let output = run_to_head_with(&backend, extra);
    let stderr = expect_exit_code(&output, COMMAND_FAILED);
    assert!(
        names_block(&stderr, ALTERED),
        "block {ALTERED} in:\n{stderr}"
    );
    assert_names_roots(&stderr, [real, altered]);
    let snapshot = backend.snapshot();
    assert_eq!(
        exec_progress(&snapshot),
        ExecProgress {
            latest_executed_block: ALTERED - 1,
            total_txs_executed: tx_count(&blocks[..index]),
        }
    );
    let mut actual = without_run_times(snapshot);
    for key in [format!("rec:{ALTERED}"), format!("blk:rcpt:{ALTERED}")] {
        assert!(!actual.contains_key(&key), "{key} is written");
    }
    let imported = raw_blocks(&bad_file);
    for key in crate::common::chain::block_keys(&imported[index..]) {
        assert!(actual.remove(&key).is_some(), "{key} was imported");
    }
    actual.remove("idx:sync:progress");
    let mut expected = verified_prefix(ALTERED - 1);
    expected.remove("idx:sync:progress");
    assert_same_snapshot(
        &actual,
        &expected,
        &format!(
            "the store after block {ALTERED} failed verification vs a verified run to {}",
            ALTERED - 1
        ),
    );
}

/// The altered block is the chain's last: the default `verify_root = "batch"` checks the batch
/// ending with it and finds it by bisection.
#[test]
fn an_altered_state_root_at_the_head_stops_the_run() {
    altered_state_root_stops_the_run(0, &[]);
}

/// Blocks follow the altered one: with `verify_root = "every"` (and batches of one block) the
/// run stops at it and never writes the blocks after it.
#[test]
fn an_altered_state_root_below_the_head_stops_the_run_verifying_every_block() {
    altered_state_root_stops_the_run(
        AFTER_ALTERED,
        &[var("EVM_EXECUTOR_STATE_VERIFY_ROOT", "every")],
    );
}

/// The last block both generated branches share.
const FORK_AT: u64 = 8;
/// The first branch's head.
const HEAD_A: u64 = 12;
/// The second branch's head (two blocks past the first's).
const HEAD_B: u64 = 14;

/// `gen` of a 20-transaction chain of `blocks` blocks into `dir/name`, with `extra` arguments.
fn generated(dir: &tempfile::TempDir, name: &str, blocks: u64, extra: &[&str]) -> PathBuf {
    let out = dir.path().join(name);
    let (blocks, out_text) = (
        blocks.to_string(),
        out.to_str().expect("utf-8 path").to_string(),
    );
    let mut args = vec![
        "gen",
        "--blocks",
        &blocks,
        "--txs-per-block",
        "20",
        "--out",
        &out_text,
    ];
    args.extend_from_slice(extra);
    expect_success(&run_cli(&[], &args));
    out
}

/// Two generated branches: blocks 1..=8 shared, then 9..=12 of seed 1 (A) or 9'..=14' of seed
/// 2 (B), every header with its real state root. A store executes A (verified), the syncer
/// then replaces it with B (`import` of B, as the syncer writes blocks) and `run` unwinds 4
/// blocks and executes B: the store equals one that only ever saw B, trie keys included, the
/// syncer's index of A's replaced transactions aside; the tries walk to B's head stateRoot.
fn reorg_leaves_the_tries_of_the_new_branch(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = generated(&dir, "a", HEAD_A, &[]);
    let b = generated(
        &dir,
        "b",
        HEAD_B,
        &["--fork-at", &FORK_AT.to_string(), "--fork-seed", "2"],
    );
    let read = |dir: &Path, name: &str| std::fs::read(dir.join(name)).expect("generated file");
    assert_eq!(
        read(&a, "genesis.json"),
        read(&b, "genesis.json"),
        "one genesis"
    );
    let (file_a, file_b) = (read(&a, "chain.rlp"), read(&b, "chain.rlp"));
    let (blocks_a, blocks_b) = (raw_blocks(&file_a), raw_blocks(&file_b));
    let shared = FORK_AT as usize;
    for (x, y) in blocks_a[..shared].iter().zip(&blocks_b[..shared]) {
        assert_eq!(x.encoded, y.encoded, "block {} is shared", x.number());
    }
    for (x, y) in blocks_a[shared..].iter().zip(&blocks_b[shared..]) {
        assert_ne!(x.hash(), y.hash(), "block {} differs", x.number());
        assert_ne!(
            header_state_root(x),
            header_state_root(y),
            "block {}'s state differs",
            x.number()
        );
    }

    let reference = backend.fresh_like();
    init_and_import_with(
        &reference,
        &[],
        &b.join("genesis.json"),
        &b.join("chain.rlp"),
    );
    expect_success(&run_to_head_with(&reference, &[]));
    let expected = without_run_times(reference.snapshot());

    init_and_import_with(&backend, &[], &a.join("genesis.json"), &a.join("chain.rlp"));
    expect_success(&run_to_head_with(&backend, &[]));
    let merkle = raw_fields_of(MERKLE_KEY, &backend.snapshot()[MERKLE_KEY]);
    assert_eq!(
        merkle["block"],
        HEAD_A.to_string(),
        "branch A verified to its head"
    );
    expect_success(&import(&backend, &b.join("chain.rlp")));
    let output = run_to_head_with(&backend, &[]);
    expect_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("reorg"), "the run met a reorg:\n{stderr}");

    let b_txs: BTreeSet<B256> = blocks_b
        .iter()
        .flat_map(|b| b.transactions())
        .map(|tx| tx_hash(&tx))
        .collect();
    let mut actual = without_run_times(backend.snapshot());
    for tx in blocks_a[shared..].iter().flat_map(|b| b.transactions()) {
        let hash = tx_hash(&tx);
        if !b_txs.contains(&hash) {
            let key = format!("blk:txhash:{hash:#x}");
            assert!(
                actual.remove(&key).is_some(),
                "{key}: A's index stays, as the syncer left it"
            );
        }
    }
    assert_same_snapshot(
        &actual,
        &expected,
        "the store after the reorg vs one that only saw B",
    );
    assert_tries_hold(
        &actual,
        header_state_root(blocks_b.last().expect("blocks")),
        latest_accounts(&actual),
    );
}

on_both_backends! {
    rebuild_then_verified_run => rebuilt_store_verifies_the_rest_of_the_chain;
    stopped_rebuild_resumes_to_a_verified_store => stopped_rebuild_resumes;
    reorg_between_generated_branches_leaves_the_new_branch_s_tries =>
        reorg_leaves_the_tries_of_the_new_branch;
}
