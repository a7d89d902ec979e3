//! The protobuf `tendermint.types.LightBlock` of greenfield-cometbft v1.3.2: decoding as
//! gogoproto's `Unmarshal` does it (`proto/tendermint/types/*.pb.go`), the checks of
//! `types.LightBlockFromProto` (`HeaderFromProto`, `CommitFromProto`, `ValidatorSetFromProto`
//! and the `ValidateBasic` methods they call, in `types/block.go`, `types/validator.go`,
//! `types/validator_set.go`), and `LightBlock.ValidateBasic` (`types/light.go`).
//!
//! Decoding follows gogoproto: a repeated embedded message (a header, a block ID) merges into
//! what an earlier occurrence decoded, a repeated bytes or scalar field replaces it, a timestamp
//! replaces it (`StdTimeUnmarshal`), and a missing timestamp is Go's zero time.
//!
//! One departure, with the same outcome: a validator of the block's set with a secp256k1 key is
//! rejected here, where the client accepts it until it encodes the new consensus state, which
//! fails for any key other than ed25519. Either way the precompile fails.

use super::{
    hashing,
    protobuf::{Reader, Value},
    Error, Validator,
};

/// `version.BlockProtocol`: the only block version a header may have.
const BLOCK_PROTOCOL: u64 = 11;
/// `types.MaxChainIDLen`.
const MAX_CHAIN_ID_LEN: usize = 50;
/// `tmhash.Size`: every hash is empty or this long.
const HASH_LEN: usize = 32;
/// `crypto.AddressSize`.
const ADDRESS_LEN: usize = 20;
/// `ed25519.SignatureSize`: a randao mix is empty or this long.
const RANDAO_MIX_LEN: usize = 64;
/// `types.MaxSignatureSize`.
const MAX_SIGNATURE_LEN: usize = 64;
/// `types.BlsPubKeySize` and `types.AddressSize`: a validator's relayer BLS key and address.
const BLS_KEY_LEN: usize = 48;
const RELAYER_ADDRESS_LEN: usize = 20;
/// `types.MaxTotalVotingPower`.
pub(super) const MAX_TOTAL_VOTING_POWER: i64 = i64::MAX / 8;

/// `BlockIDFlagAbsent`, `BlockIDFlagCommit`, `BlockIDFlagNil`.
const FLAG_ABSENT: u8 = 1;
pub(super) const FLAG_COMMIT: u8 = 2;
const FLAG_NIL: u8 = 3;

/// A message whose fields decode one by one onto what earlier fields decoded.
trait Message {
    fn merge_field(&mut self, field: i32, value: Value<'_>) -> Result<(), Error>;
}

fn merge(message: &mut impl Message, data: &[u8]) -> Result<(), Error> {
    let mut reader = Reader::new(data);
    while let Some((field, value)) = reader.next_field()? {
        message.merge_field(field, value)?;
    }
    Ok(())
}

fn decode<M: Message + Default>(data: &[u8]) -> Result<M, Error> {
    let mut message = M::default();
    merge(&mut message, data)?;
    Ok(message)
}

/// Merges an optional (nullable) embedded message: created empty on first sight.
fn merge_optional<M: Message + Default>(
    slot: &mut Option<M>,
    value: &Value<'_>,
    err: Error,
) -> Result<(), Error> {
    merge(slot.get_or_insert_with(M::default), value.bytes(err)?)
}

fn set_bytes(slot: &mut Vec<u8>, value: &Value<'_>, err: Error) -> Result<(), Error> {
    *slot = value.bytes(err)?.to_vec();
    Ok(())
}

fn check_hash(hash: &[u8], err: Error) -> Result<(), Error> {
    if hash.is_empty() || hash.len() == HASH_LEN {
        Ok(())
    } else {
        Err(err)
    }
}

/// `google.protobuf.Timestamp` as a Go `time.Time` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Timestamp {
    pub(super) seconds: i64,
    pub(super) nanos: i32,
}

impl Timestamp {
    /// Go's zero `time.Time`, 0001-01-01T00:00:00Z: what a missing timestamp is.
    const GO_ZERO: Timestamp = Timestamp {
        seconds: -62_135_596_800,
        nanos: 0,
    };
    /// 10000-01-01T00:00:00Z, the first second gogoproto's `TimestampFromProto` refuses.
    const END_SECONDS: i64 = 253_402_300_800;

    /// `StdTimeUnmarshal`: a fresh timestamp, checked to lie in years 1 to 9999.
    fn decode(value: &Value<'_>) -> Result<Self, Error> {
        let mut reader = Reader::new(value.bytes("timestamp: wrong wire type")?);
        let mut time = Timestamp {
            seconds: 0,
            nanos: 0,
        };
        while let Some((field, value)) = reader.next_field()? {
            match field {
                1 => time.seconds = value.varint("timestamp: wrong wire type")? as i64,
                2 => time.nanos = value.varint32("timestamp: wrong wire type")? as i32,
                _ => {}
            }
        }
        if time.seconds < Self::GO_ZERO.seconds
            || time.seconds >= Self::END_SECONDS
            || !(0..1_000_000_000).contains(&time.nanos)
        {
            return Err("timestamp out of range");
        }
        Ok(time)
    }
}

impl Default for Timestamp {
    fn default() -> Self {
        Self::GO_ZERO
    }
}

/// `tendermint.types.PartSetHeader`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct PartSetHeader {
    pub(super) total: u32,
    pub(super) hash: Vec<u8>,
}

impl Message for PartSetHeader {
    fn merge_field(&mut self, field: i32, value: Value<'_>) -> Result<(), Error> {
        const ERR: Error = "part set header: wrong wire type";
        match field {
            1 => self.total = value.varint32(ERR)?,
            2 => set_bytes(&mut self.hash, &value, ERR)?,
            _ => {}
        }
        Ok(())
    }
}

/// `tendermint.types.BlockID`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct BlockId {
    pub(super) hash: Vec<u8>,
    pub(super) parts: PartSetHeader,
}

impl Message for BlockId {
    fn merge_field(&mut self, field: i32, value: Value<'_>) -> Result<(), Error> {
        const ERR: Error = "block id: wrong wire type";
        match field {
            1 => set_bytes(&mut self.hash, &value, ERR)?,
            2 => merge(&mut self.parts, value.bytes(ERR)?)?,
            _ => {}
        }
        Ok(())
    }
}

impl BlockId {
    /// `BlockID.ValidateBasic`.
    fn validate_basic(&self) -> Result<(), Error> {
        check_hash(&self.hash, "block id: wrong hash length")?;
        check_hash(&self.parts.hash, "block id: wrong part set hash length")
    }

    /// `BlockID.IsZero`: the ID of a nil block.
    fn is_zero(&self) -> bool {
        self.hash.is_empty() && self.parts.total == 0 && self.parts.hash.is_empty()
    }
}

/// `tendermint.version.Consensus`.
#[derive(Debug, Clone, Default)]
pub(super) struct Version {
    pub(super) block: u64,
    pub(super) app: u64,
}

impl Message for Version {
    fn merge_field(&mut self, field: i32, value: Value<'_>) -> Result<(), Error> {
        const ERR: Error = "version: wrong wire type";
        match field {
            1 => self.block = value.varint(ERR)?,
            2 => self.app = value.varint(ERR)?,
            _ => {}
        }
        Ok(())
    }
}

/// `tendermint.types.Header` (greenfield's, with a randao mix).
#[derive(Debug, Clone, Default)]
pub(super) struct Header {
    pub(super) version: Version,
    pub(super) chain_id: Vec<u8>,
    pub(super) height: i64,
    pub(super) time: Timestamp,
    pub(super) last_block_id: BlockId,
    pub(super) last_commit_hash: Vec<u8>,
    pub(super) data_hash: Vec<u8>,
    pub(super) validators_hash: Vec<u8>,
    pub(super) next_validators_hash: Vec<u8>,
    pub(super) consensus_hash: Vec<u8>,
    pub(super) app_hash: Vec<u8>,
    pub(super) last_results_hash: Vec<u8>,
    pub(super) evidence_hash: Vec<u8>,
    pub(super) proposer_address: Vec<u8>,
    pub(super) randao_mix: Vec<u8>,
}

impl Message for Header {
    fn merge_field(&mut self, field: i32, value: Value<'_>) -> Result<(), Error> {
        const ERR: Error = "header: wrong wire type";
        match field {
            1 => merge(&mut self.version, value.bytes(ERR)?)?,
            2 => set_bytes(&mut self.chain_id, &value, ERR)?,
            3 => self.height = value.varint(ERR)? as i64,
            4 => self.time = Timestamp::decode(&value)?,
            5 => merge(&mut self.last_block_id, value.bytes(ERR)?)?,
            6 => set_bytes(&mut self.last_commit_hash, &value, ERR)?,
            7 => set_bytes(&mut self.data_hash, &value, ERR)?,
            8 => set_bytes(&mut self.validators_hash, &value, ERR)?,
            9 => set_bytes(&mut self.next_validators_hash, &value, ERR)?,
            10 => set_bytes(&mut self.consensus_hash, &value, ERR)?,
            11 => set_bytes(&mut self.app_hash, &value, ERR)?,
            12 => set_bytes(&mut self.last_results_hash, &value, ERR)?,
            13 => set_bytes(&mut self.evidence_hash, &value, ERR)?,
            14 => set_bytes(&mut self.proposer_address, &value, ERR)?,
            15 => set_bytes(&mut self.randao_mix, &value, ERR)?,
            _ => {}
        }
        Ok(())
    }
}

impl Header {
    /// `Header.ValidateBasic`.
    fn validate_basic(&self) -> Result<(), Error> {
        if self.version.block != BLOCK_PROTOCOL {
            return Err("header: wrong block protocol version");
        }
        if self.chain_id.len() > MAX_CHAIN_ID_LEN {
            return Err("header: chain id too long");
        }
        if self.height <= 0 {
            return Err("header: height not positive");
        }
        self.last_block_id.validate_basic()?;
        for hash in [
            &self.last_commit_hash,
            &self.data_hash,
            &self.evidence_hash,
            &self.validators_hash,
            &self.next_validators_hash,
            &self.consensus_hash,
            &self.last_results_hash,
        ] {
            check_hash(hash, "header: wrong hash length")?;
        }
        if self.proposer_address.len() != ADDRESS_LEN {
            return Err("header: wrong proposer address length");
        }
        if !self.randao_mix.is_empty() && self.randao_mix.len() != RANDAO_MIX_LEN {
            return Err("header: wrong randao mix length");
        }
        Ok(())
    }
}

/// `tendermint.types.CommitSig`.
#[derive(Debug, Clone, Default)]
pub(super) struct CommitSig {
    /// The client's `types.BlockIDFlag` is a byte: the protobuf enum's low 8 bits.
    pub(super) flag: u8,
    pub(super) validator_address: Vec<u8>,
    pub(super) timestamp: Timestamp,
    pub(super) signature: Vec<u8>,
}

impl Message for CommitSig {
    fn merge_field(&mut self, field: i32, value: Value<'_>) -> Result<(), Error> {
        const ERR: Error = "commit sig: wrong wire type";
        match field {
            1 => self.flag = value.varint(ERR)? as u8,
            2 => set_bytes(&mut self.validator_address, &value, ERR)?,
            3 => self.timestamp = Timestamp::decode(&value)?,
            4 => set_bytes(&mut self.signature, &value, ERR)?,
            _ => {}
        }
        Ok(())
    }
}

impl CommitSig {
    /// `CommitSig.ValidateBasic`.
    fn validate_basic(&self) -> Result<(), Error> {
        match self.flag {
            FLAG_ABSENT => {
                if !self.validator_address.is_empty()
                    || self.timestamp != Timestamp::GO_ZERO
                    || !self.signature.is_empty()
                {
                    return Err("commit sig: absent vote with an address, time or signature");
                }
            }
            FLAG_COMMIT | FLAG_NIL => {
                if self.validator_address.len() != ADDRESS_LEN {
                    return Err("commit sig: wrong validator address length");
                }
                if self.signature.is_empty() || self.signature.len() > MAX_SIGNATURE_LEN {
                    return Err("commit sig: signature missing or too long");
                }
            }
            _ => return Err("commit sig: unknown block id flag"),
        }
        Ok(())
    }
}

/// `tendermint.types.Commit`.
#[derive(Debug, Clone, Default)]
pub(super) struct Commit {
    pub(super) height: i64,
    pub(super) round: i32,
    pub(super) block_id: BlockId,
    pub(super) signatures: Vec<CommitSig>,
}

impl Message for Commit {
    fn merge_field(&mut self, field: i32, value: Value<'_>) -> Result<(), Error> {
        const ERR: Error = "commit: wrong wire type";
        match field {
            1 => self.height = value.varint(ERR)? as i64,
            2 => self.round = value.varint32(ERR)? as i32,
            3 => merge(&mut self.block_id, value.bytes(ERR)?)?,
            4 => self.signatures.push(decode(value.bytes(ERR)?)?),
            _ => {}
        }
        Ok(())
    }
}

impl Commit {
    /// `CommitFromProto`: each signature's and the commit's `ValidateBasic`.
    fn validate_basic(&self) -> Result<(), Error> {
        self.block_id.validate_basic()?;
        for sig in &self.signatures {
            sig.validate_basic()?;
        }
        if self.height < 0 || self.round < 0 {
            return Err("commit: negative height or round");
        }
        if self.height >= 1 && (self.block_id.is_zero() || self.signatures.is_empty()) {
            return Err("commit: for a nil block or without signatures");
        }
        Ok(())
    }
}

/// The `sum` of `tendermint.crypto.PublicKey`.
#[derive(Debug, Clone)]
enum PublicKey {
    Ed25519(Vec<u8>),
    Secp256k1(Vec<u8>),
}

/// `tendermint.types.Validator`, as decoded.
#[derive(Debug, Clone, Default)]
struct ValidatorProto {
    address: Vec<u8>,
    pub_key: Option<PublicKey>,
    voting_power: i64,
    bls_key: Vec<u8>,
    relayer_address: Vec<u8>,
}

impl Message for ValidatorProto {
    fn merge_field(&mut self, field: i32, value: Value<'_>) -> Result<(), Error> {
        const ERR: Error = "validator: wrong wire type";
        match field {
            1 => set_bytes(&mut self.address, &value, ERR)?,
            2 => {
                let mut reader = Reader::new(value.bytes(ERR)?);
                while let Some((field, value)) = reader.next_field()? {
                    match field {
                        1 => self.pub_key = Some(PublicKey::Ed25519(value.bytes(ERR)?.to_vec())),
                        2 => self.pub_key = Some(PublicKey::Secp256k1(value.bytes(ERR)?.to_vec())),
                        _ => {}
                    }
                }
            }
            3 => self.voting_power = value.varint(ERR)? as i64,
            4 => {
                value.varint(ERR)?; // proposer priority: not used
            }
            5 => set_bytes(&mut self.bls_key, &value, ERR)?,
            6 => set_bytes(&mut self.relayer_address, &value, ERR)?,
            _ => {}
        }
        Ok(())
    }
}

impl ValidatorProto {
    /// `ValidatorFromProto` (the key's length) and `Validator.ValidateBasic`.
    fn validate_basic(&self) -> Result<(), Error> {
        match &self.pub_key {
            Some(PublicKey::Ed25519(key)) if key.len() == 32 => {}
            Some(PublicKey::Secp256k1(key)) if key.len() == 33 => {}
            _ => return Err("validator: missing or malformed public key"),
        }
        if self.voting_power < 0 {
            return Err("validator: negative voting power");
        }
        if self.address.len() != ADDRESS_LEN {
            return Err("validator: wrong address length");
        }
        if !self.bls_key.is_empty() && self.bls_key.len() != BLS_KEY_LEN {
            return Err("validator: wrong relayer BLS key length");
        }
        if !self.relayer_address.is_empty() && self.relayer_address.len() != RELAYER_ADDRESS_LEN {
            return Err("validator: wrong relayer address length");
        }
        Ok(())
    }

    /// The validator as a member of the block's set: only ed25519 keys can end up in a
    /// consensus state (see the module docs).
    fn into_member(self) -> Result<Validator, Error> {
        let Some(PublicKey::Ed25519(key)) = self.pub_key else {
            return Err("validator: not an ed25519 key");
        };
        Ok(Validator {
            pub_key: key.try_into().map_err(|_| "validator: wrong key length")?,
            voting_power: self.voting_power,
            bls_key: self.bls_key,
            relayer_address: self.relayer_address,
        })
    }
}

/// `tendermint.types.ValidatorSet`, as decoded.
#[derive(Debug, Clone, Default)]
struct ValidatorSetProto {
    validators: Vec<ValidatorProto>,
    proposer: Option<ValidatorProto>,
}

impl Message for ValidatorSetProto {
    fn merge_field(&mut self, field: i32, value: Value<'_>) -> Result<(), Error> {
        const ERR: Error = "validator set: wrong wire type";
        match field {
            1 => self.validators.push(decode(value.bytes(ERR)?)?),
            2 => merge_optional(&mut self.proposer, &value, ERR)?,
            3 => {
                value.varint(ERR)?; // total voting power: recomputed, as the client does
            }
            _ => {}
        }
        Ok(())
    }
}

impl ValidatorSetProto {
    /// `ValidatorSetFromProto`: a proposer is required; the total voting power must not pass
    /// `MaxTotalVotingPower` (the client panics, an error like any other); `ValidateBasic`.
    fn into_members(self) -> Result<Vec<Validator>, Error> {
        let proposer = self.proposer.ok_or("validator set: no proposer")?;
        proposer.validate_basic()?;
        if self.validators.is_empty() {
            return Err("validator set: empty");
        }
        let mut total: i64 = 0;
        let mut members = Vec::with_capacity(self.validators.len());
        for validator in self.validators {
            validator.validate_basic()?;
            total = total.saturating_add(validator.voting_power);
            if total > MAX_TOTAL_VOTING_POWER {
                return Err("validator set: total voting power too large");
            }
            members.push(validator.into_member()?);
        }
        Ok(members)
    }
}

#[derive(Debug, Clone, Default)]
struct SignedHeaderProto {
    header: Option<Header>,
    commit: Option<Commit>,
}

impl Message for SignedHeaderProto {
    fn merge_field(&mut self, field: i32, value: Value<'_>) -> Result<(), Error> {
        const ERR: Error = "signed header: wrong wire type";
        match field {
            1 => merge_optional(&mut self.header, &value, ERR)?,
            2 => merge_optional(&mut self.commit, &value, ERR)?,
            _ => {}
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
struct LightBlockProto {
    signed_header: Option<SignedHeaderProto>,
    validator_set: Option<ValidatorSetProto>,
}

impl Message for LightBlockProto {
    fn merge_field(&mut self, field: i32, value: Value<'_>) -> Result<(), Error> {
        const ERR: Error = "light block: wrong wire type";
        match field {
            1 => merge_optional(&mut self.signed_header, &value, ERR)?,
            2 => merge_optional(&mut self.validator_set, &value, ERR)?,
            _ => {}
        }
        Ok(())
    }
}

/// A decoded light block whose parts passed their own checks.
#[derive(Debug, Clone)]
pub(super) struct LightBlock {
    pub(super) header: Header,
    pub(super) commit: Commit,
    pub(super) validators: Vec<Validator>,
}

impl LightBlock {
    /// Decodes a protobuf `LightBlock` and runs the checks of `LightBlockFromProto`. Every part
    /// is required: the client fails later (`ValidateBasic`) on a missing one.
    pub(super) fn decode(data: &[u8]) -> Result<Self, Error> {
        let proto: LightBlockProto = decode(data)?;
        let signed_header = proto.signed_header.ok_or("light block: no signed header")?;
        let header = signed_header.header.ok_or("light block: no header")?;
        header.validate_basic()?;
        let commit = signed_header.commit.ok_or("light block: no commit")?;
        commit.validate_basic()?;
        let validators = proto
            .validator_set
            .ok_or("light block: no validator set")?
            .into_members()?;
        Ok(LightBlock {
            header,
            commit,
            validators,
        })
    }

    /// The rest of `LightBlock.ValidateBasic(chainID)`: the header is for `chain_id`, the
    /// commit is for this header, the validator set is the one the header names.
    pub(super) fn validate_basic(&self, chain_id: &[u8]) -> Result<(), Error> {
        if self.header.chain_id != chain_id {
            return Err("light block: header of another chain");
        }
        if self.commit.height != self.header.height {
            return Err("light block: header and commit heights differ");
        }
        let header_hash = hashing::header_hash(&self.header);
        if header_hash.as_ref().map_or(&[][..], |h| &h[..]) != self.commit.block_id.hash {
            return Err("light block: commit signs another block");
        }
        if hashing::validator_set_hash(&self.validators)[..] != self.header.validators_hash {
            return Err("light block: validator set does not match the header's hash");
        }
        Ok(())
    }
}
