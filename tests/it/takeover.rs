//! Taking over a store the original Go service left, on a real redis-server. Such a store holds
//! blocks, state, history, receipts and `idx:exec:progress`, but none of the executor's own
//! keys: no chain record `idx:chain`, no stage checkpoints `idx:stage:*`, no execution records
//! `rec:*`. The tests make one the only way available offline: the executor runs a chain up
//! to block K (standing in for the original service), and those keys are deleted. Taken over,
//! the store must execute the blocks after K to exactly the store (state, history, receipts,
//! progress, checkpoints) of one uninterrupted run, with no record of blocks 1..=K (nothing
//! re-executed); a store that does not fit its chain must be refused with what differs, and
//! left unchanged.
//!
//! Which chains: no real block of a built-in chain with its pre-state is available offline,
//! so the execution comparison with real transactions and receipts runs on the fixture chain
//! geth-ethtest, a custom chain, taken over with `init --genesis FILE --adopt`. The built-in
//! chain `bsc` (taken over by `run` itself, with its built-in genesis and rules) runs blocks
//! the test builds on BSC mainnet's real genesis: empty blocks, the only ones whose outcome is
//! known without keys of funded genesis accounts.

use crate::common::chain::{raw_blocks, ChainFixture};
use crate::common::daemon::{redis_server, run_to_head_with, uninterrupted_run};
use crate::common::exec::without_run_times;
use crate::common::redis_server::RedisServer;
use crate::common::{
    assert_same_snapshot, expect_exit_code, expect_success, unverified, var, Backend,
    COMMAND_FAILED,
};
use alloy_consensus::Header;
use alloy_primitives::B256;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

type Snapshot = BTreeMap<String, Vec<u8>>;

/// The chain record key.
const CHAIN_KEY: &str = "idx:chain";
/// The sync progress key.
const SYNC_KEY: &str = "idx:sync:progress";
/// The keys only this executor writes; without them a store is laid out as the original
/// service leaves it.
const EXECUTOR_ONLY: &[&str] = &["idx:chain", "idx:stage:", "rec:", "lock:"];
/// BSC mainnet's genesis block hash, as `fixtures/bsc/README.md` gives it.
const BSC_GENESIS_HASH: &str = "0x0d21840abff46b96c84b2ac9e10e4f5cdaeb5693cb665db62a2f3b02d2d57b5b";
/// geth-ethtest: the original service's last executed block.
const GETH_TAKEOVER_AT: u64 = 300;

/// `idx:sync:progress` at `block`, as the syncer writes it.
fn sync_progress(block: u64) -> (String, Vec<u8>) {
    (
        SYNC_KEY.to_string(),
        format!("{{\"latestSyncedBlock\":{block}}}").into_bytes(),
    )
}

/// Delete the executor's own keys: the store as the original service leaves it.
fn strip_to_original_layout(server: &RedisServer) {
    let ours: Vec<String> = server
        .keys()
        .into_iter()
        .filter(|key| EXECUTOR_ONLY.iter().any(|prefix| key.starts_with(prefix)))
        .collect();
    assert!(
        ours.iter().any(|key| key == CHAIN_KEY) && ours.iter().any(|key| key.starts_with("rec:")),
        "the executor's run left its keys: {ours:?}"
    );
    server.delete(&ours);
}

/// A log as text, without the terminal colour codes (`ESC [ … m`) around its fields.
fn plain_text(log: &[u8]) -> String {
    let text = String::from_utf8_lossy(log);
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            plain.push(c);
        }
    }
    plain
}

/// `reference` without the records of blocks `1..=last` (which a takeover at `last` never
/// writes).
fn without_records_up_to(mut reference: Snapshot, last: u64) -> Snapshot {
    reference.retain(|key, _| {
        key.strip_prefix("rec:")
            .and_then(|n| n.parse::<u64>().ok())
            .is_none_or(|n| n > last)
    });
    reference
}

/// The store and chain files of one test, with the original service's store in `server`.
struct OriginalStore {
    backend: Backend,
    /// Every key and value as the original service left it (block `at` executed).
    snapshot: Snapshot,
}

/// Run `backend`'s chain (already initialised and imported up to `head`) to block `at` with
/// `extra` overrides, lay it out as the original service leaves it, and report the syncer at
/// `head` again.
fn run_then_strip(
    backend: Backend,
    extra: &[(String, String)],
    at: u64,
    head: u64,
) -> OriginalStore {
    let server = redis_server(&backend);
    server.set_many(&[sync_progress(at)]);
    let out = expect_success(&run_to_head_with(&backend, extra));
    assert!(out.contains(&format!("head {at}")), "{out}");
    strip_to_original_layout(server);
    server.set_many(&[sync_progress(head)]);
    let snapshot = server.snapshot();
    OriginalStore { backend, snapshot }
}

// ---- 1. a custom chain: init --genesis FILE --adopt ----------------------------------------

/// geth-ethtest initialised and imported on a fresh redis-server, run to block
/// [`GETH_TAKEOVER_AT`] and laid out as the original service leaves it.
fn geth_original_store() -> OriginalStore {
    let chain = ChainFixture::geth_ethtest();
    let backend = Backend::redis();
    // The original service keeps no tries: neither does the store it is compared with.
    crate::common::daemon::init_and_import_with(
        &backend,
        &[unverified()],
        &chain.genesis_path(),
        &chain.chain_path(),
    );
    run_then_strip(backend, &[], GETH_TAKEOVER_AT, chain.block_count as u64)
}

/// A fresh redis-server holding `store` (TTLs aside).
fn load(store: &Snapshot) -> Backend {
    let backend = Backend::redis();
    let entries: Vec<(String, Vec<u8>)> = store.clone().into_iter().collect();
    redis_server(&backend).set_many(&entries);
    backend
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `init --genesis FILE --adopt` takes the store over at block 300 (checking it, writing only
/// `idx:chain`), `run` executes blocks 301..=600 only, and the store then equals one
/// uninterrupted run's key for key and byte for byte, but for the records of blocks 1..=300.
#[test]
fn custom_chain_is_taken_over_with_init_adopt() {
    let chain = ChainFixture::geth_ethtest();
    let head = chain.block_count as u64;
    // The original service keeps no tries: neither does the store it is compared with.
    let reference = uninterrupted_run(
        Backend::redis(),
        &chain.genesis_path(),
        &chain.chain_path(),
        &[unverified()],
    );
    let original = geth_original_store();
    let backend = original.backend;

    let genesis = chain.genesis_path();
    let out =
        expect_success(&backend.cli(&[], &["init", "--genesis", path_arg(&genesis), "--adopt"]));
    assert!(
        out.starts_with(&format!("taken over at block {GETH_TAKEOVER_AT} (")),
        "{out}"
    );
    let mut after_adopt = redis_server(&backend).snapshot();
    let record = after_adopt
        .remove(CHAIN_KEY)
        .expect("the takeover writes idx:chain");
    assert_eq!(
        Some(&record),
        reference.snapshot.get(CHAIN_KEY),
        "the chain record init writes"
    );
    assert!(
        after_adopt == original.snapshot,
        "init --adopt wrote something besides idx:chain"
    );

    let output = run_to_head_with(&backend, &[]);
    let out = expect_success(&output);
    assert!(
        out.starts_with(&format!("executed {} blocks", head - GETH_TAKEOVER_AT)),
        "only the blocks after the takeover are executed: {out}"
    );
    let stderr = plain_text(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "taking over at idx:exec:progress block={GETH_TAKEOVER_AT}"
        )),
        "{stderr}"
    );
    assert_same_snapshot(
        &without_run_times(redis_server(&backend).snapshot()),
        &without_records_up_to(reference.snapshot, GETH_TAKEOVER_AT),
        "taken over at 300 vs uninterrupted",
    );
}

// ---- 2. a built-in chain: run takes it over -----------------------------------------------

/// Blocks after BSC's built-in genesis.
const BSC_BLOCKS: u64 = 6;
/// The original service's last executed block on it.
const BSC_TAKEOVER_AT: u64 = 3;

/// `chain.name = "bsc"`.
fn bsc() -> Vec<(String, String)> {
    // The empty blocks are built by the test without a real stateRoot, and the original
    // service keeps no tries: the stores keep none.
    vec![var("EVM_EXECUTOR_CHAIN_NAME", "bsc"), unverified()]
}

/// `init` of the built-in `bsc` on `backend` and an import of [`BSC_BLOCKS`] empty blocks on
/// its genesis (3 s apart, the coinbase a test address); returns the genesis header.
fn bsc_init_and_import(backend: &Backend, dir: &tempfile::TempDir) -> Header {
    expect_success(&backend.cli(&bsc(), &["init"]));
    let bytes = redis_server(backend)
        .get("blk:hdr:0")
        .expect("init writes blk:hdr:0");
    let genesis: Header =
        alloy_rlp::Decodable::decode(&mut bytes.as_slice()).expect("genesis header");
    assert_eq!(
        genesis.hash_slow(),
        B256::from_str(BSC_GENESIS_HASH).expect("hash"),
        "BSC mainnet's genesis"
    );
    let coinbase = crate::common::bsc::Key::new(9).address;
    let mut parent = genesis.clone();
    let mut file = Vec::new();
    for _ in 1..=BSC_BLOCKS {
        let header = crate::common::bsc::child_header(
            &parent,
            parent.timestamp + 3,
            coinbase,
            crate::common::bsc::Fields::default(),
        );
        let built = crate::common::bsc::block(header, Vec::new(), &[]);
        file.extend_from_slice(&alloy_rlp::encode(alloy_consensus::Block {
            header: built.header.clone(),
            body: built.body.clone(),
        }));
        parent = built.header;
    }
    let path: PathBuf = dir.path().join("bsc.rlp");
    std::fs::write(&path, file).expect("write the chain file");
    expect_success(&backend.cli(&bsc(), &["import", path_arg(&path)]));
    genesis
}

/// On a store of the built-in `bsc` laid out as the original service leaves it (blocks 1..=3
/// executed, and no `blk:hdr:0` either), `run` alone takes the store over (logging the checks
/// and what it wrote), executes blocks 4..=6, and leaves the store of one uninterrupted run
/// but for the records of blocks 1..=3.
#[test]
fn built_in_chain_is_taken_over_by_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reference = Backend::redis();
    bsc_init_and_import(&reference, &dir);
    expect_success(&run_to_head_with(&reference, &bsc()));
    let reference = without_run_times(redis_server(&reference).snapshot());

    let backend = Backend::redis();
    bsc_init_and_import(&backend, &dir);
    let original = run_then_strip(backend, &bsc(), BSC_TAKEOVER_AT, BSC_BLOCKS);
    let server = redis_server(&original.backend);
    server.delete(&["blk:hdr:0".to_string()]);

    let output = run_to_head_with(&original.backend, &bsc());
    let out = expect_success(&output);
    assert!(
        out.starts_with(&format!("executed {} blocks", BSC_BLOCKS - BSC_TAKEOVER_AT)),
        "{out}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let took_over = stderr
        .lines()
        .find(|line| line.contains("took over a store without idx:chain"))
        .unwrap_or_else(|| panic!("no takeover line in:\n{stderr}"));
    for said in [
        &format!("at block {BSC_TAKEOVER_AT} (0x"),
        "blk:hdr:0 absent: written",
        &format!("blk:rcpt:{BSC_TAKEOVER_AT} matches blk:hdr:{BSC_TAKEOVER_AT}"),
        &format!(
            "blk:hdr:{} is a child of block {BSC_TAKEOVER_AT}",
            BSC_TAKEOVER_AT + 1
        ),
        "wrote idx:chain",
        &format!("continues from block {}", BSC_TAKEOVER_AT + 1),
    ] {
        assert!(took_over.contains(said), "{said:?} not in {took_over}");
    }
    assert_same_snapshot(
        &without_run_times(server.snapshot()),
        &without_records_up_to(reference, BSC_TAKEOVER_AT),
        "bsc taken over at 3 vs uninterrupted",
    );
}

// ---- 3. inconsistent stores are refused --------------------------------------------------

/// `args` (with `extra`) on a fresh copy of `store` must fail, say every one of `says`, and
/// leave the store as it was.
fn refused(store: &Snapshot, extra: &[(String, String)], args: &[&str], says: &[&str]) {
    let backend = load(store);
    let stderr = expect_exit_code(&backend.cli(extra, args), COMMAND_FAILED);
    for said in says {
        assert!(stderr.contains(said), "{said:?} not in:\n{stderr}");
    }
    assert!(
        without_lease(redis_server(&backend).snapshot()) == *store,
        "a refused takeover changed the store ({args:?})"
    );
}

/// The store without the leader lease a refused `run` may have held.
fn without_lease(mut snapshot: Snapshot) -> Snapshot {
    snapshot.retain(|key, _| !key.starts_with("lock:"));
    snapshot
}

/// Every check of the takeover refuses a store that fails it, naming the keys and values that
/// differ, and writes nothing; so do `run` for a custom chain without its genesis, a plain
/// `init` that would overwrite executed state, and `--adopt` with nothing to take over.
#[test]
fn inconsistent_stores_are_refused() {
    let chain = ChainFixture::geth_ethtest();
    let original = geth_original_store().snapshot;
    let at = GETH_TAKEOVER_AT;
    let genesis = chain.genesis_path();
    let adopt = ["init", "--genesis", path_arg(&genesis), "--adopt"];
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    let geth_genesis = format!("{:#x}", blocks[0].parent_hash());

    // The configured built-in chain is not the store's: bsc's genesis against geth-ethtest's.
    refused(
        &original,
        &bsc(),
        &["run", "--exit-at-head"],
        &[
            "blk:hdr:0",
            &geth_genesis,
            BSC_GENESIS_HASH,
            "another chain",
        ],
    );
    // Another custom genesis.
    let hive = ChainFixture::hive_sync().genesis_path();
    refused(
        &original,
        &[],
        &["init", "--genesis", path_arg(&hive), "--adopt"],
        &["blk:hdr:0", &geth_genesis],
    );
    // The executed block's header is missing.
    let mut damaged = original.clone();
    damaged.remove(&format!("blk:hdr:{at}"));
    refused(
        &damaged,
        &[],
        &adopt,
        &[
            &format!("blk:hdr:{at} is missing"),
            &format!("block {at} is executed"),
        ],
    );
    // Its receipts are not the header's: an empty list where the block has transactions.
    let executed = &blocks[at as usize - 1];
    assert_eq!(executed.number(), at);
    assert!(
        !executed.transactions().is_empty(),
        "block {at} has transactions"
    );
    let mut damaged = original.clone();
    damaged.insert(format!("blk:rcpt:{at}"), vec![0xc0]);
    let header_root = format!(
        "{:#x}",
        executed.header_hash(crate::common::chain::HEADER_RECEIPTS_ROOT_INDEX)
    );
    refused(
        &damaged,
        &[],
        &adopt,
        &[
            &format!("blk:rcpt:{at}"),
            &format!("blk:hdr:{at}"),
            &header_root,
        ],
    );
    // The next synced block is not a child of the executed one.
    let mut damaged = original.clone();
    let grandchild = damaged[&format!("blk:hdr:{}", at + 2)].clone();
    damaged.insert(format!("blk:hdr:{}", at + 1), grandchild);
    refused(
        &damaged,
        &[],
        &adopt,
        &[
            &format!("blk:hdr:{}", at + 1),
            &format!("{:#x}", blocks[at as usize + 1].parent_hash()),
            &format!("{:#x}", blocks[at as usize - 1].hash()),
        ],
    );
    // `run` cannot take a custom chain over without its genesis.
    refused(
        &original,
        &[],
        &["run", "--exit-at-head"],
        &["init --genesis FILE --adopt", &format!("blocks up to {at}")],
    );
    // A plain `init` would overwrite the executed state.
    refused(
        &original,
        &[],
        &["init", "--genesis", path_arg(&genesis)],
        &["--adopt", &format!("blocks up to {at}")],
    );
    // Nothing executed, nothing to take over.
    let mut fresh = original.clone();
    fresh.retain(|key, _| key != "idx:exec:progress");
    refused(&fresh, &[], &adopt, &["no idx:exec:progress"]);
}
