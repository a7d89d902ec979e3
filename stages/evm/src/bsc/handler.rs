//! revm for BSC: the EVM type, the seam where the precompile set is chosen, and a handler
//! that runs transactions the way bnb-chain/bsc does.
//!
//! Ordinary transactions run as on Ethereum, except that the fee (and from Cancun the blob
//! fee) goes to the system address instead of the coinbase (`core/state_transition.go`,
//! `IsInBSC()` branch; the base fee is 0 so nothing is burnt). System transactions run as
//! Parlia's `applyMessage` (`consensus/parlia/parlia.go`): a direct call from the coinbase
//! with the transaction's gas limit, no intrinsic gas, no refund, no data floor and no gas
//! caps; before Cancun nothing is warmed (`ClearAccessList`), from Cancun the usual
//! `Prepare` warming applies.

use alloy_evm::precompiles::PrecompilesMap;
use bsc_precompiles::{bsc_precompiles, BscFork};
use revm::context::result::{EVMError, HaltReason, InvalidTransaction};
use revm::context::{BlockEnv, CfgEnv, Context, Evm, Journal, TxEnv};
use revm::context_interface::journaled_state::account::JournaledAccountTr;
use revm::context_interface::Cfg;
use revm::context_interface::{Block, ContextTr, JournalTr, Transaction};
use revm::handler::instructions::EthInstructions;
use revm::handler::{pre_execution, EthFrame, FrameResult, Handler};
use revm::interpreter::interpreter::EthInterpreter;
use revm::interpreter::InitialAndFloorGas;
use revm::precompile::{PrecompileSpecId, Precompiles};
use revm::primitives::hardfork::SpecId;
use revm::primitives::U256;
use revm::Database;
use std::borrow::Cow;
use std::marker::PhantomData;

/// The revm context BSC blocks run in.
pub type BscContext<DB> = Context<BlockEnv, TxEnv, CfgEnv, DB, Journal<DB>, ()>;
/// The revm EVM BSC blocks run in.
pub type BscEvm<DB> = Evm<
    BscContext<DB>,
    (),
    EthInstructions<EthInterpreter, BscContext<DB>>,
    PrecompilesMap,
    EthFrame<EthInterpreter>,
>;

/// The precompiles installed for a block under `spec`: Ethereum's set for the rules the block
/// runs, with BSC's own for `fork` on top (`core/vm/contracts.go`; a BSC precompile at the
/// address of a standard one replaces it, as 0x100 P-256 does).
pub fn precompiles_for(spec: SpecId, fork: BscFork) -> PrecompilesMap {
    let mut set = Precompiles::new(PrecompileSpecId::from_spec_id(spec)).clone();
    set.extend(bsc_precompiles(fork));
    PrecompilesMap::new(Cow::Owned(set))
}

/// An EVM over `db` for a block with `block` and `cfg`, with `precompiles` installed.
pub fn build_evm<DB: Database + std::fmt::Debug>(
    db: DB,
    cfg: CfgEnv,
    block: BlockEnv,
    precompiles: PrecompilesMap,
) -> BscEvm<DB> {
    let spec = cfg.spec;
    let ctx = BscContext::new(db, spec).with_cfg(cfg).with_block(block);
    Evm::new(
        ctx,
        EthInstructions::new_mainnet_with_spec(spec),
        precompiles,
    )
}

/// How a transaction is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxMode {
    /// An ordinary transaction.
    Ordinary,
    /// A Parlia system transaction; `warm` is true from Cancun (access list prepared), false
    /// before (access list cleared: nothing starts warm).
    System {
        /// Whether the usual warming applies.
        warm: bool,
    },
}

/// revm handler for BSC transactions.
pub struct BscHandler<DB> {
    mode: TxMode,
    _db: PhantomData<DB>,
}

impl<DB> BscHandler<DB> {
    /// A handler running transactions in `mode`.
    pub fn new(mode: TxMode) -> Self {
        Self {
            mode,
            _db: PhantomData,
        }
    }
}

impl<DB: Database + std::fmt::Debug> Handler for BscHandler<DB> {
    type Evm = BscEvm<DB>;
    type Error = EVMError<DB::Error, InvalidTransaction>;
    type HaltReason = HaltReason;

    fn validate(&self, evm: &mut Self::Evm) -> Result<InitialAndFloorGas, Self::Error> {
        match self.mode {
            TxMode::Ordinary => {
                self.validate_env(evm)?;
                let mut gas = self.validate_initial_tx_gas(evm)?;
                self.validate_against_state_and_deduct_caller(evm, &mut gas)?;
                Ok(gas)
            }
            TxMode::System { .. } => {
                // The message's nonce is the sender's (the client builds the expected
                // transaction with it); gas price 0 means nothing is bought.
                let ctx = &mut evm.ctx;
                let (tx, journal) = (&ctx.tx, &mut ctx.journaled_state);
                let mut caller = journal.load_account_with_code_mut(tx.caller)?.data;
                let nonce = caller.account().info.nonce;
                if tx.nonce != nonce {
                    return Err(if tx.nonce > nonce {
                        InvalidTransaction::NonceTooHigh {
                            tx: tx.nonce,
                            state: nonce,
                        }
                    } else {
                        InvalidTransaction::NonceTooLow {
                            tx: tx.nonce,
                            state: nonce,
                        }
                    }
                    .into());
                }
                caller.bump_nonce();
                Ok(InitialAndFloorGas::new(0, 0))
            }
        }
    }

    fn load_accounts(&self, evm: &mut Self::Evm) -> Result<(), Self::Error> {
        match self.mode {
            TxMode::System { warm: false } => {
                // `ClearAccessList`: not even the precompiles start warm (the next ordinary
                // transaction warms them again, as its pre-execution finds the set empty).
                let spec = evm.ctx.cfg.spec;
                let journal = evm.ctx.journal_mut();
                journal.set_spec_id(spec);
                journal.warm_precompiles(&Default::default());
                Ok(())
            }
            _ => pre_execution::load_accounts(evm),
        }
    }

    fn refund(
        &self,
        evm: &mut Self::Evm,
        exec_result: &mut FrameResult,
        eip7702_refund: i64,
    ) -> Result<(), Self::Error> {
        match self.mode {
            TxMode::Ordinary => {
                revm::handler::post_execution::refund(
                    evm.ctx.cfg.gas_params(),
                    exec_result.gas_mut(),
                    eip7702_refund,
                );
            }
            TxMode::System { .. } => exec_result.gas_mut().set_refund(0),
        }
        Ok(())
    }

    fn reward_beneficiary(
        &self,
        evm: &mut Self::Evm,
        exec_result: &mut FrameResult,
    ) -> Result<(), Self::Error> {
        if self.mode != TxMode::Ordinary {
            return Ok(());
        }
        let ctx = &mut evm.ctx;
        let basefee = ctx.block.basefee() as u128;
        let tip = ctx.tx.effective_gas_price(basefee).saturating_sub(basefee);
        let gas = exec_result.gas();
        let used = gas.used().saturating_sub(gas.reservoir());
        let mut fee = U256::from(tip) * U256::from(used);
        if ctx.cfg.spec.is_enabled_in(SpecId::CANCUN) {
            let blob_price = ctx.block.blob_gasprice().unwrap_or_default();
            fee += U256::from(ctx.tx.total_blob_gas()) * U256::from(blob_price);
        }
        ctx.journal_mut()
            .load_account_mut(super::system::SYSTEM_ADDRESS)?
            .incr_balance(fee);
        Ok(())
    }
}
