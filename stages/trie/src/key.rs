//! Where a trie node lives: [`NodeKey`] names the trie (the account trie, or the storage trie of
//! one account) and the node's path from that trie's root, and converts the path to and from
//! its text form, one lowercase hex digit per nibble.
//!
//! The crate never spells a store key; a caller maps `NodeKey::Account(path)` and
//! `NodeKey::Storage(address, path)` to its own keys with [`NodeKey::path_hex`] (and back with
//! [`path_from_hex`]).

use std::fmt;

use alloy_primitives::Address;
use alloy_trie::Nibbles;

/// The most nibbles a path can hold: a trie key is a 32-byte hash.
pub const MAX_PATH_NIBBLES: usize = 64;

/// The key of one stored trie node: its trie and its path (the nibbles from the trie's root to
/// the node; empty for the root).
///
/// Ordered by trie (the account trie first, then storage tries by address) and then by path,
/// lexicographically nibble by nibble, so a node sorts before the nodes below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKey {
    /// A node of the account trie (keys: keccak256 of the address).
    Account(Nibbles),
    /// A node of the storage trie of the account at this address (keys: keccak256 of the slot).
    Storage(Address, Nibbles),
}

impl NodeKey {
    /// The node's path from its trie's root.
    pub const fn path(&self) -> &Nibbles {
        match self {
            Self::Account(path) | Self::Storage(_, path) => path,
        }
    }

    /// The account whose storage trie holds the node; `None` for the account trie.
    pub const fn address(&self) -> Option<Address> {
        match self {
            Self::Account(_) => None,
            Self::Storage(address, _) => Some(*address),
        }
    }

    /// The path as text: one lowercase hex digit per nibble (`"a3"` for the path a, 3), the
    /// empty string for the root. Inverse of [`path_from_hex`].
    pub fn path_hex(&self) -> String {
        path_to_hex(self.path())
    }

    /// The key of the node at `path` in the same trie as `self`.
    pub(crate) const fn with_path(&self, path: Nibbles) -> Self {
        match self {
            Self::Account(_) => Self::Account(path),
            Self::Storage(address, _) => Self::Storage(*address, path),
        }
    }
}

impl fmt::Display for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Account(path) => write!(f, "account trie node [{}]", path_to_hex(path)),
            Self::Storage(address, path) => {
                write!(f, "storage trie node of {address} [{}]", path_to_hex(path))
            }
        }
    }
}

/// A path's text form: one lowercase hex digit per nibble, the empty string for the root.
pub fn path_to_hex(path: &Nibbles) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    path.iter()
        .map(|nibble| char::from(DIGITS[usize::from(nibble)]))
        .collect()
}

/// Parses a path's text form (see [`path_to_hex`]): lowercase hex digits only, at most 64.
pub fn path_from_hex(text: &str) -> Result<Nibbles, PathHexError> {
    if text.len() > MAX_PATH_NIBBLES {
        return Err(PathHexError::TooLong { len: text.len() });
    }
    let mut path = Nibbles::new();
    for (position, character) in text.chars().enumerate() {
        let nibble = match character {
            '0'..='9' => character as u8 - b'0',
            'a'..='f' => character as u8 - b'a' + 10,
            _ => {
                return Err(PathHexError::InvalidDigit {
                    position,
                    character,
                })
            }
        };
        path.push(nibble);
    }
    Ok(path)
}

/// Why a text is not a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathHexError {
    /// More than 64 digits.
    #[error("trie path of {len} nibbles: at most 64")]
    TooLong {
        /// The number of characters given.
        len: usize,
    },
    /// A character other than `0-9a-f`.
    #[error("trie path: {character:?} at position {position} is not a lowercase hex digit")]
    InvalidDigit {
        /// Its position (in characters).
        position: usize,
        /// The character.
        character: char,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_text_round_trips() {
        let path = Nibbles::from_nibbles([0xa, 0x3, 0x0, 0xf]);
        let key = NodeKey::Storage(Address::repeat_byte(0x11), path);
        assert_eq!(key.path_hex(), "a30f");
        assert_eq!(path_from_hex("a30f"), Ok(path));
        assert_eq!(NodeKey::Account(Nibbles::new()).path_hex(), "");
        assert_eq!(path_from_hex(""), Ok(Nibbles::new()));
        let full = "0123456789abcdef".repeat(4);
        assert_eq!(path_to_hex(&path_from_hex(&full).unwrap()), full);
    }

    #[test]
    fn bad_path_text_is_refused() {
        assert_eq!(
            path_from_hex("a3F"),
            Err(PathHexError::InvalidDigit {
                position: 2,
                character: 'F'
            })
        );
        assert_eq!(
            path_from_hex(&"0".repeat(65)),
            Err(PathHexError::TooLong { len: 65 })
        );
    }

    #[test]
    fn keys_order_by_trie_then_path() {
        let root = NodeKey::Account(Nibbles::new());
        let deep = NodeKey::Account(Nibbles::from_nibbles([0, 0]));
        let next = NodeKey::Account(Nibbles::from_nibbles([1]));
        let storage = NodeKey::Storage(Address::ZERO, Nibbles::new());
        let mut keys = vec![storage, next, deep, root];
        keys.sort();
        assert_eq!(keys, vec![root, deep, next, storage]);
    }
}
