//! The stage unit tests' harness (reth keeps the same in `stages/src/test_utils`): a real chain
//! in the in-memory store, written as the Block Syncer and `init` write it, with the stages run
//! over it, snapshots to compare stores, and ways to damage the synced data.
//!
//! The chain is go-ethereum's eth protocol test chain (`chains/geth-ethtest` of the shared
//! fixtures: 600 blocks with every transaction type, withdrawals, the Cancun and Prague forks;
//! the state after its last block with its state and storage roots; the senders of some of its
//! transactions). Its blocks are cut out of `chain.rlp` with alloy's RLP framing alone and
//! stored byte for byte as the file holds them, so what a test expects (hashes, header fields,
//! transaction counts, the head state) comes from the fixture files, never from the code under
//! test. The store holds the genesis tries as `init` writes them (the merkle checkpoint at 0),
//! or none ([`SyncedStore::without_tries`]: a store written before the merkle stage).

use crate::serial::SerialPipeline;
use crate::stage::{Control, Shared, Stage, StageStore};
use crate::stages::execution::{ExecutionSettings, ExecutionStage};
use crate::stages::headers::{HeadersSettings, HeadersStage};
use crate::stages::merkle::{MerkleSettings, MerkleStage, VerifyRoot, DEFAULT_CACHED_LEVELS};
use crate::stages::senders::{SendersBlock, SendersStage};
use crate::startup::start_point;
use crate::state::{cache::CacheSizes, StateLayers};
use crate::tries::{build_genesis_tries, BuiltTries};
use alloy_consensus::{Header, TxReceipt};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{keccak256, Address, Bloom, Bytes, B256, U256};
use alloy_rlp::Decodable;
use evm::chain::ChainSpec;
use evm::genesis::GenesisBlock;
use primitives::block::ChainBlock;
use primitives::contract::{encode_json, ExecProgress};
use primitives::keys::Keys;
use primitives::memory::MemoryStore;
use primitives::record::ExecutionRecord;
use primitives::stage_id::StageId;
use primitives::store::{Store, WriteBatch};
use primitives::value::ContractRead;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The environment variable that points the tests at another copy of the fixtures.
pub const FIXTURES_ENV: &str = "EVM_EXECUTOR_FIXTURES";
/// The key prefix of the test stores: every stage must write under it.
pub const KEY_PREFIX: &str = "geth:";
/// The history TTL the tests commit with.
pub const HISTORY_TTL: Duration = Duration::from_secs(3600);
/// Blocks in the fixture chain (`fixtures/README.md`).
pub const CHAIN_LENGTH: u64 = 600;

/// Every live key of a store with its value, in key order.
pub type Snapshot = BTreeMap<String, Vec<u8>>;

/// One block of the fixture chain, as `chain.rlp` holds it.
#[derive(Debug, Clone)]
pub struct FixtureBlock {
    /// The header, decoded by alloy.
    pub header: Header,
    /// keccak256 of the header's bytes in the file.
    pub hash: B256,
    /// The header's bytes in the file (what the syncer stores at `blk:hdr:{n}`).
    pub header_rlp: Vec<u8>,
    /// The transaction list's bytes in the file (`blk:txs:{n}`).
    pub transactions_rlp: Vec<u8>,
    /// The block list without its header: `[txs, ommers, withdrawals?]` (`blk:body:{n}`).
    pub body_rlp: Vec<u8>,
    /// The hash of each transaction, from its bytes in the file.
    pub tx_hashes: Vec<B256>,
    /// The type of each transaction (0 for legacy), from its bytes in the file.
    pub tx_types: Vec<u8>,
}

/// An account of `headstate.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadAccount {
    /// Balance in wei.
    pub balance: U256,
    /// Nonce.
    pub nonce: u64,
    /// keccak256 of the code, as the dump states it.
    pub code_hash: B256,
    /// The code (empty without).
    pub code: Bytes,
    /// Every non-zero slot.
    pub storage: BTreeMap<B256, U256>,
    /// The root of its storage trie, as the dump states it.
    pub storage_root: B256,
}

/// A transaction whose sender `txinfo.json` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownSender {
    /// Its block.
    pub block: u64,
    /// Its position in the block.
    pub index: usize,
    /// Its hash.
    pub hash: B256,
    /// Its sender.
    pub sender: Address,
}

/// The fixture chain's files, read once.
#[derive(Debug)]
pub struct GethChain {
    /// `genesis.json`'s bytes.
    pub genesis_json: Vec<u8>,
    /// Blocks 1..=600, in order.
    pub blocks: Vec<FixtureBlock>,
    /// `headstate.json`: the state after the last block.
    pub head_state: BTreeMap<Address, HeadAccount>,
    /// `headstate.json`'s state root.
    pub head_root: B256,
    /// `txinfo.json`'s transactions with their senders.
    pub senders: Vec<KnownSender>,
    /// `txinfo.json`'s withdrawals by block: recipient and amount (gwei).
    pub withdrawals: BTreeMap<u64, Vec<(Address, u64)>>,
}

impl GethChain {
    /// Block `number` (1..=600).
    pub fn block(&self, number: u64) -> &FixtureBlock {
        let index = number
            .checked_sub(1)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.blocks.len())
            .unwrap_or_else(|| panic!("the fixture chain has no block {number}"));
        &self.blocks[index]
    }

    /// The hash of block `number`, 0 being the genesis (block 1's parent).
    pub fn hash(&self, number: u64) -> B256 {
        match number {
            0 => self.block(1).header.parent_hash,
            n => self.block(n).hash,
        }
    }

    /// Transactions in blocks `1..=last`.
    pub fn txs_up_to(&self, last: u64) -> u64 {
        (1..=last)
            .map(|n| self.block(n).tx_hashes.len() as u64)
            .sum()
    }
}

/// The shared fixtures: `$EVM_EXECUTOR_FIXTURES`, else `../shared/fixtures` beside the
/// workspace. Panics, naming the variable, when the directory is absent.
pub fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os(FIXTURES_ENV).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
        PathBuf::from,
    );
    assert!(
        dir.is_dir(),
        "fixtures directory {} not found; set {FIXTURES_ENV} to the shared fixtures",
        dir.display()
    );
    dir
}

/// The fixture chain, read on first use.
pub fn geth_chain() -> &'static GethChain {
    static CHAIN: OnceLock<GethChain> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let dir = fixtures_dir().join("chains").join("geth-ethtest");
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        };
        let chain = GethChain {
            genesis_json: read("genesis.json"),
            blocks: fixture_blocks(&read("chain.rlp")),
            head_state: head_state(&read("headstate.json")),
            head_root: parse(
                &json(&read("headstate.json"), "headstate.json")["root"],
                "root",
            ),
            senders: known_senders(&read("txinfo.json")),
            withdrawals: known_withdrawals(&read("txinfo.json")),
        };
        assert_eq!(
            chain.blocks.len() as u64,
            CHAIN_LENGTH,
            "blocks in chain.rlp"
        );
        chain
    })
}

/// The next RLP item of `buf` (its whole encoding), advancing `buf` past it.
pub fn take_item<'a>(buf: &mut &'a [u8]) -> &'a [u8] {
    let mut probe = *buf;
    let head = alloy_rlp::Header::decode(&mut probe).expect("an RLP item");
    let length = buf.len() - probe.len() + head.payload_length;
    let (item, rest) = buf.split_at(length);
    *buf = rest;
    item
}

/// The payload of an RLP item: a list's items, a string's bytes.
pub fn payload(item: &[u8]) -> &[u8] {
    let mut rest = item;
    alloy_rlp::Header::decode(&mut rest).expect("an RLP item");
    rest
}

/// The items of an RLP list.
pub fn list_items(list: &[u8]) -> Vec<&[u8]> {
    let mut rest = payload(list);
    let mut items = Vec::new();
    while !rest.is_empty() {
        items.push(take_item(&mut rest));
    }
    items
}

/// An RLP list around `payload`.
fn frame_list(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 9);
    alloy_rlp::Header {
        list: true,
        payload_length: payload.len(),
    }
    .encode(&mut out);
    out.extend_from_slice(payload);
    out
}

/// The consensus bytes of an item of a transaction or receipt list: a legacy one is the list
/// itself, a typed one the string's payload (`type ‖ rlp`).
pub fn consensus_bytes(item: &[u8]) -> &[u8] {
    if item[0] >= alloy_rlp::EMPTY_LIST_CODE {
        item
    } else {
        payload(item)
    }
}

fn fixture_blocks(file: &[u8]) -> Vec<FixtureBlock> {
    let mut rest = file;
    let mut blocks = Vec::new();
    while !rest.is_empty() {
        let mut fields = payload(take_item(&mut rest));
        let header_rlp = take_item(&mut fields);
        let body_rlp = frame_list(fields);
        let transactions_rlp = take_item(&mut fields);
        let header = Header::decode(&mut &header_rlp[..]).expect("a fixture header");
        blocks.push(FixtureBlock {
            header,
            hash: keccak256(header_rlp),
            header_rlp: header_rlp.to_vec(),
            transactions_rlp: transactions_rlp.to_vec(),
            body_rlp,
            tx_hashes: list_items(transactions_rlp)
                .into_iter()
                .map(|tx| keccak256(consensus_bytes(tx)))
                .collect(),
            tx_types: list_items(transactions_rlp)
                .into_iter()
                .map(|tx| match consensus_bytes(tx)[0] {
                    legacy if legacy >= alloy_rlp::EMPTY_LIST_CODE => 0,
                    typed => typed,
                })
                .collect(),
        });
    }
    blocks
}

fn json(bytes: &[u8], name: &str) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

fn hex_u256(text: &str) -> U256 {
    U256::from_str_radix(text.trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| panic!("{text} is not hex: {e}"))
}

fn parse<T: std::str::FromStr>(value: &serde_json::Value, what: &str) -> T
where
    T::Err: std::fmt::Display,
{
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string"));
    text.parse()
        .unwrap_or_else(|e| panic!("{what} = {text}: {e}"))
}

fn head_state(bytes: &[u8]) -> BTreeMap<Address, HeadAccount> {
    let dump = json(bytes, "headstate.json");
    let accounts = dump["accounts"]
        .as_object()
        .expect("headstate.json has accounts");
    accounts
        .iter()
        .map(|(address, account)| {
            let code = account["code"].as_str().map_or_else(Bytes::new, |hex| {
                hex.parse()
                    .unwrap_or_else(|e| panic!("code of {address}: {e}"))
            });
            let storage = account["storage"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(slot, value)| {
                    let slot: B256 = slot.parse().expect("a storage slot");
                    let value = value.as_str().expect("a storage value");
                    (slot, hex_u256(value))
                })
                .filter(|(_, value)| !value.is_zero())
                .collect();
            let account = HeadAccount {
                balance: U256::from_str_radix(account["balance"].as_str().expect("a balance"), 10)
                    .expect("a decimal balance"),
                nonce: account["nonce"].as_u64().expect("a nonce"),
                code_hash: parse(&account["codeHash"], "codeHash"),
                code,
                storage,
                storage_root: parse(&account["root"], "root"),
            };
            (address.parse().expect("an address"), account)
        })
        .collect()
}

fn known_senders(bytes: &[u8]) -> Vec<KnownSender> {
    let info = json(bytes, "txinfo.json");
    let entries = info.as_object().expect("txinfo.json is an object");
    entries
        .values()
        .filter_map(serde_json::Value::as_array)
        .flatten()
        .filter(|tx| tx.get("sender").is_some())
        .map(|tx| KnownSender {
            block: hex_u256(tx["block"].as_str().expect("a block")).to::<u64>(),
            index: tx["indexInBlock"].as_u64().expect("indexInBlock") as usize,
            hash: parse(&tx["txhash"], "txhash"),
            sender: parse(&tx["sender"], "sender"),
        })
        .collect()
}

fn known_withdrawals(bytes: &[u8]) -> BTreeMap<u64, Vec<(Address, u64)>> {
    let info = json(bytes, "txinfo.json");
    let blocks = info["withdrawals"]
        .as_object()
        .expect("txinfo.json has withdrawals");
    blocks
        .iter()
        .map(|(number, block)| {
            let withdrawals = block["withdrawals"]
                .as_array()
                .expect("a withdrawals list")
                .iter()
                .map(|w| {
                    let amount = hex_u256(w["amount"].as_str().expect("an amount"));
                    (parse(&w["address"], "address"), amount.to::<u64>())
                })
                .collect();
            (number.parse().expect("a block number"), withdrawals)
        })
        .collect()
}

/// The root of the trie of `items` by their index: what a header's receiptsRoot or
/// transactionsRoot commits to (`items` in their consensus encoding).
pub fn ordered_root(items: &[&[u8]]) -> B256 {
    alloy_trie::root::ordered_trie_root_with_encoder(items, |item, out| out.extend_from_slice(item))
}

/// Check `record` against block `number` of the chain file: its identity, its gas, and its
/// receipts (one per transaction and of its type, the last cumulative gas the header's
/// gasUsed, their trie root the header's receiptsRoot, their logs' bloom the header's).
pub fn assert_record_matches_header(record: &ExecutionRecord, number: u64) {
    let chain = geth_chain();
    let block = chain.block(number);
    assert_eq!(
        (record.number, record.hash, record.parent_hash),
        (number, block.hash, chain.hash(number - 1)),
        "record {number}'s identity"
    );
    assert_eq!(
        record.gas_used, block.header.gas_used,
        "record {number}'s gas"
    );
    let types: Vec<u8> = record.receipts.iter().map(|r| r.tx_type() as u8).collect();
    assert_eq!(types, block.tx_types, "record {number}'s receipt types");
    let last_gas = record
        .receipts
        .last()
        .map_or(0, |r| r.cumulative_gas_used());
    assert_eq!(
        last_gas, block.header.gas_used,
        "record {number}'s cumulative gas"
    );
    let encoded: Vec<Vec<u8>> = record.receipts.iter().map(|r| r.encoded_2718()).collect();
    let items: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
    assert_eq!(
        ordered_root(&items),
        block.header.receipts_root,
        "record {number}'s receipts root"
    );
    let mut bloom = Bloom::ZERO;
    for receipt in &record.receipts {
        bloom |= receipt.bloom();
    }
    assert_eq!(
        bloom, block.header.logs_bloom,
        "record {number}'s logs bloom"
    );
}

/// An in-memory store holding the genesis state as `init` writes it and the fixture chain as
/// the syncer writes it, with the context the stages share over it.
pub struct SyncedStore {
    /// The store, for snapshots, failure injection and damage.
    pub memory: Arc<MemoryStore>,
    /// What the stages share.
    pub shared: Shared,
}

impl SyncedStore {
    /// The genesis state with its tries (the merkle checkpoint at block 0), `idx:exec:progress`
    /// at block 0, blocks `1..=synced` and `idx:sync:progress` at `synced`.
    pub fn new(synced: u64) -> Self {
        Self::initialised(synced, true)
    }

    /// [`Self::new`] without the tries: a store written before the merkle stage (or by the
    /// original service), whose state is not verified.
    pub fn without_tries(synced: u64) -> Self {
        Self::initialised(synced, false)
    }

    fn initialised(synced: u64, tries: bool) -> Self {
        let chain = geth_chain();
        let genesis = GenesisBlock::parse("genesis.json", &chain.genesis_json)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            genesis.hash,
            chain.hash(0),
            "the genesis built from genesis.json is block 1's parent"
        );
        let spec =
            ChainSpec::from_genesis_config(&genesis.genesis.config, genesis.header.difficulty)
                .with_storage_only_accounts(evm::collision::storage_only_accounts(
                    &genesis.genesis,
                ));
        let memory = Arc::new(MemoryStore::new());
        let store: Arc<dyn Store> = memory.clone();
        let keys = Keys::new(KEY_PREFIX);
        // As `init` writes them: the state, then the tries with the merkle checkpoint.
        let tries = tries.then(|| genesis_tries(&genesis));
        let storage_root = |address: &Address| {
            tries
                .as_ref()
                .map_or(B256::ZERO, |tries| tries.storage_root(address))
        };
        store
            .write(&genesis.state_writes(&keys, storage_root))
            .expect("write the genesis");
        let mut init = WriteBatch::new();
        if let Some(tries) = &tries {
            tries.queue(&keys, 0, genesis.hash, &mut init);
        }
        init.put(
            keys.exec_progress(),
            &ExecProgress {
                latest_executed_block: 0,
                last_execution_time: primitives::clock::unix_now(),
                total_txs_executed: 0,
            },
        );
        store.write(&init).expect("write the genesis's progress");
        let layers = StateLayers::new(
            Arc::clone(&store),
            keys.clone(),
            CacheSizes {
                accounts: 4096,
                storage_slots: 16_384,
                code: 1024,
            },
        );
        let synced_store = Self {
            memory,
            shared: Shared {
                store: StageStore::new(store, keys, None),
                spec: Arc::new(spec),
                layers: Arc::new(layers),
                control: Control::new(Arc::new(AtomicBool::new(false))),
                meters: Default::default(),
            },
        };
        synced_store.sync(1..=synced);
        synced_store
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        self.shared.store.keys()
    }

    /// Write `blocks` of the fixture chain as the syncer does (header, transactions, body),
    /// then move `idx:sync:progress` up to the last (a block written again, as a repair, does
    /// not move it back).
    pub fn sync(&self, blocks: std::ops::RangeInclusive<u64>) {
        let chain = geth_chain();
        let keys = self.keys();
        let mut batch = WriteBatch::new();
        for number in blocks.clone() {
            let block = chain.block(number);
            batch
                .set(keys.header(number).into_string(), block.header_rlp.clone())
                .set(
                    keys.transactions(number).into_string(),
                    block.transactions_rlp.clone(),
                )
                .set(keys.body(number).into_string(), block.body_rlp.clone());
        }
        self.write(batch);
        let synced = self
            .memory
            .read(&keys.sync_progress())
            .expect("read")
            .map_or(0, |p| p.latest_synced_block);
        if *blocks.end() > synced {
            // Spelled as the syncer spells it.
            let text = format!(r#"{{"latestSyncedBlock": {}}}"#, blocks.end());
            self.set_raw(keys.sync_progress().as_str(), text.as_bytes());
        }
    }

    /// Every live key with its value.
    pub fn snapshot(&self) -> Snapshot {
        self.memory.snapshot()
    }

    /// [`Self::snapshot`] without the run times (see [`without_run_times`]).
    pub fn timeless_snapshot(&self) -> Snapshot {
        without_run_times(self.keys(), &self.snapshot())
    }

    /// The stages on one thread from where the store's checkpoints say (taking over a store
    /// fresh from `init`, and starting the state layers again, as the daemon does).
    pub fn serial(&self) -> SerialPipeline<'_> {
        let start = start_point(&self.shared).expect("start point");
        self.shared.layers.restart(&[]);
        assert!(
            start.committed == start.executed && start.receipts == start.executed,
            "the serial stages apply no records written before: {start:?}"
        );
        let key = self.keys().header(start.executed);
        let parent = self
            .memory
            .read(&key)
            .expect("read the executed head")
            .unwrap_or_else(|| panic!("{key} missing"));
        SerialPipeline::new(
            &self.shared,
            start,
            parent.inner().clone(),
            parent.hash(),
            HISTORY_TTL,
        )
    }

    /// Run every stage but prune over the blocks after the store's checkpoints up to `last`,
    /// one at a time; returns the stages at `last`.
    pub fn execute_to(&self, last: u64) -> SerialPipeline<'_> {
        let mut pipeline = self.serial();
        while pipeline.head().0 < last {
            let block = pipeline
                .run_next(&self.shared)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(block.hash, geth_chain().hash(block.number()));
        }
        pipeline
    }

    /// The execution stage about to execute the block after `head` (its state in the store).
    pub fn execution_after(&self, head: u64) -> ExecutionStage<'_> {
        let key = self.keys().header(head);
        let parent = self
            .memory
            .read(&key)
            .expect("read")
            .unwrap_or_else(|| panic!("{key} missing"));
        ExecutionStage::new(
            ExecutionSettings {
                batch_size: 16,
                retry_interval: Duration::from_millis(1),
                prewarm: crate::state::prewarm::PrewarmMode::Speculate,
                log_transactions: false,
            },
            &self.shared.layers,
            parent.into_inner(),
        )
    }

    /// Blocks `first..=last` executed in one batch on the store's state after `first - 1`;
    /// their records, written.
    pub fn execute_batch(&self, first: u64, last: u64) -> Vec<Arc<ExecutionRecord>> {
        self.execution_after(first - 1)
            .execute(&self.shared, self.recovered(first, last))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The records of blocks `first..=last` as the store holds them.
    pub fn records(&self, first: u64, last: u64) -> Vec<Arc<ExecutionRecord>> {
        (first..=last)
            .map(|n| {
                let record = self.shared.store.record(StageId::Execution, n);
                Arc::new(record.unwrap_or_else(|e| panic!("{e}")))
            })
            .collect()
    }

    /// The merkle stage at the store's merkle checkpoint (0 without), verifying as `verify`
    /// says.
    pub fn merkle(&self, verify: VerifyRoot) -> MerkleStage {
        let checkpoint = self.shared.store.checkpoint_block(StageId::Merkle);
        MerkleStage::new(
            MerkleSettings {
                verify,
                cached_levels: DEFAULT_CACHED_LEVELS,
            },
            checkpoint.expect("read").unwrap_or(0),
        )
    }

    /// Blocks `first..=last` through the headers stage, as senders gets them.
    pub fn loaded(&self, first: u64, last: u64) -> Vec<ChainBlock> {
        let blocks = headers_from(first)
            .execute(&self.shared, vec![first..=last])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(blocks.len() as u64, last - first + 1, "blocks loaded");
        blocks
    }

    /// Blocks `first..=last` through the headers and senders stages, as execution gets them.
    pub fn recovered(&self, first: u64, last: u64) -> Vec<SendersBlock> {
        SendersStage::in_current_pool()
            .execute(&self.shared, self.loaded(first, last))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Write `batch` straight into the store.
    pub fn write(&self, batch: WriteBatch) {
        self.memory
            .write(&batch)
            .expect("write the in-memory store");
    }

    /// Store `bytes` at `key` (a damaged or replaced value).
    pub fn set_raw(&self, key: &str, bytes: &[u8]) {
        let mut batch = WriteBatch::new();
        batch.set(key, bytes);
        self.write(batch);
    }

    /// Delete `key`.
    pub fn remove(&self, key: &str) {
        let mut batch = WriteBatch::new();
        batch.delete(key);
        self.write(batch);
    }

    /// Cut the value at `key` in half: RLP that no longer decodes.
    pub fn truncate(&self, key: &str) {
        let bytes = self
            .memory
            .get(key)
            .expect("read")
            .unwrap_or_else(|| panic!("{key} missing"));
        self.set_raw(key, &bytes[..bytes.len() / 2]);
    }

    /// Store block `from`'s body (transactions and full body) as block `to`'s: a body that does
    /// not match its header.
    pub fn swap_body(&self, to: u64, from: u64) {
        let block = geth_chain().block(from);
        let keys = self.keys();
        self.set_raw(keys.transactions(to).as_str(), &block.transactions_rlp);
        self.set_raw(keys.body(to).as_str(), &block.body_rlp);
    }

    /// Replace block `number`'s header with the fixture header changed by `edit`; returns the
    /// new header's hash.
    pub fn replace_header(&self, number: u64, edit: impl FnOnce(&mut Header)) -> B256 {
        let mut header = geth_chain().block(number).header.clone();
        edit(&mut header);
        let bytes = alloy_rlp::encode(&header);
        self.set_raw(self.keys().header(number).as_str(), &bytes);
        keccak256(&bytes)
    }
}

/// The tries of `genesis` as `init` builds them, their root checked against its header's
/// (whose hash is the fixture's block 1's parent).
fn genesis_tries(genesis: &GenesisBlock) -> BuiltTries {
    let tries = build_genesis_tries(genesis).unwrap_or_else(|e| panic!("the genesis tries: {e}"));
    assert_eq!(
        tries.state_root, genesis.header.state_root,
        "the genesis tries' root"
    );
    tries
}

/// Headers settings for loading in tests: fail at once instead of waiting for the syncer.
pub fn load_settings() -> HeadersSettings {
    HeadersSettings {
        batch_size: 16,
        poll_interval: Duration::from_millis(1),
        exit_at_head: true,
    }
}

/// The headers stage about to load block `first` of the fixture chain.
pub fn headers_from(first: u64) -> HeadersStage {
    HeadersStage::new(load_settings(), first, geth_chain().hash(first - 1))
}

/// A header changed as the syncer's other branch has it: another hash, and another state
/// root (its blocks leave another state).
pub fn other_branch(header: &mut Header) {
    header.extra_data = Bytes::from_static(b"other branch");
    header.state_root = keccak256(header.state_root);
}

/// `snapshot` with the times the pipeline writes (checkpoints' `time`, progress's
/// `lastExecutionTime`) taken out, to compare stores written at different moments.
pub fn without_run_times(keys: &Keys, snapshot: &Snapshot) -> Snapshot {
    let mut timed: Vec<(String, &str)> = StageId::ALL
        .iter()
        .map(|&stage| (keys.stage_checkpoint(stage).into_string(), "time"))
        .collect();
    timed.push((keys.exec_progress().into_string(), "lastExecutionTime"));
    let mut out = snapshot.clone();
    for (key, field) in timed {
        if let Some(bytes) = out.get_mut(&key) {
            let mut value = json(bytes, &key);
            let object = value
                .as_object_mut()
                .unwrap_or_else(|| panic!("{key} is not a JSON object"));
            assert!(object.remove(field).is_some(), "{key} has no {field}");
            *bytes = encode_json(&value);
        }
    }
    out
}

/// The entries of `snapshot` whose key starts with `KEY_PREFIX` followed by `part`.
pub fn under(snapshot: &Snapshot, part: &str) -> Snapshot {
    with_prefix(snapshot, &format!("{KEY_PREFIX}{part}"))
}

/// The entries of `snapshot` whose key starts with `prefix`.
pub fn with_prefix(snapshot: &Snapshot, prefix: &str) -> Snapshot {
    snapshot
        .range(prefix.to_string()..)
        .take_while(|(key, _)| key.starts_with(prefix))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// The world-state keys of `snapshot`: `st:latest:*` and the history `st:{n}:*` (code, which
/// is never deleted, aside).
pub fn state_keys(snapshot: &Snapshot) -> Snapshot {
    let code = format!("{KEY_PREFIX}st:code:");
    under(snapshot, "st:")
        .into_iter()
        .filter(|(key, _)| !key.starts_with(&code))
        .collect()
}

/// The history keys (`st:{n}:*`) of `snapshot`, each with its block number.
pub fn history_keys(snapshot: &Snapshot) -> Vec<(u64, String)> {
    let prefix = format!("{KEY_PREFIX}st:");
    under(snapshot, "st:")
        .into_keys()
        .filter_map(|key| {
            let (number, rest) = key.strip_prefix(&prefix)?.split_once(':')?;
            let history = rest.starts_with("acc:") || rest.starts_with("stor:");
            let number = number.parse().ok().filter(|_| history)?;
            Some((number, key))
        })
        .collect()
}

/// Fail unless two stores hold the same, their run times aside.
pub fn assert_same_store(left: &SyncedStore, right: &SyncedStore, what: &str) {
    assert_same_snapshot(&left.timeless_snapshot(), &right.timeless_snapshot(), what);
}

/// Fail, listing the first keys that differ, unless `left` and `right` are equal.
pub fn assert_same_snapshot(left: &Snapshot, right: &Snapshot, what: &str) {
    if left == right {
        return;
    }
    let keys: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    let differences: Vec<String> = keys
        .into_iter()
        .filter(|key| left.get(*key) != right.get(*key))
        .take(10)
        .map(|key| {
            let show = |value: Option<&Vec<u8>>| {
                value.map_or("absent".to_string(), |v| {
                    String::from_utf8(v.clone()).unwrap_or_else(|_| format!("{} bytes", v.len()))
                })
            };
            format!("{key}: {} vs {}", show(left.get(key)), show(right.get(key)))
        })
        .collect();
    panic!("{what}: the stores differ at\n{}", differences.join("\n"));
}
