//! One BSC block, in the order bnb-chain/bsc runs it (`core/state_processor.go` `Process`,
//! `consensus/parlia/parlia.go` `Finalize`):
//!
//! 1. Before Feynman (decided on the parent's timestamp), the fork's system-contract upgrades;
//!    at the Prague transition, the EIP-2935 contract's code
//!    (`systemcontracts.TryUpdateBuildInSystemContract(…, atBlockBegin=true)`).
//! 2. From Prague, the EIP-2935 parent-hash call (EIP-4788 is skipped: BSC's beacon root is
//!    zero; the EIP-6110/7002/7251 requests are not collected: `IsNotInBSC()`).
//! 3. The ordinary transactions in body order; system transactions are set aside, and from
//!    Cancun an ordinary transaction after a system one makes the block invalid. In the three
//!    HertzFix blocks, the recorded storage patches go around the transactions they concern
//!    ([`super::hertzfix`]).
//! 4. From Feynman, the upgrades (`atBlockBegin=false`, in `Finalize`).
//! 5. The system transactions in body order, each a direct call; before `deposit` (and
//!    before Kepler `distributeToSystem`) the system address's balance moves to the coinbase.
//!
//! The outcome is then checked against the header: gas used, receipts root, logs bloom and,
//! from Cancun, blob gas used.

use super::forks::BscForks;
use super::handler::{build_evm, precompiles_for, BscEvm, BscHandler, TxMode};
use super::header::{blob_params, check_header};
use super::hertzfix;
use super::system::{is_system_transaction, RewardMove, SLASH_CONTRACT, SYSTEM_ADDRESS};
use super::BscChain;
use crate::error::{database_error, BlockError};
use crate::verify::{verify_receipts, BlockOutput};
use alloy_consensus::{
    Eip658Value, Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, Transaction, TxEnvelope,
    TxType,
};
use alloy_eips::eip2935::{HISTORY_STORAGE_ADDRESS, HISTORY_STORAGE_CODE};
use alloy_eips::eip7702::RecoveredAuthorization;
use alloy_evm::FromRecoveredTx;
use alloy_primitives::{address, Address, B256, U256};
use primitives::block::ChainBlock;
use revm::bytecode::Bytecode;
use revm::context::result::{EVMError, ExecutionResult, HaltReason, InvalidTransaction};
use revm::context::{BlockEnv, CfgEnv, ContextTr, TxEnv};
use revm::context_interface::block::BlobExcessGasAndPrice;
use revm::context_interface::either::Either;
use revm::database::State;
use revm::handler::{Handler, SystemCallEvm};
use revm::state::{Account, AccountInfo, EvmStorageSlot, TransactionId};
use revm::{Database, DatabaseCommit, ExecuteEvm};

/// The Nano blacklist (`core/types/blacklist.go`): from Nano, transactions from or to these
/// are invalid, and EIP-7702 authorisations by them are skipped.
const NANO_BLACKLIST: [Address; 3] = [
    address!("489A8756C18C0b8B24EC2a2b9FF3D4d447F79BEc"),
    address!("Fd6042Df3D74ce9959922FeC559d7995F3933c55"),
    address!("db789Eb5BDb4E559beD199B8b82dED94e1d056C9"),
];

type EvmResult<DB> =
    Result<ExecutionResult<HaltReason>, EVMError<<DB as Database>::Error, InvalidTransaction>>;

/// Run the BSC block `block` (its transactions sent by `senders`) on top of `parent` against
/// `state`, and verify the outcome against the header. The changes stay in `state`.
pub fn run_block<DB>(
    chain: &BscChain,
    state: &mut State<DB>,
    block: &ChainBlock,
    senders: &[Address],
    parent: &Header,
) -> Result<BlockOutput, BlockError>
where
    DB: Database + std::fmt::Debug,
    DB::Error: std::error::Error + Send + Sync + 'static,
{
    let forks = &chain.forks;
    let header = &block.header;
    let number = header.number;
    let invalid = |reason: String| BlockError::Invalid {
        block: number,
        reason,
    };
    check_header(forks, header, parent).map_err(|violation| BlockError::Header {
        block: number,
        violation,
    })?;
    let txs = &block.body.transactions;
    if senders.len() != txs.len() {
        return Err(invalid(format!(
            "{} senders for {} transactions",
            senders.len(),
            txs.len()
        )));
    }
    let (time, parent_time) = (header.timestamp, parent.timestamp);
    let spec = forks.spec_id(number, time);
    let cancun = forks.time_active("CancunTime", number, time);
    let feynman_at_parent = forks.time_active("FeynmanTime", number, parent_time);
    let db_error = db_failure(number);

    // 1. Upgrades at block start (before Feynman), the EIP-2935 code at Prague.
    if !feynman_at_parent {
        apply_upgrades(chain, state, number, parent_time, time).map_err(&db_error)?;
    }
    if forks.time_transition("PragueTime", number, parent_time, time) {
        modify_account(state, HISTORY_STORAGE_ADDRESS, |info| {
            info.set_code(Bytecode::new_raw(HISTORY_STORAGE_CODE.clone()));
            info.nonce = 1;
        })
        .map_err(&db_error)?;
    }

    let mut evm = build_evm(
        &mut *state,
        cfg_env(chain, spec),
        block_env(forks, header),
        precompiles_for(spec, forks.precompile_fork(number, time)),
    );

    // 2. EIP-2935.
    if forks.time_active("PragueTime", number, time) {
        let outcome = evm
            .system_call_with_caller(
                SYSTEM_ADDRESS,
                HISTORY_STORAGE_ADDRESS,
                header.parent_hash.0.into(),
            )
            .map_err(|e| evm_failure(number, e, "the EIP-2935 block-hash call"))?;
        if !outcome.result.is_success() {
            return Err(invalid(format!(
                "the EIP-2935 block-hash call failed: {:?}",
                outcome.result
            )));
        }
        let mut changes = outcome.state;
        changes.remove(&SYSTEM_ADDRESS);
        evm.ctx.db_mut().commit(changes);
    }

    // 3. Ordinary transactions.
    let nano = forks.block_active("NanoBlock", number);
    let mut receipts = Vec::with_capacity(txs.len());
    let mut cumulative_gas = 0u64;
    let mut blob_gas_used = 0u64;
    let mut system = Vec::new();
    for (index, (tx, sender)) in txs.iter().zip(senders).enumerate() {
        let tx_error = |reason: String| BlockError::Transaction {
            block: number,
            index,
            hash: *tx.tx_hash(),
            reason,
        };
        if is_system_transaction(tx, *sender, header.beneficiary) {
            system.push((index, tx, *sender));
            continue;
        }
        if cancun && !system.is_empty() {
            return Err(tx_error(
                "an ordinary transaction after a system transaction".to_string(),
            ));
        }
        if nano
            && (NANO_BLACKLIST.contains(sender)
                || tx.to().is_some_and(|to| NANO_BLACKLIST.contains(&to)))
        {
            return Err(tx_error(
                "sender or recipient is on the Nano blacklist".to_string(),
            ));
        }
        let available = header.gas_limit - cumulative_gas;
        if tx.gas_limit() > available {
            return Err(tx_error(format!(
                "gas limit {} exceeds the block's remaining gas {available}",
                tx.gas_limit()
            )));
        }
        let patch = hertzfix::patch_for(forks, number, index);
        if let Some(patch) = patch {
            write_storage(evm.ctx.db_mut(), patch.account, patch.before_writes())
                .map_err(&db_error)?;
        }
        evm.ctx.tx = tx_env(tx, *sender);
        let result = run(&mut evm, TxMode::Ordinary).map_err(|e| match e {
            EVMError::Transaction(reason) => tx_error(reason.to_string()),
            other => evm_failure(number, other, "an ordinary transaction"),
        })?;
        let changes = evm.finalize();
        evm.ctx.db_mut().commit(changes);
        if let Some(patch) = patch {
            write_storage(evm.ctx.db_mut(), patch.account, patch.after_writes())
                .map_err(&db_error)?;
        }
        cumulative_gas += result.tx_gas_used();
        blob_gas_used += tx.blob_gas_used().unwrap_or(0);
        receipts.push(receipt(tx.tx_type(), result, cumulative_gas));
    }

    // 4. Upgrades after the ordinary transactions (from Feynman).
    if feynman_at_parent {
        apply_upgrades(chain, evm.ctx.db_mut(), number, parent_time, time).map_err(&db_error)?;
    }

    // 5. System transactions.
    let kepler = forks.time_active("KeplerTime", number, time);
    for (index, tx, sender) in system {
        let tx_error = |reason: String| BlockError::Transaction {
            block: number,
            index,
            hash: *tx.tx_hash(),
            reason,
        };
        if let Some(reward) = RewardMove::for_tx(tx, kepler) {
            let db = evm.ctx.db_mut();
            let balance = db
                .basic(SYSTEM_ADDRESS)
                .map_err(&db_error)?
                .unwrap_or_default()
                .balance;
            let amount = reward.amount(balance);
            if tx.value() != amount {
                return Err(tx_error(format!(
                    "system transaction pays {} but the engine moves {amount} from the system address ({reward:?})",
                    tx.value()
                )));
            }
            modify_account(db, SYSTEM_ADDRESS, |info| info.balance -= amount).map_err(&db_error)?;
            modify_account(db, header.beneficiary, |info| info.balance += amount)
                .map_err(&db_error)?;
        }
        let mut env = tx_env(tx, sender);
        env.access_list = Default::default();
        evm.ctx.tx = env;
        let result = run(&mut evm, TxMode::System { warm: cancun }).map_err(|e| match e {
            EVMError::Transaction(reason) => tx_error(reason.to_string()),
            other => evm_failure(number, other, "a system transaction"),
        })?;
        let changes = evm.finalize();
        if !result.is_success() {
            // `applyMessage` fails: the engine drops a failed slash (its error is only
            // logged), any other failure rejects the block.
            if tx.to() == Some(SLASH_CONTRACT) {
                continue;
            }
            return Err(tx_error(format!("system transaction failed: {result:?}")));
        }
        evm.ctx.db_mut().commit(changes);
        cumulative_gas += result.tx_gas_used();
        receipts.push(receipt(TxType::Legacy, result, cumulative_gas));
    }

    verify(forks, header, &receipts, cumulative_gas, blob_gas_used)?;
    Ok(BlockOutput {
        receipts,
        gas_used: cumulative_gas,
    })
}

fn run<DB: Database + std::fmt::Debug>(evm: &mut BscEvm<DB>, mode: TxMode) -> EvmResult<DB> {
    BscHandler::new(mode).run(evm)
}

fn cfg_env(chain: &BscChain, spec: revm::primitives::hardfork::SpecId) -> CfgEnv {
    let mut cfg = CfgEnv::new_with_spec(spec);
    cfg.chain_id = chain.forks.chain_id;
    cfg
}

/// The block environment: BSC has no beacon randomness, so PREVRANDAO (once the rules use
/// it) reads the difficulty, as go-ethereum does when `Random` is nil.
fn block_env(forks: &BscForks, header: &Header) -> BlockEnv {
    let blob = header
        .excess_blob_gas
        .filter(|_| forks.time_active("CancunTime", header.number, header.timestamp))
        .map(|excess| BlobExcessGasAndPrice::new(excess, blob_params().update_fraction as u64));
    BlockEnv {
        number: U256::from(header.number),
        beneficiary: header.beneficiary,
        timestamp: U256::from(header.timestamp),
        gas_limit: header.gas_limit,
        basefee: header.base_fee_per_gas.unwrap_or(0),
        difficulty: header.difficulty,
        prevrandao: Some(B256::from(header.difficulty)),
        blob_excess_gas_and_price: blob,
        ..BlockEnv::default()
    }
}

/// The revm transaction of `tx`, with EIP-7702 authorisations by blacklisted accounts made
/// invalid (skipped, not warmed), as `validateAuthorization` does.
fn tx_env(tx: &TxEnvelope, sender: Address) -> TxEnv {
    let mut env = TxEnv::from_recovered_tx(tx, sender);
    for entry in &mut env.authorization_list {
        if let Either::Left(signed) = entry {
            if signed
                .recover_authority()
                .is_ok_and(|authority| NANO_BLACKLIST.contains(&authority))
            {
                *entry = Either::Right(RecoveredAuthorization::new_unchecked(
                    signed.inner().clone(),
                    alloy_eips::eip7702::RecoveredAuthority::Invalid,
                ));
            }
        }
    }
    env
}

fn receipt(
    tx_type: TxType,
    result: ExecutionResult<HaltReason>,
    cumulative: u64,
) -> ReceiptEnvelope {
    let status = Eip658Value::Eip658(result.is_success());
    let receipt = Receipt {
        status,
        cumulative_gas_used: cumulative,
        logs: result.into_logs(),
    };
    ReceiptEnvelope::from_typed(tx_type, ReceiptWithBloom::from(receipt))
}

/// Apply the system-contract upgrades of block `number`.
fn apply_upgrades<DB: Database + DatabaseCommit>(
    chain: &BscChain,
    db: &mut DB,
    number: u64,
    parent_time: u64,
    time: u64,
) -> Result<(), DB::Error> {
    for upgrade in chain
        .upgrades
        .at_block(&chain.forks, number, parent_time, time)
    {
        modify_account(db, upgrade.address, |info| {
            info.set_code(Bytecode::new_raw(upgrade.code.clone()));
        })?;
    }
    Ok(())
}

/// Change one account outside any transaction and commit it.
fn modify_account<DB: Database + DatabaseCommit>(
    db: &mut DB,
    address: Address,
    change: impl FnOnce(&mut AccountInfo),
) -> Result<(), DB::Error> {
    let mut account = loaded_account(db, address)?;
    change(&mut account.info);
    commit_account(db, address, account);
    Ok(())
}

/// Set storage slots of one account outside any transaction and commit them, so the next
/// transaction sees each value as both the slot's original and its present value.
fn write_storage<DB: Database + DatabaseCommit>(
    db: &mut DB,
    address: Address,
    writes: impl Iterator<Item = (U256, U256)>,
) -> Result<(), DB::Error> {
    let mut account = loaded_account(db, address)?;
    for (slot, value) in writes {
        let current = db.storage(address, slot)?;
        account.storage.insert(
            slot,
            EvmStorageSlot::new_changed(current, value, TransactionId::ZERO),
        );
    }
    commit_account(db, address, account);
    Ok(())
}

/// An account as `db` holds it, code included.
fn loaded_account<DB: Database>(db: &mut DB, address: Address) -> Result<Account, DB::Error> {
    let mut info = db.basic(address)?.unwrap_or_default();
    if info.code.is_none() && info.code_hash != revm::primitives::KECCAK_EMPTY {
        info.code = Some(db.code_by_hash(info.code_hash)?);
    }
    Ok(Account::from(info))
}

fn commit_account<DB: DatabaseCommit>(db: &mut DB, address: Address, mut account: Account) {
    account.mark_touch();
    db.commit(std::iter::once((address, account)).collect());
}

/// Turns a database error of block `block` into a [`BlockError`].
fn db_failure<E: std::error::Error + 'static>(block: u64) -> impl Fn(E) -> BlockError {
    move |e| database_error(block, &e)
}

fn evm_failure<E>(block: u64, error: EVMError<E, InvalidTransaction>, what: &str) -> BlockError
where
    E: std::error::Error + Send + Sync + 'static,
{
    match error {
        EVMError::Database(e) => database_error(block, &e),
        other => BlockError::Invalid {
            block,
            reason: format!("{what}: {other}"),
        },
    }
}

/// Compare the outcome with the header (`ValidateState`; `VerifyRequests` accepts anything
/// under Parlia, so the requests hash is not compared).
fn verify(
    forks: &BscForks,
    header: &Header,
    receipts: &[ReceiptEnvelope],
    gas_used: u64,
    blob_gas_used: u64,
) -> Result<(), BlockError> {
    let cancun = forks.time_active("CancunTime", header.number, header.timestamp);
    verify_receipts(header, receipts, gas_used, cancun.then_some(blob_gas_used))
}
