//! Real data: the Ethereum mainnet genesis allocation must give mainnet's genesis state root,
//! and the final state of geth's eth protocol test chain must give the stateRoot of the chain's
//! last header; built from scratch and by incremental updates from an empty store alike.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy_consensus::Header;
use alloy_primitives::{b256, hex, keccak256, Address, B256, U256};
use alloy_rlp::Decodable;
use alloy_trie::KECCAK_EMPTY;
use serde_json::Value;
use state_trie::{AccountFields, MemoryNodes, StateChanges, StateTrie};

use crate::model::{Model, Slots};

/// Where the shared fixtures are: `$EVM_EXECUTOR_FIXTURES`, else `shared/fixtures` beside the
/// repository.
fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("EVM_EXECUTOR_FIXTURES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
        PathBuf::from,
    );
    assert!(
        dir.is_dir(),
        "fixtures directory {} not found; set EVM_EXECUTOR_FIXTURES",
        dir.display()
    );
    dir
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

/// A number written as `0x` hex or decimal.
fn number(text: &str) -> U256 {
    match text.strip_prefix("0x") {
        Some(hex) => U256::from_str_radix(hex, 16),
        None => U256::from_str_radix(text, 10),
    }
    .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn word(text: &str) -> B256 {
    B256::left_padding_from(&hex::decode(text).unwrap_or_else(|e| panic!("{text}: {e}")))
}

/// An account's `storage` object (slot → value text), values read by `value`.
fn storage(account: &Value, value: impl Fn(&str) -> U256) -> Slots {
    let Some(storage) = account.get("storage").and_then(Value::as_object) else {
        return Slots::new();
    };
    storage
        .iter()
        .map(|(slot, text)| (word(slot), value(text.as_str().expect("a storage value"))))
        .collect()
}

/// Applies the state in pieces (`pieces` change sets) to an empty store, checks it ends equal to
/// the from-scratch build, and returns its root.
fn incremental_root(model: &Model, pieces: usize) -> B256 {
    let mut store = MemoryNodes::new();
    let mut trie = StateTrie::default();
    let addresses: Vec<&Address> = model.accounts.keys().collect();
    let mut root = B256::ZERO;
    for chunk in addresses.chunks(addresses.len().div_ceil(pieces)) {
        let mut changes = StateChanges::new();
        for address in chunk {
            let (fields, slots) = &model.accounts[*address];
            changes.set_account(**address, *fields);
            for (slot, value) in slots {
                changes.set_slot(**address, *slot, *value);
            }
        }
        let update = trie.update(&store, &changes).unwrap();
        store.apply(&update.node_changes);
        root = update.state_root;
    }
    let built: BTreeMap<_, _> = model.built().nodes.into_iter().collect();
    assert_eq!(
        store.stored(),
        &built,
        "incremental and from-scratch tries differ"
    );
    root
}

#[test]
fn mainnet_genesis_gives_the_mainnet_genesis_state_root() {
    let genesis = read_json(&fixtures_dir().join("ethereum/mainnet.json"));
    let alloc = genesis["alloc"].as_object().expect("alloc");
    let mut model = Model::default();
    for (address, account) in alloc {
        let code_hash = text(account, "code")
            .map_or(KECCAK_EMPTY, |code| keccak256(hex::decode(code).unwrap()));
        let fields = AccountFields {
            nonce: text(account, "nonce").map_or(0, |n| number(n).to::<u64>()),
            balance: number(text(account, "balance").expect("balance")),
            code_hash,
        };
        let slots = storage(account, number);
        model
            .accounts
            .insert(address.parse().expect("address"), (fields, slots));
    }
    assert_eq!(model.accounts.len(), 8893);
    let expected = b256!("d7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544");
    assert_eq!(text(&genesis, "stateRoot"), Some(&*expected.to_string()));
    assert_eq!(model.built().state_root, expected);
    assert_eq!(incremental_root(&model, 3), expected);
}

/// The header of the last block of a geth `export` file (concatenated RLP blocks).
fn last_header(chain: &[u8]) -> Header {
    let mut rest = chain;
    let mut last = None;
    while !rest.is_empty() {
        let start = rest;
        let header = alloy_rlp::Header::decode(&mut rest).expect("block RLP");
        rest = &rest[header.payload_length..];
        last = Some(&start[..start.len() - rest.len()]);
    }
    let mut block = last.expect("a block");
    alloy_rlp::Header::decode(&mut block).expect("block list");
    Header::decode(&mut block).expect("header")
}

#[test]
fn geth_test_chain_final_state_gives_the_last_headers_state_root() {
    let dir = fixtures_dir().join("chains/geth-ethtest");
    let chain = std::fs::read(dir.join("chain.rlp")).expect("chain.rlp");
    let header = last_header(&chain);
    assert_eq!(header.number, 600);

    let state = read_json(&dir.join("headstate.json"));
    let mut model = Model::default();
    let mut storage_roots = BTreeMap::new();
    for account in state["accounts"].as_object().expect("accounts").values() {
        let address: Address = text(account, "address")
            .expect("address")
            .parse()
            .expect("address");
        let fields = AccountFields {
            nonce: account["nonce"].as_u64().expect("nonce"),
            balance: number(text(account, "balance").expect("balance")),
            code_hash: word(text(account, "codeHash").expect("codeHash")),
        };
        // geth dumps values as hex without `0x`.
        let slots = storage(account, |value| number(&format!("0x{value}")));
        model.accounts.insert(address, (fields, slots));
        storage_roots.insert(address, word(text(account, "root").expect("root")));
    }
    assert_eq!(model.accounts.len(), 194);
    let built = model.built();
    assert_eq!(
        built.storage_roots, storage_roots,
        "storage roots as geth dumped them"
    );
    assert_eq!(built.state_root, header.state_root);
    assert_eq!(incremental_root(&model, 4), header.state_root);
}
