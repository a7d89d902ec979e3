//! One blockchain test through the daemon's own path: the pre-state and genesis written into a
//! fresh store as `init` would; each block written as the syncer would, loaded, its senders
//! recovered, executed over the state layers, verified, and its record committed, on top of
//! its parent's branch ([`super::branches`]); then the head compared with `lastblockhash` and
//! the store's state with `postState` exactly, or its state root (the stored state trie's, which
//! the merkle stage checked against every block's header) with `postStateHash`.

use super::branches::{merge_block, BlockTree, ImportError};
use super::fixture::{BlockchainTest, TestAccount};
use alloy_consensus::{Header, Sealed};
use alloy_primitives::{keccak256, Address, B256, U256};
use evm::network::TestNetwork;
use pipeline::serial::SerialPipeline;
use pipeline::stage::{Control, Shared, StageStore};
use pipeline::startup::StartPoint;
use pipeline::state::{cache::CacheSizes, StateLayers};
use pipeline::tries::build_tries;
use primitives::block::{decode_block, ChainBlock};
use primitives::contract::{AccountJson, EMPTY_CODE_HASH};
use primitives::keys::Keys;
use primitives::store::{Store, WriteBatch};
use primitives::trie_record::TrieNodeId;
use primitives::value::ContractRead;
use state_trie::AccountFields;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// History TTL used in tests (history is not compared).
const HISTORY_TTL: Duration = Duration::from_secs(3600);

/// Why a test failed.
pub type Failure = String;

/// Run `test` on `store` (empty). Ok when every valid block is accepted, every
/// `expectException` block rejected, the head is `lastblockhash`, and the final state equals
/// `postState` (or its root `postStateHash`).
pub fn run_case(test: &BlockchainTest, store: Arc<dyn Store>) -> Result<(), Failure> {
    let mut network = TestNetwork::parse(&test.network).map_err(|e| e.to_string())?;
    let keys = Keys::default();
    let genesis = decode_block("genesisRLP", &mut test.genesis_rlp.as_ref())
        .map_err(|e| format!("genesis: {e}"))?;
    let blocks: Vec<Result<ChainBlock, String>> = test
        .blocks
        .iter()
        .map(|block| decode_test_block(&block.rlp))
        .collect();
    if let Some(terminal) = network.terminal_total_difficulty() {
        let decoded: Vec<&ChainBlock> = blocks.iter().filter_map(|b| b.as_ref().ok()).collect();
        network = network.merge_at_block(merge_block(&genesis, &decoded, terminal)?);
    }
    let spec = Arc::new(test.chain_spec(&network));
    write_pre_state(
        store.as_ref(),
        &keys,
        &test.pre,
        Sealed::new_unchecked(genesis.header.clone(), genesis.hash),
    )
    .map_err(|e| format!("pre-state: {e}"))?;
    let shared = Shared {
        store: StageStore::new(Arc::clone(&store), keys.clone(), None),
        spec,
        layers: Arc::new(StateLayers::new(
            Arc::clone(&store),
            keys.clone(),
            CacheSizes::default(),
        )),
        control: Control::new(Arc::new(AtomicBool::new(false))),
        meters: Default::default(),
    };
    let start = StartPoint {
        executed: 0,
        merkle: Some(0),
        committed: 0,
        receipts: 0,
        pruned: 0,
        total_txs: 0,
    };
    let pipeline = SerialPipeline::new(
        &shared,
        start,
        genesis.header.clone(),
        genesis.hash,
        HISTORY_TTL,
    );
    let mut tree = BlockTree::new(&shared, pipeline, genesis);

    for (index, (test_block, decoded)) in test.blocks.iter().zip(blocks).enumerate() {
        let outcome = decoded
            .map_err(ImportError::Rejected)
            .and_then(|block| tree.import(block));
        match (outcome, &test_block.expect_exception) {
            (Ok(()), None) | (Err(ImportError::Rejected(_)), Some(_)) => {}
            (Ok(()), Some(expected)) => {
                return Err(format!("block #{index} accepted, expected {expected}"))
            }
            (Err(ImportError::Rejected(reason)), None) => {
                return Err(format!("block #{index} rejected: {reason}"))
            }
            (Err(ImportError::Runner(reason)), _) => {
                return Err(format!("block #{index}: {reason}"))
            }
        }
    }
    tree.settle().map_err(|e| e.to_string())?;
    if tree.head() != test.lastblockhash {
        return Err(format!(
            "head {:#x}, expected {:#x}",
            tree.head(),
            test.lastblockhash
        ));
    }
    match (&test.post_state, test.post_state_hash) {
        (Some(post), _) => compare_state(store.as_ref(), &keys, post),
        (None, Some(root)) => check_state_root(store.as_ref(), &keys, root),
        (None, None) => Err("the test has neither postState nor postStateHash".to_string()),
    }
}

/// The root of the state tries in the store (the hash of the account trie's root node; the
/// empty trie's root when it has none) must be the test's `postStateHash`.
fn check_state_root(store: &dyn Store, keys: &Keys, expected: B256) -> Result<(), Failure> {
    let root_node = TrieNodeId {
        account: None,
        path: Vec::new(),
    };
    let root = store
        .read(&keys.trie_node(&root_node))
        .map_err(|e| e.to_string())?
        .map_or(alloy_trie::EMPTY_ROOT_HASH, keccak256);
    if root != expected {
        return Err(format!("post-state root {root:#x}, expected {expected:#x}"));
    }
    Ok(())
}

/// A test block's RLP as one block with nothing after it.
fn decode_test_block(rlp: &[u8]) -> Result<ChainBlock, String> {
    let mut buf = rlp;
    let block = decode_block("block rlp", &mut buf).map_err(|e| e.to_string())?;
    if !buf.is_empty() {
        return Err("trailing bytes after block".into());
    }
    Ok(block)
}

/// The pre-state as `init` writes a genesis: accounts (with their storage roots), slots,
/// code, the tries (checked against the genesis header's state root), and the genesis header.
fn write_pre_state(
    store: &dyn Store,
    keys: &Keys,
    pre: &BTreeMap<Address, TestAccount>,
    genesis: Sealed<Header>,
) -> Result<(), String> {
    let code_hash = |account: &TestAccount| {
        if account.code.is_empty() {
            EMPTY_CODE_HASH
        } else {
            keccak256(&account.code)
        }
    };
    let tries = build_tries(pre.iter().map(|(address, account)| {
        let fields = AccountFields {
            nonce: account.nonce.to::<u64>(),
            balance: account.balance,
            code_hash: code_hash(account),
        };
        let slots: Vec<(B256, U256)> = account
            .storage
            .iter()
            .filter(|(_, value)| !value.is_zero())
            .map(|(slot, value)| (B256::from(*slot), *value))
            .collect();
        (*address, fields, slots)
    }))
    .map_err(|e| e.to_string())?;
    if tries.state_root != genesis.state_root {
        return Err(format!(
            "the pre-state's root is {:#x}, the genesis header says {:#x}",
            tries.state_root, genesis.state_root
        ));
    }
    let mut batch = WriteBatch::new();
    for (address, account) in pre {
        let code_hash = code_hash(account);
        if !account.code.is_empty() {
            batch.put(keys.code(&code_hash), &account.code);
        }
        for (slot, value) in account.storage.iter().filter(|(_, v)| !v.is_zero()) {
            batch.put(keys.latest_storage(address, &B256::from(*slot)), value);
        }
        let json = AccountJson {
            balance: account.balance,
            nonce: account.nonce.to::<u64>(),
            code_hash,
            storage_root: tries.storage_root(address),
        };
        batch.put(keys.latest_account(address), &json);
    }
    tries.queue(keys, 0, genesis.hash(), &mut batch);
    batch.put(keys.header(0), &genesis);
    store.write(&batch).map_err(|e| e.to_string())
}

/// The store's state must equal `post`: same accounts, fields, code and non-zero slots.
fn compare_state(
    store: &dyn Store,
    keys: &Keys,
    post: &BTreeMap<Address, TestAccount>,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let stored_accounts = store
        .scan_prefix(&keys.latest_account_prefix())
        .map_err(|e| err(&e))?;
    if stored_accounts.len() != post.len() {
        let expected: Vec<String> = post
            .keys()
            .map(|a| keys.latest_account(a).into_string())
            .collect();
        let extra: Vec<_> = stored_accounts
            .iter()
            .filter(|k| !expected.contains(k))
            .collect();
        let missing: Vec<_> = expected
            .iter()
            .filter(|k| !stored_accounts.contains(k))
            .collect();
        return Err(format!(
            "{} accounts in store, {} expected; extra {extra:?}, missing {missing:?}",
            stored_accounts.len(),
            post.len()
        ));
    }
    for (address, expected) in post {
        let key = keys.latest_account(address);
        let account = store
            .read(&key)
            .map_err(|e| err(&e))?
            .ok_or_else(|| format!("{key} missing"))?;
        if account.balance != expected.balance || U256::from(account.nonce) != expected.nonce {
            return Err(format!(
                "{address}: balance {} nonce {}, expected balance {} nonce {}",
                account.balance, account.nonce, expected.balance, expected.nonce
            ));
        }
        let expected_hash = if expected.code.is_empty() {
            EMPTY_CODE_HASH
        } else {
            keccak256(&expected.code)
        };
        if account.code_hash != expected_hash {
            return Err(format!(
                "{address}: code hash {:#x}, expected {expected_hash:#x}",
                account.code_hash
            ));
        }
        if !expected.code.is_empty() {
            let code = store
                .read(&keys.code(&expected_hash))
                .map_err(|e| err(&e))?;
            if code.as_ref() != Some(&expected.code) {
                return Err(format!(
                    "{address}: code {expected_hash:#x} missing or different in store"
                ));
            }
        }
        let slot_keys = store
            .scan_prefix(&keys.latest_storage_prefix(address))
            .map_err(|e| err(&e))?;
        let expected_slots: BTreeMap<_, _> = expected
            .storage
            .iter()
            .filter(|(_, v)| !v.is_zero())
            .collect();
        if slot_keys.len() != expected_slots.len() {
            return Err(format!(
                "{address}: {} slots in store, expected {}",
                slot_keys.len(),
                expected_slots.len()
            ));
        }
        for (slot, value) in expected_slots {
            let key = keys.latest_storage(address, &B256::from(*slot));
            let stored = store
                .read(&key)
                .map_err(|e| err(&e))?
                .ok_or_else(|| format!("{key} missing"))?;
            if stored != *value {
                return Err(format!("{key}: {stored:#x}, expected {value:#x}"));
            }
        }
    }
    Ok(())
}
