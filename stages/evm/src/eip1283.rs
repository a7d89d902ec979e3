//! Constantinople as first scheduled: Petersburg's rules plus EIP-1283, net gas metering for
//! SSTORE, which Petersburg removed again before Constantinople reached mainnet. Only a chain
//! with Constantinople but not Petersburg runs it (the ethereum/tests `Constantinople`
//! network); revm has no such rule set, so the block runs under Petersburg with SSTORE
//! replaced.
//!
//! EIP-1283 is EIP-2200's net metering with an SLOAD cost of 200 and without EIP-2200's
//! stipend check: a no-op store costs 200; the first change of a slot in a transaction costs
//! 20,000 from zero or 5,000 otherwise; later changes cost 200; refunds of 15,000 for clearing,
//! and 19,800 or 4,800 for restoring the original value. revm's net-metering accounting runs
//! with those costs.

use crate::chain::ChainSpec;
use alloy_evm::Database;
use alloy_evm::{EthEvm, EvmEnv};
use alloy_hardforks::EthereumHardforks;
use revm::bytecode::opcode::SSTORE;
use revm::context_interface::cfg::{GasId, GasParams};
use revm::interpreter::instructions::host::sstore_with_gas_accounting;
use revm::interpreter::interpreter_types::InterpreterTypes;
use revm::interpreter::{Host, Instruction, InstructionContext, InstructionResult};
use revm::primitives::hardfork::SpecId;

/// EIP-1283's `SLOAD_GAS`: what every SSTORE costs up front.
const SLOAD_GAS: u64 = 200;
/// EIP-1283's `SSTORE_SET_GAS`: a clean slot set from zero.
const SSTORE_SET_GAS: u64 = 20_000;
/// EIP-1283's `SSTORE_RESET_GAS`: a clean non-zero slot changed.
const SSTORE_RESET_GAS: u64 = 5_000;

/// True when block `number` of `spec` runs EIP-1283 (Constantinople without Petersburg).
pub fn applies(spec: &ChainSpec, number: u64) -> bool {
    spec.is_constantinople_active_at_block(number) && !spec.is_petersburg_active_at_block(number)
}

/// Petersburg's rules with EIP-1283's SSTORE costs, for an environment alloy-evm made (which
/// maps Constantinople without Petersburg to Byzantium).
pub fn configure(env: &mut EvmEnv) {
    let mut params = GasParams::new_spec(SpecId::PETERSBURG);
    params.override_gas([
        (GasId::sstore_static(), SLOAD_GAS),
        (
            GasId::sstore_set_without_load_cost(),
            SSTORE_SET_GAS - SLOAD_GAS,
        ),
        (
            GasId::sstore_reset_without_cold_load_cost(),
            SSTORE_RESET_GAS - SLOAD_GAS,
        ),
        (GasId::sstore_set_refund(), SSTORE_SET_GAS - SLOAD_GAS),
        (GasId::sstore_reset_refund(), SSTORE_RESET_GAS - SLOAD_GAS),
    ]);
    env.cfg_env.spec = SpecId::PETERSBURG;
    env.cfg_env.set_gas_params(params);
}

/// `evm` with SSTORE metered by EIP-1283, its inspector off (the caller turns it on where it
/// needs one).
pub fn install<DB: Database, I, P>(evm: EthEvm<DB, I, P>) -> EthEvm<DB, I, P> {
    let mut inner = evm.into_inner();
    let gas = inner.instruction.gas_table()[usize::from(SSTORE)];
    inner
        .instruction
        .insert_instruction(SSTORE, Instruction::new(sstore), gas);
    EthEvm::new(inner, false)
}

/// SSTORE with net metering as in Istanbul but, as EIP-1283 has it, no stipend check (revm
/// makes that check only from Istanbul, so the Petersburg rules leave it out).
fn sstore<W: InterpreterTypes, H: Host + ?Sized>(
    context: InstructionContext<'_, H, W>,
) -> Result<(), InstructionResult> {
    sstore_with_gas_accounting(context, |context, _, load| {
        let params = context.host.gas_params();
        let cost = params.sstore_dynamic_gas(true, &load.data, false);
        let refund = params.sstore_refund(true, &load.data);
        if !context.interpreter.gas.record_regular_cost(cost) {
            return Err(InstructionResult::OutOfGas);
        }
        context.interpreter.gas.record_refund(refund);
        Ok(())
    })
}
