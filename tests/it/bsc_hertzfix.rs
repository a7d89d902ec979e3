//! The HertzFix blocks (bnb-chain/bsc `params/config.go` `NeedBadSharedStorage`): mainnet
//! block 33,851,236 and Chapel blocks 35,547,779 and 35,548,081 replay stale storage reads.
//! Each block here is built at the real number on the real fork schedule, with a reader
//! contract at the affected account: the transaction just before the affected one, the affected
//! one and the one after each log the slots they read. The values the affected transaction must
//! see are the stale pre-block values bnb-chain/reth-bsc records for it
//! (`src/node/evm/patch/mod.rs`), written out here by hand; the transactions around it, and the
//! same blocks one number earlier or later, or the block under a schedule with Hertzfix active,
//! see the plain state. Gas is worked out by opcode.

use crate::common::bsc::{
    block, bsc_dir, child_header, parent_header, receipt, state, Fields, Key,
};
use alloy_consensus::{Header, ReceiptEnvelope, TxEnvelope, TxType};
use alloy_primitives::{address, b256, Address, Bytes, Log, LogData, B256, U256};
use evm::bsc::BscChain;
use evm::chain::ChainSpec;
use evm::execute::run_block;
use revm::database::{CacheDB, EmptyDB, State};
use std::path::Path;
use std::sync::Arc;

const GWEI: u128 = 1_000_000_000;
const RECIPIENT: Address = address!("00000000000000000000000000000000000b0b00");
const MAINNET_ACCOUNT: Address = address!("00000000001f8b68515EfB546542397d3293CCfd");
const CHAPEL_ACCOUNT: Address = address!("89791428868131eb109e42340ad01eb8987526b2");
/// Before Kepler (Shanghai) on both networks, after Hertz (London): the rules of 2023.
const TIME: u64 = 1_700_000_000;

/// The slots mainnet transaction 89 reads stale, with the values it sees (reth-bsc's "patch 1"
/// before the transaction).
const MAINNET_TX89: [(B256, B256); 11] = [
    (
        b256!("0000000000000000000000000000000000000000000000000000000000000001"),
        b256!("00000000000000000000000052db206170b430da8223651d28830e56ba3cdc04"),
    ),
    (
        b256!("0000000000000000000000000000000000000000000000000000000000000002"),
        b256!("000000000000000000000000bb45f138499734bf5c0948d490c65903676ea1de"),
    ),
    (
        b256!("65c95177950b486c2071bf2304da1427b9136564150fb97266ffb318b03a71cc"),
        b256!("0000000000000000000000000000000000000000000000000000000000000001"),
    ),
    (
        b256!("245e58a02bec784ccbdb9e022a84af83227a4125a22a5e68fcc596c7e436434e"),
        b256!("0000000000000000000000000000000000000000000000000000000000000001"),
    ),
    (
        b256!("1c4534c86090a60a9120f34c7b15254913c00bda3d4b276d6edb65c9f48a913f"),
        b256!("0000000000000000000000000000000000000000000000000000000000000001"),
    ),
    (
        b256!("0000000000000000000000000000000000000000000000000000000000000004"),
        b256!("0000000000000000000000000000000000000000000000000000000000000019"),
    ),
    (
        b256!("8a35acfbc15ff81a39ae7d344fd709f28e8600b4aa8c65c6b64bfe7fe36bd1b4"),
        B256::ZERO,
    ),
    (
        b256!("8a35acfbc15ff81a39ae7d344fd709f28e8600b4aa8c65c6b64bfe7fe36bd1b5"),
        B256::ZERO,
    ),
    (
        b256!("8a35acfbc15ff81a39ae7d344fd709f28e8600b4aa8c65c6b64bfe7fe36bd1b6"),
        B256::ZERO,
    ),
    (
        b256!("0000000000000000000000000000000000000000000000000000000000000005"),
        b256!("00000000000000000000000000000000000000000000000000000000000fc248"),
    ),
    (
        b256!("0000000000000000000000000000000000000000000000000000000000000006"),
        b256!("00000000000000000000000000000000000000000000000000000000000fc132"),
    ),
];

/// Slot 4 of transaction 89's list is absent from reth-bsc's "after" list (presumably the real
/// transaction writes it), so it is not reset: here, where the reader writes nothing, it keeps
/// 0x19.
const MAINNET_SLOT_KEPT: usize = 5;

/// The slots mainnet transaction 90 reads stale; it sees 1 in each (reth-bsc's "patch 2").
const MAINNET_TX90: [B256; 22] = [
    b256!("bcfc62ca570bdb58cf9828ac51ae8d7e063a1cc0fa1aee57691220a7cd78b1c8"),
    b256!("30dce49ce1a4014301bf21aad0ee16893e4dcc4a4e4be8aa10e442dd13259837"),
    b256!("c0582628d787ee16fe03c8e5b5f5644d3b81989686f8312280b7a1f733145525"),
    b256!("fca5cf22ff2e8d58aece8e4370cce33cd0144d48d00f40a5841df4a42527694b"),
    b256!("b189302b37865d2ae522a492ff1f61a5addc1db44acbdcc4b6814c312c815f46"),
    b256!("fe1f1986775fc2ac905aeaecc7b1aa8b0d6722b852c90e26edacd2dac7382489"),
    b256!("36052a8ddb27fecd20e2e09da15494a0f2186bf8db36deebbbe701993f8c4aae"),
    b256!("4959a566d8396b889ff4bc20e18d2497602e01e5c6013af5af7a7c4657ece3e2"),
    b256!("e0b5aeb100569add952966f803cb67aca86dc6ec8b638f5a49f9e0760efa9a7a"),
    b256!("632467ad388b91583f956f76488afc42846e283c962cbb215d288033ffc4fb71"),
    b256!("9ad4e69f52519f7b7b8ee5ae3326d57061b429428ea0c056dd32e7a7102e79a7"),
    b256!("35e130c7071699eae5288b12374ef157a15e4294e2b3a352160b7c1cd4641d82"),
    b256!("a0d8279f845f63979dc292228adfa0bda117de27e44d90ac2adcd44465b225e7"),
    b256!("9a100b70ffda9ed9769becdadca2b2936b217e3da4c9b9817bad30d85eab25ff"),
    b256!("28d67156746295d901005e2d95ce589e7093decb638f8c132d9971fd0a37e176"),
    b256!("297c4e115b5df76bcd5a1654b8032661680a1803e30a0774cb42bb01891e6d97"),
    b256!("5f71b88f1032d27d8866948fc9c49525f3e584bdd52a66de6060a7b1f767326f"),
    b256!("e6d8ddf6a0bbeb4840f48f0c4ffda9affa4675354bdb7d721235297f5a094f54"),
    b256!("30ba10aef6238bf19667aaa988b18b72adb4724c016e19eb64bbb52808d1a842"),
    b256!("9c6806a4d6a99e4869b9a4aaf80b0a3bf5f5240a1d6032ed82edf0e86f2a2467"),
    b256!("e8480d613bbf3b979aee2de4487496167735bb73df024d988e1795b3c7fa559a"),
    b256!("ebfaec01f898f7f0e2abdb4b0aee3dfbf5ec2b287b1e92f9b62940f85d5f5bac"),
];

/// The one slot the Chapel transactions read stale, and the values they see (block
/// 35,547,779 transaction 196, block 35,548,081 transaction 486).
const CHAPEL_SLOT: B256 = b256!("f1e9242398de526b8dd9c25d38e65fbb01926b8940377762d7884b8b0dcdc3b0");
const CHAPEL_35547779: B256 =
    b256!("0000000000000000000000000000000000000000000000f6a7831804efd2cd0a");
const CHAPEL_35548081: B256 =
    b256!("0000000000000000000000000000000000000000000000114be8ecea72b64003");

/// Reader code for `n` slots: for each word i of the call data, `PUSH2 32i CALLDATALOAD SLOAD
/// PUSH2 32i MSTORE`; then `PUSH2 32n PUSH1 0 LOG0 STOP`, logging the values read.
fn reader_code(n: usize) -> Vec<u8> {
    let mut code = Vec::new();
    for i in 0..n {
        let offset = ((32 * i) as u16).to_be_bytes();
        code.extend_from_slice(&[0x61, offset[0], offset[1], 0x35, 0x54]);
        code.extend_from_slice(&[0x61, offset[0], offset[1], 0x52]);
    }
    let size = ((32 * n) as u16).to_be_bytes();
    code.extend_from_slice(&[0x61, size[0], size[1], 0x60, 0x00, 0xa0, 0x00]);
    code
}

/// Gas of a call to the reader with `data`: 21000 + 16 per non-zero and 4 per zero data byte,
/// per slot 3 + 3 + 2100 (cold SLOAD) + 3 + 3 (MSTORE), memory 3n + n²/512, then 3 + 3 + LOG0
/// (375 + 8 per byte).
fn reader_gas(data: &[u8]) -> u64 {
    let n = (data.len() / 32) as u64;
    let data_gas: u64 = data.iter().map(|b| if *b == 0 { 4 } else { 16 }).sum();
    21_000 + data_gas + n * 2_112 + 3 * n + n * n / 512 + 6 + 375 + 8 * 32 * n
}

/// One block: transactions before `first_reader` are plain transfers, then one call per entry
/// of `reads` to the reader at `account` with `slots`; `reads[k]` is what call k logs.
struct Case {
    chain_id: u64,
    number: u64,
    first_reader: usize,
    account: Address,
    slots: Vec<B256>,
    reads: Vec<Vec<B256>>,
}

impl Case {
    /// Build and run the block on a fresh pre-state (the reader's storage all empty), check
    /// every receipt through the header, and return the state after it.
    fn run(&self) -> State<CacheDB<EmptyDB>> {
        self.run_on(&bsc_dir())
    }

    /// [`Case::run`] with the chain data of `data_dir`.
    fn run_on(&self, data_dir: &Path) -> State<CacheDB<EmptyDB>> {
        let chain = BscChain::load(data_dir, self.chain_id).expect("BSC data");
        let spec = Arc::new(ChainSpec::parlia(chain));
        let (sender, validator) = (Key::new(1), Key::new(2));
        let funds = U256::from(10u128.pow(21));
        let code = reader_code(self.slots.len());
        let mut db = state(
            &[
                (sender.address, funds, 0, &[]),
                (self.account, U256::ZERO, 1, &code),
            ],
            &[],
        );
        let data: Bytes = self
            .slots
            .iter()
            .flat_map(|s| s.0)
            .collect::<Vec<u8>>()
            .into();
        let mut txs: Vec<TxEnvelope> = Vec::new();
        let mut receipts: Vec<ReceiptEnvelope> = Vec::new();
        let mut cumulative = 0;
        for nonce in 0..self.first_reader as u64 {
            let tx = sender.legacy(
                self.chain_id,
                nonce,
                GWEI,
                21_000,
                RECIPIENT,
                U256::from(1),
                Bytes::new(),
            );
            txs.push(tx);
            cumulative += 21_000;
            receipts.push(receipt(TxType::Legacy, true, cumulative, vec![]));
        }
        let gas = reader_gas(&data);
        for read in &self.reads {
            let nonce = txs.len() as u64;
            let tx = sender.legacy(
                self.chain_id,
                nonce,
                GWEI,
                gas,
                self.account,
                U256::ZERO,
                data.clone(),
            );
            txs.push(tx);
            cumulative += gas;
            let logged: Vec<u8> = read.iter().flat_map(|v| v.0).collect();
            let log = Log {
                address: self.account,
                data: LogData::new_unchecked(vec![], logged.into()),
            };
            receipts.push(receipt(TxType::Legacy, true, cumulative, vec![log]));
        }
        let fields = Fields {
            london: true,
            ..Fields::default()
        };
        let parent = parent_header(self.number - 1, TIME - 3, fields);
        let header: Header = child_header(&parent, TIME, validator.address, fields);
        let senders = vec![sender.address; txs.len()];
        let block = block(header, txs, &receipts);
        let out = run_block(&spec, &mut db, &block, &senders, &parent, None, None)
            .unwrap_or_else(|e| panic!("block {} rejected: {e}", self.number));
        assert_eq!(out.gas_used, cumulative);
        db
    }
}

fn zeros(n: usize) -> Vec<B256> {
    vec![B256::ZERO; n]
}

fn slot(db: &mut State<CacheDB<EmptyDB>>, account: Address, key: B256) -> U256 {
    use revm::Database;
    db.storage(account, U256::from_be_bytes(key.0))
        .expect("in-memory")
}

/// A mainnet block whose transactions 88 to 91 each read the slots of both affected
/// transactions (89 and 90 in block 33,851,236).
fn mainnet_case(number: u64, reads: Vec<Vec<B256>>) -> Case {
    let mut slots: Vec<B256> = MAINNET_TX89.iter().map(|(s, _)| *s).collect();
    slots.extend_from_slice(&MAINNET_TX90);
    Case {
        chain_id: 56,
        number,
        first_reader: 88,
        account: MAINNET_ACCOUNT,
        slots,
        reads,
    }
}

#[test]
fn mainnet_33851236_transactions_89_and_90_read_the_recorded_stale_slots() {
    let n = MAINNET_TX89.len() + MAINNET_TX90.len();
    // Transaction 88 sees the plain (empty) storage.
    let before = zeros(n);
    // Transaction 89 sees its stale values; transaction 90's slots are still plain.
    let mut at_89: Vec<B256> = MAINNET_TX89.iter().map(|(_, v)| *v).collect();
    at_89.extend(zeros(MAINNET_TX90.len()));
    // Transaction 90: 89's slots are reset except slot 4, which keeps 0x19; its own read 1.
    let mut kept = zeros(MAINNET_TX89.len());
    kept[MAINNET_SLOT_KEPT] = MAINNET_TX89[MAINNET_SLOT_KEPT].1;
    let mut at_90 = kept.clone();
    at_90.extend(vec![B256::with_last_byte(1); MAINNET_TX90.len()]);
    // Transaction 91 is not affected: only slot 4 is left.
    let mut after = kept;
    after.extend(zeros(MAINNET_TX90.len()));

    let mut db = mainnet_case(33_851_236, vec![before, at_89, at_90, after]).run();
    // After the block, only slot 4 holds a value.
    assert_eq!(
        slot(&mut db, MAINNET_ACCOUNT, MAINNET_TX89[MAINNET_SLOT_KEPT].0),
        U256::from(0x19)
    );
    let others = MAINNET_TX89
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != MAINNET_SLOT_KEPT)
        .map(|(_, (key, _))| *key);
    for key in others.chain(MAINNET_TX90) {
        assert_eq!(slot(&mut db, MAINNET_ACCOUNT, key), U256::ZERO, "{key}");
    }
}

#[test]
fn mainnet_blocks_next_to_33851236_read_plain_storage() {
    let n = MAINNET_TX89.len() + MAINNET_TX90.len();
    for number in [33_851_235, 33_851_237] {
        let mut db = mainnet_case(number, vec![zeros(n); 4]).run();
        assert_eq!(
            slot(&mut db, MAINNET_ACCOUNT, MAINNET_TX89[MAINNET_SLOT_KEPT].0),
            U256::ZERO
        );
    }
}

fn chapel_case(number: u64, patched: usize, seen: B256) -> Case {
    Case {
        chain_id: 97,
        number,
        first_reader: patched - 1,
        account: CHAPEL_ACCOUNT,
        slots: vec![CHAPEL_SLOT],
        reads: vec![vec![B256::ZERO], vec![seen], vec![B256::ZERO]],
    }
}

#[test]
fn chapel_35547779_transaction_196_reads_the_recorded_stale_slot() {
    let mut db = chapel_case(35_547_779, 196, CHAPEL_35547779).run();
    assert_eq!(slot(&mut db, CHAPEL_ACCOUNT, CHAPEL_SLOT), U256::ZERO);
}

#[test]
fn chapel_35548081_transaction_486_reads_the_recorded_stale_slot() {
    let mut db = chapel_case(35_548_081, 486, CHAPEL_35548081).run();
    assert_eq!(slot(&mut db, CHAPEL_ACCOUNT, CHAPEL_SLOT), U256::ZERO);
}

#[test]
fn chapel_blocks_next_to_the_hertzfix_blocks_read_plain_storage() {
    for (number, patched) in [(35_547_778, 196), (35_547_780, 196), (35_548_080, 486)] {
        chapel_case(number, patched, B256::ZERO).run();
    }
}

/// With Hertzfix moved onto block 35,547,779 (a copy of the real schedule otherwise), the
/// block is no longer a `NeedBadSharedStorage` block: transaction 196 reads plain storage.
#[test]
fn once_hertzfix_is_active_the_block_reads_plain_storage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = bsc_dir().join("hardforks.json");
    let text = std::fs::read_to_string(&path).expect("hardforks.json");
    let mut forks: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    forks["chapel"]["HertzfixBlock"] = serde_json::json!(35_547_779);
    std::fs::write(dir.path().join("hardforks.json"), forks.to_string()).expect("write");
    std::os::unix::fs::symlink(
        bsc_dir().join("systemcontracts"),
        dir.path().join("systemcontracts"),
    )
    .expect("link systemcontracts");
    chapel_case(35_547_779, 196, B256::ZERO).run_on(dir.path());
    // The real schedule on the same block does apply the patch.
    chapel_case(35_547_779, 196, CHAPEL_35547779).run();
}
