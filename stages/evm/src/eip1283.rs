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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::TestNetwork;
    use alloy_consensus::Header;
    use alloy_evm::{EthEvmFactory, Evm, EvmFactory};
    use alloy_primitives::{hex, keccak256, Address, U256};
    use revm::bytecode::Bytecode;
    use revm::context::TxEnv;
    use revm::database::{CacheDB, EmptyDB};
    use revm::state::AccountInfo;
    use std::sync::Arc;

    /// EIP-1283's "Test Cases": code run by a call to a contract whose slot 0 holds the
    /// original value, the gas it uses beyond the intrinsic 21,000, and the refund.
    const CASES: [(&str, u64, u64, u64); 17] = [
        ("60006000556000600055", 412, 0, 0),
        ("60006000556001600055", 20212, 0, 0),
        ("60016000556000600055", 20212, 19800, 0),
        ("60016000556002600055", 20212, 0, 0),
        ("60016000556001600055", 20212, 0, 0),
        ("60006000556000600055", 5212, 15000, 1),
        ("60006000556001600055", 5212, 4800, 1),
        ("60006000556002600055", 5212, 0, 1),
        ("60026000556000600055", 5212, 15000, 1),
        ("60026000556003600055", 5212, 0, 1),
        ("60026000556001600055", 5212, 4800, 1),
        ("60026000556002600055", 5212, 0, 1),
        ("60016000556000600055", 5212, 15000, 1),
        ("60016000556002600055", 5212, 0, 1),
        ("60016000556001600055", 412, 0, 1),
        ("600160005560006000556001600055", 40218, 19800, 0),
        ("600060005560016000556000600055", 10218, 19800, 1),
    ];

    #[test]
    fn sstore_costs_and_refunds_are_eip_1283s() {
        let spec = Arc::new(
            TestNetwork::parse("Constantinople")
                .expect("known network")
                .chain_spec(1, &Default::default()),
        );
        let header = Header {
            number: 1,
            gas_limit: 10_000_000,
            ..Header::default()
        };
        assert!(applies(&spec, header.number));
        let (contract, sender) = (Address::repeat_byte(0xcc), Address::repeat_byte(0x11));
        for (hex_code, used, refund, original) in CASES {
            let code = hex::decode(hex_code).expect("hex");
            let mut db = CacheDB::new(EmptyDB::default());
            db.insert_account_info(
                contract,
                AccountInfo {
                    code_hash: keccak256(&code),
                    code: Some(Bytecode::new_raw(code.into())),
                    ..AccountInfo::default()
                },
            );
            db.insert_account_storage(contract, U256::ZERO, U256::from(original))
                .expect("cache db");
            db.insert_account_info(sender, AccountInfo::default());
            let (env, _) = crate::execute::ethereum_executor(&spec, &header);
            let mut evm = install(EthEvmFactory::default().create_evm(db, env));
            let tx = TxEnv::builder()
                .caller(sender)
                .call(contract)
                .gas_limit(1_000_000)
                .build_fill();
            let outcome = evm.transact(tx).expect("the call runs");
            let gas = outcome.result.gas();
            let spent = 21_000 + used;
            assert_eq!(
                gas.total_gas_spent(),
                spent,
                "gas of {hex_code} on {original}"
            );
            // Before London a refund is capped at half the gas spent.
            assert_eq!(
                gas.inner_refunded(),
                refund.min(spent / 2),
                "refund of {hex_code} on {original}"
            );
        }
    }

    #[test]
    fn petersburg_and_later_do_not_meter_sstore_this_way() {
        for network in [
            "ConstantinopleFix",
            "Byzantium",
            "Istanbul",
            "ByzantiumToConstantinopleFixAt5",
        ] {
            let spec = TestNetwork::parse(network)
                .expect("known network")
                .chain_spec(1, &Default::default());
            assert!((0..10).all(|number| !applies(&spec, number)), "{network}");
        }
    }
}
