//! A second branch of a fixture chain, built by the tests alone: Prague headers as typed fields,
//! read and written with the tests' own RLP framing (`super::rlp`), the EIP-1559 base fee and
//! EIP-4844 excess blob gas computed here, and empty blocks forked off a fixture block; the
//! store entries and chain file that put such a branch where the syncer would; and a stage
//! checkpoint's block and hash, which tell which branch a stage is on.
//!
//! The header codec proves itself before any branch is built: every Prague header of the
//! fixture chain must re-encode byte for byte, and every Prague block's base fee and excess
//! blob gas must follow from its parent by the rules below.

use super::chain::RawBlock;
use super::redis_server::RedisServer;
use super::rlp::{encode_string, encode_u64, frame_list, RlpItem};
use alloy_primitives::{keccak256, B256};
use std::path::Path;
use std::str::FromStr;

/// Blob gas of one blob (EIP-4844 `GAS_PER_BLOB`).
pub const GAS_PER_BLOB: u64 = 1 << 17;
/// EIP-7685's requestsHash of a block without requests: sha256 of the empty string.
pub const EMPTY_REQUESTS_HASH: &str =
    "0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Fields of a Prague header: London's 16, withdrawalsRoot, blobGasUsed, excessBlobGas,
/// parentBeaconBlockRoot, requestsHash.
const PRAGUE_HEADER_FIELDS: usize = 21;
/// EIP-1559's elasticity multiplier.
const ELASTICITY_MULTIPLIER: u64 = 2;
/// EIP-1559's base fee change denominator.
const BASE_FEE_CHANGE_DENOMINATOR: u128 = 8;
/// What the branch's blocks carry in extraData, so no header equals a fixture header.
const BRANCH_EXTRA_DATA: &[u8] = b"reorg";

/// The root of an empty Merkle-Patricia trie: keccak256 of the RLP empty string.
pub fn empty_trie_root() -> B256 {
    keccak256(encode_string(&[]))
}

/// The ommers hash of a block without ommers: keccak256 of the RLP empty list.
pub fn empty_ommers_hash() -> B256 {
    keccak256(frame_list(&[]))
}

/// A Prague block header, field by field in consensus order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PragueHeader {
    pub parent_hash: B256,
    pub ommers_hash: B256,
    pub beneficiary: [u8; 20],
    pub state_root: B256,
    pub transactions_root: B256,
    pub receipts_root: B256,
    pub logs_bloom: Vec<u8>,
    pub difficulty: u64,
    pub number: u64,
    pub gas_limit: u64,
    pub gas_used: u64,
    pub timestamp: u64,
    pub extra_data: Vec<u8>,
    pub mix_hash: B256,
    pub nonce: [u8; 8],
    pub base_fee_per_gas: u64,
    pub withdrawals_root: B256,
    pub blob_gas_used: u64,
    pub excess_blob_gas: u64,
    pub parent_beacon_block_root: B256,
    pub requests_hash: B256,
}

/// A fixed-size byte string field.
fn fixed<const N: usize>(field: &RlpItem<'_>, name: &str) -> [u8; N] {
    assert!(!field.is_list, "{name} is a list");
    field
        .payload
        .try_into()
        .unwrap_or_else(|_| panic!("{name} has {} bytes, not {N}", field.payload.len()))
}

impl PragueHeader {
    /// Read a header item with Prague's 21 fields; `None` for a header of another fork (a
    /// different field count).
    pub fn decode(header: &RlpItem<'_>) -> Option<Self> {
        let f = header.elements();
        if f.len() != PRAGUE_HEADER_FIELDS {
            return None;
        }
        let hash = |i: usize, name: &str| B256::from(fixed::<32>(&f[i], name));
        Some(Self {
            parent_hash: hash(0, "parentHash"),
            ommers_hash: hash(1, "ommersHash"),
            beneficiary: fixed(&f[2], "beneficiary"),
            state_root: hash(3, "stateRoot"),
            transactions_root: hash(4, "transactionsRoot"),
            receipts_root: hash(5, "receiptsRoot"),
            logs_bloom: fixed::<256>(&f[6], "logsBloom").to_vec(),
            difficulty: f[7].as_u64(),
            number: f[8].as_u64(),
            gas_limit: f[9].as_u64(),
            gas_used: f[10].as_u64(),
            timestamp: f[11].as_u64(),
            extra_data: f[12].payload.to_vec(),
            mix_hash: hash(13, "mixHash"),
            nonce: fixed(&f[14], "nonce"),
            base_fee_per_gas: f[15].as_u64(),
            withdrawals_root: hash(16, "withdrawalsRoot"),
            blob_gas_used: f[17].as_u64(),
            excess_blob_gas: f[18].as_u64(),
            parent_beacon_block_root: hash(19, "parentBeaconBlockRoot"),
            requests_hash: hash(20, "requestsHash"),
        })
    }

    /// The header's RLP: a list of its 21 fields.
    pub fn encode(&self) -> Vec<u8> {
        let fields = [
            encode_string(self.parent_hash.as_slice()),
            encode_string(self.ommers_hash.as_slice()),
            encode_string(&self.beneficiary),
            encode_string(self.state_root.as_slice()),
            encode_string(self.transactions_root.as_slice()),
            encode_string(self.receipts_root.as_slice()),
            encode_string(&self.logs_bloom),
            encode_u64(self.difficulty),
            encode_u64(self.number),
            encode_u64(self.gas_limit),
            encode_u64(self.gas_used),
            encode_u64(self.timestamp),
            encode_string(&self.extra_data),
            encode_string(self.mix_hash.as_slice()),
            encode_string(&self.nonce),
            encode_u64(self.base_fee_per_gas),
            encode_string(self.withdrawals_root.as_slice()),
            encode_u64(self.blob_gas_used),
            encode_u64(self.excess_blob_gas),
            encode_string(self.parent_beacon_block_root.as_slice()),
            encode_string(self.requests_hash.as_slice()),
        ];
        frame_list(&fields.concat())
    }

    /// keccak256 of the encoding: the block hash.
    pub fn hash(&self) -> B256 {
        keccak256(self.encode())
    }

    /// EIP-1559: the base fee of this header's child (elasticity 2, denominator 8).
    pub fn next_base_fee(&self) -> u64 {
        let target = u128::from(self.gas_limit / ELASTICITY_MULTIPLIER);
        let (used, base) = (u128::from(self.gas_used), u128::from(self.base_fee_per_gas));
        let next = match used.cmp(&target) {
            std::cmp::Ordering::Equal => base,
            std::cmp::Ordering::Greater => {
                base + (base * (used - target) / target / BASE_FEE_CHANGE_DENOMINATOR).max(1)
            }
            std::cmp::Ordering::Less => {
                base - base * (target - used) / target / BASE_FEE_CHANGE_DENOMINATOR
            }
        };
        u64::try_from(next).expect("base fee fits u64")
    }

    /// EIP-4844: the excess blob gas of this header's child, whose fork targets
    /// `target_blob_gas` per block.
    pub fn next_excess_blob_gas(&self, target_blob_gas: u64) -> u64 {
        (self.excess_blob_gas + self.blob_gas_used).saturating_sub(target_blob_gas)
    }
}

/// Prague's target blob gas per block: `config.blobSchedule.prague.target` blobs of the genesis
/// file, times [`GAS_PER_BLOB`].
pub fn prague_target_blob_gas(genesis: &Path) -> u64 {
    let text =
        std::fs::read(genesis).unwrap_or_else(|e| panic!("cannot read {}: {e}", genesis.display()));
    let json: serde_json::Value = serde_json::from_slice(&text).expect("genesis is JSON");
    let target = json["config"]["blobSchedule"]["prague"]["target"]
        .as_u64()
        .expect("config.blobSchedule.prague.target");
    target * GAS_PER_BLOB
}

/// The Prague headers of a chain file's blocks, after checking the codec and the rules on them:
/// each header re-encodes to its exact bytes, and each block after a Prague parent has the
/// base fee and excess blob gas the rules give. Panics when the file has no Prague block.
pub fn checked_prague_headers(blocks: &[RawBlock<'_>], target_blob_gas: u64) -> Vec<PragueHeader> {
    let headers: Vec<PragueHeader> = blocks
        .iter()
        .filter_map(|block| {
            let header = PragueHeader::decode(&block.header)?;
            assert_eq!(
                header.encode(),
                block.header.encoded,
                "the tests' encoding of block {}'s header",
                header.number
            );
            assert_eq!(
                header.hash(),
                block.hash(),
                "block {}'s hash",
                header.number
            );
            Some(header)
        })
        .collect();
    assert!(!headers.is_empty(), "the chain has Prague blocks");
    for pair in headers.windows(2) {
        let (parent, child) = (&pair[0], &pair[1]);
        assert_eq!(
            child.parent_hash,
            parent.hash(),
            "block {}'s parent",
            child.number
        );
        assert_eq!(
            parent.next_base_fee(),
            child.base_fee_per_gas,
            "the tests' EIP-1559 rule vs block {}",
            child.number
        );
        assert_eq!(
            parent.next_excess_blob_gas(target_blob_gas),
            child.excess_blob_gas,
            "the tests' EIP-4844 rule vs block {}",
            child.number
        );
    }
    headers
}

/// Empty blocks forked off a chain: no transactions, no ommers, an empty withdrawals list.
#[derive(Debug, Clone)]
pub struct Branch {
    /// The headers, oldest first.
    pub headers: Vec<PragueHeader>,
}

impl Branch {
    /// Empty blocks `fork + 1..=last` on top of the fixture's block `fork` (all of them
    /// Prague). Each copies beneficiary, stateRoot (which the executor does not verify),
    /// mixHash and nonce from the fixture block it replaces (the fixture's last block past the
    /// fixture's end), and has: the previous block's hash as parent, the empty ommers hash, the
    /// empty trie root for transactions, receipts and withdrawals, a zero bloom, difficulty 0,
    /// the parent's gas limit, gasUsed 0, the parent's time + 1, extraData `reorg`, the base
    /// fee and excess blob gas the rules give, no blob gas, a beacon root of its own and the
    /// requestsHash of no requests.
    pub fn empty(blocks: &[RawBlock<'_>], genesis: &Path, fork: u64, last: u64) -> Self {
        let target = prague_target_blob_gas(genesis);
        let fixture = checked_prague_headers(blocks, target);
        let by_number = |n: u64| {
            fixture
                .iter()
                .find(|header| header.number == n)
                .unwrap_or_else(|| panic!("block {n} is a Prague block of the fixture"))
        };
        let fixture_head = fixture.last().expect("a Prague block").number;
        let empty_root = empty_trie_root();
        let requests_hash = B256::from_str(EMPTY_REQUESTS_HASH).expect("hash");
        let mut parent = by_number(fork).clone();
        let mut headers = Vec::new();
        for number in fork + 1..=last {
            let template = by_number(number.min(fixture_head));
            let header = PragueHeader {
                parent_hash: parent.hash(),
                ommers_hash: empty_ommers_hash(),
                beneficiary: template.beneficiary,
                state_root: template.state_root,
                transactions_root: empty_root,
                receipts_root: empty_root,
                logs_bloom: vec![0; 256],
                difficulty: 0,
                number,
                gas_limit: parent.gas_limit,
                gas_used: 0,
                timestamp: parent.timestamp + 1,
                extra_data: BRANCH_EXTRA_DATA.to_vec(),
                mix_hash: template.mix_hash,
                nonce: template.nonce,
                base_fee_per_gas: parent.next_base_fee(),
                withdrawals_root: empty_root,
                blob_gas_used: 0,
                excess_blob_gas: parent.next_excess_blob_gas(target),
                parent_beacon_block_root: keccak256(format!("reorg beacon root {number}")),
                requests_hash,
            };
            parent = header.clone();
            headers.push(header);
        }
        Self { headers }
    }

    /// The last block.
    pub fn head(&self) -> &PragueHeader {
        self.headers.last().expect("a branch has blocks")
    }

    /// An empty block's body `[txs, ommers, withdrawals]`: three empty lists.
    pub fn empty_body() -> Vec<u8> {
        let empty = frame_list(&[]);
        frame_list(&[empty.clone(), empty.clone(), empty].concat())
    }

    /// The branch as a chain file: each block `[header, [], [], []]`.
    pub fn chain_file(&self) -> Vec<u8> {
        let empty = frame_list(&[]);
        self.headers
            .iter()
            .flat_map(|header| {
                frame_list(&[header.encode(), empty.clone(), empty.clone(), empty.clone()].concat())
            })
            .collect()
    }

    /// What the syncer writes for the branch, as `import` would: per block `blk:hdr:{n}` (the
    /// header), `blk:txs:{n}` (an empty list) and `blk:body:{n}`; then the sync progress at the
    /// branch's head.
    pub fn store_entries(&self) -> Vec<(String, Vec<u8>)> {
        let mut entries = Vec::new();
        for header in &self.headers {
            let n = header.number;
            entries.push((format!("blk:hdr:{n}"), header.encode()));
            entries.push((format!("blk:txs:{n}"), frame_list(&[])));
            entries.push((format!("blk:body:{n}"), Self::empty_body()));
        }
        let progress = serde_json::json!({ "latestSyncedBlock": self.head().number });
        entries.push((
            "idx:sync:progress".to_string(),
            serde_json::to_vec(&progress).expect("JSON"),
        ));
        entries
    }

    /// Write [`store_entries`](Self::store_entries) into `server`: the blocks in one MSET, then
    /// the sync progress, so a daemon polling the progress sees whole blocks.
    pub fn write_to(&self, server: &RedisServer) {
        let mut entries = self.store_entries();
        let progress = entries.pop().expect("the sync progress");
        server.set_many(&entries);
        server.set_many(&[progress]);
    }
}

/// A stage checkpoint `idx:stage:{name}`: the last block the stage finished and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// `block`.
    pub block: u64,
    /// `hash`.
    pub hash: B256,
}

/// `idx:stage:{stage}` in a running server; `None` before the stage wrote one.
pub fn checkpoint(server: &RedisServer, stage: &str) -> Option<Checkpoint> {
    let key = format!("idx:stage:{stage}");
    let bytes = server.get(&key)?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{key} is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    let block = json["block"]
        .as_u64()
        .unwrap_or_else(|| panic!("{key}.block in {json}"));
    let hash = json["hash"]
        .as_str()
        .and_then(|hash| B256::from_str(hash).ok())
        .unwrap_or_else(|| panic!("{key}.hash in {json}"));
    Some(Checkpoint { block, hash })
}
