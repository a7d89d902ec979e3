//! The two store backends behind [`primitives::store::Store`]: `pika` (any Redis-protocol server or
//! Redis Cluster) and `embedded` (a local redb file). Which one runs is `storage.backend`.

pub mod embedded;
pub mod pika;

use crate::config::{Backend, StorageConfig};
use primitives::store::{Store, StoreError};
use std::sync::Arc;

/// Open the backend the config names.
pub fn open(config: &StorageConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match config.backend {
        Backend::Embedded => Arc::new(
            embedded::EmbeddedStore::open_with_cache(
                &config.embedded.path,
                config.embedded.cache_bytes(),
            )?
            .with_sync_interval(config.embedded.sync_interval()),
        ),
        Backend::Pika => Arc::new(pika::PikaStore::connect_with_prefix(
            &config.pika,
            &config.key_prefix,
        )?),
    })
}
