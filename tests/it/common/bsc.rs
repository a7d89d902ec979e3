//! Building BSC blocks for tests: keys that sign transactions, headers with the fields each
//! fork requires, receipts assembled by hand, and a revm state to run them on. Shared by several
//! test binaries, each using part of it.

use alloy_consensus::{
    proofs, Eip658Value, Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, SignableTransaction,
    TxEnvelope, TxLegacy, TxReceipt, TxType, EMPTY_OMMER_ROOT_HASH,
};
use alloy_eips::eip7685::EMPTY_REQUESTS_HASH;
use alloy_primitives::{keccak256, Address, Bloom, Bytes, Log, Signature, TxKind, B256, U256};
use primitives::block::ChainBlock;
use revm::database::{CacheDB, EmptyDB, State};
use revm::state::{AccountInfo, Bytecode};
use std::path::PathBuf;

/// The BSC fixture directory (`fixtures/bsc`).
pub fn bsc_dir() -> PathBuf {
    crate::common::fixtures_dir().join("bsc")
}

/// The gas limit of system transactions (`math.MaxUint64 / 2` in `getSystemMessage`).
pub const SYSTEM_TX_GAS: u64 = u64::MAX / 2;

/// A secp256k1 key and its address.
pub struct Key {
    signing: k256::ecdsa::SigningKey,
    /// The address of the key.
    pub address: Address,
}

impl Key {
    /// The key whose secret is `seed` repeated (seed must be non-zero).
    pub fn new(seed: u8) -> Self {
        let signing = k256::ecdsa::SigningKey::from_slice(&[seed; 32]).expect("valid key");
        let point = signing.verifying_key().to_encoded_point(false);
        let address = Address::from_slice(&keccak256(&point.as_bytes()[1..])[12..]);
        Self { signing, address }
    }

    /// A signed EIP-155 legacy transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn legacy(
        &self,
        chain_id: u64,
        nonce: u64,
        gas_price: u128,
        gas_limit: u64,
        to: Address,
        value: U256,
        input: Bytes,
    ) -> TxEnvelope {
        let tx = TxLegacy {
            chain_id: Some(chain_id),
            nonce,
            gas_price,
            gas_limit,
            to: TxKind::Call(to),
            value,
            input,
        };
        let (sig, recid) = self
            .signing
            .sign_prehash_recoverable(tx.signature_hash().as_slice())
            .expect("sign");
        let signature = Signature::from_signature_and_parity(sig, recid.is_y_odd());
        TxEnvelope::Legacy(tx.into_signed(signature))
    }
}

/// Which header fields a block's forks require.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fields {
    /// London (Hertz): base fee 0.
    pub london: bool,
    /// Cancun: withdrawals root, blob gas fields.
    pub cancun: bool,
    /// Bohr: zero parent beacon root.
    pub bohr: bool,
    /// Prague: requests hash.
    pub prague: bool,
}

/// A header on top of `parent` at `time`, with `fields`, empty until the outcome is set.
pub fn child_header(parent: &Header, time: u64, coinbase: Address, fields: Fields) -> Header {
    Header {
        parent_hash: parent.hash_slow(),
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: coinbase,
        number: parent.number + 1,
        timestamp: time,
        gas_limit: parent.gas_limit,
        difficulty: U256::from(2),
        base_fee_per_gas: fields.london.then_some(0),
        withdrawals_root: fields
            .cancun
            .then_some(alloy_consensus::constants::EMPTY_WITHDRAWALS),
        blob_gas_used: fields.cancun.then_some(0),
        excess_blob_gas: fields.cancun.then_some(0),
        parent_beacon_block_root: fields.bohr.then_some(B256::ZERO),
        requests_hash: fields.prague.then_some(EMPTY_REQUESTS_HASH),
        receipts_root: proofs::calculate_receipt_root::<ReceiptEnvelope>(&[]),
        transactions_root: proofs::calculate_transaction_root::<TxEnvelope>(&[]),
        ..Header::default()
    }
}

/// A parent header numbered `number` at `time` with `fields` (its hash is all that matters).
pub fn parent_header(number: u64, time: u64, fields: Fields) -> Header {
    let mut header = child_header(&Header::default(), time, Address::ZERO, fields);
    header.number = number;
    header.gas_limit = 140_000_000;
    header
}

/// A receipt expected of a transaction, written out by hand.
pub fn receipt(tx_type: TxType, success: bool, cumulative: u64, logs: Vec<Log>) -> ReceiptEnvelope {
    ReceiptEnvelope::from_typed(
        tx_type,
        ReceiptWithBloom::from(Receipt {
            status: Eip658Value::Eip658(success),
            cumulative_gas_used: cumulative,
            logs,
        }),
    )
}

/// `header` with the outcome `receipts` committed to it, and the block of `txs`.
pub fn block(mut header: Header, txs: Vec<TxEnvelope>, receipts: &[ReceiptEnvelope]) -> ChainBlock {
    header.transactions_root = proofs::calculate_transaction_root(&txs);
    header.receipts_root = proofs::calculate_receipt_root(receipts);
    let mut bloom = Bloom::ZERO;
    for r in receipts {
        bloom.accrue_bloom(&r.bloom());
    }
    header.logs_bloom = bloom;
    header.gas_used = receipts.last().map_or(0, |r| r.cumulative_gas_used());
    let header_has_withdrawals = header.withdrawals_root.is_some();
    let hash = header.hash_slow();
    ChainBlock {
        header,
        hash,
        body: alloy_consensus::BlockBody {
            transactions: txs,
            ommers: Vec::new(),
            withdrawals: header_has_withdrawals.then(Default::default),
        },
    }
}

/// A pre-state account: address, balance, nonce, code.
pub type PreAccount<'a> = (Address, U256, u64, &'a [u8]);

/// A pre-state of `accounts` and storage `slots` (address, slot, value).
pub fn state(
    accounts: &[PreAccount<'_>],
    slots: &[(Address, u64, u64)],
) -> State<CacheDB<EmptyDB>> {
    let mut db = CacheDB::new(EmptyDB::default());
    for (address, balance, nonce, code) in accounts {
        let bytecode = Bytecode::new_raw(Bytes::copy_from_slice(code));
        db.insert_account_info(
            *address,
            AccountInfo {
                balance: *balance,
                nonce: *nonce,
                code_hash: bytecode.hash_slow(),
                code: Some(bytecode),
                ..AccountInfo::default()
            },
        );
    }
    for (address, slot, value) in slots {
        db.insert_account_storage(*address, U256::from(*slot), U256::from(*value))
            .expect("in-memory");
    }
    State::builder()
        .with_database(db)
        .with_bundle_update()
        .build()
}

/// An account's balance, nonce and code hash in `state`.
pub fn account(state: &mut State<CacheDB<EmptyDB>>, address: Address) -> (U256, u64, B256) {
    use revm::Database;
    let info = state.basic(address).expect("in-memory").unwrap_or_default();
    (info.balance, info.nonce, info.code_hash)
}

/// A storage slot in `state`.
pub fn slot(state: &mut State<CacheDB<EmptyDB>>, address: Address, slot: u64) -> U256 {
    use revm::Database;
    state.storage(address, U256::from(slot)).expect("in-memory")
}
