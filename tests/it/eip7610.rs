//! EIP-7610 through the built binary (`init`, `import`, `run --exit-at-head` on the embedded
//! store): a create transaction whose target address has storage but no code and nonce 0
//! collides. By EIP-7610 (extending EIP-684) the creation then fails as if its init code's
//! first byte were an invalid opcode: the transaction is included with status 0, all its gas
//! is consumed, the sender's nonce is raised and it pays for the gas but not the value, and the
//! target keeps its storage untouched. The same block over a genesis whose target has no
//! storage is rejected, since there the creation succeeds and uses less gas than the header
//! says.
//!
//! The chain is built here by hand: the genesis JSON, a transaction signed with alloy's
//! secp256k1 signer by Hardhat's well-known first development key, and the block with its
//! roots computed by the tests' own RLP framing and alloy-trie.

use crate::common::chain::{latest_account_key, latest_storage_key, ordered_root, EMPTY_CODE_HASH};
use crate::common::rlp::{encode_string, encode_u64, first_item, frame_list};
use crate::common::{
    expect_exit_code, expect_success, import, init, raw_json_fields, run_to_head, unverified,
    Backend, COMMAND_FAILED,
};
use alloy_consensus::{
    BlockBody, Header, SignableTransaction, TxEnvelope, TxLegacy, EMPTY_OMMER_ROOT_HASH,
};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{address, b256, Address, Bytes, TxKind, B256, U256};
use alloy_rlp::Encodable;
use serde_json::json;
use std::str::FromStr;

/// Hardhat's first development account: its public secret key and address.
const SENDER_KEY: B256 = b256!("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
const SENDER: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
/// The address the sender's nonce-0 creation targets (Hardhat's well-known first deployment).
const TARGET: Address = address!("5FbDB2315678afecb367f032d93F642f64180aa3");
const COINBASE: Address = address!("c0ffee0000000000000000000000000000000000");
const CHAIN_ID: u64 = 1337;
const SENDER_BALANCE: u64 = 1_000_000_000_000_000_000;
/// The target's one slot before the block: slot 1 holds 0x2a.
const TARGET_SLOT: B256 = b256!("0000000000000000000000000000000000000000000000000000000000000001");
const TARGET_VALUE: u64 = 0x2a;
const GENESIS_GAS_LIMIT: u64 = 30_000_000;
const GENESIS_BASE_FEE: u64 = 1_000_000_000;
/// EIP-1559 after an empty parent: the base fee falls by 1/8, 1 gwei to 0.875 gwei.
const BLOCK_BASE_FEE: u64 = 875_000_000;
const GAS_PRICE: u64 = 1_000_000_000;
const TX_GAS_LIMIT: u64 = 100_000;
const TX_VALUE: u64 = 1;
/// Init code `PUSH1 1 PUSH1 0 SSTORE STOP`: if it ran, slot 0 of the target would be 1.
const INIT_CODE: [u8; 6] = [0x60, 0x01, 0x60, 0x00, 0x55, 0x00];

/// A merged (Paris at genesis) chain whose alloc funds the sender and, when `target_storage`,
/// gives the target the one slot and nothing else (no code, nonce 0, no balance).
fn genesis_json(target_storage: bool) -> serde_json::Value {
    let mut alloc = json!({
        format!("{SENDER:#x}"): { "balance": format!("{SENDER_BALANCE:#x}") },
    });
    if target_storage {
        alloc[format!("{TARGET:#x}")] = json!({
            "balance": "0x0",
            "storage": { format!("{TARGET_SLOT:#x}"): format!("{:#x}", B256::from(U256::from(TARGET_VALUE))) },
        });
    }
    json!({
        "config": {
            "chainId": CHAIN_ID, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0,
            "eip158Block": 0, "byzantiumBlock": 0, "constantinopleBlock": 0,
            "petersburgBlock": 0, "istanbulBlock": 0, "berlinBlock": 0, "londonBlock": 0,
            "terminalTotalDifficulty": 0, "terminalTotalDifficultyPassed": true
        },
        "difficulty": "0x0",
        "gasLimit": format!("{GENESIS_GAS_LIMIT:#x}"),
        "baseFeePerGas": format!("{GENESIS_BASE_FEE:#x}"),
        "timestamp": "0x0",
        "extraData": "0x",
        "alloc": alloc,
    })
}

/// The receipt EIP-684/7610 require, framed by the tests' RLP helpers: a legacy receipt with
/// status 0, all of the transaction's gas as cumulative gas, an empty bloom and no logs.
fn expected_receipt() -> Vec<u8> {
    frame_list(
        &[
            encode_string(&[]),
            encode_u64(TX_GAS_LIMIT),
            encode_string(&[0u8; 256]),
            frame_list(&[]),
        ]
        .concat(),
    )
}

/// The create transaction, signed for the chain.
fn create_transaction() -> TxEnvelope {
    let tx = TxLegacy {
        chain_id: Some(CHAIN_ID),
        nonce: 0,
        gas_price: u128::from(GAS_PRICE),
        gas_limit: TX_GAS_LIMIT,
        to: TxKind::Create,
        value: U256::from(TX_VALUE),
        input: Bytes::from_static(&INIT_CODE),
    };
    let signature =
        alloy_consensus::crypto::secp256k1::sign_message(SENDER_KEY, tx.signature_hash())
            .expect("sign with the development key");
    TxEnvelope::Legacy(tx.into_signed(signature))
}

/// Block 1 on top of `genesis_hash`: the create transaction, with the gas used and receipts
/// root of the collision. The state root is not checked by the executor, so it is left zero.
fn block_one(genesis_hash: B256) -> Vec<u8> {
    let tx = create_transaction();
    let tx_bytes = tx.encoded_2718();
    let receipt = expected_receipt();
    let header = Header {
        parent_hash: genesis_hash,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: COINBASE,
        transactions_root: ordered_root(&[&tx_bytes]),
        receipts_root: ordered_root(&[&receipt]),
        number: 1,
        gas_limit: GENESIS_GAS_LIMIT,
        gas_used: TX_GAS_LIMIT,
        timestamp: 12,
        base_fee_per_gas: Some(BLOCK_BASE_FEE),
        ..Header::default()
    };
    let block = alloy_consensus::Block {
        header,
        body: BlockBody {
            transactions: vec![tx],
            ommers: vec![],
            withdrawals: None,
        },
    };
    let mut out = Vec::new();
    block.encode(&mut out);
    out
}

/// `init` the genesis, `import` block 1, then `run --exit-at-head`; returns the run's output.
fn run_chain(backend: &Backend, target_storage: bool) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let genesis_path = dir.path().join("genesis.json");
    std::fs::write(&genesis_path, genesis_json(target_storage).to_string()).expect("write genesis");
    // The blocks are built by hand without a real stateRoot: the store keeps no tries.
    let stdout = init(backend, &[unverified()], &genesis_path);
    let genesis_hash = stdout
        .lines()
        .find_map(|line| line.strip_prefix("genesis block hash: "))
        .map(|hash| B256::from_str(hash.trim()).expect("printed genesis hash"))
        .unwrap_or_else(|| panic!("no genesis hash in:\n{stdout}"));
    let chain_path = dir.path().join("chain.rlp");
    std::fs::write(&chain_path, block_one(genesis_hash)).expect("write chain file");
    expect_success(&import(backend, &chain_path));
    run_to_head(backend)
}

#[test]
fn create_transaction_collides_with_a_storage_only_account() {
    assert_eq!(
        SENDER.create(0),
        TARGET,
        "the target is the sender's nonce-0 creation"
    );
    let backend = Backend::embedded();
    expect_success(&run_chain(&backend, true));
    let store = backend.snapshot();

    let receipts = first_item(crate::common::value(&store, "blk:rcpt:1")).elements();
    assert_eq!(receipts.len(), 1, "one receipt");
    assert_eq!(
        receipts[0].encoded,
        expected_receipt().as_slice(),
        "status 0, all gas used"
    );

    let sender = raw_json_fields(&store, &latest_account_key(&SENDER));
    assert_eq!(sender["nonce"], "1", "the sender's nonce is raised");
    let paid = u128::from(TX_GAS_LIMIT) * u128::from(GAS_PRICE);
    assert_eq!(
        sender["balance"],
        (u128::from(SENDER_BALANCE) - paid).to_string(),
        "the sender pays all the gas and keeps the value"
    );
    let coinbase = raw_json_fields(&store, &latest_account_key(&COINBASE));
    let tip = u128::from(TX_GAS_LIMIT) * u128::from(GAS_PRICE - BLOCK_BASE_FEE);
    assert_eq!(
        coinbase["balance"],
        tip.to_string(),
        "the coinbase gets the tip"
    );

    let target = raw_json_fields(&store, &latest_account_key(&TARGET));
    assert_eq!(target["balance"], "0", "no value reaches the target");
    assert_eq!(target["nonce"], "0", "the target's nonce is unchanged");
    assert_eq!(
        target["codeHash"],
        format!("\"{}\"", EMPTY_CODE_HASH),
        "the target has no code"
    );
    let slot_key = latest_storage_key(&TARGET, &TARGET_SLOT);
    let slot_prefix = slot_key.trim_end_matches(&format!("{TARGET_SLOT:#x}"));
    let target_slots: Vec<(&String, &Vec<u8>)> = store
        .iter()
        .filter(|(key, _)| key.starts_with(slot_prefix))
        .collect();
    assert_eq!(
        target_slots.len(),
        1,
        "the target's storage: {target_slots:?}"
    );
    assert_eq!(target_slots[0].0, &slot_key);
    assert_eq!(
        target_slots[0].1,
        format!("{:#x}", B256::from(U256::from(TARGET_VALUE))).as_bytes()
    );
}

#[test]
fn same_creation_without_target_storage_does_not_collide() {
    let backend = Backend::embedded();
    let stderr = expect_exit_code(&run_chain(&backend, false), COMMAND_FAILED);
    assert!(
        stderr.contains("gasUsed") && stderr.contains(&TX_GAS_LIMIT.to_string()),
        "the block is rejected for its gas used:\n{stderr}"
    );
}
