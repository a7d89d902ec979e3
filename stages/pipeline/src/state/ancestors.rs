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
