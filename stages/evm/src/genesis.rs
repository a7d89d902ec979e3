//! Genesis: a geth-style `genesis.json` turned into the state it defines, its state root and
//! the block-0 header, the way go-ethereum's `Genesis.ToBlock` builds it. [`GenesisBlock`]
//! holds a whole genesis in memory (the built-in chains', small files); [`stream`] reads a file
//! of any size once, account by account.

pub mod stream;

use crate::chain::ChainSpec;
use crate::collision::storage_only_accounts;
use alloy_consensus::{
    constants::EMPTY_WITHDRAWALS, Header, Sealed, EMPTY_OMMER_ROOT_HASH, EMPTY_ROOT_HASH,
};
use alloy_eips::eip7685::EMPTY_REQUESTS_HASH;
use alloy_genesis::{ChainConfig, Genesis};
use alloy_hardforks::{EthereumHardfork, EthereumHardforks, ForkCondition};
use alloy_primitives::{keccak256, Address, Bytes, B256, B64, U256};
use alloy_trie::{root, TrieAccount};
use primitives::contract::{AccountJson, EMPTY_CODE_HASH};
use primitives::keys::Keys;
use primitives::storage_only::StorageOnlyAccounts;
use primitives::store::WriteBatch;
use std::path::Path;

/// go-ethereum's `params.GenesisGasLimit`, used when the genesis leaves `gasLimit` at zero.
const DEFAULT_GAS_LIMIT: u64 = 4_712_388;
/// go-ethereum's `params.GenesisDifficulty`, used when difficulty and mixHash are both unset.
const DEFAULT_DIFFICULTY: u64 = 131_072;
/// EIP-1559's initial base fee, used for a London genesis without `baseFeePerGas`.
const INITIAL_BASE_FEE: u64 = 1_000_000_000;

/// A genesis file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The file could not be read.
    #[error("cannot read genesis {path}: {source}")]
    Read {
        /// The file's path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a geth-style genesis.
    #[error("genesis {path} is not a valid geth genesis file: {source}")]
    Parse {
        /// The file's path.
        path: String,
        /// What serde found.
        source: serde_json::Error,
    },
}

/// A parsed genesis with what `init` derives from it.
#[derive(Debug, Clone)]
pub struct GenesisBlock {
    /// The genesis file as parsed.
    pub genesis: Genesis,
    /// The raw `config` object of the file (kept verbatim for the chain record).
    pub config_json: serde_json::Value,
    /// The block-0 header.
    pub header: Header,
    /// Its hash.
    pub hash: B256,
}

impl GenesisBlock {
    /// Read and parse a geth-style genesis file.
    pub fn load(path: &Path) -> Result<Self, GenesisError> {
        let shown = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| GenesisError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&shown, &text)
    }

    /// Parse a genesis from its JSON text; `origin` names it in errors.
    pub fn parse(origin: &str, text: &[u8]) -> Result<Self, GenesisError> {
        Self::parse_with(origin, text, None)
    }

    /// Parse the genesis of a chain whose rules are `spec`: a file without a `config` object
    /// (as clients ship the Ethereum networks' genesis files) takes the spec's chain id and the
    /// forks that shape the genesis header.
    pub fn parse_for_spec(
        origin: &str,
        text: &[u8],
        spec: &ChainSpec,
    ) -> Result<Self, GenesisError> {
        Self::parse_with(origin, text, Some(spec))
    }

    fn parse_with(
        origin: &str,
        text: &[u8],
        spec: Option<&ChainSpec>,
    ) -> Result<Self, GenesisError> {
        let parse_err = |source| GenesisError::Parse {
            path: origin.to_string(),
            source,
        };
        let mut genesis: Genesis = serde_json::from_slice(text).map_err(parse_err)?;
        let raw: serde_json::Value = serde_json::from_slice(text).map_err(parse_err)?;
        let config_json = raw
            .get("config")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        if let (serde_json::Value::Null, Some(spec)) = (&config_json, spec) {
            genesis.config = header_config(spec);
        }
        // go-ethereum substitutes the default difficulty only when the field is absent.
        let difficulty_given = raw.get("difficulty").is_some_and(|v| !v.is_null());
        let header = genesis_header(&genesis, difficulty_given);
        let hash = header.hash_slow();
        Ok(Self {
            genesis,
            config_json,
            header,
            hash,
        })
    }

    /// Whether the file has a `config` object (geth's genesis files do; the files clients
    /// ship for the Ethereum networks do not).
    pub fn has_config(&self) -> bool {
        !self.config_json.is_null()
    }

    /// The chain id the genesis config declares.
    pub fn chain_id(&self) -> u64 {
        self.genesis.config.chain_id
    }

    /// Every allocated account: its fields and non-zero slots.
    pub fn accounts(&self) -> impl Iterator<Item = GenesisAccount> + '_ {
        self.genesis.alloc.iter().map(|(address, account)| {
            let code_hash = account
                .code
                .as_ref()
                .filter(|code| !code.is_empty())
                .map_or(EMPTY_CODE_HASH, keccak256);
            GenesisAccount {
                address: *address,
                nonce: account.nonce.unwrap_or_default(),
                balance: account.balance,
                code_hash,
                slots: non_zero_storage(account.storage.as_ref()).collect(),
            }
        })
    }

    /// The writes that put the genesis state, code and header into the store: every account as
    /// `st:latest:acc` (with the storage root `storage_root` gives it), every non-zero slot as
    /// `st:latest:stor`, code under `st:code`, and the header at `blk:hdr:0`.
    pub fn state_writes(&self, keys: &Keys, storage_root: impl Fn(&Address) -> B256) -> WriteBatch {
        let mut batch = WriteBatch::new();
        for account in self.genesis.alloc.values() {
            if let Some(code) = account.code.as_ref().filter(|code| !code.is_empty()) {
                batch.put(keys.code(&keccak256(code)), code);
            }
        }
        for account in self.accounts() {
            for (slot, value) in &account.slots {
                batch.put(keys.latest_storage(&account.address, slot), value);
            }
            let json = AccountJson {
                balance: account.balance,
                nonce: account.nonce,
                code_hash: account.code_hash,
                storage_root: storage_root(&account.address),
            };
            batch.put(keys.latest_account(&account.address), &json);
        }
        batch.put(
            keys.header(0),
            &Sealed::new_unchecked(self.header.clone(), self.hash),
        );
        batch
    }
}

/// What `init` and a takeover keep of a genesis besides its state: the chain it names, its
/// block-0 header, and the EIP-7610 candidates of its allocation ([`crate::collision`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GenesisSummary {
    /// The chain id the genesis config declares.
    pub chain_id: u64,
    /// The raw `config` object of the file (null when it has none).
    pub config_json: serde_json::Value,
    /// The block-0 header.
    pub header: Header,
    /// Its hash.
    pub hash: B256,
    /// The allocation's accounts with storage but no code and nonce 0, with a witness slot.
    pub storage_only: StorageOnlyAccounts,
    /// Accounts in the allocation.
    pub accounts: u64,
}

impl GenesisBlock {
    /// This genesis summarised.
    pub fn summary(&self) -> GenesisSummary {
        GenesisSummary {
            chain_id: self.chain_id(),
            config_json: self.config_json.clone(),
            header: self.header.clone(),
            hash: self.hash,
            storage_only: storage_only_accounts(&self.genesis),
            accounts: self.genesis.alloc.len() as u64,
        }
    }
}

/// A genesis account as the state keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisAccount {
    /// Its address.
    pub address: Address,
    /// Its nonce.
    pub nonce: u64,
    /// Its balance in wei.
    pub balance: U256,
    /// keccak256 of its code ([`EMPTY_CODE_HASH`] without code).
    pub code_hash: B256,
    /// Its non-zero storage slots.
    pub slots: Vec<(B256, U256)>,
}

/// The part of a geth `config` that [`genesis_header`] reads, from `spec`: the chain id, the
/// London block and the Shanghai, Cancun and Prague times.
fn header_config(spec: &ChainSpec) -> ChainConfig {
    let block = |fork| match spec.ethereum_fork_activation(fork) {
        ForkCondition::Block(number) => Some(number),
        _ => None,
    };
    let time = |fork| match spec.ethereum_fork_activation(fork) {
        ForkCondition::Timestamp(time) => Some(time),
        _ => None,
    };
    let mut config = ChainConfig {
        chain_id: spec.chain_id,
        ..ChainConfig::default()
    };
    config.london_block = block(EthereumHardfork::London);
    config.shanghai_time = time(EthereumHardfork::Shanghai);
    config.cancun_time = time(EthereumHardfork::Cancun);
    config.prague_time = time(EthereumHardfork::Prague);
    config
}

/// The non-zero slots of a genesis account's `storage`.
pub(crate) fn non_zero_storage(
    storage: Option<&std::collections::BTreeMap<B256, B256>>,
) -> impl Iterator<Item = (B256, U256)> + '_ {
    storage
        .into_iter()
        .flatten()
        .map(|(slot, value)| (*slot, U256::from_be_bytes(value.0)))
        .filter(|(_, value)| !value.is_zero())
}

/// The state root of the genesis allocation (the Merkle-Patricia root over all accounts).
pub fn state_root(genesis: &Genesis) -> B256 {
    let accounts = genesis
        .alloc
        .iter()
        .map(|(address, account): (&Address, _)| {
            let storage_root =
                root::storage_root_unhashed(non_zero_storage(account.storage.as_ref()));
            let code_hash = account
                .code
                .as_ref()
                .filter(|code| !code.is_empty())
                .map_or(EMPTY_CODE_HASH, keccak256);
            let trie_account = TrieAccount {
                nonce: account.nonce.unwrap_or_default(),
                balance: account.balance,
                storage_root,
                code_hash,
            };
            (*address, trie_account)
        });
    root::state_root_unhashed(accounts)
}

/// The block-0 header, with the optional fields each fork active at genesis adds.
/// `difficulty_given` tells whether the file set `difficulty` (even to zero).
pub fn genesis_header(genesis: &Genesis, difficulty_given: bool) -> Header {
    genesis_header_with_root(genesis, difficulty_given, state_root(genesis))
}

/// [`genesis_header`] with the state root given (computed elsewhere, the allocation not held).
pub fn genesis_header_with_root(
    genesis: &Genesis,
    difficulty_given: bool,
    state_root: B256,
) -> Header {
    let config = &genesis.config;
    let number = genesis.number.unwrap_or_default();
    let time = genesis.timestamp;
    let london = config.is_london_active_at_block(number);
    let at_time = |fork_time: Option<u64>| london && fork_time.is_some_and(|t| t <= time);
    let shanghai = at_time(config.shanghai_time);
    let cancun = at_time(config.cancun_time);
    let prague = at_time(config.prague_time);
    let difficulty = if !difficulty_given && genesis.mix_hash.is_zero() {
        U256::from(DEFAULT_DIFFICULTY)
    } else {
        genesis.difficulty
    };
    Header {
        parent_hash: genesis.parent_hash.unwrap_or_default(),
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: genesis.coinbase,
        state_root,
        transactions_root: EMPTY_ROOT_HASH,
        receipts_root: EMPTY_ROOT_HASH,
        logs_bloom: Default::default(),
        difficulty,
        number,
        gas_limit: if genesis.gas_limit == 0 {
            DEFAULT_GAS_LIMIT
        } else {
            genesis.gas_limit
        },
        gas_used: 0,
        timestamp: time,
        extra_data: Bytes::clone(&genesis.extra_data),
        mix_hash: genesis.mix_hash,
        nonce: B64::from(genesis.nonce),
        base_fee_per_gas: london.then(|| {
            genesis
                .base_fee_per_gas
                .map_or(INITIAL_BASE_FEE, |fee| fee as u64)
        }),
        withdrawals_root: shanghai.then_some(EMPTY_WITHDRAWALS),
        blob_gas_used: cancun.then(|| genesis.blob_gas_used.unwrap_or_default()),
        excess_blob_gas: cancun.then(|| genesis.excess_blob_gas.unwrap_or_default()),
        parent_beacon_block_root: cancun.then_some(B256::ZERO),
        requests_hash: prague.then_some(EMPTY_REQUESTS_HASH),
        ..Header::default()
    }
}
