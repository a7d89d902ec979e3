//! A generated BSC chain through the daemon: `init` of a Parlia genesis, `import` of eight
//! blocks crossing Hertz (Berlin + London), Kepler/Shanghai, Feynman, Haber/Cancun, Bohr and
//! Pascal/Prague, each with an ordinary transfer and the coinbase's `deposit` system
//! transaction, and `run --exit-at-head` with the chain data (fork schedule, one upgrade
//! before Feynman and one after) in a directory of the test's own. Every header field is
//! worked out by hand: 21,000 gas per transfer, 648 per deposit (see `bsc_execution.rs`).

use crate::common::bsc::{block, child_header, receipt, Fields, Key, SYSTEM_TX_GAS};
use crate::common::{expect_success, import, init, mentions_number, unverified, var, Backend};
use alloy_consensus::{Header, TxType};
use alloy_primitives::{address, Address, Bytes, Log, LogData, B256, U256};

const CHAIN_ID: u64 = 714;
const VALIDATOR: Address = address!("0000000000000000000000000000000000001000");
const RECIPIENT: Address = address!("00000000000000000000000000000000000b0b00");
const GENESIS_TIME: u64 = 1_700_000_000;
const GAS_LIMIT: u64 = 30_000_000;
const GWEI: u128 = 1_000_000_000;
/// See `bsc_execution.rs`: logs the value received, 648 gas.
const DEPOSIT_LOGGER: &str = "0x3460005260206000a000";
const DEPOSIT_GAS: u64 = 648;
const BLOCKS: u64 = 8;

/// Block `n`'s timestamp: 3 s per block.
fn time_of(n: u64) -> u64 {
    GENESIS_TIME + 3 * n
}

/// The chain data directory: a fork schedule with Hertz at block 2 and the time forks from
/// block 4 on, an upgrade of the SystemRewardContract at Bruno (block 3, before Feynman) and
/// of the GovernorContract at Bohr (block 7, after Feynman).
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let forks = serde_json::json!({
        "testnet": {
            "ChainID": CHAIN_ID,
            "HomesteadBlock": 0, "EIP150Block": 0, "EIP155Block": 0, "EIP158Block": 0,
            "ByzantiumBlock": 0, "ConstantinopleBlock": 0, "PetersburgBlock": 0,
            "IstanbulBlock": 0, "MuirGlacierBlock": 0, "BrunoBlock": 3,
            "BerlinBlock": 2, "LondonBlock": 2, "HertzBlock": 2, "HertzfixBlock": 2,
            "ShanghaiTime": time_of(4), "KeplerTime": time_of(4), "FeynmanTime": time_of(5),
            "FeynmanFixTime": time_of(5), "CancunTime": time_of(6), "HaberTime": time_of(6),
            "BohrTime": time_of(7), "PascalTime": time_of(8), "PragueTime": time_of(8),
            "LorentzTime": null, "OsakaTime": null, "MendelTime": null
        }
    });
    std::fs::write(dir.path().join("hardforks.json"), forks.to_string()).expect("write");
    let contracts = dir.path().join("systemcontracts");
    std::fs::create_dir_all(contracts.join("test")).expect("mkdir");
    std::fs::write(contracts.join("test/SystemReward"), "6001600055").expect("write");
    std::fs::write(contracts.join("test/Governor"), "6002600055").expect("write");
    let upgrades = serde_json::json!({
        "upgrades": {
            "bruno": {"testnet": [{"address": "0x0000000000000000000000000000000000001002",
                "contract": "SystemRewardContract", "code_file": "test/SystemReward"}]},
            "bohr": {"testnet": [{"address": "0x0000000000000000000000000000000000002004",
                "contract": "GovernorContract", "code_file": "test/Governor"}]}
        }
    });
    std::fs::write(contracts.join("upgrades.json"), upgrades.to_string()).expect("write");
    dir
}

fn genesis(dir: &tempfile::TempDir, sender: Address, coinbase: Address) -> std::path::PathBuf {
    let rich = "0x56bc75e2d63100000"; // 100 BNB
    let genesis = serde_json::json!({
        "config": {
            "chainId": CHAIN_ID, "homesteadBlock": 0, "eip150Block": 0, "eip155Block": 0,
            "eip158Block": 0, "byzantiumBlock": 0, "constantinopleBlock": 0,
            "petersburgBlock": 0, "istanbulBlock": 0, "muirGlacierBlock": 0,
            "berlinBlock": 2, "londonBlock": 2, "parlia": {"period": 3, "epoch": 200}
        },
        "nonce": "0x0",
        "timestamp": format!("{GENESIS_TIME:#x}"),
        "extraData": "0x",
        "gasLimit": format!("{GAS_LIMIT:#x}"),
        "difficulty": "0x1",
        "mixHash": format!("{:#x}", B256::ZERO),
        "coinbase": format!("{:#x}", Address::ZERO),
        "alloc": {
            format!("{sender:#x}"): {"balance": rich},
            format!("{coinbase:#x}"): {"balance": rich},
            format!("{VALIDATOR:#x}"): {"balance": "0x0", "code": DEPOSIT_LOGGER}
        }
    });
    let path = dir.path().join("genesis.json");
    std::fs::write(&path, genesis.to_string()).expect("write genesis");
    path
}

fn deposit_data(coinbase: Address) -> Bytes {
    let mut data = vec![0xf3, 0x40, 0xfa, 0x01];
    data.extend_from_slice(B256::left_padding_from(coinbase.as_slice()).as_slice());
    data.into()
}

/// Eight blocks on top of the genesis `genesis_hash`, RLP-framed one after another.
fn chain_file(genesis_hash: B256, sender: &Key, coinbase: &Key) -> Vec<u8> {
    let mut parent = Header {
        number: 0,
        timestamp: GENESIS_TIME,
        gas_limit: GAS_LIMIT,
        ..Header::default()
    };
    let mut parent_hash = genesis_hash;
    let mut file = Vec::new();
    for n in 1..=BLOCKS {
        let time = time_of(n);
        let fields = Fields {
            london: n >= 2,
            cancun: n >= 6,
            bohr: n >= 7,
            prague: n >= 8,
        };
        let mut header = child_header(&parent, time, coinbase.address, fields);
        header.parent_hash = parent_hash;
        // Each block's deposit pays out exactly its transfer's fee.
        let fee = U256::from(21_000 * GWEI);
        let txs = vec![
            sender.legacy(
                CHAIN_ID,
                n - 1,
                GWEI,
                21_000,
                RECIPIENT,
                U256::from(n),
                Bytes::new(),
            ),
            coinbase.legacy(
                CHAIN_ID,
                n - 1,
                0,
                SYSTEM_TX_GAS,
                VALIDATOR,
                fee,
                deposit_data(coinbase.address),
            ),
        ];
        let log = Log {
            address: VALIDATOR,
            data: LogData::new_unchecked(vec![], Bytes::from(fee.to_be_bytes::<32>().to_vec())),
        };
        let receipts = [
            receipt(TxType::Legacy, true, 21_000, vec![]),
            receipt(TxType::Legacy, true, 21_000 + DEPOSIT_GAS, vec![log]),
        ];
        let built = block(header, txs, &receipts);
        let encoded = alloy_rlp::encode(alloy_consensus::Block {
            header: built.header.clone(),
            body: built.body.clone(),
        });
        file.extend_from_slice(&encoded);
        parent_hash = built.hash;
        parent = built.header;
    }
    file
}

#[test]
fn generated_bsc_chain_across_six_forks_runs_through_the_daemon() {
    let backend = Backend::embedded();
    let data = data_dir();
    let (sender, coinbase) = (Key::new(3), Key::new(4));
    let genesis_path = genesis(&data, sender.address, coinbase.address);
    // The blocks are built by hand without a real stateRoot: the store keeps no tries.
    let stdout = init(&backend, &[unverified()], &genesis_path);
    let hash = stdout
        .lines()
        .find_map(|l| l.strip_prefix("genesis block hash: "))
        .expect("init prints the genesis hash");
    let genesis_hash: B256 = hash.trim().parse().expect("hash");
    let chain = chain_file(genesis_hash, &sender, &coinbase);
    let chain_path = data.path().join("chain.rlp");
    std::fs::write(&chain_path, chain).expect("write chain");
    expect_success(&import(&backend, &chain_path));
    let dir = data.path().to_str().expect("utf-8").to_string();
    let output = backend.cli(
        &[var("EVM_EXECUTOR_CHAIN_DATA_DIR", dir)],
        &["run", "--exit-at-head"],
    );
    let out = expect_success(&output);
    assert!(out.contains("executed 8 blocks"), "{out}");
    assert!(mentions_number(&out, BLOCKS), "{out}");
}
