//! The block codecs of `primitives::block` against real chain data: every block of both fixture
//! chains decodes and re-encodes (header, transaction list, body, whole block) byte for byte
//! as the test's own RLP framing slices them from the file, and real BSC headers round-trip
//! and hash to their known block hashes.

use crate::common::chain::{raw_blocks, tx_type, ChainFixture, RawBlock};
use crate::common::fixtures_dir;
use crate::common::rlp::{encode_string, frame_list};
use alloy_primitives::{hex, keccak256, B256};
use primitives::block::{
    decode_block, decode_header, encode_block, encode_body, encode_header, encode_transactions,
};
use std::collections::BTreeSet;
use std::str::FromStr;

/// Decode `raw` with the project's decoder and check every re-encoding against the raw bytes.
fn assert_block_round_trips(raw: &RawBlock<'_>) {
    let n = raw.number();
    let mut input = raw.encoded;
    let block = decode_block(&format!("block {n}"), &mut input)
        .unwrap_or_else(|e| panic!("block {n} does not decode: {e}"));
    assert!(
        input.is_empty(),
        "block {n}: decoder left {} bytes",
        input.len()
    );
    assert_eq!(block.number(), n, "block number");
    assert_eq!(
        block.hash,
        raw.hash(),
        "block {n}: hash of the header bytes"
    );
    assert_eq!(
        block.body.transactions.len(),
        raw.transactions().len(),
        "block {n}: transaction count"
    );
    assert_eq!(
        encode_header(&block.header),
        raw.header.encoded,
        "block {n}: header"
    );
    assert_eq!(
        encode_transactions(&block.body.transactions),
        raw.transactions_list().encoded,
        "block {n}: transaction list"
    );
    assert_eq!(encode_body(&block.body), raw.body(), "block {n}: body");
    assert_eq!(encode_block(&block), raw.encoded, "block {n}: whole block");
}

/// Every block of `chain` round-trips, links to its parent, and the file holds the counts its
/// README states.
fn assert_chain_round_trips(chain: &ChainFixture) -> Vec<u8> {
    let file = chain.chain_bytes();
    let blocks = raw_blocks(&file);
    assert_eq!(blocks.len(), chain.block_count, "blocks in {:?}", chain.dir);
    let txs: usize = blocks.iter().map(|b| b.transactions().len()).sum();
    assert_eq!(txs, chain.tx_count, "transactions in {:?}", chain.dir);
    for (index, raw) in blocks.iter().enumerate() {
        assert_eq!(
            raw.number(),
            index as u64 + 1,
            "chain files start at block 1"
        );
        assert_block_round_trips(raw);
    }
    for pair in blocks.windows(2) {
        let mut input = pair[1].encoded;
        let child = decode_block("child", &mut input).expect("child decodes");
        assert_eq!(
            child.header.parent_hash,
            pair[0].hash(),
            "block {}'s parentHash is block {}'s hash",
            pair[1].number(),
            pair[0].number()
        );
    }
    file
}

#[test]
fn geth_ethtest_chain_round_trips_byte_for_byte() {
    let chain = ChainFixture::geth_ethtest();
    let file = assert_chain_round_trips(&chain);
    let blocks = raw_blocks(&file);
    // README: "603 txs of all five types, 54 withdrawals".
    let types: BTreeSet<u8> = blocks
        .iter()
        .flat_map(|b| b.transactions())
        .map(|tx| tx_type(&tx))
        .collect();
    assert_eq!(types, BTreeSet::from([0, 1, 2, 3, 4]), "transaction types");
    let withdrawals: usize = blocks.iter().map(RawBlock::withdrawal_count).sum();
    assert_eq!(withdrawals, 54, "withdrawals");
}

#[test]
fn hive_sync_chain_round_trips_byte_for_byte() {
    assert_chain_round_trips(&ChainFixture::hive_sync());
}

#[test]
fn header_decoder_rejects_trailing_bytes() {
    let file = ChainFixture::geth_ethtest().chain_bytes();
    let blocks = raw_blocks(&file);
    let mut padded = blocks[0].header.encoded.to_vec();
    padded.push(0x80);
    let error = decode_header("blk:hdr:1", &padded).expect_err("trailing byte accepted");
    assert!(error.to_string().contains("blk:hdr:1"), "{error}");
}

/// The fields of a post-Prague header in consensus order, with whether each is an integer
/// (minimal big-endian) rather than fixed bytes.
const HEADER_FIELDS: &[(&str, bool)] = &[
    ("parentHash", false),
    ("sha3Uncles", false),
    ("miner", false),
    ("stateRoot", false),
    ("transactionsRoot", false),
    ("receiptsRoot", false),
    ("logsBloom", false),
    ("difficulty", true),
    ("number", true),
    ("gasLimit", true),
    ("gasUsed", true),
    ("timestamp", true),
    ("extraData", false),
    ("mixHash", false),
    ("nonce", false),
    ("baseFeePerGas", true),
    ("withdrawalsRoot", false),
    ("blobGasUsed", true),
    ("excessBlobGas", true),
    ("parentBeaconBlockRoot", false),
    ("requestsHash", false),
];

/// The consensus RLP of a header given as JSON, built by the test's own encoder.
fn header_rlp_from_json(header: &serde_json::Value) -> Vec<u8> {
    let mut payload = Vec::new();
    for (field, is_integer) in HEADER_FIELDS {
        let text = header[field]
            .as_str()
            .unwrap_or_else(|| panic!("header field {field} missing"));
        let digits = text.strip_prefix("0x").expect("0x-prefixed hex");
        let mut bytes = if *is_integer {
            hex::decode(format!(
                "{digits:0>width$}",
                width = digits.len().div_ceil(2) * 2
            ))
        } else {
            hex::decode(digits)
        }
        .unwrap_or_else(|e| panic!("header field {field}: {e}"));
        if *is_integer {
            let leading_zeros = bytes.iter().take_while(|b| **b == 0).count();
            bytes.drain(..leading_zeros);
        }
        payload.extend(encode_string(&bytes));
    }
    frame_list(&payload)
}

#[test]
fn real_bsc_headers_round_trip_and_hash_to_their_block_hashes() {
    let path = fixtures_dir().join("bsc/headers-real.json");
    let text = std::fs::read(&path).expect("read headers-real.json");
    let json: serde_json::Value = serde_json::from_slice(&text).expect("headers-real.json");
    let entries = json["headers"].as_array().expect("headers array");
    assert_eq!(entries.len(), 15, "README: 15 real BSC headers");
    for entry in entries {
        let number = entry["number"].as_u64().expect("number");
        let expected_hash = B256::from_str(entry["hash"].as_str().expect("hash")).expect("hash");
        let rlp = header_rlp_from_json(&entry["header"]);
        assert_eq!(
            keccak256(&rlp),
            expected_hash,
            "header {number}: the test's RLP does not hash to the listed hash"
        );
        let key = format!("blk:hdr:{number}");
        let (header, hash) =
            decode_header(&key, &rlp).unwrap_or_else(|e| panic!("header {number}: {e}"));
        assert_eq!(hash, expected_hash, "header {number}: decoded hash");
        assert_eq!(header.number, number, "header {number}: number field");
        assert_eq!(encode_header(&header), rlp, "header {number}: re-encoding");
    }
}
