//! `run --exit-at-head` over the fixture chains through the built binary, against a real
//! redis-server and the embedded store: the state it leaves equals geth's state dump, every
//! receipts list hashes to its header's receiptsRoot, history leads to the latest state, a
//! second run changes nothing, a run resumes where the last one stopped, a key prefix is
//! honoured, and a block whose header (gasUsed, receiptsRoot, logsBloom, blobGasUsed,
//! requestsHash) or transaction is wrong stops the run with nothing of it written. Expected
//! values come from the fixture files, framed, hashed and trie-rooted by the tests themselves.

use crate::common::chain::{
    block_keys, consensus_bytes, ending_with_block, ordered_root, raw_blocks, write_file,
    ChainFixture, GenesisFile, HeadState, RawBlock, HEADER_BLOB_GAS_USED_INDEX,
    HEADER_GAS_USED_INDEX, HEADER_LOGS_BLOOM_INDEX, HEADER_RECEIPTS_ROOT_INDEX,
    HEADER_REQUESTS_HASH_INDEX, HEADER_TRANSACTIONS_ROOT_INDEX,
};
use crate::common::daemon::{Daemon, RUN_TIMEOUT};
use crate::common::exec::{
    assert_history_leads_to_latest, assert_only_history_expires, assert_receipts_match_headers,
    assert_state_is_head_state, exec_progress, last_execution_time, tx_count, unix_now,
    without_run_times, ExecProgress,
};
use crate::common::rlp::{encode_string, encode_u64, first_item, frame_list, RlpItem};
use crate::common::{
    assert_same_snapshot, expect_exit_code, expect_success, import, init, mentions_number, names,
    names_block, run_to_head, strip_key_prefix, var, Backend, COMMAND_FAILED,
};
use alloy_primitives::{keccak256, B256, U256};
use serde_json::json;
use std::path::Path;
use std::process::Output;

/// Blob gas of one blob (EIP-4844 `GAS_PER_BLOB`).
const GAS_PER_BLOB: u64 = 1 << 17;
/// Accounts in geth-ethtest's `headstate.json`, from `fixtures/README.md`.
const GETH_ETHTEST_HEAD_ACCOUNTS: usize = 194;

/// `init` with `genesis`, `import` of `chain_file` (both must succeed), then
/// `run --exit-at-head`.
fn import_and_run(backend: &Backend, genesis: &Path, chain_file: &Path) -> Output {
    init(backend, &[], genesis);
    expect_success(&import(backend, chain_file));
    run_to_head(backend)
}

/// [`import_and_run`] of a whole fixture chain; the run must succeed.
fn execute_whole_chain(backend: &Backend, chain: &ChainFixture) {
    expect_success(&import_and_run(
        backend,
        &chain.genesis_path(),
        &chain.chain_path(),
    ));
}

/// The progress after executing all of `chain`, with the README's block and transaction
/// counts (checked against the chain file too).
fn whole_chain_progress(chain: &ChainFixture, blocks: &[RawBlock<'_>]) -> ExecProgress {
    assert_eq!(blocks.len(), chain.block_count, "blocks in the chain file");
    assert_eq!(
        tx_count(blocks),
        chain.tx_count as u64,
        "transactions in the chain file"
    );
    ExecProgress {
        latest_executed_block: chain.block_count as u64,
        total_txs_executed: chain.tx_count as u64,
    }
}

// ---------------------------------------------------------------------------------------------
// whole chains

/// geth-ethtest executed to its head: progress 600 blocks / 603 transactions, `st:latest`
/// exactly `headstate.json`, every block's receipts rooted in its header, history whose newest
/// entries are the latest values (and, on Redis, expiring while latest keys do not).
fn geth_ethtest_to_head_state(backend: Backend) {
    let chain = ChainFixture::geth_ethtest();
    let started = unix_now();
    execute_whole_chain(&backend, &chain);
    let finished = unix_now();
    let store = backend.snapshot();
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    assert_eq!(exec_progress(&store), whole_chain_progress(&chain, &blocks));
    let time = last_execution_time(&store);
    assert!(
        (started..=finished).contains(&time),
        "lastExecutionTime {time} is not unix seconds during the run ({started}..={finished})"
    );
    let head = HeadState::read(&chain.dir.join("headstate.json"));
    assert_eq!(head.accounts.len(), GETH_ETHTEST_HEAD_ACCOUNTS);
    assert_state_is_head_state(&store, &head);
    assert_receipts_match_headers(&store, &blocks);
    let genesis = GenesisFile::read(&chain.genesis_path());
    assert_history_leads_to_latest(&store, &genesis, &head, chain.block_count as u64);
    if let Backend::Redis(server) = &backend {
        assert_only_history_expires(server, &store);
    }
}

/// A second `run --exit-at-head` at the head exits 0 and leaves every key byte-identical but
/// for the progress's `lastExecutionTime`.
fn second_run_is_a_no_op(backend: Backend) {
    let chain = ChainFixture::geth_ethtest();
    execute_whole_chain(&backend, &chain);
    let before = backend.snapshot();
    expect_success(&run_to_head(&backend));
    let after = backend.snapshot();
    let file = chain.chain_bytes();
    assert_eq!(
        exec_progress(&after),
        whole_chain_progress(&chain, &raw_blocks(&file))
    );
    assert_same_snapshot(
        &without_run_times(after),
        &without_run_times(before),
        "the store after a second run",
    );
}

/// Following the syncer: blocks 1..=300 imported and executed, then blocks 301..=600
/// imported and executed by a second run (which resumes at `latestExecutedBlock + 1`), leave
/// exactly the store that one run over the whole chain leaves.
fn run_in_two_parts(backend: Backend) {
    let split = 300;
    let chain = ChainFixture::geth_ethtest();
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    let cut = blocks[split].offset;
    let dir = tempfile::tempdir().expect("temp dir");
    let first = write_file(&dir, "first.rlp", &file[..cut]);
    let rest = write_file(&dir, "rest.rlp", &file[cut..]);
    expect_success(&import_and_run(&backend, &chain.genesis_path(), &first));
    assert_eq!(
        exec_progress(&backend.snapshot()),
        ExecProgress {
            latest_executed_block: split as u64,
            total_txs_executed: tx_count(&blocks[..split]),
        }
    );
    expect_success(&import(&backend, &rest));
    expect_success(&run_to_head(&backend));
    let reference = backend.fresh_like();
    execute_whole_chain(&reference, &chain);
    assert_same_snapshot(
        &without_run_times(backend.snapshot()),
        &without_run_times(reference.snapshot()),
        "the store after two runs vs after one",
    );
}

on_both_backends! {
    run_geth_ethtest_reaches_head_state => geth_ethtest_to_head_state;
    second_run_at_head_changes_nothing => second_run_is_a_no_op;
    run_resumes_where_the_last_run_stopped => run_in_two_parts;
}

/// hive-sync's 3,000 blocks (Cancun from genesis) on Redis: progress 3000 / 546 and every
/// block's receipts rooted in its header. One backend only: the run is the slowest here.
#[test]
fn run_hive_sync_reaches_block_3000() {
    let chain = ChainFixture::hive_sync();
    let backend = Backend::redis();
    execute_whole_chain(&backend, &chain);
    let store = backend.snapshot();
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    assert_eq!(exec_progress(&store), whole_chain_progress(&chain, &blocks));
    assert_receipts_match_headers(&store, &blocks);
}

/// With `storage.key_prefix` set, `run` reads and writes only under the prefix: a Redis store
/// run with a prefix holds exactly, behind the prefix, what an embedded store run without one
/// holds (so the two backends also agree byte for byte).
#[test]
fn run_under_key_prefix_matches_an_unprefixed_run() {
    let prefix = "chain-a:";
    let chain = ChainFixture::geth_ethtest();
    let plain = Backend::embedded();
    execute_whole_chain(&plain, &chain);
    let prefixed = Backend::redis();
    let env = [var("EVM_EXECUTOR_STORAGE_KEY_PREFIX", prefix)];
    init(&prefixed, &env, &chain.genesis_path());
    let file = chain.chain_path();
    expect_success(&prefixed.cli(&env, &["import", file.to_str().expect("utf-8 path")]));
    expect_success(&prefixed.cli(&env, &["run", "--exit-at-head"]));
    assert_same_snapshot(
        &without_run_times(strip_key_prefix(prefixed.snapshot(), prefix)),
        &without_run_times(plain.snapshot()),
        "a prefixed Redis run vs an unprefixed embedded run",
    );
}

// ---------------------------------------------------------------------------------------------
// bad blocks

/// geth-ethtest cut after block `k - 1` with `bad_block` appended as block `k`: `import`
/// accepts it, `run --exit-at-head` fails with stderr naming block `k` (further checks by
/// `check_stderr`), and the store is exactly what executing blocks 1..k-1 alone leaves (a
/// reference run over the chain cut after k-1, on a fresh store of the same kind), plus the
/// imported block `k` and the sync progress at `k`.
fn assert_run_rejects_block(
    backend: Backend,
    k: u64,
    bad_block: &[u8],
    check_stderr: impl Fn(&str),
) {
    let chain = ChainFixture::geth_ethtest();
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    let block = &blocks[k as usize - 1];
    assert_eq!(block.number(), k);
    let dir = tempfile::tempdir().expect("temp dir");
    let good_path = write_file(&dir, "good-prefix.rlp", &file[..block.offset]);
    let bad_file = ending_with_block(&file, block, bad_block);
    let bad_path = write_file(&dir, "bad-chain.rlp", &bad_file);

    let reference = backend.fresh_like();
    expect_success(&import_and_run(
        &reference,
        &chain.genesis_path(),
        &good_path,
    ));
    let expected = reference.snapshot();

    let stderr = expect_exit_code(
        &import_and_run(&backend, &chain.genesis_path(), &bad_path),
        COMMAND_FAILED,
    );
    assert!(names_block(&stderr, k), "block {k} in:\n{stderr}");
    check_stderr(&stderr);

    let mut actual = backend.snapshot();
    assert_eq!(
        exec_progress(&actual),
        ExecProgress {
            latest_executed_block: k - 1,
            total_txs_executed: tx_count(&blocks[..k as usize - 1]),
        }
    );
    let synced: serde_json::Value =
        serde_json::from_slice(&actual["idx:sync:progress"]).expect("idx:sync:progress JSON");
    assert_eq!(synced, json!({ "latestSyncedBlock": k }));
    let bad_blocks = raw_blocks(&bad_file);
    for key in block_keys(&bad_blocks[k as usize - 1..]) {
        assert!(actual.remove(&key).is_some(), "{key} was imported");
    }
    actual.remove("idx:sync:progress");
    let mut expected = expected;
    expected.remove("idx:sync:progress");
    assert_same_snapshot(
        &without_run_times(actual),
        &without_run_times(expected),
        &format!(
            "the store after block {k} was rejected vs after blocks 1..{}",
            k - 1
        ),
    );
}

/// `block` with header field `index` replaced by `field` (its RLP encoding).
fn with_header_field(block: &RawBlock<'_>, index: usize, field: Vec<u8>) -> Vec<u8> {
    let mut fields = block.header_fields();
    fields[index] = field;
    let txs: Vec<Vec<u8>> = block
        .transactions()
        .iter()
        .map(|tx| tx.encoded.to_vec())
        .collect();
    block.rebuilt(&fields, &txs)
}

/// Block `k` with the last bit of its header's byte-string field `index` (a root, hash or
/// bloom) flipped: the run stops naming `name`, the header's damaged value and the executed
/// (genuine) one.
fn assert_rejects_flipped_field(backend: Backend, k: u64, index: usize, name: &str) {
    let file = ChainFixture::geth_ethtest().chain_bytes();
    let blocks = raw_blocks(&file);
    let block = &blocks[k as usize - 1];
    let real = block.header_field(index).payload.to_vec();
    assert!(real.len() >= 32, "{name} of block {k} is a hash or bloom");
    let mut damaged = real.clone();
    *damaged.last_mut().expect("non-empty") ^= 0x01;
    let bad = with_header_field(block, index, encode_string(&damaged));
    assert_run_rejects_block(backend, k, &bad, |stderr| {
        assert!(stderr.contains(name), "{name} in:\n{stderr}");
        for bytes in [&damaged, &real] {
            let hex = format!("0x{}", alloy_primitives::hex::encode(bytes));
            assert!(stderr.contains(&hex), "{hex} in:\n{stderr}");
        }
    });
}

/// Block `k` with its header's integer field `index` raised by `delta`: the run stops naming
/// `name`, the header's claimed value and the executed (genuine) one.
fn assert_rejects_raised_field(backend: Backend, k: u64, index: usize, name: &str, delta: u64) {
    let file = ChainFixture::geth_ethtest().chain_bytes();
    let blocks = raw_blocks(&file);
    let block = &blocks[k as usize - 1];
    let real = block.header_u64(index);
    let claimed = real + delta;
    let bad = with_header_field(block, index, encode_u64(claimed));
    assert_run_rejects_block(backend, k, &bad, |stderr| {
        assert!(stderr.contains(name), "{name} in:\n{stderr}");
        for number in [claimed, real] {
            assert!(mentions_number(stderr, number), "{number} in:\n{stderr}");
        }
    });
}

/// Block 11 (56 transactions) with a wrong receiptsRoot.
fn wrong_receipts_root(backend: Backend) {
    assert_rejects_flipped_field(backend, 11, HEADER_RECEIPTS_ROOT_INDEX, "receiptsRoot");
}

/// Block 11 with a wrong logsBloom.
fn wrong_logs_bloom(backend: Backend) {
    assert_rejects_flipped_field(backend, 11, HEADER_LOGS_BLOOM_INDEX, "logsBloom");
}

/// Block 13 (Prague; its requests are not empty) with a wrong requestsHash.
fn wrong_requests_hash(backend: Backend) {
    assert_rejects_flipped_field(backend, 13, HEADER_REQUESTS_HASH_INDEX, "requestsHash");
}

/// Block 12 (Prague, three transactions) claiming one more gas than it uses.
fn wrong_gas_used(backend: Backend) {
    assert_rejects_raised_field(backend, 12, HEADER_GAS_USED_INDEX, "gasUsed", 1);
}

/// Block 9 (Cancun, a blob transaction) claiming one blob's gas (2^17) more than it uses.
fn wrong_blob_gas_used(backend: Backend) {
    assert_rejects_raised_field(
        backend,
        9,
        HEADER_BLOB_GAS_USED_INDEX,
        "blobGasUsed",
        GAS_PER_BLOB,
    );
}

/// `tx` (block-body encoding) with its signature's `s` replaced by `change(s)`, in block-body
/// encoding.
fn with_signature_s(tx: &RlpItem<'_>, change: impl Fn(U256) -> U256) -> Vec<u8> {
    let (type_byte, list) = if tx.is_list {
        (None, *tx)
    } else {
        (Some(tx.payload[0]), first_item(&tx.payload[1..]))
    };
    let items = list.elements();
    let s = U256::from_be_slice(items.last().expect("signature s").payload);
    assert!(s > U256::from(1), "s is large");
    let mut fields: Vec<Vec<u8>> = items.iter().map(|item| item.encoded.to_vec()).collect();
    *fields.last_mut().expect("signature s") = encode_string(&change(s).to_be_bytes_trimmed_vec());
    let list = frame_list(&fields.concat());
    match type_byte {
        None => list,
        Some(kind) => encode_string(&[&[kind][..], &list].concat()),
    }
}

/// The block re-signed in these tests, and the transaction in it.
const RE_SIGNED: (u64, usize) = (12, 2);

/// Block 12's third transaction (legacy, after an EIP-7702 one) re-signed with `s` replaced by
/// `change(s)`, the header's transactionsRoot recomputed over the new list so `import` accepts
/// it; with the transaction's new hash.
fn re_signed_block(block: &RawBlock<'_>, change: impl Fn(U256) -> U256) -> (Vec<u8>, B256) {
    let (k, index) = RE_SIGNED;
    let txs = block.transactions();
    assert!(
        txs.len() > index,
        "block {k} has {} transactions",
        txs.len()
    );
    let original: Vec<&[u8]> = txs.iter().map(consensus_bytes).collect();
    assert_eq!(
        ordered_root(&original),
        block.header_hash(HEADER_TRANSACTIONS_ROOT_INDEX),
        "the test's transactions root of the genuine block {k}"
    );
    let mut new_txs: Vec<Vec<u8>> = txs.iter().map(|tx| tx.encoded.to_vec()).collect();
    new_txs[index] = with_signature_s(&txs[index], change);
    let framed: Vec<RlpItem<'_>> = new_txs.iter().map(|tx| first_item(tx)).collect();
    let tampered_hash = keccak256(consensus_bytes(&framed[index]));
    let items: Vec<&[u8]> = framed.iter().map(consensus_bytes).collect();
    let mut fields = block.header_fields();
    fields[HEADER_TRANSACTIONS_ROOT_INDEX] = encode_string(&ordered_root(&items).0);
    (block.rebuilt(&fields, &new_txs), tampered_hash)
}

/// [`re_signed_block`] at the end of the chain: the run stops naming the block, the
/// transaction's index and its new hash, and the two transactions before it in the block leave
/// nothing behind.
fn re_signed_transaction(backend: Backend, change: impl Fn(U256) -> U256) {
    let (k, index) = RE_SIGNED;
    let file = ChainFixture::geth_ethtest().chain_bytes();
    let blocks = raw_blocks(&file);
    let (bad, tampered_hash) = re_signed_block(&blocks[k as usize - 1], change);
    assert_run_rejects_block(backend, k, &bad, |stderr| {
        assert!(
            names(stderr, "transaction", index as u64),
            "transaction {index} in:\n{stderr}"
        );
        let hash = format!("{tampered_hash:#x}");
        assert!(stderr.contains(&hash), "{hash} in:\n{stderr}");
    });
}

/// `s` lowered by one: still a valid low-s signature, but over the same hash it recovers to
/// another (unfunded, fresh) sender, so execution refuses the transaction.
fn tampered_transaction(backend: Backend) {
    re_signed_transaction(backend, |s| s - U256::from(1));
}

/// `s` zero: no sender can be recovered, so the senders stage refuses the block.
fn unrecoverable_signature(backend: Backend) {
    re_signed_transaction(backend, |_| U256::ZERO);
}

/// An unrecoverable signature with many synced blocks after it (their parent hashes rewritten
/// so the chain links) and queues of one block: the senders stage fails while the headers stage
/// has more to send, and the run must still end, with the error, the blocks before it executed
/// and nothing of the bad block written.
fn unrecoverable_signature_far_below_the_head(backend: Backend) {
    const BLOCKS_AFTER: usize = 40;
    const HEADER_PARENT_HASH_INDEX: usize = 0;
    let (k, _) = RE_SIGNED;
    let chain = ChainFixture::geth_ethtest();
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    let (bad, _) = re_signed_block(&blocks[k as usize - 1], |_| U256::ZERO);
    let mut chain_file = [&file[..blocks[k as usize - 1].offset], &bad[..]].concat();
    let mut parent = raw_blocks(&bad)[0].hash();
    for block in &blocks[k as usize..k as usize + BLOCKS_AFTER] {
        let mut fields = block.header_fields();
        fields[HEADER_PARENT_HASH_INDEX] = encode_string(&parent.0);
        let txs: Vec<Vec<u8>> = block
            .transactions()
            .iter()
            .map(|tx| tx.encoded.to_vec())
            .collect();
        let relinked = block.rebuilt(&fields, &txs);
        parent = raw_blocks(&relinked)[0].hash();
        chain_file.extend_from_slice(&relinked);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_file(&dir, "chain.rlp", &chain_file);
    init(&backend, &[], &chain.genesis_path());
    expect_success(&import(&backend, &path));
    let one_block_queues = [
        ("EVM_EXECUTOR_WORKERS_QUEUE_CAPACITY", "1"),
        ("EVM_EXECUTOR_EXECUTOR_BATCH_SIZE", "1"),
    ]
    .map(|(key, value)| (key.to_string(), value.to_string()));
    let output = Daemon::start(&backend, &one_block_queues, &["run", "--exit-at-head"])
        .finish_within(RUN_TIMEOUT);
    let stderr = expect_exit_code(&output, COMMAND_FAILED);
    assert!(names_block(&stderr, k), "block {k} in:\n{stderr}");
    assert_eq!(
        exec_progress(&backend.snapshot()),
        ExecProgress {
            latest_executed_block: k - 1,
            total_txs_executed: tx_count(&blocks[..k as usize - 1]),
        }
    );
}

on_both_backends! {
    run_stops_at_wrong_receipts_root => wrong_receipts_root;
    run_stops_at_wrong_logs_bloom => wrong_logs_bloom;
    run_stops_at_wrong_requests_hash => wrong_requests_hash;
    run_stops_at_wrong_gas_used => wrong_gas_used;
    run_stops_at_wrong_blob_gas_used => wrong_blob_gas_used;
    run_stops_at_tampered_transaction => tampered_transaction;
    run_stops_at_unrecoverable_signature => unrecoverable_signature;
    run_ends_at_unrecoverable_signature_far_below_the_head =>
        unrecoverable_signature_far_below_the_head;
}
