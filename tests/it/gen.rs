//! `gen` through the built binary: the chain it writes is accepted by `init`, `import` and
//! `run --exit-at-head` (every header check passing), the state the daemon leaves hashes (by
//! alloy-trie, here) to the last header's stateRoot, the receipts show the contracts working
//! (ERC-20 transfers and approvals move balances and log, swaps follow x·y = k and keep the
//! pairs' reserves equal to their token balances, router swaps chain one or two pairs,
//! deployments leave code, only the transactions built to fail revert), and the files are
//! byte-identical for one seed. With `--accounts N` the genesis holds N funded accounts each
//! holding every genesis token, and the senders show a hot set, cold accounts and fresh
//! addresses.

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

/// Funded accounts of the `--accounts` chains here.
const ACCOUNTS: usize = 5000;
/// Their hot set: 1 % of the accounts, at least 1,000 (`gen`'s documented rule).
const HOT: usize = 1000;
/// `route(amountIn, minOut, tokenIn, tokenOut, hops, (pair, zeroForOne, out) per hop)`.
const ROUTE: &str =
    "route(uint256,uint256,address,address,uint256,address,uint256,address,address,uint256,address)";

/// Run `gen` into `dir` with `seed` (and `--accounts` when given); returns its stdout.
fn generate_with(dir: &Path, seed: u64, accounts: Option<usize>) -> String {
    let (blocks, txs, seed) = (
        BLOCKS.to_string(),
        TXS_PER_BLOCK.to_string(),
        seed.to_string(),
    );
    let accounts = accounts.map(|n| n.to_string());
    let mut args = vec![
        "gen",
        "--blocks",
        &blocks,
        "--txs-per-block",
        &txs,
        "--out",
        dir.to_str().expect("utf-8 path"),
        "--seed",
        &seed,
    ];
    if let Some(accounts) = &accounts {
        args.extend(["--accounts", accounts]);
    }
    expect_success(&run_cli(&[], &args))
}

/// Run `gen` (the standard workload) into `dir` with `seed`; returns its stdout.
fn generate(dir: &Path, seed: u64) -> String {
    generate_with(dir, seed, None)
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

/// Solidity's allowance slot of `owner` to `spender` (`mapping(address => mapping(address =>
/// uint256))` at index 1): keccak(spender ‖ keccak(owner ‖ 1)).
fn allowance_slot(owner: Address, spender: Address) -> B256 {
    let mut buf = [0u8; 64];
    buf[12..32].copy_from_slice(spender.as_slice());
    buf[32..].copy_from_slice(mapping_slot(owner, 1).as_slice());
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
    two_hop_swaps: u64,
    creations: u64,
    fills: u64,
    reverted_by_design: u64,
    legacy: u64,
    /// Transactions by sender.
    senders: BTreeMap<Address, u64>,
}

impl Tally {
    fn transactions(&self) -> u64 {
        self.eth_transfers
            + self.token_transfers
            + self.approvals
            + self.transfer_froms
            + self.swaps
            + self.creations
            + self.fills
    }
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

impl PairBook {
    /// A swap of `amount_in` (of token0 when `zero_for_one`): which reserve goes in, which
    /// out, and what x·y = k with the 0.3 % fee pays; the reserves follow.
    fn swap(&mut self, amount_in: U256, zero_for_one: bool) -> (usize, usize, U256) {
        let (i, o) = if zero_for_one { (0, 1) } else { (1, 0) };
        let with_fee = amount_in * U256::from(997);
        let amount_out =
            with_fee * self.reserves[o] / (self.reserves[i] * U256::from(1000) + with_fee);
        self.reserves[i] += amount_in;
        self.reserves[o] -= amount_out;
        (i, o, amount_out)
    }

    fn token(&self, side: usize) -> Address {
        [self.token0, self.token1][side]
    }
}

/// Check a `route` through `router` from `sender`: the pull, each hop's pair swap (by the
/// test's own x·y = k), the payment of at least `minOut`; returns whether it took two hops.
fn check_route(
    what: &str,
    input: &[u8],
    logs: &[Log],
    sender: Address,
    router: Address,
    pairs: &mut BTreeMap<Address, PairBook>,
) -> bool {
    let transfer_topic = keccak256("Transfer(address,address,uint256)");
    let swap_topic = keccak256("Swap(address,uint256,uint256,uint256)");
    let (amount_in, min_out) = (word_at(input, 0), word_at(input, 1));
    let (token_in, token_out) = (
        address_word(word_at(input, 2)),
        address_word(word_at(input, 3)),
    );
    let hops: usize = word_at(input, 4).to();
    assert!(hops == 1 || hops == 2, "{what}: {hops} hops");
    assert_eq!(logs.len(), 2 + 3 * hops, "{what}: pull, 3 per hop, pay");
    let pull = [transfer_topic, topic_of(sender), topic_of(router)];
    assert_log(&logs[0], token_in, &pull, &[amount_in], what);
    let (mut amount, mut held) = (amount_in, token_in);
    for hop in 0..hops {
        let pair = address_word(word_at(input, 5 + 3 * hop));
        let zero_for_one = word_at(input, 6 + 3 * hop);
        let book = pairs.get_mut(&pair).expect("hop on a known pair");
        let (i, o, out) = book.swap(amount, !zero_for_one.is_zero());
        assert_eq!(
            book.token(i),
            held,
            "{what}: hop {hop} sells what the router holds"
        );
        assert_eq!(
            book.token(o),
            address_word(word_at(input, 7 + 3 * hop)),
            "{what}: hop {hop} buys"
        );
        let logs = &logs[1 + 3 * hop..];
        let pulled = [transfer_topic, topic_of(router), topic_of(pair)];
        assert_log(&logs[0], book.token(i), &pulled, &[amount], what);
        let paid = [transfer_topic, topic_of(pair), topic_of(router)];
        assert_log(&logs[1], book.token(o), &paid, &[out], what);
        let swapped = [swap_topic, topic_of(router)];
        assert_log(&logs[2], pair, &swapped, &[amount, out, zero_for_one], what);
        (amount, held) = (out, book.token(o));
    }
    assert_eq!(held, token_out, "{what}: the path ends in tokenOut");
    assert!(amount >= min_out, "{what}: paid {amount} below {min_out}");
    let pay = [transfer_topic, topic_of(router), topic_of(sender)];
    assert_log(&logs[1 + 3 * hops], token_out, &pay, &[amount], what);
    hops == 2
}

/// Check every receipt against its transaction's intent and tally the mix; follow the pairs'
/// reserves; return the created tokens with what they minted, and add to `tokens` every
/// address that received some of a token.
fn check_receipts(
    store: &BTreeMap<String, Vec<u8>>,
    blocks: &[RawBlock<'_>],
    layout: &Layout,
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
            *tally.senders.entry(sender).or_default() += 1;
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
                let (i, o, amount_out) = book.swap(amount_in, !zero_for_one.is_zero());
                assert_eq!(logs.len(), 3, "{what}: pull, pay, Swap");
                let pull = [transfer_topic, topic_of(sender), topic_of(to)];
                assert_log(&logs[0], book.token(i), &pull, &[amount_in], &what);
                let pay = [transfer_topic, topic_of(to), topic_of(sender)];
                assert_log(&logs[1], book.token(o), &pay, &[amount_out], &what);
                let swap = [swap_topic, topic_of(sender)];
                let data = [amount_in, amount_out, zero_for_one];
                assert_log(&logs[2], to, &swap, &data, &what);
            } else if chosen == selector(ROUTE) {
                let router = layout.router.expect("routes only with a router");
                assert_eq!(to, router, "{what}: route sent to the router");
                tally.swaps += 1;
                if word_at(input, 1) >= unpayable() {
                    assert!(!receipt.status() && logs.is_empty(), "{what}: must revert");
                    tally.reverted_by_design += 1;
                    continue;
                }
                assert!(receipt.status(), "{what}: route reverted");
                if check_route(&what, input, logs, sender, router, pairs) {
                    tally.two_hop_swaps += 1;
                }
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

/// What a generated chain left once `init`, `import` and `run --exit-at-head` went through,
/// every check of [`run_and_check`] passed.
struct Checked {
    /// `init`'s stdout.
    init_output: String,
    /// The store after `init`.
    after_init: BTreeMap<String, Vec<u8>>,
    /// The store after the run.
    store: BTreeMap<String, Vec<u8>>,
    /// The genesis file.
    genesis: GenesisFile,
    /// The mix as the receipts show it.
    tally: Tally,
    /// The chain file.
    chain: Vec<u8>,
}

/// Init, import and run the chain `gen` wrote to `out` over `layout`, and check the run, the
/// state root, every receipt against its transaction, the pairs' reserves, the deployments and
/// the tokens' supply.
fn run_and_check(out: &Path, layout: &Layout) -> Checked {
    let genesis_path = out.join("genesis.json");
    let backend = Backend::embedded();
    let init_output = init(&backend, &[], &genesis_path);
    let after_init = backend.snapshot();
    expect_success(&import(&backend, &out.join("chain.rlp")));
    let ran = expect_success(&run_to_head(&backend));
    assert!(
        ran.contains("executed 40 blocks, 2400 transactions"),
        "{ran}"
    );

    let store = backend.snapshot();
    let chain = read(&out.join("chain.rlp"));
    let blocks = raw_blocks(&chain);
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

    let genesis = GenesisFile::read(&genesis_path);
    let genesis_storage: BTreeMap<(Address, B256), U256> = genesis
        .accounts
        .iter()
        .flat_map(|account| {
            account
                .storage
                .iter()
                .map(|(slot, value)| ((account.address, *slot), U256::from_be_bytes(value.0)))
        })
        .collect();
    let genesis_slot = |address: Address, slot: B256| {
        genesis_storage
            .get(&(address, slot))
            .copied()
            .unwrap_or_default()
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
    let (tally, created) = check_receipts(&store, &blocks, layout, &mut pairs, &mut holders);
    assert_eq!(tally.transactions(), BLOCKS * TXS_PER_BLOCK);
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
    Checked {
        init_output,
        after_init,
        store,
        genesis,
        tally,
        chain,
    }
}

/// Each `(kind, count, at least)`: the mix has at least that many of the kind.
fn assert_at_least(counts: &[(&str, u64, u64)]) {
    for (kind, count, at_least) in counts {
        assert!(
            count >= at_least,
            "{count} {kind}, expected at least {at_least}"
        );
    }
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
    let tally = run_and_check(out.path(), &Layout::standard()).tally;
    assert_at_least(&[
        ("ETH transfers", tally.eth_transfers, 300),
        ("ERC-20 transfers", tally.token_transfers, 300),
        ("approvals", tally.approvals, 50),
        ("transferFroms", tally.transfer_froms, 50),
        ("swaps", tally.swaps, 150),
        ("deployments", tally.creations, 10),
        ("storage fills", tally.fills, 100),
        ("reverts by design", tally.reverted_by_design, 5),
        ("legacy transactions", tally.legacy, 500),
    ]);
}

/// `--accounts`: the genesis funds exactly that many accounts, each holding 1M of every
/// genesis token (so init writes that many accounts and four times as many balance slots);
/// the chain runs with a real state root and working router swaps of one and two hops; most
/// transactions come from the hot set (the accounts that approved the router at genesis), yet
/// a steady share from many cold accounts, and fresh addresses appear.
#[test]
fn many_accounts_chain_runs_with_routed_swaps_and_a_skewed_access_pattern() {
    let out = tempfile::tempdir().expect("temp dir");
    let summary = generate_with(out.path(), 3, Some(ACCOUNTS));
    assert!(
        summary.contains("generated 40 blocks, 2400 transactions"),
        "{summary}"
    );
    let layout = Layout::routed();
    let checked = run_and_check(out.path(), &layout);

    // The genesis: ACCOUNTS funded accounts without code, each holding every genesis token.
    let funded: Vec<Address> = checked
        .genesis
        .accounts
        .iter()
        .filter(|account| account.code.is_empty() && !account.balance.is_zero())
        .map(|account| account.address)
        .collect();
    assert_eq!(funded.len(), ACCOUNTS, "funded accounts in the genesis");
    let one_million_tokens = U256::from(10).pow(U256::from(24));
    for token in &layout.tokens {
        for account in &funded {
            assert_eq!(
                slot(&checked.after_init, *token, mapping_slot(*account, 0)),
                one_million_tokens,
                "{account}'s genesis balance of {token} in the store"
            );
        }
    }
    let count = |prefix: &str| {
        checked
            .after_init
            .keys()
            .filter(|key| key.starts_with(prefix))
            .count()
    };
    assert_eq!(count("st:latest:acc:"), checked.genesis.accounts.len());
    assert!(
        count("st:latest:stor:") >= layout.tokens.len() * ACCOUNTS,
        "{} slots after init",
        count("st:latest:stor:")
    );
    assert!(
        checked
            .init_output
            .contains(&format!("{} accounts", checked.genesis.accounts.len())),
        "{}",
        checked.init_output
    );
    // gen's genesis block is init's: block 1's parent is the hash init printed.
    let blocks = raw_blocks(&checked.chain);
    assert!(
        checked.init_output.contains(&format!(
            "genesis block hash: {:#x}",
            blocks[0].parent_hash()
        )),
        "{}",
        checked.init_output
    );

    let tally = &checked.tally;
    assert_at_least(&[
        ("ETH transfers", tally.eth_transfers, 400),
        ("ERC-20 transfers", tally.token_transfers, 600),
        ("approvals", tally.approvals, 80),
        ("transferFroms", tally.transfer_froms, 50),
        ("router swaps", tally.swaps, 300),
        ("two-hop swaps", tally.two_hop_swaps, 80),
        ("deployments", tally.creations, 20),
        ("storage fills", tally.fills, 100),
        ("reverts by design", tally.reverted_by_design, 10),
    ]);
    // Skew. The hot set is who approved the router at genesis (on every token): HOT accounts.
    // They send most transactions, yet a steady share comes from many cold accounts.
    let router = layout.router.expect("the routed layout has a router");
    let hot: BTreeSet<Address> = funded
        .iter()
        .copied()
        .filter(|account| {
            layout.tokens.iter().all(|token| {
                !slot(
                    &checked.after_init,
                    *token,
                    allowance_slot(*account, router),
                )
                .is_zero()
            })
        })
        .collect();
    assert_eq!(
        hot.len(),
        HOT,
        "accounts that approved the router at genesis"
    );
    let (mut from_hot, mut cold_senders) = (0, 0);
    for (sender, sent) in &tally.senders {
        match hot.contains(sender) {
            true => from_hot += sent,
            false => cold_senders += 1,
        }
    }
    let share = from_hot as f64 / tally.transactions() as f64;
    assert!(
        (0.8..0.95).contains(&share),
        "{share:.3} of the transactions come from the hot set"
    );
    assert!(
        cold_senders >= 100,
        "{cold_senders} senders outside the hot set"
    );
    // Fresh addresses: accounts in the final state that neither the genesis nor a deployment
    // made.
    let known: BTreeSet<String> = checked
        .genesis
        .accounts
        .iter()
        .map(|account| format!("st:latest:acc:{}", account.address.to_checksum(None)))
        .collect();
    let fresh = checked
        .store
        .iter()
        .filter(|(key, bytes)| {
            key.starts_with("st:latest:acc:")
                && !known.contains(*key)
                && raw_fields_of(key, bytes)["codeHash"] == format!("\"{EMPTY_CODE_HASH}\"")
        })
        .count();
    assert!(fresh >= 20, "{fresh} fresh accounts");
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

/// One seed, the same bytes; another seed, other bytes; with and without `--accounts`.
#[test]
fn same_seed_same_bytes() {
    for accounts in [None, Some(3000)] {
        let dirs: Vec<_> = (0..3)
            .map(|_| tempfile::tempdir().expect("temp dir"))
            .collect();
        for (dir, seed) in dirs.iter().zip([5, 5, 6]) {
            generate_with(dir.path(), seed, accounts);
        }
        for name in ["genesis.json", "chain.rlp"] {
            let bytes: Vec<Vec<u8>> = dirs.iter().map(|d| read(&d.path().join(name))).collect();
            assert!(!bytes[0].is_empty(), "{name} is empty");
            assert!(
                bytes[0] == bytes[1],
                "{name} differs between two runs of seed 5 ({accounts:?} accounts)"
            );
            assert!(bytes[0] != bytes[2], "{name} is the same for seeds 5 and 6");
        }
    }
}
