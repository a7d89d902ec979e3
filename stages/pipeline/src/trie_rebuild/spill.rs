//! The temporary bucket files of `trie rebuild`: the scans of `st:latest` spill every account
//! and slot into one of [`BUCKETS`] files by the first byte of keccak256 of the account's
//! address, so the build can take the state one bucket at a time in hashed-address order.
//!
//! A file is a sequence of fixed-size records, each a tag byte then big-endian fields: an
//! account (address, nonce, balance, code hash, stored storage root, whether its stored JSON
//! is in the contract's own spelling) or a slot (address, slot, value). The directory is made
//! by [`Spill::create`] and removed when the [`SpilledBuckets`] are dropped.

use alloy_primitives::{keccak256, Address, B256, U256};
use primitives::contract::AccountJson;
use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

/// Buckets of the state: accounts grouped by the first byte of their hashed address (so each
/// bucket holds about 1/256 of the accounts, and a bucket's hashed addresses all sort after the
/// previous bucket's).
pub const BUCKETS: u32 = 256;

/// The write buffer of each bucket file: 256 of them are open during the scans.
const WRITE_BUFFER: usize = 32 * 1024;

const ACCOUNT_TAG: u8 = 0;
const SLOT_TAG: u8 = 1;
/// Bytes after the tag: address, nonce, balance, code hash, storage root, canonical flag.
const ACCOUNT_BYTES: usize = 20 + 8 + 32 + 32 + 32 + 1;
/// Bytes after the tag: address, slot, value.
const SLOT_BYTES: usize = 20 + 32 + 32;

/// The bucket of `address`: the first byte of its hashed address.
pub fn bucket_of_address(address: &Address) -> u32 {
    u32::from(keccak256(address)[0])
}

/// An account as `st:latest:acc` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpilledAccount {
    /// Its address.
    pub address: Address,
    /// Its stored JSON, decoded.
    pub json: AccountJson,
    /// True when the stored bytes are exactly the contract's encoding of `json` (so with the
    /// same storage root it needs no rewrite).
    pub canonical: bool,
}

/// A slot as `st:latest:stor` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpilledSlot {
    /// The account.
    pub address: Address,
    /// The slot (unhashed).
    pub slot: B256,
    /// Its value.
    pub value: U256,
}

/// A spill file that could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("spill file {path}: {source}")]
pub struct SpillError {
    /// The file or directory.
    pub path: String,
    /// The I/O error.
    pub source: std::io::Error,
}

fn spill_error(path: &Path) -> impl FnOnce(std::io::Error) -> SpillError + '_ {
    move |source| SpillError {
        path: path.display().to_string(),
        source,
    }
}

/// The bucket files being written.
pub struct Spill {
    files: SpilledBuckets,
    writers: Vec<BufWriter<File>>,
}

impl Spill {
    /// Create `dir` (which must not exist yet) with one empty file per bucket.
    pub fn create(dir: &Path) -> Result<Self, SpillError> {
        std::fs::create_dir_all(dir.parent().unwrap_or(dir)).map_err(spill_error(dir))?;
        std::fs::create_dir(dir).map_err(spill_error(dir))?;
        // From here on the directory is removed when `files` drops, also on an error.
        let files = SpilledBuckets {
            dir: dir.to_path_buf(),
        };
        let writers = (0..BUCKETS)
            .map(|bucket| {
                let path = files.path(bucket);
                File::create(&path)
                    .map(|file| BufWriter::with_capacity(WRITE_BUFFER, file))
                    .map_err(spill_error(&path))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { files, writers })
    }

    /// Append `account` to `bucket`.
    pub fn account(&mut self, bucket: u32, account: &SpilledAccount) -> Result<(), SpillError> {
        let mut record = [0u8; 1 + ACCOUNT_BYTES];
        let json = &account.json;
        record[0] = ACCOUNT_TAG;
        record[1..21].copy_from_slice(account.address.as_slice());
        record[21..29].copy_from_slice(&json.nonce.to_be_bytes());
        record[29..61].copy_from_slice(&json.balance.to_be_bytes::<32>());
        record[61..93].copy_from_slice(json.code_hash.as_slice());
        record[93..125].copy_from_slice(json.storage_root.as_slice());
        record[125] = u8::from(account.canonical);
        self.append(bucket, &record)
    }

    /// Append `slot` to `bucket`.
    pub fn slot(&mut self, bucket: u32, slot: &SpilledSlot) -> Result<(), SpillError> {
        let mut record = [0u8; 1 + SLOT_BYTES];
        record[0] = SLOT_TAG;
        record[1..21].copy_from_slice(slot.address.as_slice());
        record[21..53].copy_from_slice(slot.slot.as_slice());
        record[53..85].copy_from_slice(&slot.value.to_be_bytes::<32>());
        self.append(bucket, &record)
    }

    fn append(&mut self, bucket: u32, record: &[u8]) -> Result<(), SpillError> {
        let writer = &mut self.writers[bucket as usize];
        writer
            .write_all(record)
            .map_err(spill_error(&self.files.path(bucket)))
    }

    /// Flush and close every file.
    pub fn finish(self) -> Result<SpilledBuckets, SpillError> {
        for (bucket, mut writer) in (0..BUCKETS).zip(self.writers) {
            writer
                .flush()
                .map_err(spill_error(&self.files.path(bucket)))?;
        }
        Ok(self.files)
    }
}

/// The written bucket files; the directory is removed on drop.
#[derive(Debug)]
pub struct SpilledBuckets {
    dir: PathBuf,
}

impl SpilledBuckets {
    fn path(&self, bucket: u32) -> PathBuf {
        self.dir.join(format!("bucket-{bucket:03}.bin"))
    }

    /// Every account and slot spilled into `bucket`, in the order written.
    pub fn load(&self, bucket: u32) -> Result<(Vec<SpilledAccount>, Vec<SpilledSlot>), SpillError> {
        let path = self.path(bucket);
        let file = File::open(&path).map_err(spill_error(&path))?;
        let mut reader = BufReader::new(file);
        let (mut accounts, mut slots) = (Vec::new(), Vec::new());
        let mut tag = [0u8; 1];
        loop {
            match reader.read_exact(&mut tag) {
                Ok(()) => {}
                Err(error) if error.kind() == ErrorKind::UnexpectedEof => break,
                Err(error) => return Err(spill_error(&path)(error)),
            }
            match tag[0] {
                ACCOUNT_TAG => {
                    let mut r = [0u8; ACCOUNT_BYTES];
                    reader.read_exact(&mut r).map_err(spill_error(&path))?;
                    let mut nonce = [0u8; 8];
                    nonce.copy_from_slice(&r[20..28]);
                    accounts.push(SpilledAccount {
                        address: Address::from_slice(&r[..20]),
                        json: AccountJson {
                            nonce: u64::from_be_bytes(nonce),
                            balance: U256::from_be_slice(&r[28..60]),
                            code_hash: B256::from_slice(&r[60..92]),
                            storage_root: B256::from_slice(&r[92..124]),
                        },
                        canonical: r[124] == 1,
                    });
                }
                SLOT_TAG => {
                    let mut r = [0u8; SLOT_BYTES];
                    reader.read_exact(&mut r).map_err(spill_error(&path))?;
                    slots.push(SpilledSlot {
                        address: Address::from_slice(&r[..20]),
                        slot: B256::from_slice(&r[20..52]),
                        value: U256::from_be_slice(&r[52..84]),
                    });
                }
                other => {
                    return Err(spill_error(&path)(std::io::Error::new(
                        ErrorKind::InvalidData,
                        format!("unknown record tag {other}"),
                    )))
                }
            }
        }
        Ok((accounts, slots))
    }
}

impl Drop for SpilledBuckets {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot remove the spill directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_written_and_the_directory_goes() {
        let parent = tempfile_dir();
        let dir = parent.join("spill");
        let mut spill = Spill::create(&dir).unwrap();
        let account = SpilledAccount {
            address: Address::repeat_byte(7),
            json: AccountJson {
                balance: U256::MAX,
                nonce: u64::MAX - 1,
                code_hash: B256::repeat_byte(3),
                storage_root: B256::repeat_byte(4),
            },
            canonical: true,
        };
        let slot = SpilledSlot {
            address: Address::repeat_byte(7),
            slot: B256::repeat_byte(9),
            value: U256::from(12345),
        };
        spill.account(5, &account).unwrap();
        spill.slot(5, &slot).unwrap();
        spill
            .account(
                5,
                &SpilledAccount {
                    canonical: false,
                    ..account
                },
            )
            .unwrap();
        let buckets = spill.finish().unwrap();
        assert_eq!(
            buckets.load(5).unwrap(),
            (
                vec![
                    account,
                    SpilledAccount {
                        canonical: false,
                        ..account
                    }
                ],
                vec![slot]
            )
        );
        assert_eq!(buckets.load(6).unwrap(), (Vec::new(), Vec::new()));
        drop(buckets);
        assert!(!dir.exists(), "the spill directory is removed");
        assert!(
            Spill::create(&parent).is_err(),
            "an existing directory is refused"
        );
        std::fs::remove_dir_all(&parent).unwrap();
    }

    /// A fresh directory under the system temp dir.
    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "trie-rebuild-spill-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
