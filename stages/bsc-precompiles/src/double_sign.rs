//! 0x68 double-sign evidence verification (Feynman on), after bnb-chain/bsc
//! `core/vm/contracts.go` `verifyDoubleSignEvidence`.
//!
//! Input: RLP `[chainId, header1 RLP, header2 RLP]`. The evidence holds if both headers have the
//! same number and parent, carry different seals over different Parlia seal hashes, and both
//! seals recover to the same key. Output: `signer address (20) || number (32)`.
//!
//! Failures follow the client: undecodable RLP and unrecoverable seals revert; evidence that
//! decodes but does not hold ("invalid double sign evidence") halts.

use super::outcome::{charge_and_run, Failure};
use alloy_primitives::{keccak256, Bytes};
use alloy_rlp::{BufMut, Encodable, Header};
use revm::precompile::PrecompileResult;
use secp256k1::{
    ecdsa::{RecoverableSignature, RecoveryId},
    Message, PublicKey, SECP256K1,
};

/// `params.DoubleSignEvidenceVerifyGas`.
const GAS: u64 = 10_000;
/// Bytes at the end of a Parlia header's extra data holding the seal (r || s || v).
const EXTRA_SEAL: usize = 65;
/// The client's `errInvalidEvidence`.
const INVALID_EVIDENCE: Failure = Failure::Halt("invalid double sign evidence");

/// Runs 0x68: verifies that two headers are a double sign and returns the signer and height.
pub fn verify_double_sign_evidence(
    input: &[u8],
    gas_limit: u64,
    reservoir: u64,
) -> PrecompileResult {
    charge_and_run(GAS, gas_limit, reservoir, || verify(input))
}

fn verify(input: &[u8]) -> Result<Bytes, Failure> {
    let evidence = decode_list(input)?;
    let [chain_id, header1, header2] = evidence.as_slice() else {
        return Err(Failure::Revert);
    };
    big_int(chain_id)?;
    let header1 = ParliaHeader::decode(string(header1)?)?;
    let header2 = ParliaHeader::decode(string(header2)?)?;

    let number = header1.number();
    if number.len() > 32 || header2.number().len() > 32 {
        return Err(INVALID_EVIDENCE);
    }
    if number != header2.number() || header1.parent_hash() != header2.parent_hash() {
        return Err(INVALID_EVIDENCE);
    }
    let (Some(seal1), Some(seal2)) = (header1.seal(), header2.seal()) else {
        return Err(INVALID_EVIDENCE);
    };
    if seal1 == seal2 {
        return Err(INVALID_EVIDENCE);
    }
    let hash1 = header1.seal_hash(chain_id);
    let hash2 = header2.seal_hash(chain_id);
    if hash1 == hash2 {
        return Err(INVALID_EVIDENCE);
    }
    let signer = recover(&hash1, seal1)?;
    if signer != recover(&hash2, seal2)? {
        return Err(INVALID_EVIDENCE);
    }

    let mut output = [0u8; 52];
    output[..20].copy_from_slice(&keccak256(&signer.serialize_uncompressed()[1..])[12..]);
    output[52 - number.len()..].copy_from_slice(number);
    Ok(Bytes::copy_from_slice(&output))
}

/// secp256k1 public key recovery as the client's libsecp256k1 binding does it: the last byte is
/// the recovery id (0..=3), S may be in either half.
fn recover(hash: &[u8; 32], seal: &[u8]) -> Result<PublicKey, Failure> {
    let (rs, v) = seal.split_at(64);
    let id = RecoveryId::try_from(i32::from(v[0])).map_err(|_| Failure::Revert)?;
    let signature = RecoverableSignature::from_compact(rs, id).map_err(|_| Failure::Revert)?;
    SECP256K1
        .recover_ecdsa(Message::from_digest(*hash), &signature)
        .map_err(|_| Failure::Revert)
}

/// The field kinds of go-ethereum's `types.Header`, in RLP order.
#[derive(Clone, Copy)]
enum Field {
    /// A fixed-size byte array (hash, address, bloom, nonce).
    Fixed(usize),
    /// A `*big.Int`: canonical, any length.
    BigInt,
    /// A `uint64`: canonical, at most 8 bytes.
    Uint64,
    /// A `[]byte`.
    Bytes,
}

/// The 15 required fields, then the optional ones (base fee, withdrawals root, blob gas used,
/// excess blob gas, parent beacon root, requests hash), as bsc `core/types/block.go` has them.
const HEADER_FIELDS: [Field; 21] = [
    Field::Fixed(32),  // parent hash
    Field::Fixed(32),  // uncle hash
    Field::Fixed(20),  // coinbase
    Field::Fixed(32),  // state root
    Field::Fixed(32),  // transactions root
    Field::Fixed(32),  // receipts root
    Field::Fixed(256), // logs bloom
    Field::BigInt,     // difficulty
    Field::BigInt,     // number
    Field::Uint64,     // gas limit
    Field::Uint64,     // gas used
    Field::Uint64,     // time
    Field::Bytes,      // extra
    Field::Fixed(32),  // mix digest
    Field::Fixed(8),   // nonce
    Field::BigInt,     // base fee
    Field::Fixed(32),  // withdrawals root
    Field::Uint64,     // blob gas used
    Field::Uint64,     // excess blob gas
    Field::Fixed(32),  // parent beacon root
    Field::Fixed(32),  // requests hash
];
const REQUIRED_FIELDS: usize = 15;
const NUMBER: usize = 8;
const EXTRA: usize = 12;
const PARENT_BEACON_ROOT: usize = 19;

/// A header decoded with go-ethereum's RLP rules, kept as its encoded fields.
///
/// Each field passed the decoder's canonical-form checks, so encoding the decoded value again
/// gives back exactly these bytes; the seal hash is built from them.
struct ParliaHeader<'a> {
    /// The encoded fields (header and payload), in order.
    fields: Vec<&'a [u8]>,
    /// Decoded payloads of the same fields.
    payloads: Vec<&'a [u8]>,
}

impl<'a> ParliaHeader<'a> {
    fn decode(rlp: &'a [u8]) -> Result<Self, Failure> {
        let items = decode_list(rlp)?;
        if items.len() < REQUIRED_FIELDS || items.len() > HEADER_FIELDS.len() {
            return Err(Failure::Revert);
        }
        let payloads = items
            .iter()
            .zip(HEADER_FIELDS)
            .map(|(item, field)| match field {
                Field::Fixed(len) => fixed(item, len),
                Field::BigInt => big_int(item),
                Field::Uint64 => uint64(item),
                Field::Bytes => string(item),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            fields: items,
            payloads,
        })
    }

    fn number(&self) -> &'a [u8] {
        self.payloads[NUMBER]
    }

    fn parent_hash(&self) -> &'a [u8] {
        self.payloads[0]
    }

    /// The last 65 bytes of extra data, `None` if extra data is shorter.
    fn seal(&self) -> Option<&'a [u8]> {
        let extra = self.payloads[EXTRA];
        extra.len().checked_sub(EXTRA_SEAL).map(|at| &extra[at..])
    }

    /// bsc `types.SealHash`: keccak of RLP `[chainId, fields up to nonce with the seal cut off
    /// extra, and, if the parent beacon root is present, base fee .. parent beacon root and the
    /// requests hash if present]`. Call only when [`Self::seal`] is `Some`.
    fn seal_hash(&self, chain_id: &[u8]) -> [u8; 32] {
        let extra = self.payloads[EXTRA];
        let unsealed_extra = &extra[..extra.len() - EXTRA_SEAL];
        let mut extra_rlp = Vec::with_capacity(unsealed_extra.len() + 9);
        unsealed_extra.encode(&mut extra_rlp);

        let included = if self.fields.len() > PARENT_BEACON_ROOT {
            self.fields.len()
        } else {
            REQUIRED_FIELDS
        };
        let mut parts: Vec<&[u8]> = Vec::with_capacity(included + 1);
        parts.push(chain_id);
        for (index, field) in self.fields[..included].iter().enumerate() {
            parts.push(if index == EXTRA { &extra_rlp } else { field });
        }
        let payload_length = parts.iter().map(|part| part.len()).sum();
        let mut out = Vec::with_capacity(payload_length + 9);
        Header {
            list: true,
            payload_length,
        }
        .encode(&mut out);
        for part in parts {
            out.put_slice(part);
        }
        keccak256(&out).0
    }
}

/// Splits an RLP list that must fill `rlp` exactly into its encoded items.
fn decode_list(rlp: &[u8]) -> Result<Vec<&[u8]>, Failure> {
    let mut buf = rlp;
    let header = Header::decode(&mut buf).map_err(|_| Failure::Revert)?;
    if !header.list || buf.len() != header.payload_length {
        return Err(Failure::Revert);
    }
    let mut items = Vec::new();
    while !buf.is_empty() {
        let start = buf;
        let item = Header::decode(&mut buf).map_err(|_| Failure::Revert)?;
        if item.payload_length > buf.len() {
            return Err(Failure::Revert);
        }
        buf = &buf[item.payload_length..];
        items.push(&start[..start.len() - buf.len()]);
    }
    Ok(items)
}

/// The payload of an encoded string item (lists are rejected, single bytes must be bare).
fn string(item: &[u8]) -> Result<&[u8], Failure> {
    let mut buf = item;
    Header::decode_bytes(&mut buf, false).map_err(|_| Failure::Revert)
}

fn fixed(item: &[u8], len: usize) -> Result<&[u8], Failure> {
    string(item).and_then(|bytes| {
        if bytes.len() == len {
            Ok(bytes)
        } else {
            Err(Failure::Revert)
        }
    })
}

/// A non-negative integer without leading zero bytes (go-ethereum's `ErrCanonInt`).
fn big_int(item: &[u8]) -> Result<&[u8], Failure> {
    string(item).and_then(|bytes| match bytes.first() {
        Some(0) => Err(Failure::Revert),
        _ => Ok(bytes),
    })
}

fn uint64(item: &[u8]) -> Result<&[u8], Failure> {
    big_int(item).and_then(|bytes| {
        if bytes.len() <= 8 {
            Ok(bytes)
        } else {
            Err(Failure::Revert)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::hex;

    #[test]
    fn rlp_rules_follow_go_ethereum() {
        // canonical integers
        assert_eq!(big_int(&[0x80]), Ok(&[][..]));
        assert_eq!(big_int(&[0x05]), Ok(&[5][..]));
        assert_eq!(big_int(&[0x00]), Err(Failure::Revert), "zero must be 0x80");
        assert_eq!(big_int(&[0x81, 0x05]), Err(Failure::Revert), "single byte");
        assert_eq!(
            big_int(&[0x82, 0x00, 0x01]),
            Err(Failure::Revert),
            "leading zero"
        );
        assert_eq!(uint64(&hex!("89010000000000000000")), Err(Failure::Revert));
        assert!(big_int(&hex!("89010000000000000000")).is_ok());
        // fixed arrays and lists
        assert_eq!(fixed(&[0x82, 1, 2], 2), Ok(&[1, 2][..]));
        assert_eq!(fixed(&[0x82, 1, 2], 3), Err(Failure::Revert));
        assert_eq!(string(&[0xc0]), Err(Failure::Revert));
        // a list must fill its input and its items must fit in it
        assert_eq!(
            decode_list(&[0xc2, 0x01, 0x02]),
            Ok(vec![&[1][..], &[2][..]])
        );
        assert_eq!(decode_list(&[0xc2, 0x01, 0x02, 0x03]), Err(Failure::Revert));
        assert_eq!(decode_list(&[0xc2, 0x82, 0x02]), Err(Failure::Revert));
        assert_eq!(decode_list(&[0x82, 0x01, 0x02]), Err(Failure::Revert));
    }

    /// bnb-chain/bsc `core/vm/contracts_test.go` `TestDoubleSignSlash` and
    /// `TestDoubleSignSlashFailure`, copied into `testdata/bsc-client-vectors.json`.
    fn client_vector(name: &str, field: &str) -> Vec<u8> {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("testdata/bsc-client-vectors.json")).unwrap();
        hex::decode(vectors[name][field].as_str().unwrap()).unwrap()
    }

    #[test]
    fn client_vector_double_sign_holds() {
        let input = client_vector("double_sign_ok", "input");
        let out = verify_double_sign_evidence(&input, GAS, 0).unwrap();
        assert!(out.is_success(), "{:?}", out.status);
        assert_eq!(out.gas_used, 10_000);
        assert_eq!(
            out.bytes.as_ref(),
            client_vector("double_sign_ok", "expected")
        );
    }

    #[test]
    fn client_vector_invalid_evidence_halts() {
        let input = client_vector("double_sign_invalid_evidence", "input");
        let out = verify_double_sign_evidence(&input, 20_000, 0).unwrap();
        assert_eq!(
            out.halt_reason().map(ToString::to_string).as_deref(),
            Some("invalid double sign evidence")
        );
    }

    /// The valid evidence with one header's seal recovery id set to 4: the client's
    /// `secp256k1.RecoverPubkey` rejects it, which reverts.
    #[test]
    fn unrecoverable_seal_reverts() {
        let input = client_vector("double_sign_ok", "input");
        let evidence = decode_list(&input).unwrap();
        let header = string(evidence[1]).unwrap();
        let extra = ParliaHeader::decode(header).unwrap().payloads[EXTRA];
        let v_at = extra.as_ptr() as usize + extra.len() - 1 - input.as_ptr() as usize;
        let mut bad = input.clone();
        assert!(bad[v_at] < 4, "the seal ends in a recovery id");
        bad[v_at] = 4;
        let out = verify_double_sign_evidence(&bad, GAS, 0).unwrap();
        assert!(out.is_revert(), "{:?}", out.status);
        assert_eq!(out.gas_used, GAS);
    }

    #[test]
    fn undecodable_evidence_reverts_and_charges_10000() {
        for input in [&[][..], &[0xc0], &[0xc3, 0x01, 0x80, 0x80]] {
            let out = verify_double_sign_evidence(input, 50_000, 0).unwrap();
            assert!(out.is_revert(), "{input:?}");
            assert_eq!(out.gas_used, GAS);
        }
        let out = verify_double_sign_evidence(&[], GAS - 1, 0).unwrap();
        assert!(out.halt_reason().is_some_and(|h| h.is_oog()));
    }
}
