//! BNB Smart Chain's own precompiles, to be installed by the executor on top of the standard
//! Ethereum set of the same spec.
//!
//! Behaviour follows the BSC client (bnb-chain/bsc `core/vm/contracts.go`,
//! `core/vm/contracts_lightclient.go`): each precompile charges a fixed or input-sized gas up
//! front, and then ends in one of three ways, which an executor must tell apart because BSC's EVM
//! does:
//! - success: output bytes, only the required gas is used;
//! - `ErrExecutionReverted`: a revert with empty output, only the required gas is used;
//! - any other error: a halt, all gas given to the call is consumed.
//!
//! [`bsc_precompiles`] picks the set that is active from a [`BscFork`] on, mirroring the client's
//! `activePrecompiledContracts`.
//!
//! 0x64 is Tendermint v0.31 header validation ([`tm_header_validate`]) before Nano and from
//! Moran on, suspended under Nano; 0x65 is IAVL Merkle proof validation under the original
//! rules before Nano, suspended under Nano, then under Moran's, Planck's and Plato's rules.

mod amino;
mod bls;
mod cometbft;
mod double_sign;
mod ed25519;
mod fields;
mod go_sort;
mod iavl;
mod merkle;
mod outcome;
mod protobuf;
mod suspended;
mod tendermint;
mod tm_secp256k1;

use revm::precompile::{secp256r1, Precompile, PrecompileId};

pub use bls::bls_signature_verify;
pub use cometbft::{cometbft_light_block_validate, cometbft_light_block_validate_hertz};
pub use double_sign::verify_double_sign_evidence;
pub use iavl::{
    iavl_merkle_proof_validate, iavl_merkle_proof_validate_moran,
    iavl_merkle_proof_validate_planck, iavl_merkle_proof_validate_plato,
};
pub use suspended::{iavl_merkle_proof_validate_nano, tm_header_validate_nano};
pub use tendermint::tm_header_validate;
pub use tm_secp256k1::secp256k1_signature_recover;

use alloy_primitives::Address;

/// 0x64: Tendermint header validation (suspended under Nano).
pub const TM_HEADER_VALIDATE_ADDRESS: Address = revm::precompile::u64_to_address(0x64);
/// 0x65: IAVL Merkle proof validation (original rules; suspended under Nano; Moran, Planck and
/// Plato rules).
pub const IAVL_MERKLE_PROOF_VALIDATE_ADDRESS: Address = revm::precompile::u64_to_address(0x65);
/// 0x66: BLS signature verification (Luban).
pub const BLS_SIGNATURE_VERIFY_ADDRESS: Address = revm::precompile::u64_to_address(0x66);
/// 0x67: CometBFT light block validation (Luban; Hertz variant from Hertz).
pub const COMETBFT_LIGHT_BLOCK_VALIDATE_ADDRESS: Address = revm::precompile::u64_to_address(0x67);
/// 0x68: double-sign evidence verification (Feynman).
pub const DOUBLE_SIGN_EVIDENCE_ADDRESS: Address = revm::precompile::u64_to_address(0x68);
/// 0x69: Tendermint-style secp256k1 signature check returning the signer's address (Feynman).
pub const SECP256K1_SIGNATURE_RECOVER_ADDRESS: Address = revm::precompile::u64_to_address(0x69);
/// 0x100: P-256 signature verification (Haber).
pub const P256_VERIFY_ADDRESS: Address =
    revm::precompile::u64_to_address(secp256r1::P256VERIFY_ADDRESS);

/// The latest fork that changed BSC's precompile set, as the client's `activePrecompiledContracts`
/// picks it (its first matching case). Each fork implies the earlier ones, as on mainnet and
/// Chapel. Cancun and Prague add nothing BSC-specific: they map to [`BscFork::Feynman`] and
/// [`BscFork::Haber`]. Berlin activates with Hertz on both networks, so the client's Berlin-only
/// set (no BSC precompiles) never applies there and has no variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BscFork {
    /// Before Nano (Istanbul): 0x64 header validation and 0x65 with the original proof rules.
    Istanbul,
    /// Nano: 0x64 and 0x65 suspended.
    Nano,
    /// Moran: 0x64 header validation back, 0x65 with Moran's proof rules.
    Moran,
    /// Planck: 0x65 with ICS23-compatible proofs.
    Planck,
    /// Luban: 0x66 BLS verify; 0x67 CometBFT light block validation (0x65 as in Planck).
    Luban,
    /// Plato: 0x65 with ICS23 proofs only.
    Plato,
    /// Hertz: 0x67 Hertz variant (its "validator set changed" flag fixed).
    Hertz,
    /// Feynman: 0x68 double-sign evidence and 0x69 secp256k1 signature recover.
    Feynman,
    /// Haber: 0x100 P-256 verify at 3450 gas.
    Haber,
    /// Osaka (with Mendel on BSC): P-256 verify costs 6900.
    Osaka,
}

/// The BSC-specific precompiles active from `fork` on, to be installed over the standard set.
pub fn bsc_precompiles(fork: BscFork) -> Vec<Precompile> {
    let mut set = Vec::new();
    if fork == BscFork::Istanbul {
        set.push(precompile(
            "BSC_HEADER_VALIDATE",
            TM_HEADER_VALIDATE_ADDRESS,
            tm_header_validate,
        ));
        set.push(precompile(
            "BSC_IAVL_MERKLE_PROOF_VALIDATE",
            IAVL_MERKLE_PROOF_VALIDATE_ADDRESS,
            iavl_merkle_proof_validate,
        ));
    }
    if fork == BscFork::Nano {
        set.push(precompile(
            "BSC_HEADER_VALIDATE_NANO",
            TM_HEADER_VALIDATE_ADDRESS,
            tm_header_validate_nano,
        ));
        set.push(precompile(
            "BSC_IAVL_MERKLE_PROOF_VALIDATE_NANO",
            IAVL_MERKLE_PROOF_VALIDATE_ADDRESS,
            iavl_merkle_proof_validate_nano,
        ));
    }
    if fork >= BscFork::Moran {
        set.push(precompile(
            "BSC_HEADER_VALIDATE",
            TM_HEADER_VALIDATE_ADDRESS,
            tm_header_validate,
        ));
        set.push(if fork >= BscFork::Plato {
            precompile(
                "BSC_IAVL_MERKLE_PROOF_VALIDATE_PLATO",
                IAVL_MERKLE_PROOF_VALIDATE_ADDRESS,
                iavl_merkle_proof_validate_plato,
            )
        } else if fork >= BscFork::Planck {
            precompile(
                "BSC_IAVL_MERKLE_PROOF_VALIDATE_PLANCK",
                IAVL_MERKLE_PROOF_VALIDATE_ADDRESS,
                iavl_merkle_proof_validate_planck,
            )
        } else {
            precompile(
                "BSC_IAVL_MERKLE_PROOF_VALIDATE_MORAN",
                IAVL_MERKLE_PROOF_VALIDATE_ADDRESS,
                iavl_merkle_proof_validate_moran,
            )
        });
    }
    if fork >= BscFork::Luban {
        set.push(precompile(
            "BSC_BLS_SIGNATURE_VERIFY",
            BLS_SIGNATURE_VERIFY_ADDRESS,
            bls_signature_verify,
        ));
        set.push(if fork >= BscFork::Hertz {
            precompile(
                "BSC_COMET_BFT_LIGHT_BLOCK_VALIDATE_HERTZ",
                COMETBFT_LIGHT_BLOCK_VALIDATE_ADDRESS,
                cometbft_light_block_validate_hertz,
            )
        } else {
            precompile(
                "BSC_COMET_BFT_LIGHT_BLOCK_VALIDATE",
                COMETBFT_LIGHT_BLOCK_VALIDATE_ADDRESS,
                cometbft_light_block_validate,
            )
        });
    }
    if fork >= BscFork::Feynman {
        set.push(precompile(
            "BSC_VERIFY_DOUBLE_SIGN_EVIDENCE",
            DOUBLE_SIGN_EVIDENCE_ADDRESS,
            verify_double_sign_evidence,
        ));
        set.push(precompile(
            "BSC_SECP256K1_SIGNATURE_RECOVER",
            SECP256K1_SIGNATURE_RECOVER_ADDRESS,
            secp256k1_signature_recover,
        ));
    }
    if fork >= BscFork::Osaka {
        set.push(secp256r1::P256VERIFY_OSAKA);
    } else if fork >= BscFork::Haber {
        set.push(secp256r1::P256VERIFY);
    }
    set
}

fn precompile(
    name: &'static str,
    address: Address,
    run: revm::precompile::PrecompileFn,
) -> Precompile {
    Precompile::new(PrecompileId::custom(name), address, run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(fork: BscFork) -> Vec<Address> {
        let mut list: Vec<Address> = bsc_precompiles(fork).iter().map(|p| *p.address()).collect();
        list.sort();
        list
    }

    /// The sets follow bnb-chain/bsc `core/vm/contracts.go` (PrecompiledContractsIstanbul ..
    /// PrecompiledContractsOsaka).
    #[test]
    fn precompiles_per_fork() {
        let light_client = vec![
            TM_HEADER_VALIDATE_ADDRESS,
            IAVL_MERKLE_PROOF_VALIDATE_ADDRESS,
        ];
        let luban = vec![
            TM_HEADER_VALIDATE_ADDRESS,
            IAVL_MERKLE_PROOF_VALIDATE_ADDRESS,
            BLS_SIGNATURE_VERIFY_ADDRESS,
            COMETBFT_LIGHT_BLOCK_VALIDATE_ADDRESS,
        ];
        let mut feynman = luban.clone();
        feynman.extend([
            DOUBLE_SIGN_EVIDENCE_ADDRESS,
            SECP256K1_SIGNATURE_RECOVER_ADDRESS,
        ]);
        let mut haber = feynman.clone();
        haber.push(P256_VERIFY_ADDRESS);
        let expected = [
            (BscFork::Istanbul, light_client.clone()),
            (BscFork::Nano, light_client.clone()),
            (BscFork::Moran, light_client.clone()),
            (BscFork::Planck, light_client),
            (BscFork::Luban, luban.clone()),
            (BscFork::Plato, luban.clone()),
            (BscFork::Hertz, luban),
            (BscFork::Feynman, feynman),
            (BscFork::Haber, haber.clone()),
            (BscFork::Osaka, haber),
        ];
        for (fork, addresses_expected) in expected {
            assert_eq!(addresses(fork), addresses_expected, "{fork:?}");
        }
    }

    fn variant(fork: BscFork, address: Address) -> String {
        bsc_precompiles(fork)
            .iter()
            .find(|p| *p.address() == address)
            .map(|p| p.id().name().to_string())
            .unwrap_or_default()
    }

    /// 0x65 is the client's `iavlMerkleProofValidate` before Nano,
    /// `iavlMerkleProofValidateNano` under Nano, `...Moran` under Moran, `...Planck` under
    /// Planck and Luban, `...Plato` from Plato on.
    #[test]
    fn iavl_variant_per_fork() {
        for (fork, suffix) in [
            (BscFork::Istanbul, ""),
            (BscFork::Nano, "_NANO"),
            (BscFork::Moran, "_MORAN"),
            (BscFork::Planck, "_PLANCK"),
            (BscFork::Luban, "_PLANCK"),
            (BscFork::Plato, "_PLATO"),
            (BscFork::Hertz, "_PLATO"),
            (BscFork::Feynman, "_PLATO"),
            (BscFork::Haber, "_PLATO"),
            (BscFork::Osaka, "_PLATO"),
        ] {
            let expected = format!("BSC_IAVL_MERKLE_PROOF_VALIDATE{suffix}");
            assert_eq!(
                variant(fork, IAVL_MERKLE_PROOF_VALIDATE_ADDRESS),
                expected,
                "{fork:?}"
            );
        }
    }

    /// 0x64 is the client's `tmHeaderValidate` in every set but Nano's, where it is
    /// `tmHeaderValidateNano`.
    #[test]
    fn header_validate_variant_per_fork() {
        for fork in [
            BscFork::Istanbul,
            BscFork::Nano,
            BscFork::Moran,
            BscFork::Planck,
            BscFork::Luban,
            BscFork::Plato,
            BscFork::Hertz,
            BscFork::Feynman,
            BscFork::Haber,
            BscFork::Osaka,
        ] {
            let expected = if fork == BscFork::Nano {
                "BSC_HEADER_VALIDATE_NANO"
            } else {
                "BSC_HEADER_VALIDATE"
            };
            assert_eq!(
                variant(fork, TM_HEADER_VALIDATE_ADDRESS),
                expected,
                "{fork:?}"
            );
        }
    }

    /// The installed 0x64 and 0x65 run: before Nano the original 0x65 accepts bsc
    /// `TestMerkleProofValidateMoran`'s exploit input (two leaves) that Moran's refuses, and
    /// 0x64 halts on a short input at 3000 gas under every fork that has it.
    #[test]
    fn installed_light_client_precompiles_run() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("testdata/iavl-merkle-proof-vectors.json")).unwrap();
        let exploit = alloy_primitives::hex::decode(
            vectors["moran_exploit_inputs"]["inputs"][0]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let run = |fork, address| {
            let set = bsc_precompiles(fork);
            let p = set.iter().find(|p| *p.address() == address).unwrap();
            p.execute(&exploit, 10_000, 0).expect("not fatal")
        };
        let original = run(BscFork::Istanbul, IAVL_MERKLE_PROOF_VALIDATE_ADDRESS);
        assert!(original.is_success());
        assert_eq!(original.bytes[31], 1);
        let moran = run(BscFork::Moran, IAVL_MERKLE_PROOF_VALIDATE_ADDRESS);
        assert!(moran.halt_reason().is_some());
        for fork in [BscFork::Istanbul, BscFork::Moran, BscFork::Osaka] {
            let header = run(fork, TM_HEADER_VALIDATE_ADDRESS);
            assert!(
                header.halt_reason().is_some_and(|h| !h.is_oog()),
                "{fork:?}"
            );
        }
    }

    /// P-256 verify costs 3450 from Haber and 6900 from Osaka (bsc `p256Verify.RequiredGas`).
    #[test]
    fn p256_gas_changes_at_osaka() {
        for (fork, gas) in [(BscFork::Haber, 3450), (BscFork::Osaka, 6900)] {
            let set = bsc_precompiles(fork);
            let p256 = set
                .iter()
                .find(|p| *p.address() == P256_VERIFY_ADDRESS)
                .expect("P-256 verify is active from Haber");
            let out = p256.execute(&[0u8; 160], 100_000, 0).expect("not fatal");
            assert!(out.is_success());
            assert_eq!(out.gas_used, gas);
            assert!(
                out.bytes.is_empty(),
                "an all-zero signature does not verify"
            );
            let short = p256.execute(&[0u8; 160], gas - 1, 0).expect("not fatal");
            assert!(short.halt_reason().is_some_and(|h| h.is_oog()));

            // bnb-chain/bsc `BenchmarkPrecompiledP256Verify`'s valid signature.
            let vectors: serde_json::Value =
                serde_json::from_str(include_str!("testdata/bsc-client-vectors.json")).unwrap();
            let hex_field = |field: &str| {
                alloy_primitives::hex::decode(vectors["p256_verify_ok"][field].as_str().unwrap())
                    .unwrap()
            };
            let out = p256
                .execute(&hex_field("input"), gas, 0)
                .expect("not fatal");
            assert!(out.is_success());
            assert_eq!(out.bytes.as_ref(), hex_field("expected"));
        }
    }
}
