//! A genesis file read once, front to back, without ever holding its allocation: the top-level
//! fields (config, difficulty, gasLimit, ...) are kept as their raw JSON text and parsed into a
//! [`GenesisHead`] by alloy's own `Genesis`, and each `alloc` account is handed to an
//! [`AllocSink`] as soon as it is read: first its non-zero storage slots one by one (so a
//! contract holding millions of slots is never held either), then the account itself.
//!
//! Every value is read as [`GenesisBlock::parse`](super::GenesisBlock::parse) reads it: an
//! account's fields other than `storage` by alloy's `GenesisAccount` (unknown fields refused),
//! storage keys and values as hex of at most 32 bytes, left-padded, zero values dropped.
//! Two differences remain, both in files no client writes: an address listed twice in `alloc`,
//! or a slot listed twice in one `storage`, reaches the sink twice (a map keeps the last).

use super::{genesis_header_with_root, header_config, GenesisError, GenesisSummary};
use crate::chain::ChainSpec;
use alloy_consensus::Header;
use alloy_genesis::{Genesis, GenesisAccount};
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use primitives::contract::EMPTY_CODE_HASH;
use primitives::storage_only::StorageOnlyAccounts;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;
use std::io::Read;

/// What the top-level fields of a genesis file say: everything but the allocation.
#[derive(Debug, Clone)]
pub struct GenesisHead {
    /// The genesis without its allocation (`alloc` is empty).
    pub genesis: Genesis,
    /// The raw `config` object of the file (kept verbatim for the chain record); null when
    /// the file has none.
    pub config_json: serde_json::Value,
    /// Whether the file sets `difficulty` (even to zero): go-ethereum substitutes its default
    /// only when the field is absent.
    difficulty_given: bool,
}

impl GenesisHead {
    /// The head of a file whose top-level fields other than `alloc` are `fields`, in file order.
    fn from_fields(fields: &[(String, Box<RawValue>)]) -> Result<Self, serde_json::Error> {
        let genesis: Genesis = serde_json::from_str(&object_text(fields)?)?;
        let raw = |name: &str| {
            fields
                .iter()
                .find(|(field, _)| field == name)
                .map(|(_, raw)| raw.get())
        };
        let config_json = match raw("config") {
            Some(text) => serde_json::from_str(text)?,
            None => serde_json::Value::Null,
        };
        Ok(Self {
            genesis,
            config_json,
            difficulty_given: raw("difficulty").is_some_and(|text| text != "null"),
        })
    }

    /// The head as read for a chain whose rules are `spec`: without a `config` object (as
    /// clients ship the Ethereum networks' genesis files) it takes the spec's chain id and the
    /// forks that shape the genesis header.
    pub fn with_spec(mut self, spec: &ChainSpec) -> Self {
        if self.config_json.is_null() {
            self.genesis.config = header_config(spec);
        }
        self
    }

    /// Whether the file has a `config` object.
    pub fn has_config(&self) -> bool {
        !self.config_json.is_null()
    }

    /// The chain id the genesis config declares.
    pub fn chain_id(&self) -> u64 {
        self.genesis.config.chain_id
    }

    /// The block-0 header of this genesis with the state root `state_root`.
    pub fn header(&self, state_root: B256) -> Header {
        genesis_header_with_root(&self.genesis, self.difficulty_given, state_root)
    }

    /// The summary of the genesis whose allocation has `state_root`, `accounts` accounts and
    /// the EIP-7610 candidates `storage_only` (noted as the allocation was read).
    pub fn summary(
        &self,
        state_root: B256,
        storage_only: StorageOnlyAccounts,
        accounts: u64,
    ) -> GenesisSummary {
        let header = self.header(state_root);
        GenesisSummary {
            chain_id: self.chain_id(),
            config_json: self.config_json.clone(),
            hash: header.hash_slow(),
            header,
            storage_only,
            accounts,
        }
    }
}

/// A genesis account as the file gives it, after its storage went to the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedAccount {
    /// Its nonce (zero when absent).
    pub nonce: u64,
    /// Its balance in wei.
    pub balance: U256,
    /// Its code, when it has any.
    pub code: Option<Bytes>,
    /// Its non-zero slot with the lowest key (the first a storage map in key order yields),
    /// with its value.
    pub lowest_slot: Option<(B256, U256)>,
}

impl StreamedAccount {
    /// keccak256 of its code ([`EMPTY_CODE_HASH`] without code).
    pub fn code_hash(&self) -> B256 {
        self.code.as_ref().map_or(EMPTY_CODE_HASH, keccak256)
    }
}

/// Where [`read_genesis`] sends the allocation.
pub trait AllocSink {
    /// Why the sink stopped the read.
    type Error;

    /// `alloc` begins; `head` holds the top-level fields read before it (all of them when the
    /// file puts `alloc` last, as go-ethereum and `gen` write it), so a sink can refuse a file
    /// by its config before taking any of the allocation.
    fn begin_alloc(&mut self, head: &GenesisHead) -> Result<(), Self::Error>;

    /// A non-zero storage slot of `address` (the account itself follows its slots).
    fn slot(&mut self, address: &Address, slot: B256, value: U256) -> Result<(), Self::Error>;

    /// An account, after all its slots.
    fn account(&mut self, address: Address, account: StreamedAccount) -> Result<(), Self::Error>;
}

/// Why [`read_genesis`] stopped.
#[derive(Debug)]
pub enum StreamError<E> {
    /// The file is not a geth-style genesis (or could not be read).
    Genesis(GenesisError),
    /// The sink stopped the read.
    Sink(E),
}

/// Read the genesis JSON from `reader` once (buffer it: serde_json reads byte by byte),
/// handing the allocation to `sink` as it comes; returns the top-level fields. `origin` names
/// the file in errors.
pub fn read_genesis<R: Read, S: AllocSink>(
    origin: &str,
    reader: R,
    sink: &mut S,
) -> Result<GenesisHead, StreamError<S::Error>> {
    let mut reading = Reading {
        sink,
        stopped: None,
        fields: Vec::new(),
        alloc_seen: false,
    };
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let read = (&mut reading)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .and_then(|()| {
            GenesisHead::from_fields(&reading.fields).map_err(|e| {
                de::Error::custom(format!("top-level fields: {}", without_position(&e)))
            })
        });
    match (read, reading.stopped) {
        (_, Some(error)) => Err(StreamError::Sink(error)),
        (Ok(head), None) => Ok(head),
        (Err(source), None) => Err(StreamError::Genesis(parse_error(origin, source))),
    }
}

fn parse_error(origin: &str, source: serde_json::Error) -> GenesisError {
    if source.is_io() {
        GenesisError::Read {
            path: origin.to_string(),
            source: source.into(),
        }
    } else {
        GenesisError::Parse {
            path: origin.to_string(),
            source,
        }
    }
}

/// The message of an error in a text [`object_text`] made, without its position in that text
/// (serde_json would take it for the position in the file).
fn without_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&position) {
        Some(bare) => bare.to_string(),
        None => message,
    }
}

/// The JSON object with `fields` (each a name and its raw value).
fn object_text(fields: &[(String, Box<RawValue>)]) -> Result<String, serde_json::Error> {
    let mut text = String::from("{");
    for (index, (name, raw)) in fields.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(name)?);
        text.push(':');
        text.push_str(raw.get());
    }
    text.push('}');
    Ok(text)
}

/// The read under way: the sink, the error that stopped it, and the top-level fields so far.
struct Reading<'s, S: AllocSink> {
    sink: &'s mut S,
    stopped: Option<S::Error>,
    fields: Vec<(String, Box<RawValue>)>,
    alloc_seen: bool,
}

impl<S: AllocSink> Reading<'_, S> {
    /// Keep the sink's error and stop the parse with a placeholder serde error.
    fn stop<E: de::Error>(&mut self, error: S::Error) -> E {
        self.stopped = Some(error);
        E::custom("stopped by the genesis sink")
    }
}

impl<'de, S: AllocSink> DeserializeSeed<'de> for &mut Reading<'_, S> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(TopLevel(self))
    }
}

/// The genesis object: raw fields, and `alloc` streamed.
struct TopLevel<'r, 's, S: AllocSink>(&'r mut Reading<'s, S>);

impl<'de, S: AllocSink> Visitor<'de> for TopLevel<'_, '_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a genesis object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let reading = self.0;
        while let Some(name) = map.next_key::<String>()? {
            if name != "alloc" {
                let raw: Box<RawValue> = map.next_value()?;
                reading.fields.push((name, raw));
                continue;
            }
            if reading.alloc_seen {
                return Err(de::Error::duplicate_field("alloc"));
            }
            reading.alloc_seen = true;
            let head = GenesisHead::from_fields(&reading.fields)
                .map_err(|e| de::Error::custom(without_position(&e)))?;
            if let Err(error) = reading.sink.begin_alloc(&head) {
                return Err(reading.stop(error));
            }
            map.next_value_seed(Alloc(&mut *reading))?;
        }
        Ok(())
    }
}

/// The `alloc` object: address to account.
struct Alloc<'r, 's, S: AllocSink>(&'r mut Reading<'s, S>);

impl<'de, S: AllocSink> DeserializeSeed<'de> for Alloc<'_, '_, S> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, S: AllocSink> Visitor<'de> for Alloc<'_, '_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an allocation object (address to account)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(address) = map.next_key::<Address>()? {
            map.next_value_seed(Account {
                reading: &mut *self.0,
                address,
            })?;
        }
        Ok(())
    }
}

/// One account of `alloc`.
struct Account<'r, 's, S: AllocSink> {
    reading: &'r mut Reading<'s, S>,
    address: Address,
}

impl<'de, S: AllocSink> DeserializeSeed<'de> for Account<'_, '_, S> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, S: AllocSink> Visitor<'de> for Account<'_, '_, S> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the account object of {:#x}", self.address)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let address = self.address;
        let mut fields = Vec::new();
        let mut storage: Option<Option<(B256, U256)>> = None;
        while let Some(name) = map.next_key::<String>()? {
            if name == "storage" {
                if storage.is_some() {
                    return Err(de::Error::duplicate_field("storage"));
                }
                storage = Some(map.next_value_seed(Storage {
                    reading: &mut *self.reading,
                    address,
                })?);
            } else {
                let raw: Box<RawValue> = map.next_value()?;
                fields.push((name, raw));
            }
        }
        // Every field but `storage` is read by alloy's own type, so its rules (required
        // balance, quantities, unknown fields refused) are the in-memory parse's.
        let account: GenesisAccount = object_text(&fields)
            .and_then(|text| serde_json::from_str(&text))
            .map_err(|e| {
                de::Error::custom(format!("account {address:#x}: {}", without_position(&e)))
            })?;
        let streamed = StreamedAccount {
            nonce: account.nonce.unwrap_or_default(),
            balance: account.balance,
            code: account.code.filter(|code| !code.is_empty()),
            lowest_slot: storage.flatten(),
        };
        if let Err(error) = self.reading.sink.account(address, streamed) {
            return Err(self.reading.stop(error));
        }
        Ok(())
    }
}

/// An account's `storage` (an object or null): each non-zero slot to the sink; the value is
/// the lowest non-zero slot.
struct Storage<'r, 's, S: AllocSink> {
    reading: &'r mut Reading<'s, S>,
    address: Address,
}

impl<'de, S: AllocSink> DeserializeSeed<'de> for Storage<'_, '_, S> {
    type Value = Option<(B256, U256)>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de, S: AllocSink> Visitor<'de> for Storage<'_, '_, S> {
    type Value = Option<(B256, U256)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the storage object of {:#x}", self.address)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut lowest: Option<(B256, U256)> = None;
        while let Some(slot) = map.next_key::<Bytes>()? {
            let value: Bytes = map.next_value()?;
            let slot = padded_word(&slot)?;
            let value = U256::from_be_bytes(padded_word(&value)?.0);
            if value.is_zero() {
                continue;
            }
            if lowest.is_none_or(|(low, _)| slot < low) {
                lowest = Some((slot, value));
            }
            if let Err(error) = self.reading.sink.slot(&self.address, slot, value) {
                return Err(self.reading.stop(error));
            }
        }
        Ok(lowest)
    }
}

/// A storage key or value of at most 32 bytes, left-padded with zeros (as alloy reads them).
fn padded_word<E: de::Error>(bytes: &Bytes) -> Result<B256, E> {
    if bytes.len() > 32 {
        return Err(E::custom("input too long to be a B256"));
    }
    let mut word = B256::ZERO;
    word[32 - bytes.len()..].copy_from_slice(bytes);
    Ok(word)
}

#[cfg(test)]
mod tests {
    use super::super::{GenesisAccount as InMemoryAccount, GenesisBlock};
    use super::*;
    use std::collections::BTreeMap;

    /// What a sink saw: the accounts with their slots, in file order.
    #[derive(Default)]
    struct Collected {
        head_at_alloc: Option<GenesisHead>,
        slots: Vec<(Address, B256, U256)>,
        accounts: Vec<(Address, StreamedAccount)>,
        refuse_after: Option<usize>,
    }

    impl AllocSink for Collected {
        type Error = String;

        fn begin_alloc(&mut self, head: &GenesisHead) -> Result<(), String> {
            self.head_at_alloc = Some(head.clone());
            Ok(())
        }

        fn slot(&mut self, address: &Address, slot: B256, value: U256) -> Result<(), String> {
            self.slots.push((*address, slot, value));
            Ok(())
        }

        fn account(&mut self, address: Address, account: StreamedAccount) -> Result<(), String> {
            if self.refuse_after == Some(self.accounts.len()) {
                return Err(format!("refused {address:#x}"));
            }
            self.accounts.push((address, account));
            Ok(())
        }
    }

    /// The accounts a sink collected, as [`GenesisBlock::accounts`] gives them.
    fn as_in_memory(collected: &Collected) -> BTreeMap<Address, InMemoryAccount> {
        let mut slots: BTreeMap<Address, Vec<(B256, U256)>> = BTreeMap::new();
        for (address, slot, value) in &collected.slots {
            slots.entry(*address).or_default().push((*slot, *value));
        }
        collected
            .accounts
            .iter()
            .map(|(address, account)| {
                let mut account_slots = slots.remove(address).unwrap_or_default();
                account_slots.sort();
                let lowest = account_slots.first().copied();
                assert_eq!(account.lowest_slot, lowest, "{address}");
                let in_memory = InMemoryAccount {
                    address: *address,
                    nonce: account.nonce,
                    balance: account.balance,
                    code_hash: account.code_hash(),
                    slots: account_slots,
                };
                (*address, in_memory)
            })
            .collect()
    }

    /// A genesis with `alloc` between the header fields, short and full-width storage words,
    /// a zero value, null storage, code, decimal and hex quantities and a secret key.
    const GENESIS: &str = r#"{
        "config": {"chainId": 4242, "londonBlock": 0, "shanghaiTime": 0},
        "difficulty": "0x0",
        "alloc": {
            "0x00000000000000000000000000000000000000aa": {
                "balance": "0xde0b6b3a7640000",
                "nonce": "0x3",
                "storage": {
                    "0x02": "0x2a",
                    "0x0000000000000000000000000000000000000000000000000000000000000001": "0x00",
                    "0x03": "0x0000000000000000000000000000000000000000000000000000000000000007"
                },
                "code": "0x6001600055"
            },
            "0x00000000000000000000000000000000000000bb": {"balance": "1000", "storage": null},
            "0x00000000000000000000000000000000000000cc": {
                "storage": {"0x05": "0x01"},
                "balance": "0x0",
                "secretKey": "0x45a915e4d060149eb4365960e6a7a45f334393093061116b197e3240065ff2d8"
            }
        },
        "gasLimit": "0x1c9c380",
        "timestamp": 1700000000,
        "extraData": "0x1234",
        "baseFeePerGas": "0x7"
    }"#;

    #[test]
    fn a_streamed_genesis_is_what_the_in_memory_parse_gives() {
        let mut collected = Collected::default();
        let head = read_genesis("genesis.json", GENESIS.as_bytes(), &mut collected).unwrap();
        let block = GenesisBlock::parse("genesis.json", GENESIS.as_bytes()).unwrap();
        let expected: BTreeMap<Address, InMemoryAccount> = block
            .accounts()
            .map(|account| (account.address, account))
            .collect();
        assert_eq!(as_in_memory(&collected), expected);
        assert_eq!(collected.slots.len(), 3, "the zero value is dropped");

        let mut without_alloc = block.genesis.clone();
        without_alloc.alloc.clear();
        assert_eq!(head.genesis, without_alloc);
        assert_eq!(head.config_json, block.config_json);
        assert_eq!(head.header(block.header.state_root), block.header);
        assert_eq!(head.chain_id(), 4242);

        let summary = block.summary();
        assert_eq!(
            head.summary(
                block.header.state_root,
                summary.storage_only.clone(),
                collected.accounts.len() as u64
            ),
            summary
        );
        assert_eq!(
            summary.storage_only.witness(&Address::with_last_byte(0xcc)),
            Some(B256::with_last_byte(5)),
            "0xcc has storage, no code and nonce 0"
        );

        let at_alloc = collected.head_at_alloc.unwrap();
        assert_eq!(at_alloc.chain_id(), 4242, "the config came before alloc");
        assert_eq!(at_alloc.genesis.gas_limit, 0, "gasLimit comes after alloc");
    }

    #[test]
    fn a_missing_difficulty_and_config_are_read_as_the_in_memory_parse_reads_them() {
        let text = r#"{"alloc": {"0x00000000000000000000000000000000000000aa": {"balance": "0x1"}},
                       "gasLimit": "0x1388", "nonce": "0x42"}"#;
        let spec = ChainSpec::mainnet();
        let head = read_genesis("g", text.as_bytes(), &mut Collected::default())
            .unwrap()
            .with_spec(&spec);
        let block = GenesisBlock::parse_for_spec("g", text.as_bytes(), &spec).unwrap();
        assert!(!head.has_config());
        assert_eq!(head.chain_id(), 1);
        assert_eq!(head.header(block.header.state_root), block.header);
        assert_eq!(block.hash, head.header(block.header.state_root).hash_slow());
    }

    #[test]
    fn every_built_in_genesis_streams_to_the_networks_header() {
        for chain in crate::chain_data::BUILT_IN_CHAINS {
            let mut collected = Collected::default();
            let head = read_genesis(
                &chain.genesis_origin(),
                chain.genesis_text().as_bytes(),
                &mut collected,
            )
            .unwrap()
            .with_spec(&chain.spec().unwrap());
            let block = chain.genesis().unwrap();
            assert_eq!(as_in_memory(&collected).len(), block.genesis.alloc.len());
            let header = head.header(block.header.state_root);
            assert_eq!(header.hash_slow(), chain.genesis_hash, "{}", chain.name);
        }
    }

    #[test]
    fn bad_files_are_refused_as_the_in_memory_parse_refuses_them() {
        let cases = [
            (
                r#"{"alloc": {"0x00000000000000000000000000000000000000aa": {"nonce": "0x1"}}}"#,
                "missing field `balance`",
            ),
            (
                r#"{"alloc": {"0x00000000000000000000000000000000000000aa": {"balance": "0x1", "colour": 1}}}"#,
                "unknown field `colour`",
            ),
            (
                r#"{"alloc": {"0xzz": {"balance": "0x1"}}}"#,
                "invalid string length",
            ),
            (r#"{"alloc": {}, "alloc": {}}"#, "duplicate field `alloc`"),
            (
                r#"{"alloc": {"0x00000000000000000000000000000000000000aa": {"balance": "0x1", "storage": {"0x01": "0x000000000000000000000000000000000000000000000000000000000000000001"}}}}"#,
                "too long",
            ),
            (r#"{"gasLimit": "many", "alloc": {}}"#, "many"),
            (
                r#"{"alloc": {}, "gasLimit": "many"}"#,
                "top-level fields: invalid value",
            ),
            (r#"{"alloc": {}} trailing"#, "trailing"),
            (
                r#"{"alloc": {"0x00000000000000000000000000000000000000aa": {"balance": "0x1"}"#,
                "EOF",
            ),
        ];
        for (text, expected) in cases {
            let error = match read_genesis("bad.json", text.as_bytes(), &mut Collected::default()) {
                Err(StreamError::Genesis(error)) => error.to_string(),
                Err(StreamError::Sink(error)) => panic!("{text}: the sink stopped it: {error}"),
                Ok(_) => panic!("{text}: accepted"),
            };
            assert!(
                error.contains("bad.json") && error.contains(expected),
                "{text}: {error}"
            );
            assert!(
                GenesisBlock::parse("bad.json", text.as_bytes()).is_err(),
                "{text}: the in-memory parse accepts it"
            );
        }
    }

    #[test]
    fn the_sink_stops_the_read_with_its_own_error() {
        let mut sink = Collected {
            refuse_after: Some(1),
            ..Collected::default()
        };
        match read_genesis("genesis.json", GENESIS.as_bytes(), &mut sink) {
            Err(StreamError::Sink(error)) => {
                assert_eq!(error, "refused 0x00000000000000000000000000000000000000bb")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(sink.accounts.len(), 1);
    }
}
