//! Times an incremental update of a large account trie held in memory ([`MemoryNodes`]), with and
//! without the cache of top levels, against alloy-trie computing the same root from scratch
//! (its `HashBuilder` over the whole sorted state), side by side in one run.
//!
//! `cargo run --release -p state-trie --example update_bench -- [accounts] [changed]`
//! (defaults: 1,000,000 accounts, 10,000 changed: 90 % modified, 5 % created, 5 % deleted).

use std::time::{Duration, Instant};

use alloy_primitives::{keccak256, Address, B256, U256};
use alloy_trie::{TrieAccount, EMPTY_ROOT_HASH, KECCAK_EMPTY};
use state_trie::{
    build_state, AccountFields, MemoryNodes, StateChanges, StateTrie, DEFAULT_CACHED_LEVELS,
};

/// The `i`-th account of the synthetic state.
fn account(i: u64) -> (Address, AccountFields) {
    let hash = keccak256(i.to_be_bytes());
    let fields = AccountFields {
        nonce: i % 100,
        balance: U256::from(i) * U256::from(1_000_000_007u64),
        code_hash: KECCAK_EMPTY,
    };
    (Address::from_slice(&hash[..20]), fields)
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse().expect("arguments: [accounts] [changed]"))
        .collect();
    let accounts = args.first().copied().unwrap_or(1_000_000);
    let changed = args.get(1).copied().unwrap_or(10_000).clamp(1, accounts);

    let started = Instant::now();
    let built = build_state((0..accounts).map(|i| {
        let (address, fields) = account(i);
        (address, fields, Vec::<(B256, U256)>::new())
    }))
    .expect("distinct accounts");
    println!(
        "from-scratch build (state-trie, nodes listed): {} nodes, {:?}",
        built.nodes.len(),
        started.elapsed()
    );
    let store: MemoryNodes = built.nodes.into_iter().collect();

    // The change set, and the state after it for the baseline.
    let mut changes = StateChanges::new();
    let mut post: Vec<(Address, AccountFields)> = (0..accounts).map(account).collect();
    let step = accounts / changed;
    for j in 0..changed {
        let i = j * step;
        let (address, mut fields) = account(i);
        match j % 20 {
            0 => {
                changes.delete_account(address);
                post[i as usize].1.nonce = u64::MAX; // marked: dropped below
            }
            1 => {
                let (new, new_fields) = account(accounts + j);
                changes.set_account(new, new_fields);
                post.push((new, new_fields));
            }
            _ => {
                fields.balance += U256::from(1);
                changes.set_account(address, fields);
                post[i as usize].1 = fields;
            }
        }
    }
    post.retain(|(_, fields)| fields.nonce != u64::MAX);

    let started = Instant::now();
    let expected = alloy_trie::root::state_root_unhashed(post.iter().map(|(address, fields)| {
        let leaf = TrieAccount::new(
            fields.nonce,
            fields.balance,
            EMPTY_ROOT_HASH,
            fields.code_hash,
        );
        (*address, leaf)
    }));
    let baseline = started.elapsed();
    println!("alloy-trie root from scratch over the new state: {baseline:?}");

    for levels in [0, DEFAULT_CACHED_LEVELS] {
        let mut trie = StateTrie::new(levels);
        // Best of three runs each (the store is not written, so every run does the same work).
        let mut dry = Duration::MAX;
        let mut took = Duration::MAX;
        let mut reads = (0, 0);
        let mut node_changes = 0;
        for _ in 0..3 {
            trie.clear_cache();
            trie.warm_cache(&store).expect("in memory");
            let started = Instant::now();
            assert_eq!(
                trie.root_after(&store, &changes).expect("in memory"),
                expected
            );
            dry = dry.min(started.elapsed());
            trie.clear_cache();
            trie.warm_cache(&store).expect("in memory");
            store.reset_counters();
            let started = Instant::now();
            let update = trie.update(&store, &changes).expect("in memory");
            took = took.min(started.elapsed());
            assert_eq!(update.state_root, expected);
            reads = (store.calls(), store.keys_read());
            node_changes = update.node_changes.len();
        }
        println!(
            "update, {levels} cached levels: {took:?} ({:.3} x the from-scratch root), dry root \
             {dry:?}; {} calls, {} keys read, {node_changes} node changes",
            took.as_secs_f64() / baseline.as_secs_f64(),
            reads.0,
            reads.1,
        );
    }
}
