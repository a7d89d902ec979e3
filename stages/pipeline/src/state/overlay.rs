//! The overlay: the changes of blocks executed but not yet committed, oldest first, with an
//! index of the newest value of every key they change, so a read costs one lookup however
//! many blocks are in flight (while catching up, a hundred or more wait for the commit).

use alloy_primitives::map::{HashMap, HashSet};
use alloy_primitives::{Address, Bytes, B256, U256};
use primitives::record::{AccountState, ExecutionRecord};
use std::collections::VecDeque;

/// One in-flight block's changes.
#[derive(Debug, Default)]
pub(super) struct BlockChanges {
    /// Which push this was (increasing), to tell whose value an index entry holds.
    sequence: u64,
    /// The block's number.
    pub number: u64,
    /// The accounts it changed, `None` when it destroyed them.
    pub accounts: HashMap<Address, Option<AccountState>>,
    /// The slots it changed.
    pub storage: HashMap<(Address, U256), U256>,
    /// The accounts whose storage it wiped (before its own slot changes).
    pub wiped: HashSet<Address>,
    /// The code it created.
    pub codes: HashMap<B256, Bytes>,
}

impl BlockChanges {
    /// The changes `record` holds.
    pub fn from_record(record: &ExecutionRecord) -> Self {
        let mut changes = Self {
            number: record.number,
            ..Self::default()
        };
        for account in &record.accounts {
            changes.accounts.insert(account.address, account.post);
            if account.storage_wiped {
                changes.wiped.insert(account.address);
            }
        }
        for slot in &record.storage {
            changes.storage.insert((slot.address, slot.slot), slot.post);
        }
        changes.codes.extend(record.codes.iter().cloned());
        changes
    }
}

/// The in-flight blocks and, for every key they change, the newest value and the push that
/// wrote it.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    blocks: VecDeque<BlockChanges>,
    next_sequence: u64,
    accounts: HashMap<Address, (u64, Option<AccountState>)>,
    slots: HashMap<(Address, U256), (u64, U256)>,
    wiped: HashMap<Address, u64>,
    codes: HashMap<B256, (u64, Bytes)>,
}

impl Overlay {
    /// Add the newest block's changes.
    pub fn push(&mut self, mut changes: BlockChanges) {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        changes.sequence = sequence;
        for (address, account) in &changes.accounts {
            self.accounts.insert(*address, (sequence, *account));
        }
        for (key, value) in &changes.storage {
            self.slots.insert(*key, (sequence, *value));
        }
        for address in &changes.wiped {
            self.wiped.insert(*address, sequence);
        }
        for (hash, code) in &changes.codes {
            self.codes.insert(*hash, (sequence, code.clone()));
        }
        self.blocks.push_back(changes);
    }

    /// Drop the oldest blocks while `done` says so; a key leaves the index with the block that
    /// wrote its newest value.
    pub fn pop_while(&mut self, mut done: impl FnMut(&BlockChanges) -> bool) {
        while let Some(oldest) = self.blocks.front() {
            if !done(oldest) {
                break;
            }
            let Some(oldest) = self.blocks.pop_front() else {
                break;
            };
            let sequence = oldest.sequence;
            for address in oldest.accounts.keys() {
                remove_if_from(&mut self.accounts, address, sequence, |(s, _)| *s);
            }
            for key in oldest.storage.keys() {
                remove_if_from(&mut self.slots, key, sequence, |(s, _)| *s);
            }
            for address in &oldest.wiped {
                remove_if_from(&mut self.wiped, address, sequence, |s| *s);
            }
            for hash in oldest.codes.keys() {
                remove_if_from(&mut self.codes, hash, sequence, |(s, _)| *s);
            }
        }
    }

    /// Forget every block.
    pub fn clear(&mut self) {
        *self = Self {
            next_sequence: self.next_sequence,
            ..Self::default()
        };
    }

    /// The in-flight blocks, oldest first.
    pub fn blocks(&self) -> impl Iterator<Item = &BlockChanges> {
        self.blocks.iter()
    }

    /// The newest in-flight value of `address` (`Some(None)`: destroyed), if any block changed it.
    pub fn account(&self, address: &Address) -> Option<Option<AccountState>> {
        self.accounts.get(address).map(|(_, account)| *account)
    }

    /// The newest in-flight value of a slot, if any block set it or wiped its account's storage.
    pub fn storage(&self, address: &Address, slot: &U256) -> Option<U256> {
        let set = self.slots.get(&(*address, *slot));
        match (set, self.wiped.get(address)) {
            // A block that wipes and sets a slot wipes first.
            (Some((set_at, value)), Some(wiped_at)) if set_at >= wiped_at => Some(*value),
            (Some(_), Some(_)) | (None, Some(_)) => Some(U256::ZERO),
            (Some((_, value)), None) => Some(*value),
            (None, None) => None,
        }
    }

    /// Code an in-flight block created.
    pub fn code(&self, hash: &B256) -> Option<&Bytes> {
        self.codes.get(hash).map(|(_, code)| code)
    }
}

/// Remove `key` from `index` when its entry was written by push `sequence`.
fn remove_if_from<K: std::hash::Hash + Eq, V>(
    index: &mut HashMap<K, V>,
    key: &K,
    sequence: u64,
    written_by: impl Fn(&V) -> u64,
) {
    if index
        .get(key)
        .is_some_and(|entry| written_by(entry) == sequence)
    {
        index.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(balance: u64) -> AccountState {
        AccountState {
            balance: U256::from(balance),
            nonce: 0,
            code_hash: B256::ZERO,
        }
    }

    fn block(
        accounts: &[(Address, Option<AccountState>)],
        slots: &[(Address, u64, u64)],
        wiped: &[Address],
    ) -> BlockChanges {
        BlockChanges {
            accounts: accounts.iter().copied().collect(),
            storage: slots
                .iter()
                .map(|(a, s, v)| ((*a, U256::from(*s)), U256::from(*v)))
                .collect(),
            wiped: wiped.iter().copied().collect(),
            ..BlockChanges::default()
        }
    }

    /// What a walk over the blocks, newest first, finds: the definition the index must match.
    fn walked_storage(overlay: &Overlay, address: &Address, slot: &U256) -> Option<U256> {
        let blocks: Vec<_> = overlay.blocks().collect();
        blocks.iter().rev().find_map(|block| {
            let wiped = block.wiped.contains(address).then_some(U256::ZERO);
            block.storage.get(&(*address, *slot)).copied().or(wiped)
        })
    }

    fn walked_account(overlay: &Overlay, address: &Address) -> Option<Option<AccountState>> {
        let blocks: Vec<_> = overlay.blocks().collect();
        blocks
            .iter()
            .rev()
            .find_map(|block| block.accounts.get(address).copied())
    }

    #[test]
    fn the_index_gives_what_a_walk_from_the_newest_block_gives_as_blocks_come_and_go() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut overlay = Overlay::default();
        let blocks = [
            block(&[(a, Some(account(1)))], &[(a, 1, 10), (b, 1, 11)], &[]),
            block(&[(a, None)], &[(b, 2, 20)], &[a]),
            block(&[(a, Some(account(3)))], &[(a, 2, 30)], &[]),
            block(&[], &[(b, 1, 40)], &[b]),
            block(&[(b, Some(account(5)))], &[(a, 1, 50)], &[]),
        ];
        let check = |overlay: &Overlay| {
            for address in [a, b] {
                assert_eq!(overlay.account(&address), walked_account(overlay, &address));
                for slot in 0..4u64 {
                    let slot = U256::from(slot);
                    assert_eq!(
                        overlay.storage(&address, &slot),
                        walked_storage(overlay, &address, &slot),
                        "{address} slot {slot}"
                    );
                }
            }
        };
        for (number, changes) in blocks.into_iter().enumerate() {
            overlay.push(changes);
            check(&overlay);
            if number % 2 == 1 {
                let mut popped = false;
                overlay.pop_while(|_| !std::mem::replace(&mut popped, true));
                check(&overlay);
            }
        }
        // The oldest left wiped `a`; the slot it set later stays; a slot set before the wipe
        // reads zero.
        assert_eq!(overlay.storage(&a, &U256::from(1)), Some(U256::from(50)));
        assert_eq!(overlay.storage(&b, &U256::from(2)), Some(U256::ZERO));
        overlay.pop_while(|_| true);
        check(&overlay);
        assert_eq!(overlay.account(&a), None);
        assert_eq!(overlay.storage(&b, &U256::from(2)), None);
        assert!(overlay.accounts.is_empty() && overlay.slots.is_empty());
        assert!(overlay.wiped.is_empty() && overlay.codes.is_empty());
    }
}
