//! The HertzFix storage quirk: three blocks whose transactions read storage the way a
//! since-removed bug made bnb-chain/bsc read it, and which the chain must replay that way.
//!
//! What the client does. Before the Hertzfix fork, bnb-chain/bsc's block prefetcher shared a
//! "shared storage pool" with the block processor, and a committed-storage read consulted that
//! pool before asking whether the account had been destructed earlier in the block. A contract
//! destroyed (and re-created) inside a block could therefore read the slot values its old
//! incarnation had before the block, where geth's rule gives zero. Mainnet block 33,851,236 and
//! Chapel blocks 35,547,779 and 35,548,081 were sealed with such stale reads. The client keeps
//! them replayable: `params/config.go` `NeedBadSharedStorage` names exactly those blocks (and
//! only while Hertzfix is not active), `core/blockchain.go` then forces the prefetcher on and
//! calls `StateDB.SetNeedBadSharedStorage`, and `core/state/state_object.go`
//! `GetCommittedState` returns a slot's pre-block value from the block's shared reader cache
//! before the "destructed in this block, so empty" rule. The stale value becomes the slot's
//! original value (so also what SSTORE gas is reckoned from); it is never written back, so a
//! slot no transaction writes is still empty after the block.
//! See <https://forum.bnbchain.org/t/about-the-hertzfix/2400>.
//!
//! How it is reproduced. Which slots the cache held is a matter of the prefetcher's timing,
//! so the outcome is recorded, not derived: bnb-chain/reth-bsc (`src/node/evm/patch/mod.rs`,
//! applied around each transaction in `src/node/evm/executor.rs`) writes, for the four
//! transactions affected, the stale values into the account's storage just before the
//! transaction, and zero into them just after it — into all of them except, for mainnet
//! transaction 89, slot 4 and the three `0x8a35…` slots (presumably slots that transaction
//! writes itself). [`PATCHES`] is that record, one entry per transaction. reth-bsc keys it by
//! transaction hash (named in each entry's comment); here it is keyed by block and index in
//! the block, as the client's own trigger is the block number.

use super::forks::BscForks;
use alloy_primitives::{address, b256, Address, B256, U256};

/// The storage writes around one transaction of a HertzFix block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxPatch {
    /// The network's chain id.
    pub chain_id: u64,
    /// The block number.
    pub block: u64,
    /// The transaction's index in the block body.
    pub tx_index: usize,
    /// The account whose storage the transaction read stale.
    pub account: Address,
    /// Slots set (to their stale pre-block value) just before the transaction.
    pub before: &'static [(B256, B256)],
    /// Slots set back to zero just after the transaction.
    pub cleared_after: &'static [B256],
}

impl TxPatch {
    /// The (slot, value) writes made before the transaction.
    pub fn before_writes(&self) -> impl Iterator<Item = (U256, U256)> + '_ {
        self.before
            .iter()
            .map(|(slot, value)| (U256::from_be_bytes(slot.0), U256::from_be_bytes(value.0)))
    }

    /// The (slot, zero) writes made after the transaction.
    pub fn after_writes(&self) -> impl Iterator<Item = (U256, U256)> + '_ {
        self.cleared_after
            .iter()
            .map(|slot| (U256::from_be_bytes(slot.0), U256::ZERO))
    }
}

/// The patch for transaction `tx_index` of block `number`, if the block is one of the client's
/// `NeedBadSharedStorage` blocks (never once Hertzfix is active) and the transaction read
/// stale storage in it.
pub fn patch_for(forks: &BscForks, number: u64, tx_index: usize) -> Option<&'static TxPatch> {
    if forks.block_active("HertzfixBlock", number) {
        return None;
    }
    PATCHES.iter().find(|patch| {
        patch.chain_id == forks.chain_id && patch.block == number && patch.tx_index == tx_index
    })
}

/// Every HertzFix transaction: mainnet block 33,851,236 (transactions 89 and 90, account
/// `0x00000000001f8b68515EfB546542397d3293CCfd`) and Chapel blocks 35,547,779 (transaction 196)
/// and 35,548,081 (transaction 486), account `0x89791428868131eb109e42340ad01eb8987526b2`.
/// Slots and values as bnb-chain/reth-bsc records them (`src/node/evm/patch/mod.rs`).
pub const PATCHES: &[TxPatch] = &[
    // Transaction 7eba4edc7c1806d6ee1691d43513838931de5c94f9da56ec865721b402f775b0.
    TxPatch {
        chain_id: 56,
        block: 33_851_236,
        tx_index: 89,
        account: address!("00000000001f8b68515EfB546542397d3293CCfd"),
        before: &[
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
                b256!("0000000000000000000000000000000000000000000000000000000000000000"),
            ),
            (
                b256!("8a35acfbc15ff81a39ae7d344fd709f28e8600b4aa8c65c6b64bfe7fe36bd1b5"),
                b256!("0000000000000000000000000000000000000000000000000000000000000000"),
            ),
            (
                b256!("8a35acfbc15ff81a39ae7d344fd709f28e8600b4aa8c65c6b64bfe7fe36bd1b6"),
                b256!("0000000000000000000000000000000000000000000000000000000000000000"),
            ),
            (
                b256!("0000000000000000000000000000000000000000000000000000000000000005"),
                b256!("00000000000000000000000000000000000000000000000000000000000fc248"),
            ),
            (
                b256!("0000000000000000000000000000000000000000000000000000000000000006"),
                b256!("00000000000000000000000000000000000000000000000000000000000fc132"),
            ),
        ],
        cleared_after: &[
            b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            b256!("0000000000000000000000000000000000000000000000000000000000000002"),
            b256!("65c95177950b486c2071bf2304da1427b9136564150fb97266ffb318b03a71cc"),
            b256!("245e58a02bec784ccbdb9e022a84af83227a4125a22a5e68fcc596c7e436434e"),
            b256!("1c4534c86090a60a9120f34c7b15254913c00bda3d4b276d6edb65c9f48a913f"),
            b256!("0000000000000000000000000000000000000000000000000000000000000005"),
            b256!("0000000000000000000000000000000000000000000000000000000000000006"),
        ],
    },
    // Transaction 5217324f0711af744fe8e12d73f13fdb11805c8e29c0c095ac747b7e4563e935.
    TxPatch {
        chain_id: 56,
        block: 33_851_236,
        tx_index: 90,
        account: address!("00000000001f8b68515EfB546542397d3293CCfd"),
        before: &[
            (
                b256!("bcfc62ca570bdb58cf9828ac51ae8d7e063a1cc0fa1aee57691220a7cd78b1c8"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("30dce49ce1a4014301bf21aad0ee16893e4dcc4a4e4be8aa10e442dd13259837"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("c0582628d787ee16fe03c8e5b5f5644d3b81989686f8312280b7a1f733145525"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("fca5cf22ff2e8d58aece8e4370cce33cd0144d48d00f40a5841df4a42527694b"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("b189302b37865d2ae522a492ff1f61a5addc1db44acbdcc4b6814c312c815f46"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("fe1f1986775fc2ac905aeaecc7b1aa8b0d6722b852c90e26edacd2dac7382489"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("36052a8ddb27fecd20e2e09da15494a0f2186bf8db36deebbbe701993f8c4aae"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("4959a566d8396b889ff4bc20e18d2497602e01e5c6013af5af7a7c4657ece3e2"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("e0b5aeb100569add952966f803cb67aca86dc6ec8b638f5a49f9e0760efa9a7a"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("632467ad388b91583f956f76488afc42846e283c962cbb215d288033ffc4fb71"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("9ad4e69f52519f7b7b8ee5ae3326d57061b429428ea0c056dd32e7a7102e79a7"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("35e130c7071699eae5288b12374ef157a15e4294e2b3a352160b7c1cd4641d82"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("a0d8279f845f63979dc292228adfa0bda117de27e44d90ac2adcd44465b225e7"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("9a100b70ffda9ed9769becdadca2b2936b217e3da4c9b9817bad30d85eab25ff"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("28d67156746295d901005e2d95ce589e7093decb638f8c132d9971fd0a37e176"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("297c4e115b5df76bcd5a1654b8032661680a1803e30a0774cb42bb01891e6d97"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("5f71b88f1032d27d8866948fc9c49525f3e584bdd52a66de6060a7b1f767326f"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("e6d8ddf6a0bbeb4840f48f0c4ffda9affa4675354bdb7d721235297f5a094f54"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("30ba10aef6238bf19667aaa988b18b72adb4724c016e19eb64bbb52808d1a842"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("9c6806a4d6a99e4869b9a4aaf80b0a3bf5f5240a1d6032ed82edf0e86f2a2467"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("e8480d613bbf3b979aee2de4487496167735bb73df024d988e1795b3c7fa559a"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
            (
                b256!("ebfaec01f898f7f0e2abdb4b0aee3dfbf5ec2b287b1e92f9b62940f85d5f5bac"),
                b256!("0000000000000000000000000000000000000000000000000000000000000001"),
            ),
        ],
        cleared_after: &[
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
        ],
    },
    // Transaction 7ce9a3cf77108fcc85c1e84e88e363e3335eca515dfcf2feb2011729878b13a7.
    TxPatch {
        chain_id: 97,
        block: 35_547_779,
        tx_index: 196,
        account: address!("89791428868131eb109e42340ad01eb8987526b2"),
        before: &[(
            b256!("f1e9242398de526b8dd9c25d38e65fbb01926b8940377762d7884b8b0dcdc3b0"),
            b256!("0000000000000000000000000000000000000000000000f6a7831804efd2cd0a"),
        )],
        cleared_after: &[b256!(
            "f1e9242398de526b8dd9c25d38e65fbb01926b8940377762d7884b8b0dcdc3b0"
        )],
    },
    // Transaction e3895eb95605d6b43ceec7876e6ff5d1c903e572bf83a08675cb684c047a695c.
    TxPatch {
        chain_id: 97,
        block: 35_548_081,
        tx_index: 486,
        account: address!("89791428868131eb109e42340ad01eb8987526b2"),
        before: &[(
            b256!("f1e9242398de526b8dd9c25d38e65fbb01926b8940377762d7884b8b0dcdc3b0"),
            b256!("0000000000000000000000000000000000000000000000114be8ecea72b64003"),
        )],
        cleared_after: &[b256!(
            "f1e9242398de526b8dd9c25d38e65fbb01926b8940377762d7884b8b0dcdc3b0"
        )],
    },
];
