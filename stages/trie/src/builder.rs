//! From-scratch builds in bounded memory: [`AccountTrieBuilder`] and [`StorageTrieBuilder`] take
//! leaves in ascending hashed-key order and hand out each stored node (key, RLP) as soon as it is
//! complete, holding only the nodes on the path of the last leaf; [`build_state`] builds a whole
//! state held in memory (a genesis) with them. The nodes are exactly those an incremental update
//! keeps: the layout depends on the state alone.

use std::collections::BTreeMap;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_rlp::Encodable;
use alloy_trie::nodes::{BranchNodeRef, ExtensionNodeRef, LeafNodeRef, RlpNode};
use alloy_trie::{Nibbles, TrieAccount, TrieMask, EMPTY_ROOT_HASH};
use rayon::prelude::*;

use crate::node::StoredNodes;
use crate::{AccountFields, BuildError, NodeKey};

/// A branch still open on the path of the last leaf: its depth and the children completed so
/// far (added in nibble order).
#[derive(Debug)]
struct Frame {
    depth: usize,
    children: Vec<RlpNode>,
    mask: TrieMask,
}

/// The node hanging below the deepest open branch, not yet placed (its key depends on where it
/// hangs): the last leaf, or a branch whose subtree is complete.
enum Open {
    Leaf(Vec<u8>),
    Branch(Frame),
}

/// The streaming build of one trie over 32-byte keys: the nodes completed so far (path, RLP),
/// the open branches, and the last leaf, whose place is known only when the next key (or the end)
/// shows how much of its key it shares.
#[derive(Debug, Default)]
struct TrieBuilder {
    stack: Vec<Frame>,
    last: Option<(B256, Vec<u8>)>,
    completed: StoredNodes,
    buf: Vec<u8>,
}

impl TrieBuilder {
    fn add_leaf(&mut self, key: B256, value: Vec<u8>) -> Result<(), BuildError> {
        if let Some((previous, _)) = &self.last {
            if key <= *previous {
                return Err(BuildError::KeyOrder {
                    previous: *previous,
                    key,
                });
            }
        }
        if let Some((previous, last_value)) = self.last.take() {
            let previous = Nibbles::unpack(previous);
            let common = previous.common_prefix_length(&Nibbles::unpack(key));
            let open = self.close_below(&previous, last_value, Some(common));
            let reference = self.place(open, &previous, common + 1, false);
            let nibble = previous.get_unchecked(common);
            match self.stack.last_mut() {
                Some(top) if top.depth == common => top.push(nibble, reference),
                _ => {
                    let mut frame = Frame {
                        depth: common,
                        children: Vec::new(),
                        mask: TrieMask::default(),
                    };
                    frame.push(nibble, reference);
                    self.stack.push(frame);
                }
            }
        }
        self.last = Some((key, value));
        Ok(())
    }

    /// Takes the nodes completed so far.
    fn drain(&mut self) -> std::vec::Drain<'_, (Nibbles, Bytes)> {
        self.completed.drain(..)
    }

    /// Completes the trie: its root hash and the nodes not yet taken.
    fn finish(mut self) -> (B256, StoredNodes) {
        let Some((last, value)) = self.last.take() else {
            return (EMPTY_ROOT_HASH, self.completed);
        };
        let last = Nibbles::unpack(last);
        let open = self.close_below(&last, value, None);
        let reference = self.place(open, &last, 0, true);
        let root = reference.as_hash().unwrap_or_else(|| keccak256(&reference));
        (root, self.completed)
    }

    /// Closes the open branches on the path of the leaf `last` deeper than `depth` (all with
    /// `None`): their subtrees are complete. Returns the node hanging below what stays open.
    fn close_below(&mut self, last: &Nibbles, value: Vec<u8>, depth: Option<usize>) -> Open {
        let mut open = Open::Leaf(value);
        while let Some(mut frame) = self.stack.pop() {
            if depth.is_some_and(|depth| frame.depth <= depth) {
                self.stack.push(frame);
                break;
            }
            let reference = self.place(open, last, frame.depth + 1, false);
            frame.push(last.get_unchecked(frame.depth), reference);
            open = Open::Branch(frame);
        }
        open
    }

    /// Completes `open`, hanging at the path `last[..start]`: a leaf there, or a branch with an
    /// extension above it when the branch is deeper. Returns how its parent refers to it.
    fn place(&mut self, open: Open, last: &Nibbles, start: usize, root: bool) -> RlpNode {
        let path = last.slice(..start);
        match open {
            Open::Leaf(value) => {
                self.complete(path, &LeafNodeRef::new(&last.slice(start..), &value), root)
            }
            Open::Branch(frame) => {
                let extended = frame.depth > start;
                let branch = BranchNodeRef::new(&frame.children, frame.mask);
                let reference =
                    self.complete(last.slice(..frame.depth), &branch, root && !extended);
                if !extended {
                    return reference;
                }
                let key = last.slice(start..frame.depth);
                self.complete(path, &ExtensionNodeRef::new(&key, &reference), root)
            }
        }
    }

    /// Encodes a completed node at `path`; lists it when the store keeps it (the root, or 32
    /// bytes or more).
    fn complete(&mut self, path: Nibbles, node: &impl Encodable, root: bool) -> RlpNode {
        self.buf.clear();
        node.encode(&mut self.buf);
        if root || self.buf.len() >= 32 {
            self.completed
                .push((path, Bytes::copy_from_slice(&self.buf)));
        }
        RlpNode::from_rlp(&self.buf)
    }
}

impl Frame {
    fn push(&mut self, nibble: u8, reference: RlpNode) {
        self.children.push(reference);
        self.mask.set_bit(nibble);
    }
}

/// Builds the account trie from accounts fed in strictly ascending order of hashed address
/// (keccak256 of the address, compared as bytes). Memory: the nodes on one path.
#[derive(Debug, Default)]
pub struct AccountTrieBuilder {
    trie: TrieBuilder,
}

impl AccountTrieBuilder {
    /// An empty build.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the account whose address hashes to `hashed_address`, with its storage root.
    pub fn add_account(
        &mut self,
        hashed_address: B256,
        account: &TrieAccount,
    ) -> Result<(), BuildError> {
        self.trie
            .add_leaf(hashed_address, alloy_rlp::encode(account))
    }

    /// Takes the nodes completed so far, to write (any order; each node once over the build).
    pub fn drain_nodes(&mut self) -> impl Iterator<Item = (NodeKey, Bytes)> + '_ {
        self.trie
            .drain()
            .map(|(path, rlp)| (NodeKey::Account(path), rlp))
    }

    /// Completes the trie: the state root and the nodes not yet taken.
    pub fn finish(self) -> (B256, Vec<(NodeKey, Bytes)>) {
        let (root, nodes) = self.trie.finish();
        (
            root,
            nodes
                .into_iter()
                .map(|(path, rlp)| (NodeKey::Account(path), rlp))
                .collect(),
        )
    }
}

/// Builds the storage trie of one account from its slots fed in strictly ascending order of
/// hashed slot (keccak256 of the slot, compared as bytes). Memory: the nodes on one path.
#[derive(Debug)]
pub struct StorageTrieBuilder {
    address: Address,
    trie: TrieBuilder,
}

impl StorageTrieBuilder {
    /// An empty build of the storage trie of `address`.
    pub fn new(address: Address) -> Self {
        Self {
            address,
            trie: TrieBuilder::default(),
        }
    }

    /// Adds the slot hashing to `hashed_slot` with `value`. A zero value is not in the trie (as
    /// in Ethereum) and is skipped.
    pub fn add_slot(&mut self, hashed_slot: B256, value: U256) -> Result<(), BuildError> {
        if value.is_zero() {
            return Ok(());
        }
        self.trie.add_leaf(hashed_slot, alloy_rlp::encode(value))
    }

    /// Takes the nodes completed so far, to write (any order; each node once over the build).
    pub fn drain_nodes(&mut self) -> impl Iterator<Item = (NodeKey, Bytes)> + '_ {
        let address = self.address;
        self.trie
            .drain()
            .map(move |(path, rlp)| (NodeKey::Storage(address, path), rlp))
    }

    /// Completes the trie: the account's storage root and the nodes not yet taken.
    pub fn finish(self) -> (B256, Vec<(NodeKey, Bytes)>) {
        let address = self.address;
        let (root, nodes) = self.trie.finish();
        (
            root,
            nodes
                .into_iter()
                .map(|(path, rlp)| (NodeKey::Storage(address, path), rlp))
                .collect(),
        )
    }
}

/// A state built from scratch by [`build_state`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltState {
    /// The state root.
    pub state_root: B256,
    /// Every account's storage root.
    pub storage_roots: BTreeMap<Address, B256>,
    /// Every stored node of the account trie and the storage tries, sorted by key.
    pub nodes: Vec<(NodeKey, Bytes)>,
}

/// An account of [`build_state`], keys hashed.
struct HashedAccount {
    hashed: B256,
    address: Address,
    fields: AccountFields,
    slots: Vec<(B256, U256)>,
}

/// Builds the tries of a state held in memory (a genesis): accounts with their fields and slots
/// (unhashed; zero values skipped). Storage tries are built on the rayon pool. For a state too
/// big for memory, feed [`AccountTrieBuilder`] and [`StorageTrieBuilder`] from sorted input
/// instead. Fails on an address or slot given twice.
pub fn build_state<I, S>(accounts: I) -> Result<BuiltState, BuildError>
where
    I: IntoIterator<Item = (Address, AccountFields, S)>,
    S: IntoIterator<Item = (B256, U256)>,
{
    let mut accounts: Vec<HashedAccount> = accounts
        .into_iter()
        .map(|(address, fields, slots)| HashedAccount {
            hashed: keccak256(address),
            address,
            fields,
            slots: slots
                .into_iter()
                .map(|(slot, value)| (keccak256(slot), value))
                .collect(),
        })
        .collect();
    accounts.sort_unstable_by_key(|account| account.hashed);
    let storage: Vec<(B256, Vec<(NodeKey, Bytes)>)> = accounts
        .par_iter_mut()
        .map(|account| {
            account.slots.sort_unstable_by_key(|slot| slot.0);
            let mut builder = StorageTrieBuilder::new(account.address);
            for (hashed_slot, value) in &account.slots {
                builder.add_slot(*hashed_slot, *value)?;
            }
            Ok(builder.finish())
        })
        .collect::<Result<_, BuildError>>()?;
    let mut builder = AccountTrieBuilder::new();
    let mut storage_roots = BTreeMap::new();
    let mut nodes = Vec::new();
    for (account, (storage_root, storage_nodes)) in accounts.iter().zip(storage) {
        let fields = account.fields;
        let leaf = TrieAccount::new(fields.nonce, fields.balance, storage_root, fields.code_hash);
        builder.add_account(account.hashed, &leaf)?;
        storage_roots.insert(account.address, storage_root);
        nodes.extend(storage_nodes);
    }
    let (state_root, account_nodes) = builder.finish();
    nodes.extend(account_nodes);
    nodes.sort_unstable_by_key(|node| node.0);
    Ok(BuiltState {
        state_root,
        storage_roots,
        nodes,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use alloy_trie::HashBuilder;

    use super::*;

    /// Keys crowded into three long shared prefixes (so deep nodes are small enough to be
    /// inlined), plus some spread ones; `seed` picks the set.
    pub(crate) fn crowded_key(seed: u64, i: u64) -> B256 {
        let noise = keccak256([seed.to_be_bytes(), i.to_be_bytes()].concat());
        if i.is_multiple_of(5) {
            return noise;
        }
        let mut key = keccak256((i % 3).to_be_bytes());
        key[29] = noise[0] & 0x13;
        key[30] = noise[1] & 0x31;
        key[31] = noise[2] & 0x0f;
        key
    }

    fn hash_builder_root(leaves: &BTreeMap<B256, Vec<u8>>) -> B256 {
        let mut builder = HashBuilder::default();
        for (key, value) in leaves {
            builder.add_leaf(Nibbles::unpack(key), value);
        }
        builder.root()
    }

    #[test]
    fn roots_match_alloy_hash_builder_with_inlined_nodes() {
        for size in [1u64, 2, 3, 7, 40, 300, 2000] {
            let leaves: BTreeMap<B256, Vec<u8>> = (0..size)
                .map(|i| (crowded_key(size, i), vec![(i % 200) as u8 + 1]))
                .collect();
            let mut builder = TrieBuilder::default();
            for (key, value) in &leaves {
                builder.add_leaf(*key, value.clone()).unwrap();
            }
            let (root, nodes) = builder.finish();
            assert_eq!(root, hash_builder_root(&leaves), "{size} leaves");
            assert!(
                nodes.iter().any(|(path, _)| path.is_empty()),
                "the root is stored"
            );
            for (path, rlp) in &nodes {
                assert!(
                    path.is_empty() || rlp.len() >= 32,
                    "node {path:?} of {} bytes stored",
                    rlp.len()
                );
            }
        }
    }

    #[test]
    fn small_nodes_are_inlined_not_stored() {
        // Two keys differing in the last nibble: a branch at 63 nibbles with two one-byte leaves,
        // all inlined into the extension at the root.
        let mut first = B256::repeat_byte(0xab);
        first[31] = 0xa0;
        let mut second = first;
        second[31] = 0xa1;
        let mut builder = TrieBuilder::default();
        builder.add_leaf(first, vec![1]).unwrap();
        builder.add_leaf(second, vec![2]).unwrap();
        let (root, nodes) = builder.finish();
        let leaves = BTreeMap::from([(first, vec![1]), (second, vec![2])]);
        assert_eq!(root, hash_builder_root(&leaves));
        assert_eq!(
            nodes.len(),
            1,
            "only the root extension is stored: {nodes:?}"
        );
    }

    #[test]
    fn empty_trie_has_the_empty_root_and_no_node() {
        assert_eq!(
            TrieBuilder::default().finish(),
            (EMPTY_ROOT_HASH, Vec::new())
        );
        assert_eq!(
            StorageTrieBuilder::new(Address::ZERO).finish(),
            (EMPTY_ROOT_HASH, Vec::new())
        );
    }

    #[test]
    fn keys_out_of_order_are_refused() {
        let mut builder = AccountTrieBuilder::new();
        let account = TrieAccount::default();
        builder.add_account(B256::repeat_byte(2), &account).unwrap();
        let error = builder
            .add_account(B256::repeat_byte(1), &account)
            .unwrap_err();
        assert_eq!(
            error,
            BuildError::KeyOrder {
                previous: B256::repeat_byte(2),
                key: B256::repeat_byte(1)
            }
        );
        assert!(
            builder.add_account(B256::repeat_byte(2), &account).is_err(),
            "a key given twice"
        );
    }

    #[test]
    fn nodes_are_handed_out_as_they_complete() {
        let mut keys: Vec<B256> = (0..5000u64).map(|i| keccak256(i.to_be_bytes())).collect();
        keys.sort_unstable();
        let mut builder = StorageTrieBuilder::new(Address::repeat_byte(1));
        let mut drained = Vec::new();
        let mut most_waiting = 0;
        for key in keys {
            builder.add_slot(key, U256::from(7)).unwrap();
            most_waiting = most_waiting.max(builder.trie.completed.len());
            drained.extend(builder.drain_nodes());
        }
        let (root, rest) = builder.finish();
        drained.extend(rest);
        assert!(
            most_waiting <= 2 * crate::MAX_PATH_NIBBLES,
            "{most_waiting} nodes waited"
        );
        assert_eq!(
            drained.len(),
            drained
                .iter()
                .map(|(key, _)| key)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
        assert_eq!(
            root,
            alloy_trie::root::storage_root_unsorted(
                (0..5000u64).map(|i| (keccak256(i.to_be_bytes()), U256::from(7)))
            )
        );
    }

    #[test]
    fn build_state_refuses_an_address_given_twice() {
        let account = (
            Address::repeat_byte(1),
            AccountFields::default(),
            Vec::new(),
        );
        let error = build_state([account.clone(), account]).unwrap_err();
        assert!(matches!(error, BuildError::KeyOrder { .. }), "{error}");
    }
}
