//! One blockchain test through the daemon's own path: the pre-state and genesis written into a
//! fresh store as `init` would, each block written as the syncer would, loaded, its senders
//! recovered, executed over the state layers, verified, and its record committed; then the
//! store's state compared with `postState` exactly.

use super::fixture::{BlockchainTest, TestAccount};
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::{keccak256, Address, B256, U256};
use evm::chain::ChainSpec;
use pipeline::commit_writes::{queue_receipts, queue_state_writes};
use pipeline::state::execution::execute_block;
use pipeline::state::{cache::CacheSizes, StateLayers};
use primitives::block::{decode_block, encode_body, encode_header, encode_transactions};
use primitives::contract::{decode_word, encode_word, AccountJson, EMPTY_CODE_HASH};
use primitives::keys::Keys;
use primitives::load::{load_block, recover_senders};
use primitives::store::{Store, WriteBatch};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// History TTL used in tests (history is not compared).
const HISTORY_TTL: Duration = Duration::from_secs(3600);

/// Why a test failed.
pub type Failure = String;

/// Run `test` on `store` (empty). Ok when every valid block is accepted, every
/// `expectException` block rejected, and the final state equals `postState`.
pub fn run_case(test: &BlockchainTest, store: Arc<dyn Store>) -> Result<(), Failure> {
    let spec = Arc::new(
        test.chain_spec()
            .ok_or_else(|| format!("unknown network {}", test.network))?,
    );
    let keys = Keys::default();
    write_pre_state(
        store.as_ref(),
        &keys,
        &test.pre,
        &genesis_header_rlp(&test.genesis_rlp)?,
    )
    .map_err(|e| format!("pre-state: {e}"))?;
    let genesis = decode_block("genesisRLP", &mut test.genesis_rlp.as_ref())
        .map_err(|e| format!("genesis: {e}"))?;
    let (mut parent, mut parent_hash) = (genesis.header, genesis.hash);
    let layers = StateLayers::new(Arc::clone(&store), keys.clone(), CacheSizes::default());

    for (index, test_block) in test.blocks.iter().enumerate() {
        let outcome = apply_block(&spec, &layers, &parent, parent_hash, &test_block.rlp);
        match (outcome, &test_block.expect_exception) {
            (Ok(header_and_hash), None) => (parent, parent_hash) = header_and_hash,
            (Ok(_), Some(expected)) => {
                return Err(format!("block #{index} accepted, expected {expected}"))
            }
            (Err(_), Some(_)) => {}
            (Err(error), None) => return Err(format!("block #{index} rejected: {error}")),
        }
    }
    if parent_hash != test.lastblockhash {
        return Err(format!(
            "last block {parent_hash:#x}, expected {:#x}",
            test.lastblockhash
        ));
    }
    match &test.post_state {
        Some(post) => compare_state(store.as_ref(), &keys, post),
        None => Err("test has no postState".to_string()),
    }
}

/// The header item inside a block's RLP.
fn genesis_header_rlp(block_rlp: &[u8]) -> Result<Vec<u8>, String> {
    let block =
        decode_block("genesisRLP", &mut &block_rlp[..]).map_err(|e| format!("genesis: {e}"))?;
    Ok(encode_header(&block.header))
}

fn write_pre_state(
    store: &dyn Store,
    keys: &Keys,
    pre: &BTreeMap<Address, TestAccount>,
    genesis_rlp: &[u8],
) -> Result<(), String> {
    let mut batch = WriteBatch::new();
    for (address, account) in pre {
        let code_hash = if account.code.is_empty() {
            EMPTY_CODE_HASH
        } else {
            keccak256(&account.code)
        };
        if !account.code.is_empty() {
            batch.set(keys.code(&code_hash), account.code.to_vec());
        }
        for (slot, value) in account.storage.iter().filter(|(_, v)| !v.is_zero()) {
            batch.set(
                keys.latest_storage(address, &B256::from(*slot)),
                encode_word(value),
            );
        }
        let json = AccountJson {
            balance: account.balance,
            nonce: account.nonce.to::<u64>(),
            code_hash,
            storage_root: B256::ZERO,
        };
        batch.set(keys.latest_account(address), json.encode());
    }
    batch.set(keys.header(0), genesis_rlp.to_vec());
    store.write(&batch).map_err(|e| e.to_string())
}

/// Write the block as the syncer would, then load, execute and commit it as the daemon does.
/// On rejection the block's keys are removed again and the state is untouched.
fn apply_block(
    spec: &Arc<ChainSpec>,
    layers: &StateLayers,
    parent: &alloy_consensus::Header,
    parent_hash: B256,
    rlp: &[u8],
) -> Result<(alloy_consensus::Header, B256), String> {
    let mut buf = rlp;
    let block = decode_block("block rlp", &mut buf).map_err(|e| e.to_string())?;
    if !buf.is_empty() {
        return Err("trailing bytes after block".into());
    }
    if block.header.parent_hash != parent_hash {
        return Err(format!(
            "parent hash {:#x} is not the head {parent_hash:#x}",
            block.header.parent_hash
        ));
    }
    let store = layers.store();
    let keys = layers.keys();
    let number = block.number();
    let mut input = WriteBatch::new();
    input.set(keys.header(number), encode_header(&block.header));
    input.set(
        keys.transactions(number),
        encode_transactions(&block.body.transactions),
    );
    input.set(keys.body(number), encode_body(&block.body));
    store.write(&input).map_err(|e| e.to_string())?;

    let result = (|| {
        let loaded = load_block(store.as_ref(), keys, number).map_err(|e| e.to_string())?;
        let homestead = spec.is_homestead_active_at_block(number);
        let senders = recover_senders(&loaded, homestead).map_err(|e| e.to_string())?;
        let record =
            execute_block(spec, layers, &loaded, &senders, parent).map_err(|e| e.to_string())?;
        let mut batch = WriteBatch::new();
        queue_state_writes(keys, &record, HISTORY_TTL, &mut batch);
        queue_receipts(keys, &record, &mut batch);
        layers.absorb(&record);
        store.write(&batch).map_err(|e| e.to_string())?;
        layers.release(number);
        Ok((loaded.header, loaded.hash))
    })();
    if result.is_err() {
        let mut undo = WriteBatch::new();
        undo.delete(keys.header(number))
            .delete(keys.transactions(number))
            .delete(keys.body(number));
        store.write(&undo).map_err(|e| e.to_string())?;
    }
    result
}

/// The store's state must equal `post`: same accounts, fields, code and non-zero slots.
fn compare_state(
    store: &dyn Store,
    keys: &Keys,
    post: &BTreeMap<Address, TestAccount>,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let account_prefix = format!("{}st:latest:acc:", keys.prefix());
    let stored_accounts = store.scan_prefix(&account_prefix).map_err(|e| err(&e))?;
    if stored_accounts.len() != post.len() {
        let expected: Vec<_> = post.keys().map(|a| keys.latest_account(a)).collect();
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
        let bytes = store
            .get(&key)
            .map_err(|e| err(&e))?
            .ok_or_else(|| format!("{key} missing"))?;
        let account = AccountJson::decode(&key, &bytes).map_err(|e| err(&e))?;
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
            let code = store.get(&keys.code(&expected_hash)).map_err(|e| err(&e))?;
            if code.as_deref() != Some(expected.code.as_ref()) {
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
            let bytes = store
                .get(&key)
                .map_err(|e| err(&e))?
                .ok_or_else(|| format!("{key} missing"))?;
            let stored = decode_word(&key, &bytes).map_err(|e| err(&e))?;
            if stored != *value {
                return Err(format!("{key}: {stored:#x}, expected {value:#x}"));
            }
        }
    }
    Ok(())
}
