//! `gen` through the built binary: the chain it writes is accepted by `init`, `import` and
//! `run --exit-at-head` (every header check passing), the state the daemon leaves hashes (by
//! alloy-trie, here) to the last header's stateRoot, the receipts show the contracts working
//! (ERC-20 transfers and approvals move balances and log, swaps follow x·y = k and keep the
//! pairs' reserves equal to their token balances, deployments leave code, only the
//! transactions built to fail revert), and the files are byte-identical for one seed.

use crate::common::chain::{consensus_bytes, raw_blocks, GenesisFile, RawBlock, EMPTY_CODE_HASH};
use crate::common::exec::{
    assert_receipts_match_headers, exec_progress, without_run_times, ExecProgress,
};
use crate::common::{
    assert_same_snapshot, expect_success, import, init, raw_fields_of, run_cli, run_to_head, value,
    Backend,
};
use alloy_consensus::transaction::SignerRecoverable;
use alloy_consensus::{ReceiptEnvelope, Transaction, TxEnvelope, TxReceipt};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{keccak256, Address, Log, B256, U256};
use alloy_rlp::Decodable;
use alloy_trie::TrieAccount;
use evm_executor::gen::layout::Layout;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;

const BLOCKS: u64 = 40;
const TXS_PER_BLOCK: u64 = 60;
/// Position of `stateRoot` in a header's RLP list.
const HEADER_STATE_ROOT_INDEX: usize = 3;

/// Run `gen` into `dir` with `seed`; returns its stdout.
fn generate(dir: &Path, seed: u64) -> String {
    expect_success(&run_cli(
        &[],
        &[
            "gen",
            "--blocks",
            &BLOCKS.to_string(),
            "--txs-per-block",
            &TXS_PER_BLOCK.to_string(),
            "--out",
            dir.to_str().expect("utf-8 path"),
            "--seed",
            &seed.to_string(),
        ],
    ))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn selector(signature: &str) -> [u8; 4] {
    let hash = keccak256(signature);
    [hash[0], hash[1], hash[2], hash[3]]
}

fn word_at(input: &[u8], index: usize) -> U256 {
    U256::from_be_slice(&input[4 + 32 * index..4 + 32 * (index + 1)])
}

fn address_word(word: U256) -> Address {
    Address::from_word(B256::from(word))
}

/// Solidity's `mapping(address => …)` slot at `index`: keccak(key ‖ index).
fn mapping_slot(key: Address, index: u8) -> B256 {
    let mut buf = [0u8; 64];
    buf[12..32].copy_from_slice(key.as_slice());
    buf[63] = index;
    keccak256(buf)
}

/// The latest value of a storage slot in the store (zero when absent).
fn slot(store: &BTreeMap<String, Vec<u8>>, address: Address, slot: B256) -> U256 {
    let key = format!("st:latest:stor:{}:{slot:#x}", address.to_checksum(None));
    store.get(&key).map_or(U256::ZERO, |bytes| {
        U256::from_str(std::str::from_utf8(bytes).expect("utf-8 word")).expect("hex word")
    })
}

/// The state root of `st:latest:*`, computed here with alloy-trie from the stored accounts,
/// their storage and code hashes.
fn stored_state_root(store: &BTreeMap<String, Vec<u8>>) -> B256 {
    let mut storage: BTreeMap<Address, Vec<(B256, U256)>> = BTreeMap::new();
    for (key, bytes) in store.range("st:latest:stor:".to_string()..) {
        let Some(rest) = key.strip_prefix("st:latest:stor:") else {
            break;
        };
        let (address, slot) = rest.split_once(':').expect("stor key has address and slot");
        let value = U256::from_str(std::str::from_utf8(bytes).expect("utf-8")).expect("word");
        storage
            .entry(Address::from_str(address).expect("address"))
            .or_default()
            .push((B256::from_str(slot).expect("slot"), value));
    }
    let accounts: Vec<(Address, TrieAccount)> = store
        .range("st:latest:acc:".to_string()..)
        .take_while(|(key, _)| key.starts_with("st:latest:acc:"))
        .map(|(key, bytes)| {
            let address = Address::from_str(&key["st:latest:acc:".len()..]).expect("address");
            let fields = raw_fields_of(key, bytes);
            let slots = storage.remove(&address).unwrap_or_default();
            let account = TrieAccount {
                nonce: fields["nonce"].parse().expect("nonce"),
                balance: U256::from_str(&fields["balance"]).expect("decimal balance"),
                storage_root: alloy_trie::root::storage_root_unhashed(slots),
                code_hash: B256::from_str(fields["codeHash"].trim_matches('"')).expect("hash"),
            };
            (address, account)
        })
        .collect();
    assert!(
        storage.is_empty(),
        "storage of accounts not in the state: {:?}",
        storage.keys().collect::<Vec<_>>()
    );
    alloy_trie::root::state_root_unhashed(accounts)
}

/// What the receipts show, tallied by transaction kind.
#[derive(Debug, Default)]
struct Tally {
    eth_transfers: u64,
    token_transfers: u64,
    approvals: u64,
    transfer_froms: u64,
    swaps: u64,
    creations: u64,
    fills: u64,
    reverted_by_design: u64,
    legacy: u64,
}

/// A pair's reserves as the test follows them through the Swap logs.
struct PairBook {
    token0: Address,
    token1: Address,
    reserves: [U256; 2],
}

/// An amount no key holds: transfers and swap minimums at or above it must revert.
fn unpayable() -> U256 {
    U256::from(1) << 200
}

fn assert_log(log: &Log, emitter: Address, topics: &[B256], data: &[U256], what: &str) {
    assert_eq!(log.address, emitter, "{what}: emitter");
    assert_eq!(log.topics(), topics, "{what}: topics");
    let words: Vec<U256> = log.data.data.chunks(32).map(U256::from_be_slice).collect();
    assert_eq!(words, data, "{what}: data");
}

fn topic_of(address: Address) -> B256 {
    address.into_word()
}

/// Check every receipt against its transaction's intent and tally the mix; follow the pairs'
/// reserves; return the created tokens with what they minted, and add to `tokens` every
/// address that received some of a token.
fn check_receipts(
    store: &BTreeMap<String, Vec<u8>>,
    blocks: &[RawBlock<'_>],
    pairs: &mut BTreeMap<Address, PairBook>,
    tokens: &mut BTreeMap<Address, BTreeSet<Address>>,
) -> (Tally, Vec<(Address, U256)>) {
    let transfer_topic = keccak256("Transfer(address,address,uint256)");
    let approval_topic = keccak256("Approval(address,address,uint256)");
    let swap_topic = keccak256("Swap(address,uint256,uint256,uint256)");
    let mut tally = Tally::default();
    let mut created = Vec::new();
    for block in blocks {
        let key = format!("blk:rcpt:{}", block.number());
        let receipts =
            Vec::<ReceiptEnvelope>::decode(&mut value(store, &key)).expect("receipts decode");
        for (index, (raw, receipt)) in block.transactions().iter().zip(&receipts).enumerate() {
            let what = format!("block {} tx {index}", block.number());
            let tx = TxEnvelope::decode_2718(&mut consensus_bytes(raw)).expect("tx decodes");
            let sender = tx.recover_signer().expect("signature recovers");
            if tx.is_legacy() {
                tally.legacy += 1;
            }
            let input = tx.input();
            let logs = receipt.logs();
            let Some(to) = tx.to() else {
                assert!(receipt.status(), "{what}: deployment reverted");
                let address = sender.create(tx.nonce());
                tokens.entry(address).or_default().insert(sender);
                assert_eq!(logs.len(), 1, "{what}: one mint log");
                assert_eq!(logs[0].address, address, "{what}: minted by the new token");
                assert_eq!(
                    logs[0].topics(),
                    [transfer_topic, B256::ZERO, topic_of(sender)],
                    "{what}: mint to the deployer"
                );
                created.push((address, U256::from_be_slice(&logs[0].data.data)));
                tally.creations += 1;
                continue;
            };
            if input.is_empty() {
                assert!(receipt.status() && logs.is_empty(), "{what}: ETH transfer");
                tally.eth_transfers += 1;
                continue;
            }
            let chosen = &input[..4];
            if chosen == selector("transfer(address,uint256)") {
                let (recipient, amount) = (address_word(word_at(input, 0)), word_at(input, 1));
                tally.token_transfers += 1;
                if amount >= unpayable() {
                    assert!(!receipt.status() && logs.is_empty(), "{what}: must revert");
                    tally.reverted_by_design += 1;
                    continue;
                }
                assert!(receipt.status(), "{what}: transfer reverted");
                assert_eq!(logs.len(), 1, "{what}: one log");
                let topics = [transfer_topic, topic_of(sender), topic_of(recipient)];
                assert_log(&logs[0], to, &topics, &[amount], &what);
                tokens.entry(to).or_default().insert(recipient);
            } else if chosen == selector("approve(address,uint256)") {
                assert!(receipt.status(), "{what}: approve reverted");
                let spender = address_word(word_at(input, 0));
                let topics = [approval_topic, topic_of(sender), topic_of(spender)];
                assert_log(&logs[0], to, &topics, &[word_at(input, 1)], &what);
                tally.approvals += 1;
            } else if chosen == selector("transferFrom(address,address,uint256)") {
                assert!(receipt.status(), "{what}: transferFrom reverted");
                let (owner, recipient) = (
                    address_word(word_at(input, 0)),
                    address_word(word_at(input, 1)),
                );
                let topics = [transfer_topic, topic_of(owner), topic_of(recipient)];
                assert_log(&logs[0], to, &topics, &[word_at(input, 2)], &what);
                tokens.entry(to).or_default().insert(recipient);
                tally.transfer_froms += 1;
            } else if chosen == selector("swap(uint256,uint256,uint256)") {
                let book = pairs.get_mut(&to).expect("swap on a known pair");
                let (amount_in, zero_for_one, min_out) =
                    (word_at(input, 0), word_at(input, 1), word_at(input, 2));
                tally.swaps += 1;
                if min_out >= unpayable() {
                    assert!(!receipt.status() && logs.is_empty(), "{what}: must revert");
                    tally.reverted_by_design += 1;
                    continue;
                }
                assert!(receipt.status(), "{what}: swap reverted");
                let (i, o) = if zero_for_one.is_zero() {
                    (1, 0)
                } else {
                    (0, 1)
                };
                let tokens_by_side = [book.token0, book.token1];
                let with_fee = amount_in * U256::from(997);
                let amount_out =
                    with_fee * book.reserves[o] / (book.reserves[i] * U256::from(1000) + with_fee);
                assert_eq!(logs.len(), 3, "{what}: pull, pay, Swap");
                let pull = [transfer_topic, topic_of(sender), topic_of(to)];
                assert_log(&logs[0], tokens_by_side[i], &pull, &[amount_in], &what);
                let pay = [transfer_topic, topic_of(to), topic_of(sender)];
                assert_log(&logs[1], tokens_by_side[o], &pay, &[amount_out], &what);
                let swap = [swap_topic, topic_of(sender)];
                let data = [amount_in, amount_out, zero_for_one];
                assert_log(&logs[2], to, &swap, &data, &what);
                book.reserves[i] += amount_in;
                book.reserves[o] -= amount_out;
            } else if chosen == selector("fill(uint256,uint256,uint256)") {
                assert!(receipt.status() && logs.is_empty(), "{what}: fill");
                tally.fills += 1;
            } else {
                panic!("{what}: unknown call {chosen:02x?}");
            }
        }
    }
    (tally, created)
}

/// Generate, import, run, and check the run, the state root, the mix and the contracts.
#[test]
fn generated_chain_runs_with_real_state_root_and_working_contracts() {
    let out = tempfile::tempdir().expect("temp dir");
    let summary = generate(out.path(), 7);
    assert!(
        summary.contains("generated 40 blocks, 2400 transactions"),
        "{summary}"
    );
    let genesis_path = out.path().join("genesis.json");
    let backend = Backend::embedded();
    init(&backend, &[], &genesis_path);
    expect_success(&import(&backend, &out.path().join("chain.rlp")));
    let ran = expect_success(&run_to_head(&backend));
    assert!(
        ran.contains("executed 40 blocks, 2400 transactions"),
        "{ran}"
    );

    let store = backend.snapshot();
    let file = read(&out.path().join("chain.rlp"));
    let blocks = raw_blocks(&file);
    assert_eq!(blocks.len() as u64, BLOCKS);
    assert_eq!(
        exec_progress(&store),
        ExecProgress {
            latest_executed_block: BLOCKS,
            total_txs_executed: BLOCKS * TXS_PER_BLOCK,
        }
    );
    assert_receipts_match_headers(&store, &blocks);
    let last = blocks.last().expect("blocks");
    assert_eq!(
        stored_state_root(&store),
        last.header_hash(HEADER_STATE_ROOT_INDEX),
        "the daemon's final state vs the last header's stateRoot"
    );

    let layout = Layout::standard();
    let genesis = GenesisFile::read(&genesis_path);
    let genesis_slot = |address: Address, slot: B256| {
        genesis
            .accounts
            .iter()
            .find(|account| account.address == address)
            .and_then(|account| account.storage.iter().find(|(s, _)| *s == slot))
            .map_or(U256::ZERO, |(_, value)| U256::from_be_bytes(value.0))
    };
    let mut pairs: BTreeMap<Address, PairBook> = layout
        .pairs
        .iter()
        .map(|pair| {
            let reserves = [
                genesis_slot(pair.address, B256::ZERO),
                genesis_slot(pair.address, B256::with_last_byte(1)),
            ];
            let book = PairBook {
                token0: pair.token0,
                token1: pair.token1,
                reserves,
            };
            (pair.address, book)
        })
        .collect();
    // Every genesis account may hold every genesis token.
    let genesis_holders: BTreeSet<Address> = genesis
        .accounts
        .iter()
        .map(|account| account.address)
        .collect();
    let mut holders: BTreeMap<Address, BTreeSet<Address>> = layout
        .tokens
        .iter()
        .map(|token| (*token, genesis_holders.clone()))
        .collect();
    let (tally, created) = check_receipts(&store, &blocks, &mut pairs, &mut holders);
    assert_eq!(
        tally.eth_transfers
            + tally.token_transfers
            + tally.approvals
            + tally.transfer_froms
            + tally.swaps
            + tally.creations
            + tally.fills,
        BLOCKS * TXS_PER_BLOCK
    );
    for (kind, count, at_least) in [
        ("ETH transfers", tally.eth_transfers, 300),
        ("ERC-20 transfers", tally.token_transfers, 300),
        ("approvals", tally.approvals, 50),
        ("transferFroms", tally.transfer_froms, 50),
        ("swaps", tally.swaps, 150),
        ("deployments", tally.creations, 10),
        ("storage fills", tally.fills, 100),
        ("reverts by design", tally.reverted_by_design, 5),
        ("legacy transactions", tally.legacy, 500),
    ] {
        assert!(
            count >= at_least,
            "{count} {kind}, expected at least {at_least}"
        );
    }
    let failed: u64 = blocks
        .iter()
        .map(|block| {
            let key = format!("blk:rcpt:{}", block.number());
            let receipts = Vec::<ReceiptEnvelope>::decode(&mut value(&store, &key)).unwrap();
            receipts.iter().filter(|r| !r.status()).count() as u64
        })
        .sum();
    assert_eq!(failed, tally.reverted_by_design, "only designed reverts");

    for (pair, book) in &pairs {
        for (side, token) in [book.token0, book.token1].into_iter().enumerate() {
            let reserve = slot(&store, *pair, B256::with_last_byte(side as u8));
            assert_eq!(reserve, book.reserves[side], "pair {pair} reserve {side}");
            let balance = slot(&store, token, mapping_slot(*pair, 0));
            assert_eq!(balance, reserve, "pair {pair}'s balance of {token}");
        }
    }
    for (address, _) in &created {
        let key = format!("st:latest:acc:{}", address.to_checksum(None));
        let fields = raw_fields_of(&key, value(&store, &key));
        assert_ne!(
            fields["codeHash"],
            format!("\"{EMPTY_CODE_HASH}\""),
            "{key}"
        );
    }
    // Transfers move balances without creating or destroying tokens: every token's holders
    // hold what the genesis gave them or the deployment minted.
    let minted: BTreeMap<Address, U256> = created.into_iter().collect();
    for (token, holders) in &holders {
        let total = |read: &dyn Fn(B256) -> U256| {
            holders.iter().fold(U256::ZERO, |sum, holder| {
                sum + read(mapping_slot(*holder, 0))
            })
        };
        let before = match minted.get(token) {
            Some(supply) => *supply,
            None => total(&|s| genesis_slot(*token, s)),
        };
        let after = total(&|s| slot(&store, *token, s));
        assert_eq!(after, before, "supply of token {token}");
        assert!(!after.is_zero(), "token {token} has holders");
    }
}

/// Caches far smaller than the chain's state make the executor start revm's state again after
/// every block, handing its values to caches that then evict them: every block must still
/// execute (gas, receipts and the header checks) and leave the store exactly as a run with the
/// default caches does.
#[test]
fn tiny_caches_leave_the_same_store() {
    let out = tempfile::tempdir().expect("temp dir");
    generate(out.path(), 7);
    let tiny = [
        ("EVM_EXECUTOR_CACHE_ACCOUNTS", "8"),
        ("EVM_EXECUTOR_CACHE_STORAGE_SLOTS", "64"),
        ("EVM_EXECUTOR_CACHE_CODE", "2"),
    ]
    .map(|(key, value)| (key.to_string(), value.to_string()));
    let snapshots: Vec<_> = [&[][..], &tiny[..]]
        .into_iter()
        .map(|caches| {
            let backend = Backend::embedded();
            init(&backend, &[], &out.path().join("genesis.json"));
            expect_success(&import(&backend, &out.path().join("chain.rlp")));
            let ran = expect_success(&backend.cli(caches, &["run", "--exit-at-head"]));
            assert!(ran.contains("executed 40 blocks"), "{ran}");
            without_run_times(backend.snapshot())
        })
        .collect();
    assert_same_snapshot(
        &snapshots[1],
        &snapshots[0],
        "the store after a run with tiny caches",
    );
}

/// One seed, the same bytes; another seed, other bytes.
#[test]
fn same_seed_same_bytes() {
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("temp dir"))
        .collect();
    for (dir, seed) in dirs.iter().zip([5, 5, 6]) {
        generate(dir.path(), seed);
    }
    for name in ["genesis.json", "chain.rlp"] {
        let bytes: Vec<Vec<u8>> = dirs.iter().map(|d| read(&d.path().join(name))).collect();
        assert!(!bytes[0].is_empty(), "{name} is empty");
        assert!(
            bytes[0] == bytes[1],
            "{name} differs between two runs of seed 5"
        );
        assert!(bytes[0] != bytes[2], "{name} is the same for seeds 5 and 6");
    }
}
