//! Ommer (uncle) validity before the merge, as go-ethereum's `consensus/ethash` `VerifyUncles`
//! states it: at most two ommers; none already included, by this block or by one of its last
//! seven ancestors; none an ancestor of the block; each the child of one of those ancestors
//! other than the block's own parent (so not a sibling of the block); and each a valid header
//! against its parent ([`crate::validate`]). After the merge a block has no ommers at all,
//! which the header rules check (its ommers hash).
//!
//! An executor checks these because ommers earn rewards, which change the state. The rules
//! need the chain below the block: [`Ancestors`] is where they read it, so that the caller
//! decides where it lives (the pipeline's state layers read the syncer's `blk:hdr:{n}` and
//! `blk:body:{n}` from the store).

use crate::chain::ChainSpec;
use crate::error::StateError;
use crate::validate::{check_ethereum_header, HeaderViolation};
use alloy_consensus::{Header, Sealed};
use alloy_primitives::map::{HashMap, HashSet};
use alloy_primitives::B256;

/// The most ommers a block may include.
pub const MAX_OMMERS: usize = 2;
/// How many generations below a block its ommers' parents may be, and how far back an ommer
/// counts as already included.
pub const OMMER_GENERATIONS: u64 = 7;

/// A block below the one being checked, as the ommer rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ancestor {
    /// Its header, with its hash.
    pub header: Sealed<Header>,
    /// The ommers it included.
    pub ommers: Vec<Header>,
}

/// The chain below a block being executed.
pub trait Ancestors {
    /// Blocks `first..=last` of the chain the block extends, oldest first, each with the
    /// ommers it included. A block that cannot be read is an error, not a gap.
    fn ancestors(&self, first: u64, last: u64) -> Result<Vec<Ancestor>, StateError>;
}

/// An ommer rule a block breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OmmerError {
    /// More than [`MAX_OMMERS`] ommers.
    #[error("{count} ommers, at most {MAX_OMMERS} allowed")]
    TooMany {
        /// How many the block has.
        count: usize,
    },
    /// The ommer is the block itself, appears twice in the block, or was included by one of
    /// the last [`OMMER_GENERATIONS`] ancestors.
    #[error("ommer {index} ({hash:#x}) is already included")]
    AlreadyIncluded {
        /// Position in the block's ommers.
        index: usize,
        /// The ommer's hash.
        hash: B256,
    },
    /// The ommer is one of the block's ancestors.
    #[error("ommer {index} ({hash:#x}) is an ancestor of the block")]
    Ancestor {
        /// Position in the block's ommers.
        index: usize,
        /// The ommer's hash.
        hash: B256,
    },
    /// The ommer shares the block's parent: a sibling, not an ommer.
    #[error("ommer {index} ({hash:#x}) is a sibling of the block (same parent {parent:#x})")]
    Sibling {
        /// Position in the block's ommers.
        index: usize,
        /// The ommer's hash.
        hash: B256,
        /// The parent both have.
        parent: B256,
    },
    /// The ommer's parent is not among the block's last [`OMMER_GENERATIONS`] ancestors.
    #[error(
        "ommer {index} ({hash:#x}) has parent {parent:#x}, which is not one of the block's last \
         {OMMER_GENERATIONS} ancestors"
    )]
    UnknownParent {
        /// Position in the block's ommers.
        index: usize,
        /// The ommer's hash.
        hash: B256,
        /// The parent it names.
        parent: B256,
    },
    /// The ommer's header breaks a header rule against its parent.
    #[error("ommer {index} ({hash:#x}) has an invalid header: {violation}")]
    Header {
        /// Position in the block's ommers.
        index: usize,
        /// The ommer's hash.
        hash: B256,
        /// The rule broken.
        violation: HeaderViolation,
    },
}

/// Why the ommers of a block could not be accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OmmerCheckError {
    /// An ommer rule is broken: the block is invalid.
    #[error(transparent)]
    Invalid(#[from] OmmerError),
    /// The chain below the block could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Check the `ommers` of the block `hash` (whose header is `header`) under `spec`, reading its
/// ancestors from `ancestors`. A block without ommers needs no ancestors.
pub fn check_ommers(
    spec: &ChainSpec,
    header: &Header,
    hash: B256,
    ommers: &[Header],
    ancestors: &dyn Ancestors,
) -> Result<(), OmmerCheckError> {
    if ommers.is_empty() {
        return Ok(());
    }
    if ommers.len() > MAX_OMMERS {
        return Err(OmmerError::TooMany {
            count: ommers.len(),
        }
        .into());
    }
    // The header rules, checked first, make the block's number its parent's plus one.
    let last = header.number.saturating_sub(1);
    let first = header.number.saturating_sub(OMMER_GENERATIONS);
    let below = ancestors.ancestors(first, last)?;
    check_links(&below, header.parent_hash)?;

    let mut included: HashSet<B256> = below
        .iter()
        .flat_map(|ancestor| ancestor.ommers.iter().map(Header::hash_slow))
        .collect();
    included.insert(hash);
    let mut family: HashMap<B256, &Header> = below
        .iter()
        .map(|ancestor| (ancestor.header.hash(), ancestor.header.inner()))
        .collect();
    family.insert(hash, header);

    for (index, ommer) in ommers.iter().enumerate() {
        let ommer_hash = ommer.hash_slow();
        if !included.insert(ommer_hash) {
            return Err(OmmerError::AlreadyIncluded {
                index,
                hash: ommer_hash,
            }
            .into());
        }
        if family.contains_key(&ommer_hash) {
            return Err(OmmerError::Ancestor {
                index,
                hash: ommer_hash,
            }
            .into());
        }
        if ommer.parent_hash == header.parent_hash {
            return Err(OmmerError::Sibling {
                index,
                hash: ommer_hash,
                parent: ommer.parent_hash,
            }
            .into());
        }
        let Some(parent) = family.get(&ommer.parent_hash) else {
            return Err(OmmerError::UnknownParent {
                index,
                hash: ommer_hash,
                parent: ommer.parent_hash,
            }
            .into());
        };
        check_ethereum_header(spec, ommer, parent).map_err(|violation| OmmerError::Header {
            index,
            hash: ommer_hash,
            violation,
        })?;
    }
    Ok(())
}

/// `below` (oldest first) must be one chain ending in the block's parent `parent_hash`.
fn check_links(below: &[Ancestor], parent_hash: B256) -> Result<(), StateError> {
    let mut expected = parent_hash;
    for ancestor in below.iter().rev() {
        if ancestor.header.hash() != expected {
            return Err(StateError::NotAnAncestor {
                number: ancestor.header.number,
                found: ancestor.header.hash(),
                expected,
            });
        }
        expected = ancestor.header.parent_hash;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! A Frontier chain whose blocks come twenty seconds apart at the minimum difficulty (a
    //! slow block lowers the difficulty, which cannot go below 131,072), so every header here
    //! has the difficulty the rules require without computing it.

    use super::*;
    use crate::network::TestNetwork;
    use alloy_primitives::{Address, U256};

    const MINIMUM_DIFFICULTY: u64 = 131_072;
    const SPACING: u64 = 20;

    /// Blocks 0 to 7 as the store gives them, by number.
    struct Chain(Vec<Ancestor>);

    impl Ancestors for Chain {
        fn ancestors(&self, first: u64, last: u64) -> Result<Vec<Ancestor>, StateError> {
            Ok(self.0[first as usize..=last as usize].to_vec())
        }
    }

    fn child_of(parent: &Header, coinbase: Address) -> Header {
        Header {
            parent_hash: parent.hash_slow(),
            number: parent.number + 1,
            timestamp: parent.timestamp + SPACING,
            difficulty: U256::from(MINIMUM_DIFFICULTY),
            gas_limit: 5000,
            beneficiary: coinbase,
            ..Header::default()
        }
    }

    /// Genesis and blocks 1 to 7; block 5 included `included`.
    fn chain(included: &Header) -> Chain {
        let genesis = Header {
            difficulty: U256::from(MINIMUM_DIFFICULTY),
            gas_limit: 5000,
            ..Header::default()
        };
        let mut blocks = vec![Ancestor {
            header: Sealed::new(genesis),
            ommers: Vec::new(),
        }];
        for number in 1..=7 {
            let header = child_of(&blocks[number - 1].header, Address::ZERO);
            let ommers = if number == 5 {
                vec![included.clone()]
            } else {
                Vec::new()
            };
            blocks.push(Ancestor {
                header: Sealed::new(header),
                ommers,
            });
        }
        Chain(blocks)
    }

    fn uncle_of(chain: &Chain, parent: usize, tag: u8) -> Header {
        child_of(&chain.0[parent].header, Address::repeat_byte(tag))
    }

    /// Check block 8 (the child of block 7) with `ommers`.
    fn check(chain: &Chain, ommers: &[Header]) -> Result<(), OmmerCheckError> {
        let spec = TestNetwork::parse("Frontier")
            .expect("known network")
            .chain_spec(1, &Default::default());
        let header = child_of(&chain.0[7].header, Address::ZERO);
        check_ommers(&spec, &header, header.hash_slow(), ommers, chain)
    }

    /// A chain whose block 5 included an ommer of block 4 (child of block 3).
    fn fixture() -> Chain {
        let base = chain(&Header::default());
        let included = uncle_of(&base, 3, 0x55);
        chain(&included)
    }

    fn invalid(result: Result<(), OmmerCheckError>) -> OmmerError {
        match result {
            Err(OmmerCheckError::Invalid(error)) => error,
            other => panic!("expected an invalid ommer, got {other:?}"),
        }
    }

    #[test]
    fn ommers_of_the_last_seven_generations_are_valid() {
        let chain = fixture();
        // Children of block 6 (the block's grandparent) and of block 1 (seven back).
        let ommers = [uncle_of(&chain, 6, 1), uncle_of(&chain, 1, 2)];
        assert!(check(&chain, &ommers).is_ok());
    }

    #[test]
    fn at_most_two_ommers() {
        let chain = fixture();
        let ommers = [
            uncle_of(&chain, 6, 1),
            uncle_of(&chain, 5, 2),
            uncle_of(&chain, 4, 3),
        ];
        assert_eq!(
            invalid(check(&chain, &ommers)),
            OmmerError::TooMany { count: 3 }
        );
    }

    #[test]
    fn an_ommer_included_by_an_ancestor_is_refused() {
        let chain = fixture();
        let again = chain.0[5].ommers[0].clone();
        assert!(matches!(
            invalid(check(&chain, &[again])),
            OmmerError::AlreadyIncluded { index: 0, .. }
        ));
    }

    #[test]
    fn the_same_ommer_twice_is_refused() {
        let chain = fixture();
        let ommer = uncle_of(&chain, 6, 1);
        assert!(matches!(
            invalid(check(&chain, &[ommer.clone(), ommer])),
            OmmerError::AlreadyIncluded { index: 1, .. }
        ));
    }

    #[test]
    fn an_ancestor_is_no_ommer() {
        let chain = fixture();
        let ancestor = chain.0[6].header.inner().clone();
        assert!(matches!(
            invalid(check(&chain, &[ancestor])),
            OmmerError::Ancestor { index: 0, .. }
        ));
    }

    #[test]
    fn a_sibling_is_no_ommer() {
        let chain = fixture();
        let sibling = uncle_of(&chain, 7, 1);
        assert!(matches!(
            invalid(check(&chain, &[sibling])),
            OmmerError::Sibling { index: 0, .. }
        ));
    }

    #[test]
    fn an_ommers_parent_is_at_most_seven_generations_back() {
        let chain = fixture();
        let too_old = uncle_of(&chain, 0, 1);
        assert!(matches!(
            invalid(check(&chain, &[too_old])),
            OmmerError::UnknownParent { index: 0, .. }
        ));
    }

    #[test]
    fn an_ommer_with_an_invalid_header_is_refused() {
        let chain = fixture();
        let mut ommer = uncle_of(&chain, 6, 1);
        ommer.difficulty += U256::from(1);
        match invalid(check(&chain, &[ommer])) {
            OmmerError::Header {
                index, violation, ..
            } => {
                assert_eq!((index, violation.field), (0, "difficulty"));
            }
            other => panic!("expected a header violation, got {other:?}"),
        }
    }

    #[test]
    fn a_store_chain_that_does_not_lead_to_the_parent_is_a_state_error() {
        let mut chain = fixture();
        chain.0[4] = Ancestor {
            header: Sealed::new(uncle_of(&chain, 3, 9)),
            ommers: Vec::new(),
        };
        let ommer = uncle_of(&chain, 6, 1);
        assert!(matches!(
            check(&chain, &[ommer]),
            Err(OmmerCheckError::State(StateError::NotAnAncestor {
                number: 4,
                ..
            }))
        ));
    }
}
