//! `init`, `import` and `status` through the built binary against a real redis-server and the
//! embedded store: the genesis hashes `init` prints, exactly which keys and values `init` and
//! `import` leave in the store, how a bad chain file stops the import, and how an unreachable
//! store is reported. Every expected value comes from the fixture files, framed and hashed by
//! the tests themselves.

use crate::common::chain::{
    block_keys, offset_in, raw_blocks, tx_hash, with_block_replaced, ChainFixture, GenesisFile,
    RawBlock,
};
use crate::common::redis_server::free_port;
use crate::common::rlp::{encode_string, first_item, frame_list};
use crate::common::trie::{assert_tries_hold, non_trie_keys};
use crate::common::{
    assert_same_keys, expect_exit_code, expect_success, fixtures_dir, import, init,
    mentions_number, names_block, raw_json_fields, run_cli, strip_key_prefix, value, var, Backend,
    COMMAND_FAILED,
};
use alloy_primitives::{keccak256, B256};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

/// BSC mainnet's genesis block hash, as `fixtures/bsc/README.md` gives it.
const BSC_MAINNET_GENESIS_HASH: &str =
    "0x0d21840abff46b96c84b2ac9e10e4f5cdaeb5693cb665db62a2f3b02d2d57b5b";
/// BSC Chapel's genesis block hash, as `fixtures/bsc/README.md` gives it.
const BSC_CHAPEL_GENESIS_HASH: &str =
    "0x6d3c66c5357ec91d5c43af47e234a939b22557cbb552dc45bebbceeed90fbe34";

/// The hash after `genesis block hash: ` in `init`'s output.
fn printed_genesis_hash(stdout: &str) -> B256 {
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("genesis block hash: "))
        .unwrap_or_else(|| panic!("no `genesis block hash:` line in:\n{stdout}"));
    B256::from_str(line.trim()).expect("printed genesis hash")
}

/// The values `init` writes for `genesis`, whose block hash is `genesis_hash`.
fn assert_init_values(
    store: &BTreeMap<String, Vec<u8>>,
    genesis: &GenesisFile,
    genesis_hash: B256,
) {
    for account in &genesis.accounts {
        let key = account.account_key();
        let fields = raw_json_fields(store, &key);
        assert_eq!(
            fields["balance"],
            account.balance.to_string(),
            "{key} balance"
        );
        assert_eq!(fields["nonce"], account.nonce.to_string(), "{key} nonce");
        assert_eq!(
            fields["codeHash"],
            format!("\"{}\"", account.code_hash()),
            "{key} codeHash"
        );
        assert_eq!(
            fields["storageRoot"],
            format!("\"{:#x}\"", account.storage_root()),
            "{key} storageRoot"
        );
        if !account.code.is_empty() {
            let code_key = format!("st:code:{}", account.code_hash());
            assert_eq!(value(store, &code_key), account.code, "{code_key}");
        }
        for (slot, word) in &account.storage {
            let slot_key = account.storage_key(slot);
            assert_eq!(
                value(store, &slot_key),
                format!("{word:#x}").as_bytes(),
                "{slot_key}"
            );
        }
    }
    assert_eq!(
        keccak256(value(store, "blk:hdr:0")),
        genesis_hash,
        "blk:hdr:0 hashes to the genesis hash"
    );
    assert_tries_hold(
        store,
        genesis.state_root(),
        genesis.accounts.iter().map(|a| a.address),
    );
    let chain: serde_json::Value =
        serde_json::from_slice(value(store, "idx:chain")).expect("idx:chain JSON");
    assert_eq!(
        chain["chainId"],
        json!(genesis.chain_id),
        "idx:chain chainId"
    );
    assert_eq!(
        chain["genesisHash"],
        json!(format!("{genesis_hash:#x}")),
        "idx:chain genesisHash"
    );
    let progress: serde_json::Value =
        serde_json::from_slice(value(store, "idx:exec:progress")).expect("idx:exec:progress");
    assert_eq!(progress["latestExecutedBlock"], json!(0));
    assert_eq!(progress["totalTxsExecuted"], json!(0));
}

/// The store holds exactly what `init` of `genesis` plus `import` of `blocks` (the chain from
/// block 1, possibly cut short) must leave: the init keys and values, every block's header,
/// transactions and body as framed in the file, a `blk:txhash` per transaction, and the sync
/// progress at the last block.
fn assert_store_holds_chain(backend: &Backend, genesis: &GenesisFile, blocks: &[RawBlock<'_>]) {
    assert_snapshot_holds_chain(&backend.snapshot(), genesis, blocks);
}

/// [`assert_store_holds_chain`] on a snapshot of the store (keys without any prefix).
fn assert_snapshot_holds_chain(
    store: &BTreeMap<String, Vec<u8>>,
    genesis: &GenesisFile,
    blocks: &[RawBlock<'_>],
) {
    let mut expected = genesis.init_keys();
    expected.extend(block_keys(blocks));
    expected.insert("idx:sync:progress".to_string());
    assert_same_keys(&non_trie_keys(store), &expected);
    assert_init_values(store, genesis, blocks[0].parent_hash());
    for block in blocks {
        let n = block.number();
        assert_eq!(value(store, &format!("blk:hdr:{n}")), block.header.encoded);
        assert_eq!(
            value(store, &format!("blk:txs:{n}")),
            block.transactions_list().encoded
        );
        assert_eq!(value(store, &format!("blk:body:{n}")), block.body());
        for tx in block.transactions() {
            let key = format!("blk:txhash:{:#x}", tx_hash(&tx));
            assert_eq!(value(store, &key), n.to_string().as_bytes(), "{key}");
        }
    }
    let last = blocks.last().expect("at least one block").number();
    let progress: serde_json::Value =
        serde_json::from_slice(value(store, "idx:sync:progress")).expect("progress JSON");
    assert_eq!(progress, json!({ "latestSyncedBlock": last }));
}

// ---------------------------------------------------------------------------------------------
// init

/// `init` of a test chain's genesis prints the hash block 1 names as its parent and writes
/// exactly the genesis state.
fn assert_init_matches_chain(backend: Backend, chain: &ChainFixture) {
    let file = chain.chain_bytes();
    let block_one_parent = raw_blocks(&file)[0].parent_hash();
    let stdout = init(&backend, &[], &chain.genesis_path());
    assert!(stdout.starts_with("initialised:"), "{stdout}");
    assert_eq!(printed_genesis_hash(&stdout), block_one_parent);
    let genesis = GenesisFile::read(&chain.genesis_path());
    let store = backend.snapshot();
    assert_same_keys(&non_trie_keys(&store), &genesis.init_keys());
    assert_init_values(&store, &genesis, block_one_parent);
}

/// [`assert_init_matches_chain`] for geth-ethtest.
fn init_geth_ethtest_genesis(backend: Backend) {
    assert_init_matches_chain(backend, &ChainFixture::geth_ethtest());
}

/// [`assert_init_matches_chain`] for hive-sync.
fn init_hive_sync_genesis(backend: Backend) {
    assert_init_matches_chain(backend, &ChainFixture::hive_sync());
}

/// `init` of a BSC genesis under its chain name prints the README's known hash.
fn assert_init_bsc(backend: Backend, chain_name: &str, file: &str, known_hash: &str) {
    let readme = std::fs::read_to_string(fixtures_dir().join("bsc/README.md")).expect("README");
    assert!(
        readme.contains(known_hash),
        "{known_hash} is not in bsc/README.md"
    );
    let known_hash = B256::from_str(known_hash).expect("known hash");
    let path = fixtures_dir().join("bsc").join(file);
    let stdout = init(
        &backend,
        &[var("EVM_EXECUTOR_CHAIN_NAME", chain_name)],
        &path,
    );
    assert_eq!(printed_genesis_hash(&stdout), known_hash);
    let genesis = GenesisFile::read(&path);
    let store = backend.snapshot();
    assert_same_keys(&non_trie_keys(&store), &genesis.init_keys());
    assert_init_values(&store, &genesis, known_hash);
}

/// [`assert_init_bsc`] for BSC mainnet (`chain.name = bsc`).
fn init_bsc_mainnet_genesis(backend: Backend) {
    assert_init_bsc(
        backend,
        "bsc",
        "genesis-mainnet.json",
        BSC_MAINNET_GENESIS_HASH,
    );
}

/// [`assert_init_bsc`] for Chapel (`chain.name = chapel`).
fn init_bsc_chapel_genesis(backend: Backend) {
    assert_init_bsc(
        backend,
        "chapel",
        "genesis-chapel.json",
        BSC_CHAPEL_GENESIS_HASH,
    );
}

/// A second `init` with the same genesis succeeds, says so, and changes nothing.
fn init_twice_with_same_genesis(backend: Backend) {
    let chain = ChainFixture::geth_ethtest();
    let first = init(&backend, &[], &chain.genesis_path());
    let before = backend.snapshot();
    let second = init(&backend, &[], &chain.genesis_path());
    assert!(second.starts_with("already initialised:"), "{second}");
    assert_eq!(printed_genesis_hash(&second), printed_genesis_hash(&first));
    assert!(
        backend.snapshot() == before,
        "a repeated init changed the store"
    );
}

/// `init` with another genesis into an initialised store fails naming both hashes and writes
/// nothing.
fn init_with_other_genesis(backend: Backend) {
    let ours = ChainFixture::geth_ethtest();
    let other = ChainFixture::hive_sync();
    let ours_hash = raw_blocks(&ours.chain_bytes())[0].parent_hash();
    let other_hash = raw_blocks(&other.chain_bytes())[0].parent_hash();
    init(&backend, &[], &ours.genesis_path());
    let before = backend.snapshot();
    let genesis = other.genesis_path();
    let output = backend.cli(&[], &["init", "--genesis", genesis.to_str().expect("path")]);
    let stderr = expect_exit_code(&output, COMMAND_FAILED);
    for hash in [ours_hash, other_hash] {
        assert!(
            stderr.contains(&format!("{hash:#x}")),
            "{hash:#x} in:\n{stderr}"
        );
    }
    assert!(
        backend.snapshot() == before,
        "a refused init changed the store"
    );
}

/// `chain.name = bsc` with a genesis whose chain id is not 56 is refused before anything is
/// written.
fn init_bsc_name_with_foreign_genesis(backend: Backend) {
    let chain = ChainFixture::geth_ethtest();
    let chain_id = GenesisFile::read(&chain.genesis_path()).chain_id;
    let genesis = chain.genesis_path();
    let output = backend.cli(
        &[var("EVM_EXECUTOR_CHAIN_NAME", "bsc")],
        &["init", "--genesis", genesis.to_str().expect("path")],
    );
    let stderr = expect_exit_code(&output, COMMAND_FAILED);
    assert!(mentions_number(&stderr, 56), "chain id 56 in:\n{stderr}");
    assert!(
        mentions_number(&stderr, chain_id),
        "chain id {chain_id} in:\n{stderr}"
    );
    assert_eq!(
        backend.all_keys(),
        BTreeSet::new(),
        "a refused init wrote keys"
    );
}

/// Position of `difficulty` in a header's RLP list.
const HEADER_DIFFICULTY_INDEX: usize = 7;

/// A genesis stating `"difficulty": "0x0"` keeps difficulty 0: go-ethereum's `Genesis.ToBlock`
/// substitutes its default (131072) only when difficulty is absent. The expected hash is
/// geth-ethtest's genesis header, proven genuine by block 1's parentHash, with its difficulty
/// field set to zero by the test's own RLP writer.
fn init_explicit_zero_difficulty_genesis(backend: Backend) {
    let chain = ChainFixture::geth_ethtest();
    let genesis_hash = raw_blocks(&chain.chain_bytes())[0].parent_hash();
    let reference = Backend::embedded();
    init(&reference, &[], &chain.genesis_path());
    let header_bytes = reference.get("blk:hdr:0").expect("blk:hdr:0 after init");
    assert_eq!(
        keccak256(&header_bytes),
        genesis_hash,
        "genuine genesis header"
    );
    let mut fields: Vec<Vec<u8>> = first_item(&header_bytes)
        .elements()
        .iter()
        .map(|field| field.encoded.to_vec())
        .collect();
    fields[HEADER_DIFFICULTY_INDEX] = encode_string(&[]);
    let expected = keccak256(frame_list(&fields.concat()));

    let mut genesis: serde_json::Value =
        serde_json::from_slice(&std::fs::read(chain.genesis_path()).expect("read genesis"))
            .expect("genesis JSON");
    assert_eq!(genesis["mixHash"], json!(format!("{:#x}", B256::ZERO)));
    genesis["difficulty"] = json!("0x0");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("genesis-zero-difficulty.json");
    std::fs::write(&path, genesis.to_string()).expect("write genesis");
    let stdout = init(&backend, &[], &path);
    assert_eq!(printed_genesis_hash(&stdout), expected, "{stdout}");
}

/// The store without the times `init` stamps (`idx:exec:progress`, `idx:stage:merkle`).
fn without_times(mut store: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    for key in ["idx:exec:progress", "idx:stage:merkle"] {
        let value = store.remove(key);
        assert!(value.is_some(), "{key} is written");
    }
    store
}

/// A genesis that lists `alloc` before `config` (as a writer that sorts keys does) leaves the
/// store the file in go-ethereum's order leaves: `init` checks the config read after the
/// allocation before it writes anything.
fn init_config_after_alloc_genesis(backend: Backend) {
    let chain = ChainFixture::geth_ethtest();
    let reference = Backend::embedded();
    init(&reference, &[], &chain.genesis_path());
    let genesis: serde_json::Value =
        serde_json::from_slice(&std::fs::read(chain.genesis_path()).expect("read genesis"))
            .expect("genesis JSON");
    let text = genesis.to_string();
    let position = |field: &str| text.find(&format!("\"{field}\"")).expect("field");
    assert!(position("alloc") < position("config"), "sorted keys");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("genesis-alloc-first.json");
    std::fs::write(&path, text).expect("write genesis");
    init(&backend, &[], &path);
    assert!(
        without_times(backend.snapshot()) == without_times(reference.snapshot()),
        "the store differs from the one the file in go-ethereum's order leaves"
    );
}

/// A custom genesis cut short inside `alloc`, after more accounts than one write batch holds,
/// is refused naming the file and the cut, and what was written of it is deleted again.
fn init_cut_short_genesis(backend: Backend) {
    let chain = ChainFixture::geth_ethtest();
    let genesis: serde_json::Value =
        serde_json::from_slice(&std::fs::read(chain.genesis_path()).expect("read genesis"))
            .expect("genesis JSON");
    let alloc: serde_json::Map<String, serde_json::Value> = (1..=30_000u64)
        .map(|i| {
            let address = format!("{:#042x}", u128::from(i) << 64);
            (address, json!({"balance": format!("{:#x}", i)}))
        })
        .collect();
    // `config` first, so the state is written as it is read.
    let text = format!(
        r#"{{"config":{},"alloc":{}}}"#,
        genesis["config"],
        serde_json::Value::Object(alloc)
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("genesis-cut.json");
    std::fs::write(&path, &text[..text.len() * 9 / 10]).expect("write genesis");
    let output = backend.cli(&[], &["init", "--genesis", path.to_str().expect("path")]);
    let stderr = expect_exit_code(&output, COMMAND_FAILED);
    assert!(
        stderr.contains("genesis-cut.json") && stderr.contains("EOF while parsing"),
        "{stderr}"
    );
    assert!(
        stderr.contains("deleted the state the refused genesis wrote"),
        "{stderr}"
    );
    assert_eq!(
        backend.all_keys(),
        BTreeSet::new(),
        "a refused init left keys"
    );
}

on_both_backends! {
    init_prints_geth_ethtest_genesis_hash => init_geth_ethtest_genesis;
    init_of_a_genesis_with_config_after_alloc_writes_the_same_store => init_config_after_alloc_genesis;
    init_of_a_genesis_cut_short_names_it_and_leaves_no_state => init_cut_short_genesis;
    init_keeps_an_explicit_zero_difficulty => init_explicit_zero_difficulty_genesis;
    init_prints_hive_sync_genesis_hash => init_hive_sync_genesis;
    init_prints_bsc_mainnet_genesis_hash => init_bsc_mainnet_genesis;
    init_prints_bsc_chapel_genesis_hash => init_bsc_chapel_genesis;
    init_again_with_same_genesis_is_a_no_op => init_twice_with_same_genesis;
    init_with_other_genesis_names_both_hashes => init_with_other_genesis;
    init_refuses_genesis_of_another_chain_id => init_bsc_name_with_foreign_genesis;
}

// ---------------------------------------------------------------------------------------------
// import

/// `init` and `import` of a whole test chain leave exactly the chain's keys and values.
fn assert_import_whole_chain(backend: Backend, chain: &ChainFixture) {
    init(&backend, &[], &chain.genesis_path());
    let stdout = expect_success(&import(&backend, &chain.chain_path()));
    assert!(
        stdout.contains(&format!("imported {} blocks", chain.block_count)),
        "{stdout}"
    );
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    assert_eq!(blocks.len(), chain.block_count);
    assert_store_holds_chain(&backend, &GenesisFile::read(&chain.genesis_path()), &blocks);
}

/// [`assert_import_whole_chain`] for geth-ethtest (600 blocks, all five tx types).
fn import_geth_ethtest(backend: Backend) {
    assert_import_whole_chain(backend, &ChainFixture::geth_ethtest());
}

/// [`assert_import_whole_chain`] for hive-sync (3,000 blocks, several batches).
fn import_hive_sync(backend: Backend) {
    assert_import_whole_chain(backend, &ChainFixture::hive_sync());
}

/// `status --json` after an import reports the synced height, no execution yet, and the lag.
fn status_json_after_import(backend: Backend) {
    let chain = ChainFixture::geth_ethtest();
    init(&backend, &[], &chain.genesis_path());
    expect_success(&import(&backend, &chain.chain_path()));
    let genesis_hash = raw_blocks(&chain.chain_bytes())[0].parent_hash();
    let stdout = expect_success(&backend.cli(&[], &["status", "--json"]));
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("status JSON");
    assert_eq!(status["sync"]["latestSyncedBlock"], json!(600), "{stdout}");
    assert_eq!(status["execution"]["latestExecutedBlock"], json!(0));
    assert_eq!(status["lag"], json!(600));
    assert_eq!(status["backend"], json!(backend.name()));
    assert_eq!(status["location"], json!(backend.location()));
    assert_eq!(
        status["chain"]["genesisHash"],
        json!(format!("{genesis_hash:#x}"))
    );
}

/// Import `bad_file` (geth-ethtest with block `k` damaged) into an initialised store: the
/// command fails naming block `k` (and `offset` when given), and the store holds exactly
/// blocks 1..k-1 with the sync progress at k-1.
fn assert_import_stops_at_block(backend: &Backend, bad_file: &[u8], k: u64, offset: Option<u64>) {
    let chain = ChainFixture::geth_ethtest();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad-chain.rlp");
    std::fs::write(&path, bad_file).expect("write the bad chain file");
    init(backend, &[], &chain.genesis_path());
    let stderr = expect_exit_code(&import(backend, &path), COMMAND_FAILED);
    assert!(names_block(&stderr, k), "block {k} in:\n{stderr}");
    if let Some(offset) = offset {
        assert!(
            mentions_number(&stderr, offset),
            "byte offset {offset} in:\n{stderr}"
        );
    }
    let good = chain.chain_bytes();
    let blocks = raw_blocks(&good);
    let genesis = GenesisFile::read(&chain.genesis_path());
    assert_store_holds_chain(backend, &genesis, &blocks[..k as usize - 1]);
}

/// Block `k` of a chain framed from block 1; it must carry transactions.
fn block_with_txs<'a>(blocks: &'a [RawBlock<'a>], k: u64) -> &'a RawBlock<'a> {
    let block = &blocks[k as usize - 1];
    assert_eq!(block.number(), k);
    assert!(!block.transactions().is_empty(), "block {k} has no txs");
    block
}

/// Cut in the middle of block 300: the error names the block and where it starts.
fn import_truncated_file(backend: Backend) {
    let k = 300;
    let file = ChainFixture::geth_ethtest().chain_bytes();
    let blocks = raw_blocks(&file);
    let block = &blocks[k as usize - 1];
    let cut = &file[..block.offset + block.encoded.len() / 2];
    assert_import_stops_at_block(&backend, cut, k, Some(block.offset as u64));
}

/// One bit flipped in the signature of block 298's (blob) transaction: still framed RLP, but
/// the transactions root no longer matches (or the transaction no longer decodes).
fn import_flipped_tx_byte(backend: Backend) {
    let k = 298;
    let file = ChainFixture::geth_ethtest().chain_bytes();
    let blocks = raw_blocks(&file);
    let tx = block_with_txs(&blocks, k).transactions()[0];
    // A typed transaction is `type ‖ rlp([..., v, r, s])`; a legacy one is the list itself.
    let fields = if tx.is_list {
        tx
    } else {
        first_item(&tx.payload[1..])
    };
    let s = *fields.elements().last().expect("signature s");
    assert!(
        !s.is_list && s.payload.len() >= 2,
        "s must be a multi-byte string"
    );
    // The transaction's last byte is the last byte of s: flipping it keeps the framing.
    let position = offset_in(&file, tx.encoded) + tx.encoded.len() - 1;
    let mut bad = file.clone();
    bad[position] ^= 0x01;
    assert_import_stops_at_block(&backend, &bad, k, None);
}

/// Block 301 with its transaction dropped and the block re-framed: a body its header's
/// transactions root does not commit to.
fn import_body_not_matching_header(backend: Backend) {
    let k = 301;
    let file = ChainFixture::geth_ethtest().chain_bytes();
    let blocks = raw_blocks(&file);
    let block = block_with_txs(&blocks, k);
    let txs = block.transactions();
    let fewer_txs: Vec<Vec<u8>> = txs[..txs.len() - 1]
        .iter()
        .map(|tx| tx.encoded.to_vec())
        .collect();
    let new_block = block.rebuilt(&block.header_fields(), &fewer_txs);
    let bad = with_block_replaced(&file, block, &new_block);
    assert_import_stops_at_block(&backend, &bad, k, None);
}

/// With `storage.key_prefix` set, `init` and `import` put every key under the prefix and
/// nothing else changes.
fn import_under_key_prefix(backend: Backend) {
    let prefix = "chain-a:";
    let chain = ChainFixture::geth_ethtest();
    let prefix_env = [var("EVM_EXECUTOR_STORAGE_KEY_PREFIX", prefix)];
    init(&backend, &prefix_env, &chain.genesis_path());
    let file = chain.chain_path();
    expect_success(&backend.cli(&prefix_env, &["import", file.to_str().expect("path")]));
    let prefixed = backend.snapshot();
    let unprefixed = strip_key_prefix(prefixed, prefix);
    let bytes = chain.chain_bytes();
    let genesis = GenesisFile::read(&chain.genesis_path());
    assert_snapshot_holds_chain(&unprefixed, &genesis, &raw_blocks(&bytes));
}

on_both_backends! {
    import_geth_ethtest_writes_exactly_the_chain => import_geth_ethtest;
    import_puts_every_key_under_the_key_prefix => import_under_key_prefix;
    import_hive_sync_writes_exactly_the_chain => import_hive_sync;
    status_json_reports_sync_height_after_import => status_json_after_import;
    import_of_truncated_file_keeps_blocks_before_the_cut => import_truncated_file;
    import_of_flipped_tx_byte_keeps_blocks_before_it => import_flipped_tx_byte;
    import_of_mismatched_body_keeps_blocks_before_it => import_body_not_matching_header;
}

// ---------------------------------------------------------------------------------------------
// an unreachable Redis

/// `status` against `addr` with two connection attempts: the stderr of its failure.
fn status_failure_against(addr: &str) -> String {
    let output = run_cli(
        &[
            var("EVM_EXECUTOR_STORAGE_BACKEND", "pika"),
            var("EVM_EXECUTOR_STORAGE_PIKA_ADDR", addr),
            var("EVM_EXECUTOR_STORAGE_PIKA_MAX_RETRIES", "2"),
        ],
        &["status"],
    );
    expect_exit_code(&output, COMMAND_FAILED)
}

/// Nothing listens on the port: `status` gives up after its retries with an error naming the
/// address, not a panic.
#[test]
fn status_against_unreachable_redis_fails_naming_the_address() {
    let addr = format!("127.0.0.1:{}", free_port());
    let stderr = status_failure_against(&addr);
    assert!(stderr.contains(&addr), "{addr} in:\n{stderr}");
}

/// The harness's stop and restart: while the server is down `status` fails naming it; after a
/// restart on the same port and data every key is back and `status` sees the synced height.
#[test]
fn imported_blocks_survive_a_redis_restart() {
    let chain = ChainFixture::geth_ethtest();
    let backend = Backend::redis();
    init(&backend, &[], &chain.genesis_path());
    expect_success(&import(&backend, &chain.chain_path()));
    let before = backend.snapshot();
    let Backend::Redis(mut server) = backend else {
        unreachable!("Backend::redis() is a Redis backend")
    };
    let addr = server.addr();
    server.stop();
    let stderr = status_failure_against(&addr);
    assert!(stderr.contains(&addr), "{addr} in:\n{stderr}");
    server.restart();
    let backend = Backend::Redis(server);
    assert!(backend.snapshot() == before, "data lost across the restart");
    let stdout = expect_success(&backend.cli(&[], &["status", "--json"]));
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("status JSON");
    assert_eq!(status["sync"]["latestSyncedBlock"], json!(600), "{stdout}");
}
