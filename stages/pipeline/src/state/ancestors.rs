//! The chain below a block, for the ommer rules ([`evm::ommers`]): the syncer's headers
//! (`blk:hdr:{n}`) and, for those that included ommers, bodies (`blk:body:{n}`), read from the
//! store below the state layers with one batched read each. The syncer writes both before the
//! executor reaches a block; neither is ever changed by the executor.

use super::StateLayers;
use alloy_consensus::constants::EMPTY_OMMER_ROOT_HASH;
use evm::error::StateError;
use evm::ommers::{Ancestor, Ancestors};
use primitives::value::ContractRead;

impl Ancestors for StateLayers {
    fn ancestors(&self, first: u64, last: u64) -> Result<Vec<Ancestor>, StateError> {
        let keys = self.keys();
        let header_keys: Vec<_> = (first..=last).map(|n| keys.header(n)).collect();
        let headers = self.store().read_many(&header_keys)?;
        let headers = (first..=last)
            .zip(headers)
            .map(|(number, header)| {
                header.ok_or_else(|| StateError::MissingAncestor {
                    number,
                    key: keys.header(number).into_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Only blocks that included ommers need their body.
        let with_ommers: Vec<u64> = headers
            .iter()
            .filter(|header| header.ommers_hash != EMPTY_OMMER_ROOT_HASH)
            .map(|header| header.number)
            .collect();
        let body_keys: Vec<_> = with_ommers.iter().map(|n| keys.body(*n)).collect();
        let mut bodies = self.store().read_many(&body_keys)?.into_iter();
        headers
            .into_iter()
            .map(|header| {
                let ommers = if header.ommers_hash == EMPTY_OMMER_ROOT_HASH {
                    Vec::new()
                } else {
                    bodies
                        .next()
                        .flatten()
                        .ok_or_else(|| StateError::MissingAncestor {
                            number: header.number,
                            key: keys.body(header.number).into_string(),
                        })?
                        .ommers
                };
                Ok(Ancestor { header, ommers })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::cache::CacheSizes;
    use alloy_consensus::{proofs, BlockBody, Header, Sealed, TxEnvelope};
    use alloy_primitives::Address;
    use primitives::keys::Keys;
    use primitives::memory::MemoryStore;
    use primitives::store::WriteBatch;
    use std::sync::Arc;

    /// An ommer that block 2 includes.
    fn ommer() -> Header {
        Header {
            number: 1,
            beneficiary: Address::repeat_byte(0xee),
            ..Header::default()
        }
    }

    /// Blocks 0 to 3 as the syncer writes them (headers; block 2's body with its ommer), less
    /// the keys `skip` names.
    fn layers(skip: &[String]) -> (Arc<MemoryStore>, StateLayers) {
        let store = Arc::new(MemoryStore::new());
        let keys = Keys::default();
        let mut batch = WriteBatch::new();
        let mut parent_hash = Default::default();
        for number in 0..=3 {
            let ommers = if number == 2 {
                vec![ommer()]
            } else {
                Vec::new()
            };
            let header = Header {
                number,
                parent_hash,
                ommers_hash: proofs::calculate_ommers_root(&ommers),
                ..Header::default()
            };
            let sealed = Sealed::new(header);
            parent_hash = sealed.hash();
            if !skip.contains(&keys.header(number).into_string()) {
                batch.put(keys.header(number), &sealed);
            }
            let body = BlockBody::<TxEnvelope> {
                transactions: Vec::new(),
                ommers,
                withdrawals: None,
            };
            if !skip.contains(&keys.body(number).into_string()) {
                batch.put(keys.body(number), &body);
            }
        }
        primitives::store::Store::write(store.as_ref(), &batch).expect("memory store");
        let layers = StateLayers::new(store.clone(), keys, CacheSizes::default());
        (store, layers)
    }

    #[test]
    fn ancestors_come_with_their_ommers_in_two_batched_reads() {
        let (store, layers) = layers(&[]);
        let before = store.round_trips();
        let found = layers.ancestors(1, 3).expect("ancestors");
        assert_eq!(
            store.round_trips() - before,
            2,
            "one read of headers, one of bodies"
        );
        let numbers: Vec<u64> = found.iter().map(|a| a.header.number).collect();
        assert_eq!(numbers, [1, 2, 3]);
        let ommers: Vec<usize> = found.iter().map(|a| a.ommers.len()).collect();
        assert_eq!(ommers, [0, 1, 0]);
        assert_eq!(found[1].ommers[0], ommer());
    }

    #[test]
    fn a_missing_header_or_body_is_named_by_its_key() {
        let keys = Keys::default();
        let header = keys.header(1).into_string();
        let (_, without_header) = layers(std::slice::from_ref(&header));
        assert!(matches!(
            without_header.ancestors(1, 3),
            Err(StateError::MissingAncestor { number: 1, key }) if key == header
        ));
        // Block 2 included an ommer: its body is needed; the others' are not.
        let body = keys.body(2).into_string();
        let (_, without_body) = layers(&[body.clone(), keys.body(1).into_string()]);
        assert!(matches!(
            without_body.ancestors(1, 3),
            Err(StateError::MissingAncestor { number: 2, key }) if key == body
        ));
        let (_, only_needed) = layers(&[keys.body(1).into_string(), keys.body(3).into_string()]);
        assert!(only_needed.ancestors(1, 3).is_ok());
    }
}
