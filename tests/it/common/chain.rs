//! The fixture chains read independently of the project: blocks framed by the tests' own RLP
//! reader, transaction hashes computed from raw bytes, and the keys `init` and `import` must
//! leave in the store derived from the fixture files alone.

use super::fixtures_dir;
use super::rlp::{concat_encoded, frame_list, split_items, RlpItem};
use alloy_primitives::{keccak256, Address, B256, U256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::str::FromStr;

/// keccak256 of the empty byte string: the code hash of an account without code.
pub const EMPTY_CODE_HASH: &str =
    "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470";

/// Position of `parentHash` in a header's RLP list.
pub const HEADER_PARENT_HASH_INDEX: usize = 0;
/// Position of `stateRoot` in a header's RLP list.
pub const HEADER_STATE_ROOT_INDEX: usize = 3;
/// Position of `transactionsRoot` in a header's RLP list (parentHash, ommersHash,
/// beneficiary, stateRoot, transactionsRoot, receiptsRoot, logsBloom, difficulty, number,
/// gasLimit, gasUsed, …).
pub const HEADER_TRANSACTIONS_ROOT_INDEX: usize = 4;
/// Position of `receiptsRoot` in a header's RLP list.
pub const HEADER_RECEIPTS_ROOT_INDEX: usize = 5;
/// Position of `logsBloom` in a header's RLP list.
pub const HEADER_LOGS_BLOOM_INDEX: usize = 6;
/// Position of `number` in a header's RLP list.
const HEADER_NUMBER_INDEX: usize = 8;
/// Position of `gasUsed` in a header's RLP list.
pub const HEADER_GAS_USED_INDEX: usize = 10;
/// Position of `timestamp` in a header's RLP list.
pub const HEADER_TIMESTAMP_INDEX: usize = 11;
/// Position of `blobGasUsed` in a header's RLP list (Cancun on: … baseFeePerGas,
/// withdrawalsRoot, blobGasUsed, excessBlobGas, parentBeaconBlockRoot, requestsHash).
pub const HEADER_BLOB_GAS_USED_INDEX: usize = 17;
/// Position of `requestsHash` in a header's RLP list (Prague on).
pub const HEADER_REQUESTS_HASH_INDEX: usize = 20;

/// One of the test chains under `fixtures/chains/`: a genesis file and a chain file.
#[derive(Debug, Clone)]
pub struct ChainFixture {
    /// The chain's directory.
    pub dir: PathBuf,
    /// Blocks in its chain file, from `fixtures/README.md`.
    pub block_count: usize,
    /// Transactions in its chain file, from `fixtures/README.md`.
    pub tx_count: usize,
}

impl ChainFixture {
    /// go-ethereum's eth protocol test chain: 600 blocks, 603 transactions.
    pub fn geth_ethtest() -> Self {
        Self::named("geth-ethtest", 600, 603)
    }

    /// hive's sync test chain: 3,000 blocks, 546 transactions.
    pub fn hive_sync() -> Self {
        Self::named("hive-sync", 3000, 546)
    }

    fn named(name: &str, block_count: usize, tx_count: usize) -> Self {
        Self {
            dir: fixtures_dir().join("chains").join(name),
            block_count,
            tx_count,
        }
    }

    /// `genesis.json`.
    pub fn genesis_path(&self) -> PathBuf {
        self.dir.join("genesis.json")
    }

    /// `chain.rlp`.
    pub fn chain_path(&self) -> PathBuf {
        self.dir.join("chain.rlp")
    }

    /// The chain file's bytes.
    pub fn chain_bytes(&self) -> Vec<u8> {
        let path = self.chain_path();
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }
}

/// A block of a chain file (`[header, txs, ommers, withdrawals?]`) as the tests frame it.
#[derive(Debug, Clone)]
pub struct RawBlock<'a> {
    /// Where the block starts in the file.
    pub offset: usize,
    /// The whole block item.
    pub encoded: &'a [u8],
    /// The header item (first element of the block list).
    pub header: RlpItem<'a>,
    /// The elements after the header: the body's `[txs, ommers, withdrawals?]`.
    pub body_elements: Vec<RlpItem<'a>>,
}

impl<'a> RawBlock<'a> {
    /// The block number, read from the header's RLP.
    pub fn number(&self) -> u64 {
        self.header.elements()[HEADER_NUMBER_INDEX].as_u64()
    }

    /// keccak256 of the header's bytes.
    pub fn hash(&self) -> B256 {
        keccak256(self.header.encoded)
    }

    /// The header's parentHash field.
    pub fn parent_hash(&self) -> B256 {
        B256::from_slice(self.header.elements()[0].payload)
    }

    /// The transactions list item (second element of the block list).
    pub fn transactions_list(&self) -> RlpItem<'a> {
        self.body_elements[0]
    }

    /// The transactions in block-body encoding (legacy as a list, typed as a string).
    pub fn transactions(&self) -> Vec<RlpItem<'a>> {
        self.transactions_list().elements()
    }

    /// The withdrawals, when the block carries a withdrawals list.
    pub fn withdrawal_count(&self) -> usize {
        self.body_elements
            .get(2)
            .map_or(0, |withdrawals| withdrawals.elements().len())
    }

    /// The body `[txs, ommers, withdrawals?]`: the block list without its header.
    pub fn body(&self) -> Vec<u8> {
        frame_list(&concat_encoded(&self.body_elements))
    }

    /// The header field at `index` (see the `HEADER_*_INDEX` constants).
    pub fn header_field(&self, index: usize) -> RlpItem<'a> {
        self.header.elements()[index]
    }

    /// A 32-byte header field (a root or hash) at `index`.
    pub fn header_hash(&self, index: usize) -> B256 {
        B256::from_slice(self.header_field(index).payload)
    }

    /// An integer header field at `index`.
    pub fn header_u64(&self, index: usize) -> u64 {
        self.header_field(index).as_u64()
    }

    /// The header's fields, each as its whole encoding, to edit and re-frame.
    pub fn header_fields(&self) -> Vec<Vec<u8>> {
        self.header
            .elements()
            .iter()
            .map(|field| field.encoded.to_vec())
            .collect()
    }

    /// This block re-framed with the header made of `header_fields`, the body as it is.
    pub fn with_header(&self, header_fields: &[Vec<u8>]) -> Vec<u8> {
        let txs: Vec<Vec<u8>> = self
            .transactions()
            .iter()
            .map(|tx| tx.encoded.to_vec())
            .collect();
        self.rebuilt(header_fields, &txs)
    }

    /// This block re-framed with the header made of `header_fields` and the transactions
    /// `txs` (each in block-body encoding), keeping the rest of the body (ommers,
    /// withdrawals) as it is.
    pub fn rebuilt(&self, header_fields: &[Vec<u8>], txs: &[Vec<u8>]) -> Vec<u8> {
        let header = frame_list(&header_fields.concat());
        let txs = frame_list(&txs.concat());
        let rest = concat_encoded(&self.body_elements[1..]);
        frame_list(&[header, txs, rest].concat())
    }
}

/// The EIP-2718 consensus bytes of a transaction or receipt in a body-style list: a legacy
/// item's list encoding, or a typed item's `type ‖ payload` (the string's payload).
pub fn consensus_bytes<'a>(item: &RlpItem<'a>) -> &'a [u8] {
    if item.is_list {
        item.encoded
    } else {
        item.payload
    }
}

/// The root of the Merkle-Patricia trie keyed by `rlp(index)` over `items` (consensus bytes),
/// as a header's transactionsRoot and receiptsRoot commit to, computed by alloy-trie.
pub fn ordered_root(items: &[&[u8]]) -> B256 {
    alloy_consensus::proofs::ordered_trie_root_with_encoder(items, |item, out| {
        out.extend_from_slice(item);
    })
}

/// `blocks` framed again one after the other, each with the hash of the one before as its
/// parentHash (the first's: `parent`), everything else as it was; so a chain file links after
/// a block was replaced by an edited one.
pub fn relinked(blocks: &[RawBlock<'_>], mut parent: B256) -> Vec<u8> {
    let mut file = Vec::new();
    for block in blocks {
        let mut fields = block.header_fields();
        fields[HEADER_PARENT_HASH_INDEX] = super::rlp::encode_string(&parent.0);
        let framed = block.with_header(&fields);
        parent = raw_blocks(&framed)[0].hash();
        file.extend_from_slice(&framed);
    }
    file
}

/// `file` with `block`'s item replaced by `replacement`.
pub fn with_block_replaced(file: &[u8], block: &RawBlock<'_>, replacement: &[u8]) -> Vec<u8> {
    let end = block.offset + block.encoded.len();
    [&file[..block.offset], replacement, &file[end..]].concat()
}

/// `file` cut right before `block`, with `replacement` as its last block.
pub fn ending_with_block(file: &[u8], block: &RawBlock<'_>, replacement: &[u8]) -> Vec<u8> {
    [&file[..block.offset], replacement].concat()
}

/// Where `part` (a slice of `whole`) starts in `whole`.
pub fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    let offset = part.as_ptr() as usize - whole.as_ptr() as usize;
    assert!(
        offset + part.len() <= whole.len(),
        "not a slice of the file"
    );
    offset
}

/// Write `bytes` as `name` in `dir` and return the path.
pub fn write_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// Frame a chain file into its blocks; panics when the file does not frame cleanly.
pub fn raw_blocks(file: &[u8]) -> Vec<RawBlock<'_>> {
    let mut offset = 0;
    split_items(file)
        .into_iter()
        .map(|block| {
            let mut elements = block.elements();
            assert!(
                elements.len() >= 3,
                "block at byte {offset} has {} elements",
                elements.len()
            );
            let header = elements.remove(0);
            let raw = RawBlock {
                offset,
                encoded: block.encoded,
                header,
                body_elements: elements,
            };
            offset += block.encoded.len();
            raw
        })
        .collect()
}

/// A transaction's hash: keccak256 of a legacy transaction's list encoding, or of a typed
/// transaction's `type ‖ payload` (the string's payload).
pub fn tx_hash(tx: &RlpItem<'_>) -> B256 {
    keccak256(consensus_bytes(tx))
}

/// A transaction's EIP-2718 type: 0 for legacy, else the first byte of the typed envelope.
pub fn tx_type(tx: &RlpItem<'_>) -> u8 {
    if tx.is_list {
        0
    } else {
        tx.payload[0]
    }
}

/// The keys `import` writes for `blocks`: header, transactions and body per block, and a
/// `blk:txhash` per transaction.
pub fn block_keys(blocks: &[RawBlock<'_>]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for block in blocks {
        let n = block.number();
        keys.insert(format!("blk:hdr:{n}"));
        keys.insert(format!("blk:txs:{n}"));
        keys.insert(format!("blk:body:{n}"));
        for tx in block.transactions() {
            keys.insert(format!("blk:txhash:{:#x}", tx_hash(&tx)));
        }
    }
    keys
}

/// One account of a genesis `alloc`, read from the JSON.
#[derive(Debug, Clone)]
pub struct GenesisAccount {
    /// The address.
    pub address: Address,
    /// Balance in wei.
    pub balance: U256,
    /// Nonce (0 when absent).
    pub nonce: u64,
    /// Code bytes (empty when absent).
    pub code: Vec<u8>,
    /// Storage slots with non-zero values.
    pub storage: Vec<(B256, B256)>,
}

impl GenesisAccount {
    /// `st:latest:acc:{EIP-55 address}`.
    pub fn account_key(&self) -> String {
        latest_account_key(&self.address)
    }

    /// keccak256 of the code, or of the empty string without code.
    pub fn code_hash(&self) -> String {
        if self.code.is_empty() {
            EMPTY_CODE_HASH.to_string()
        } else {
            format!("{:#x}", keccak256(&self.code))
        }
    }

    /// The account's storage root, by alloy-trie over its slots.
    pub fn storage_root(&self) -> B256 {
        alloy_trie::root::storage_root_unhashed(
            self.storage
                .iter()
                .map(|(slot, value)| (*slot, U256::from_be_bytes(value.0))),
        )
    }

    /// `st:latest:stor:{EIP-55 address}:{slot}` for one slot.
    pub fn storage_key(&self, slot: &B256) -> String {
        latest_storage_key(&self.address, slot)
    }
}

impl GenesisFile {
    /// The state root of the allocation, by alloy-trie.
    pub fn state_root(&self) -> B256 {
        alloy_trie::root::state_root_unhashed(self.accounts.iter().map(|account| {
            let code_hash = B256::from_str(&account.code_hash()).expect("a code hash");
            let leaf = alloy_trie::TrieAccount {
                nonce: account.nonce,
                balance: account.balance,
                storage_root: account.storage_root(),
                code_hash,
            };
            (account.address, leaf)
        }))
    }
}

/// A geth-style genesis file's chain id and allocation.
#[derive(Debug, Clone)]
pub struct GenesisFile {
    /// `config.chainId`.
    pub chain_id: u64,
    /// The `alloc` accounts.
    pub accounts: Vec<GenesisAccount>,
}

impl GenesisFile {
    /// Read a genesis JSON file.
    pub fn read(path: &std::path::Path) -> Self {
        let text =
            std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let json: serde_json::Value = serde_json::from_slice(&text).expect("genesis is JSON");
        let chain_id = json["config"]["chainId"]
            .as_u64()
            .expect("genesis config.chainId");
        let alloc = json["alloc"].as_object().expect("genesis alloc");
        let accounts = alloc
            .iter()
            .map(|(address, account)| GenesisAccount {
                address: Address::from_str(address).expect("alloc address"),
                balance: json_quantity(&account["balance"]),
                nonce: json_quantity(&account["nonce"]).to(),
                code: account["code"]
                    .as_str()
                    .map(|code| alloy_primitives::hex::decode(code).expect("code hex"))
                    .unwrap_or_default(),
                storage: account["storage"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(slot, value)| (word(slot), word(value.as_str().expect("slot value"))))
                    .filter(|(_, value)| !value.is_zero())
                    .collect(),
            })
            .collect();
        Self { chain_id, accounts }
    }

    /// The keys `init` writes besides the state tries: every account, every non-zero slot,
    /// every code, block 0's header, the execution progress, the chain record and the merkle
    /// stage's checkpoint.
    pub fn init_keys(&self) -> BTreeSet<String> {
        let mut keys: BTreeSet<String> = [
            "blk:hdr:0",
            "idx:exec:progress",
            "idx:chain",
            "idx:stage:merkle",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        for account in &self.accounts {
            keys.insert(account.account_key());
            if !account.code.is_empty() {
                keys.insert(format!("st:code:{}", account.code_hash()));
            }
            for (slot, _) in &account.storage {
                keys.insert(account.storage_key(slot));
            }
        }
        keys
    }
}

/// A JSON quantity: absent (zero), a number, or a `0x`-hex or decimal string.
fn json_quantity(value: &serde_json::Value) -> U256 {
    match value {
        serde_json::Value::Null => U256::ZERO,
        serde_json::Value::Number(n) => U256::from(n.as_u64().expect("integer quantity")),
        serde_json::Value::String(s) => U256::from_str(s).expect("quantity string"),
        other => panic!("not a quantity: {other}"),
    }
}

/// A 32-byte word from `0x`-hex of up to 64 digits, left-padded as geth reads genesis storage.
pub fn word(hex: &str) -> B256 {
    let digits = hex.strip_prefix("0x").unwrap_or(hex);
    B256::from_str(&format!("{digits:0>64}")).expect("storage word hex")
}

/// One account of a `headstate.json` (geth's state dump after the chain's last block).
#[derive(Debug, Clone)]
pub struct DumpAccount {
    /// Balance in wei, as the file's decimal string.
    pub balance: String,
    /// Nonce.
    pub nonce: u64,
    /// `0x` code hash.
    pub code_hash: String,
    /// Code bytes (empty when the file has none).
    pub code: Vec<u8>,
    /// The account's storage trie root as the file gives it.
    pub storage_root: String,
    /// Every storage slot (the dump holds no zero values).
    pub storage: BTreeMap<B256, B256>,
}

/// A `headstate.json`: every account of the state after the chain's last block.
#[derive(Debug, Clone)]
pub struct HeadState {
    /// Accounts by address.
    pub accounts: BTreeMap<Address, DumpAccount>,
}

impl HeadState {
    /// Read a geth state dump (`accounts` keyed by address; storage values are hex without
    /// `0x` and without leading zeros).
    pub fn read(path: &std::path::Path) -> Self {
        let text =
            std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let json: serde_json::Value = serde_json::from_slice(&text).expect("state dump is JSON");
        let accounts = json["accounts"]
            .as_object()
            .expect("state dump accounts")
            .iter()
            .map(|(address, account)| {
                let text = |field: &str| {
                    account[field]
                        .as_str()
                        .unwrap_or_else(|| panic!("{address}: {field} is not a string"))
                        .to_string()
                };
                let dumped = DumpAccount {
                    balance: text("balance"),
                    nonce: account["nonce"].as_u64().expect("dump nonce"),
                    code_hash: text("codeHash"),
                    code: account["code"]
                        .as_str()
                        .map(|code| alloy_primitives::hex::decode(code).expect("code hex"))
                        .unwrap_or_default(),
                    storage_root: text("root"),
                    storage: account["storage"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(slot, value)| {
                            (word(slot), word(value.as_str().expect("slot value")))
                        })
                        .collect(),
                };
                (Address::from_str(address).expect("dump address"), dumped)
            })
            .collect();
        Self { accounts }
    }
}

/// `st:latest:acc:{EIP-55 address}`.
pub fn latest_account_key(address: &Address) -> String {
    format!("st:latest:acc:{}", address.to_checksum(None))
}

/// `st:latest:stor:{EIP-55 address}:{slot}`.
pub fn latest_storage_key(address: &Address, slot: &B256) -> String {
    format!("st:latest:stor:{}:{slot:#x}", address.to_checksum(None))
}
