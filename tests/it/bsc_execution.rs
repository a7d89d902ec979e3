//! BSC execution against the client's rules (bnb-chain/bsc), on blocks built for each rule:
//! system-contract upgrades at every fork boundary of mainnet and Chapel, where upgrades go
//! relative to the transactions before and after Feynman, fees routed to the system address,
//! the deposit's balance move, system-transaction gas accounting, receipts and ordering, and
//! the header rules on real BSC headers. Every expected value is worked out by hand from the
//! client's rules (gas by opcode) or read from the fixture files.

use crate::common::bsc::{
    block, bsc_dir, child_header, parent_header, receipt, state, Fields, Key, SYSTEM_TX_GAS,
};
use alloy_consensus::{Header, TxEnvelope, TxType};
use alloy_primitives::{address, keccak256, Address, Bytes, Log, LogData, B256, U256};
use evm::bsc::BscChain;
use evm::chain::ChainSpec;
use evm::error::BlockError;
use evm::execute::run_block;
use primitives::block::ChainBlock;
use std::sync::Arc;

const SYSTEM_ADDRESS: Address = address!("fffffffffffffffffffffffffffffffffffffffe");
const VALIDATOR: Address = address!("0000000000000000000000000000000000001000");
const SLASH: Address = address!("0000000000000000000000000000000000001001");
const GOVERNOR: Address = address!("0000000000000000000000000000000000002004");
const PROBE: Address = address!("00000000000000000000000000000000c0dec0de");
const RECIPIENT: Address = address!("00000000000000000000000000000000000b0b00");
const GWEI: u128 = 1_000_000_000;
/// Code a contract has before its upgrade in these tests: one INVALID byte.
const OLD_CODE: &[u8] = &[0xfe];

/// `PUSH20 0x…1000 EXTCODEHASH PUSH1 0 SSTORE STOP`: stores the ValidatorContract's code
/// hash in slot 0. Gas (Berlin on): 3 + 2600 (cold account) + 3 + 22100 (cold slot, 0 → x)
/// = 24706.
fn probe_code() -> Vec<u8> {
    let mut code = vec![0x73];
    code.extend_from_slice(VALIDATOR.as_slice());
    code.extend_from_slice(&[0x3f, 0x60, 0x00, 0x55, 0x00]);
    code
}
const PROBE_GAS: u64 = 24_706;

/// `CALLVALUE PUSH1 0 MSTORE PUSH1 32 PUSH1 0 LOG0 STOP`: logs the value received. Gas: 2 +
/// 3 + (3 + 3 memory) + 3 + 3 + (375 + 8·32) = 648.
const DEPOSIT_LOGGER: &[u8] = &[0x34, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xa0, 0x00];
const DEPOSIT_GAS: u64 = 648;

/// `PUSH1 0 PUSH1 0 SSTORE STOP` on a slot holding 1: 3 + 3 + 5000 (2900 reset + 2100 cold),
/// with a 4800 refund an ordinary transaction would get and a system one does not.
const CLEAR_SLOT: &[u8] = &[0x60, 0x00, 0x60, 0x00, 0x55, 0x00];
const CLEAR_GAS: u64 = 5_006;

fn spec(chain_id: u64) -> Arc<ChainSpec> {
    let chain = BscChain::load(&bsc_dir(), chain_id).expect("BSC data");
    Arc::new(ChainSpec::parlia(chain))
}

fn fixture_json(relative: &str) -> serde_json::Value {
    let path = bsc_dir().join(relative);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json")
}

/// When `key` activates on `network`, from `hardforks.json`.
fn activation(network: &str, key: &str) -> Option<u64> {
    fixture_json("hardforks.json")[network][key].as_u64()
}

/// The header fields the forks active at `time` on `network` require (London assumed).
fn fields_at(network: &str, time: u64) -> Fields {
    let on = |key| activation(network, key).is_some_and(|t| time >= t);
    Fields {
        london: true,
        cancun: on("CancunTime"),
        bohr: on("BohrTime"),
        prague: on("PragueTime"),
    }
}

fn run(
    spec: &Arc<ChainSpec>,
    state: &mut revm::database::State<revm::database::CacheDB<revm::database::EmptyDB>>,
    block: &ChainBlock,
    senders: &[Address],
    parent: &Header,
) -> Result<u64, BlockError> {
    run_block(spec, state, block, senders, parent, None, None).map(|out| out.gas_used)
}

/// keccak256 of the bytecode file `file` (hex text) under `systemcontracts/`.
fn listed_code_hash(file: &str) -> B256 {
    let text =
        std::fs::read_to_string(bsc_dir().join("systemcontracts").join(file)).expect("code file");
    keccak256(alloy_primitives::hex::decode(text.trim()).expect("hex"))
}

/// The `hardforks.json` key of each upgrade fork of `upgrades.json` (`upgrade.go`).
fn fork_key(name: &str) -> &'static str {
    match name {
        "ramanujan" => "RamanujanBlock",
        "niels" => "NielsBlock",
        "mirror" => "MirrorSyncBlock",
        "bruno" => "BrunoBlock",
        "euler" => "EulerBlock",
        "gibbs" => "GibbsBlock",
        "moran" => "MoranBlock",
        "planck" => "PlanckBlock",
        "luban" => "LubanBlock",
        "plato" => "PlatoBlock",
        "kepler" => "KeplerTime",
        "feynman" => "FeynmanTime",
        "feynmanFix" => "FeynmanFixTime",
        "haberFix" => "HaberFixTime",
        "bohr" => "BohrTime",
        "pascal" => "PascalTime",
        "lorentz" => "LorentzTime",
        "maxwell" => "MaxwellTime",
        "fermi" => "FermiTime",
        other => panic!("unknown upgrade fork {other}"),
    }
}

/// An empty block numbered `number` at `time` (parent one block and 1 s earlier) on a state
/// where every contract in `contracts` holds [`OLD_CODE`]; returns each contract's code hash
/// after the block.
fn empty_block_code_hashes(
    spec: &Arc<ChainSpec>,
    network: &str,
    contracts: &[Address],
    number: u64,
    time: u64,
    time_fork: bool,
) -> Vec<B256> {
    let fields = |t| {
        if time_fork {
            fields_at(network, t)
        } else {
            Fields::default()
        }
    };
    let parent = parent_header(number - 1, time - 1, fields(time - 1));
    let header = child_header(&parent, time, Address::ZERO, fields(time));
    let mut accounts: Vec<_> = contracts
        .iter()
        .map(|a| (*a, U256::ZERO, 0, OLD_CODE))
        .collect();
    let history = alloy_eips::eip2935::HISTORY_STORAGE_CODE.clone();
    accounts.push((
        alloy_eips::eip2935::HISTORY_STORAGE_ADDRESS,
        U256::ZERO,
        1,
        history.as_ref(),
    ));
    let mut db = state(&accounts, &[]);
    let empty = block(header, Vec::new(), &[]);
    run(spec, &mut db, &empty, &[], &parent)
        .unwrap_or_else(|e| panic!("{network} block {number}: {e}"));
    contracts
        .iter()
        .map(|a| crate::common::bsc::account(&mut db, *a).2)
        .collect()
}

#[test]
fn every_upgrade_replaces_code_at_its_fork_block_and_not_before() {
    let upgrades = fixture_json("systemcontracts/upgrades.json");
    let mut checked = 0;
    for (network, chain_id) in [("mainnet", 56), ("chapel", 97)] {
        let spec = spec(chain_id);
        for (name, per_network) in upgrades["upgrades"].as_object().expect("upgrades") {
            let Some(entries) = per_network[network].as_array().filter(|e| !e.is_empty()) else {
                continue;
            };
            let key = fork_key(name);
            let at = activation(network, key).expect("scheduled");
            let time_fork = key.ends_with("Time");
            // Time forks: a block past every block fork; block forks: a 2020 timestamp,
            // before any time fork.
            let (number, time) = if time_fork {
                (70_000_000, at)
            } else {
                (at, 1_600_000_000)
            };
            let contracts: Vec<Address> = entries
                .iter()
                .map(|e| {
                    e["address"]
                        .as_str()
                        .expect("address")
                        .parse()
                        .expect("address")
                })
                .collect();
            let after = if time_fork {
                empty_block_code_hashes(&spec, network, &contracts, number, time, true)
            } else {
                empty_block_code_hashes(&spec, network, &contracts, number, time, false)
            };
            let before = if time_fork {
                empty_block_code_hashes(&spec, network, &contracts, number, time - 1, true)
            } else {
                empty_block_code_hashes(&spec, network, &contracts, number - 1, time, false)
            };
            // Where one fork block carries several upgrades, the last listed code wins.
            for (i, entry) in entries.iter().enumerate() {
                let file = entry["code_file"].as_str().expect("code_file");
                let later = upgrades["upgrades"]
                    .as_object()
                    .expect("upgrades")
                    .iter()
                    .skip_while(|(n, _)| n.as_str() != name)
                    .skip(1)
                    .filter(|(n, _)| activation(network, fork_key(n)) == Some(at))
                    .any(|(_, p)| {
                        p[network]
                            .as_array()
                            .is_some_and(|l| l.iter().any(|e| e["address"] == entry["address"]))
                    });
                if !later {
                    assert_eq!(
                        after[i],
                        listed_code_hash(file),
                        "{network} {name}: {file} at the fork block"
                    );
                }
                assert_eq!(
                    before[i],
                    keccak256(OLD_CODE),
                    "{network} {name}: {file} one block earlier"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} contract upgrades checked");
}

/// A mainnet block at `time` (number `number`, parent 1 s earlier) with `txs` from `senders`,
/// its outcome `receipts`, on `pre` state; the block and its parent.
fn mainnet_block(
    number: u64,
    time: u64,
    parent_time: u64,
    coinbase: Address,
    txs: Vec<TxEnvelope>,
    receipts: &[alloy_consensus::ReceiptEnvelope],
) -> (ChainBlock, Header) {
    let parent = parent_header(number - 1, parent_time, fields_at("mainnet", parent_time));
    let header = child_header(&parent, time, coinbase, fields_at("mainnet", time));
    (block(header, txs, receipts), parent)
}

#[test]
fn before_feynman_upgrades_run_before_the_ordinary_transactions() {
    let spec = spec(56);
    let kepler = activation("mainnet", "KeplerTime").expect("Kepler");
    let (sender, validator) = (Key::new(1), Key::new(2));
    let probe = probe_code();
    let one_bnb = U256::from(10u128.pow(18));
    let mut db = state(
        &[
            (sender.address, one_bnb, 0, &[]),
            (validator.address, one_bnb, 0, &[]),
            (PROBE, U256::ZERO, 0, &probe),
            (VALIDATOR, U256::ZERO, 0, OLD_CODE),
        ],
        &[],
    );
    let tx = sender.legacy(56, 0, GWEI, 100_000, PROBE, U256::ZERO, Bytes::new());
    let gas = 21_000 + PROBE_GAS;
    let receipts = [receipt(TxType::Legacy, true, gas, vec![])];
    let (block, parent) = mainnet_block(
        35_000_000,
        kepler,
        kepler - 1,
        validator.address,
        vec![tx],
        &receipts,
    );
    assert_eq!(
        run(&spec, &mut db, &block, &[sender.address], &parent).expect("valid"),
        gas
    );
    let new_code = listed_code_hash("kepler/mainnet/ValidatorContract");
    assert_eq!(
        crate::common::bsc::slot(&mut db, PROBE, 0),
        U256::from_be_bytes(new_code.0),
        "the transaction saw the new code"
    );
    // The fee goes to the system address, not the coinbase.
    let fee = U256::from(gas as u128 * GWEI);
    assert_eq!(crate::common::bsc::account(&mut db, SYSTEM_ADDRESS).0, fee);
    assert_eq!(
        crate::common::bsc::account(&mut db, validator.address).0,
        one_bnb
    );
    assert_eq!(
        crate::common::bsc::account(&mut db, sender.address).0,
        one_bnb - fee
    );
}

#[test]
fn from_feynman_upgrades_run_after_ordinary_and_before_system_transactions() {
    let spec = spec(56);
    let bohr = activation("mainnet", "BohrTime").expect("Bohr");
    let (sender, validator) = (Key::new(1), Key::new(2));
    let probe = probe_code();
    let one_bnb = U256::from(10u128.pow(18));
    let mut db = state(
        &[
            (sender.address, one_bnb, 0, &[]),
            (validator.address, one_bnb, 7, &[]),
            (PROBE, U256::ZERO, 0, &probe),
            (GOVERNOR, U256::ZERO, 0, &probe),
            (VALIDATOR, U256::ZERO, 0, OLD_CODE),
        ],
        &[],
    );
    let ordinary = sender.legacy(56, 0, GWEI, 100_000, PROBE, U256::ZERO, Bytes::new());
    let system = validator.legacy(56, 7, 0, SYSTEM_TX_GAS, GOVERNOR, U256::ZERO, Bytes::new());
    // A system transaction pays no intrinsic gas: its gas is the probe's alone.
    let receipts = [
        receipt(TxType::Legacy, true, 21_000 + PROBE_GAS, vec![]),
        receipt(TxType::Legacy, true, 21_000 + 2 * PROBE_GAS, vec![]),
    ];
    let (block, parent) = mainnet_block(
        42_000_000,
        bohr,
        bohr - 1,
        validator.address,
        vec![ordinary, system],
        &receipts,
    );
    let gas = run(
        &spec,
        &mut db,
        &block,
        &[sender.address, validator.address],
        &parent,
    )
    .expect("valid");
    assert_eq!(gas, 21_000 + 2 * PROBE_GAS);
    let new_code = listed_code_hash("bohr/mainnet/ValidatorContract");
    assert_eq!(
        crate::common::bsc::slot(&mut db, PROBE, 0),
        U256::from_be_bytes(keccak256(OLD_CODE).0),
        "ordinary tx saw the old code"
    );
    assert_eq!(
        crate::common::bsc::slot(&mut db, GOVERNOR, 0),
        U256::from_be_bytes(new_code.0),
        "system tx saw the new code"
    );
    assert_eq!(crate::common::bsc::account(&mut db, VALIDATOR).2, new_code);
    assert_eq!(
        crate::common::bsc::account(&mut db, validator.address).1,
        8,
        "the system transaction bumps the nonce"
    );
}

/// A block after Bohr and before Pascal with no fork transition.
const QUIET_TIME: u64 = 1_730_000_000;
/// A block after Kepler and before Feynman and Cancun.
const PRE_CANCUN_TIME: u64 = 1_710_000_000;

fn deposit_data(coinbase: Address) -> Bytes {
    let mut data = vec![0xf3, 0x40, 0xfa, 0x01];
    data.extend_from_slice(B256::left_padding_from(coinbase.as_slice()).as_slice());
    data.into()
}

fn deposit_log(value: U256) -> Log {
    Log {
        address: VALIDATOR,
        data: LogData::new_unchecked(vec![], Bytes::from(value.to_be_bytes::<32>().to_vec())),
    }
}

/// The pre-state of the deposit tests: sender and coinbase with 1 BNB, the system address
/// holding `collected`, the deposit logger at the ValidatorContract and the slot clearer (slot
/// 0 = 1) at the SlashContract.
fn deposit_state(
    sender: &Key,
    coinbase: &Key,
    collected: U256,
) -> revm::database::State<revm::database::CacheDB<revm::database::EmptyDB>> {
    let one_bnb = U256::from(10u128.pow(18));
    state(
        &[
            (sender.address, one_bnb, 0, &[]),
            (coinbase.address, one_bnb, 0, &[]),
            (SYSTEM_ADDRESS, collected, 0, &[]),
            (VALIDATOR, U256::ZERO, 0, DEPOSIT_LOGGER),
            (SLASH, U256::ZERO, 0, CLEAR_SLOT),
        ],
        &[(SLASH, 0, 1)],
    )
}

#[test]
fn deposit_receives_every_collected_fee_and_system_transactions_pay_no_intrinsic_gas_or_refund() {
    let spec = spec(56);
    let (sender, coinbase) = (Key::new(1), Key::new(2));
    let collected = U256::from(1_000_000_007u64);
    let mut db = deposit_state(&sender, &coinbase, collected);
    let transfer = sender.legacy(56, 0, GWEI, 21_000, RECIPIENT, U256::from(1), Bytes::new());
    let slash = coinbase.legacy(56, 0, 0, SYSTEM_TX_GAS, SLASH, U256::ZERO, Bytes::new());
    let value = collected + U256::from(21_000 * GWEI);
    let deposit = coinbase.legacy(
        56,
        1,
        0,
        SYSTEM_TX_GAS,
        VALIDATOR,
        value,
        deposit_data(coinbase.address),
    );
    let receipts = [
        receipt(TxType::Legacy, true, 21_000, vec![]),
        receipt(TxType::Legacy, true, 21_000 + CLEAR_GAS, vec![]),
        receipt(
            TxType::Legacy,
            true,
            21_000 + CLEAR_GAS + DEPOSIT_GAS,
            vec![deposit_log(value)],
        ),
    ];
    let (block, parent) = mainnet_block(
        43_000_000,
        QUIET_TIME,
        QUIET_TIME - 3,
        coinbase.address,
        vec![transfer, slash, deposit],
        &receipts,
    );
    let senders = [sender.address, coinbase.address, coinbase.address];
    assert_eq!(
        run(&spec, &mut db, &block, &senders, &parent).expect("valid"),
        21_000 + CLEAR_GAS + DEPOSIT_GAS
    );
    assert_eq!(
        crate::common::bsc::account(&mut db, SYSTEM_ADDRESS).0,
        U256::ZERO,
        "system address emptied"
    );
    let (balance, nonce, _) = crate::common::bsc::account(&mut db, coinbase.address);
    assert_eq!(
        (balance, nonce),
        (U256::from(10u128.pow(18)), 2),
        "coinbase passes the reward on"
    );
    assert_eq!(crate::common::bsc::account(&mut db, VALIDATOR).0, value);
    assert_eq!(crate::common::bsc::slot(&mut db, SLASH, 0), U256::ZERO);
    assert_eq!(
        crate::common::bsc::account(&mut db, RECIPIENT).0,
        U256::from(1)
    );
}

#[test]
fn a_deposit_paying_other_than_the_collected_balance_is_rejected() {
    let spec = spec(56);
    let (sender, coinbase) = (Key::new(1), Key::new(2));
    let collected = U256::from(5_000u64);
    let mut db = deposit_state(&sender, &coinbase, collected);
    let transfer = sender.legacy(56, 0, GWEI, 21_000, RECIPIENT, U256::ZERO, Bytes::new());
    // Pays what was collected before the block, forgetting this block's fee.
    let deposit = coinbase.legacy(
        56,
        0,
        0,
        SYSTEM_TX_GAS,
        VALIDATOR,
        collected,
        deposit_data(coinbase.address),
    );
    let receipts = [
        receipt(TxType::Legacy, true, 21_000, vec![]),
        receipt(
            TxType::Legacy,
            true,
            21_000 + DEPOSIT_GAS,
            vec![deposit_log(collected)],
        ),
    ];
    let (block, parent) = mainnet_block(
        43_000_000,
        QUIET_TIME,
        QUIET_TIME - 3,
        coinbase.address,
        vec![transfer, deposit],
        &receipts,
    );
    let error = run(
        &spec,
        &mut db,
        &block,
        &[sender.address, coinbase.address],
        &parent,
    )
    .expect_err("invalid");
    assert!(
        matches!(error, BlockError::Transaction { index: 1, .. }),
        "{error}"
    );
}

#[test]
fn system_transactions_run_last_and_from_cancun_must_come_last() {
    let (sender, coinbase) = (Key::new(1), Key::new(2));
    let collected = U256::from(3u64);
    let value = collected + U256::from(21_000 * GWEI);
    let body = || {
        vec![
            coinbase.legacy(
                56,
                0,
                0,
                SYSTEM_TX_GAS,
                VALIDATOR,
                value,
                deposit_data(coinbase.address),
            ),
            sender.legacy(56, 0, GWEI, 21_000, RECIPIENT, U256::ZERO, Bytes::new()),
        ]
    };
    // Receipts follow execution order: the ordinary transaction, then the system one.
    let receipts = [
        receipt(TxType::Legacy, true, 21_000, vec![]),
        receipt(
            TxType::Legacy,
            true,
            21_000 + DEPOSIT_GAS,
            vec![deposit_log(value)],
        ),
    ];
    let senders = [coinbase.address, sender.address];
    let spec = spec(56);

    // Before Cancun the system transaction listed first still runs after the ordinary one:
    // it pays out the ordinary transaction's fee.
    let mut db = deposit_state(&sender, &coinbase, collected);
    let (block, parent) = mainnet_block(
        36_000_000,
        PRE_CANCUN_TIME,
        PRE_CANCUN_TIME - 3,
        coinbase.address,
        body(),
        &receipts,
    );
    assert_eq!(
        run(&spec, &mut db, &block, &senders, &parent).expect("valid"),
        21_000 + DEPOSIT_GAS
    );
    assert_eq!(crate::common::bsc::account(&mut db, VALIDATOR).0, value);

    // From Cancun the same order is invalid.
    let mut db = deposit_state(&sender, &coinbase, collected);
    let (block, parent) = mainnet_block(
        43_000_000,
        QUIET_TIME,
        QUIET_TIME - 3,
        coinbase.address,
        body(),
        &receipts,
    );
    let error = run(&spec, &mut db, &block, &senders, &parent).expect_err("invalid");
    assert!(
        matches!(&error, BlockError::Transaction { index: 1, reason, .. } if reason.contains("after a system")),
        "{error}"
    );
}

#[test]
fn real_consecutive_headers_pass_the_header_rules_and_a_nonzero_base_fee_fails() {
    let spec = spec(56);
    let json = fixture_json("headers-real.json");
    let headers: Vec<Header> = json["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| serde_json::from_value(h["header"].clone()).expect("header"))
        .collect();
    let mut pairs = 0;
    for pair in headers.windows(2) {
        let (parent, child) = (&pair[0], &pair[1]);
        if child.number != parent.number + 1 {
            continue;
        }
        assert_eq!(
            child.parent_hash,
            parent.hash_slow(),
            "fixture pair {}",
            child.number
        );
        evm::execute::check_header(&spec, child, parent)
            .unwrap_or_else(|v| panic!("real header {}: {v}", child.number));
        let mut tampered = child.clone();
        tampered.base_fee_per_gas = Some(1);
        assert!(evm::execute::check_header(&spec, &tampered, parent).is_err());
        pairs += 1;
    }
    assert!(pairs >= 8, "{pairs} consecutive pairs");
}

#[test]
fn before_hertz_a_deposit_runs_with_muir_glacier_rules() {
    let spec = spec(56);
    let (sender, coinbase) = (Key::new(1), Key::new(2));
    let collected = U256::from(11u64);
    let mut db = deposit_state(&sender, &coinbase, collected);
    let transfer = sender.legacy(56, 0, GWEI, 21_000, RECIPIENT, U256::ZERO, Bytes::new());
    let value = collected + U256::from(21_000 * GWEI);
    let deposit = coinbase.legacy(
        56,
        0,
        0,
        SYSTEM_TX_GAS,
        VALIDATOR,
        value,
        deposit_data(coinbase.address),
    );
    let receipts = [
        receipt(TxType::Legacy, true, 21_000, vec![]),
        receipt(
            TxType::Legacy,
            true,
            21_000 + DEPOSIT_GAS,
            vec![deposit_log(value)],
        ),
    ];
    let parent = parent_header(9_999_999, 1_599_999_997, Fields::default());
    let header = child_header(&parent, 1_600_000_000, coinbase.address, Fields::default());
    let block = block(header, vec![transfer, deposit], &receipts);
    let gas = run(
        &spec,
        &mut db,
        &block,
        &[sender.address, coinbase.address],
        &parent,
    )
    .expect("valid");
    assert_eq!(gas, 21_000 + DEPOSIT_GAS);
}
