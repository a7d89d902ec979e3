//! Ethash difficulty: the difficulty a proof-of-work header must carry, given its parent and its
//! timestamp, under the fork of its number (EIP-2 Homestead, EIP-100 Byzantium, and the
//! difficulty bomb with the delays of EIP-649, EIP-1234, EIP-2384, EIP-3554, EIP-4345 and
//! EIP-5133). From the merge on, difficulty is zero and this formula no longer applies.
//!
//! The seal (nonce and mixHash against the Ethash dataset) is consensus, which an executor
//! leaves to the syncer; the difficulty is a header rule like the gas limit's and is checked.

use crate::chain::ChainSpec;
use alloy_consensus::constants::EMPTY_OMMER_ROOT_HASH;
use alloy_consensus::Header;
use alloy_hardforks::{EthereumHardfork, EthereumHardforks};
use alloy_primitives::U256;

/// The lowest difficulty a proof-of-work block may have (`MinimumDifficulty`).
const MINIMUM_DIFFICULTY: u64 = 131_072;
/// The parent's difficulty is adjusted by multiples of difficulty / 2048.
const BOUND_DIVISOR: u64 = 2048;
/// Frontier: a block sooner than this many seconds after its parent raises the difficulty.
const FRONTIER_DURATION_LIMIT: u64 = 13;
/// The difficulty bomb doubles every this many blocks.
const BOMB_PERIOD: u64 = 100_000;
/// The adjustment never goes below -99 multiples (Homestead on).
const MAX_DOWNWARD_STEPS: u64 = 99;

/// The bomb delays, newest first: from each fork on, the bomb counts blocks from this many
/// blocks later than the real number.
const BOMB_DELAYS: [(EthereumHardfork, u64); 6] = [
    (EthereumHardfork::GrayGlacier, 11_400_000),
    (EthereumHardfork::ArrowGlacier, 10_700_000),
    (EthereumHardfork::London, 9_700_000),
    (EthereumHardfork::MuirGlacier, 9_000_000),
    (EthereumHardfork::Constantinople, 5_000_000),
    (EthereumHardfork::Byzantium, 3_000_000),
];

/// The difficulty a proof-of-work child of `parent` with timestamp `timestamp` must have under
/// `spec`, or `None` when it would not fit in 256 bits (a bomb far beyond any real chain: no
/// header can carry it). The child's number is the parent's plus one.
pub fn expected_difficulty(spec: &ChainSpec, timestamp: u64, parent: &Header) -> Option<U256> {
    let number = parent.number + 1;
    let step = parent.difficulty / U256::from(BOUND_DIVISOR);
    let elapsed = timestamp.saturating_sub(parent.timestamp);
    // The adjustment in multiples of `step`: (upward, downward) as unsigned numbers.
    let (up, down) = if spec.is_byzantium_active_at_block(number) {
        // EIP-100: a parent with ommers counts as two blocks' worth of work.
        let base = if parent.ommers_hash == EMPTY_OMMER_ROOT_HASH {
            1
        } else {
            2
        };
        signed_steps(base, elapsed / 9)
    } else if spec.is_homestead_active_at_block(number) {
        signed_steps(1, elapsed / 10)
    } else if elapsed < FRONTIER_DURATION_LIMIT {
        (1, 0)
    } else {
        (0, 1)
    };
    let adjusted = parent
        .difficulty
        .checked_add(step.checked_mul(U256::from(up))?)?
        .saturating_sub(step * U256::from(down));
    let difficulty = adjusted.max(U256::from(MINIMUM_DIFFICULTY));
    let delay = BOMB_DELAYS
        .iter()
        .find(|(fork, _)| spec.is_ethereum_fork_active_at_block(*fork, number))
        .map_or(0, |(_, delay)| *delay);
    let periods = number.saturating_sub(delay) / BOMB_PERIOD;
    if periods < 2 {
        return Some(difficulty);
    }
    let bomb = U256::from(1).checked_shl(usize::try_from(periods - 2).ok()?)?;
    difficulty.checked_add(bomb)
}

/// `base - slower`, clamped at -99, as (upward, downward) steps.
fn signed_steps(base: u64, slower: u64) -> (u64, u64) {
    if slower <= base {
        (base - slower, 0)
    } else {
        (0, (slower - base).min(MAX_DOWNWARD_STEPS))
    }
}

#[cfg(test)]
mod tests {
    //! Vectors from ethereum/tests `DifficultyTests/` (filled by retesteth, checked by the
    //! reference clients): the parent's difficulty, timestamp and ommers, the child's
    //! timestamp and number, and the difficulty the child must carry.

    use super::*;
    use crate::network::TestNetwork;
    use alloy_primitives::B256;

    /// One vector: network, then parent timestamp, parent difficulty, parent has ommers,
    /// child timestamp, child number, child difficulty.
    type Vector = (&'static str, u64, u128, bool, u64, u64, u128);

    fn check(vectors: &[Vector]) {
        for &(network, parent_time, parent_difficulty, ommers, time, number, expected) in vectors {
            let spec = TestNetwork::parse(network)
                .expect("known network")
                .chain_spec(1, &Default::default());
            let parent = Header {
                number: number - 1,
                timestamp: parent_time,
                difficulty: U256::from(parent_difficulty),
                ommers_hash: if ommers {
                    B256::repeat_byte(1)
                } else {
                    EMPTY_OMMER_ROOT_HASH
                },
                ..Header::default()
            };
            assert_eq!(
                expected_difficulty(&spec, time, &parent),
                Some(U256::from(expected)),
                "{network} block {number}"
            );
        }
    }

    #[test]
    fn frontier_difficulty_follows_the_13_second_rule_and_the_bomb() {
        // dfFrontier/difficultyFrontier.json: DifficultyTest1 (1 s: up), DifficultyTest2157
        // (44 s: down), DifficultyTest1029 (block 4,900,000: bomb 2^47).
        check(&[
            (
                "Frontier",
                0x75311a08a,
                0x6a8007579a9bec39,
                false,
                0x75311a08b,
                0x186a0,
                0x6a8d5758858f3fb6,
            ),
            (
                "Frontier",
                0x3643bb26a,
                0x3f96f6b9e59aeff4,
                false,
                0x3643bb296,
                0x186a0,
                0x3f8f03db0e5e3c97,
            ),
            (
                "Frontier",
                0x4cfdeb801,
                0x20f84175c92b633d,
                false,
                0x4cfdeb815,
                0x4ac4a0,
                0x20f4a26d9a723dd1,
            ),
        ]);
    }

    #[test]
    fn homestead_difficulty_steps_per_10_seconds() {
        // dfHomestead/difficultyHomestead.json: DifficultyTest1, DifficultyTest2157 (44 s:
        // three steps down), DifficultyTest1029 (bomb).
        check(&[
            (
                "Homestead",
                0x68450ae0c,
                0x6aa9fe0e7a00ac12,
                false,
                0x68450ae0d,
                0x186a0,
                0x6ab7534e3bcfec27,
            ),
            (
                "Homestead",
                0x250c1383,
                0x4737d8f30a39829,
                false,
                0x250c13af,
                0x186a0,
                0x471d2401af15ad0,
            ),
            (
                "Homestead",
                0x283dfc546,
                0x6c6695fa6fec2eba,
                false,
                0x283dfc55a,
                0x4ac4a0,
                0x6c598927b09e3135,
            ),
        ]);
    }

    #[test]
    fn byzantium_difficulty_counts_parent_ommers_and_delays_the_bomb() {
        // dfByzantium/difficultyByzantium.json: DifficultyTest1030 (parent with ommers, 20 s:
        // unchanged), DifficultyTest1029 (block 4,900,000, bomb delayed by 3,000,000).
        check(&[
            (
                "Byzantium",
                0xfb02a4e6,
                0x1b4780a170e725e9,
                true,
                0xfb02a4fa,
                0x186a0,
                0x1b4780a170e725e9,
            ),
            (
                "Byzantium",
                0x75226c13d,
                0x7202995d022371be,
                false,
                0x75226c151,
                0x4ac4a0,
                0x71f45909d6852d50,
            ),
        ]);
    }

    #[test]
    fn later_forks_delay_the_bomb_further() {
        // dfConstantinople (DifficultyTest1029: 5,000,000 delay, no bomb at 4,900,000),
        // dfArrowGlacier/difficultyArrowGlacier.json -1 and -860, dfGrayGlacier/
        // difficultyGrayGlacier.json -860 (bomb at 15,000,000 / 15,700,000).
        check(&[
            (
                "Constantinople",
                0x284519d44,
                0x3fb64e092c00db60,
                false,
                0x284519d58,
                0x4ac4a0,
                0x3fae573f6adb5b45,
            ),
            (
                "ArrowGlacier",
                0x0,
                0x223a2d17232652,
                true,
                0x1,
                0xa344e0,
                0x2242bba268ef1a,
            ),
            (
                "ArrowGlacier",
                0x0,
                0x223a2d17232652,
                false,
                0x1,
                0xe4e1c0,
                0x2240745cc60ab6,
            ),
            (
                "GrayGlacier",
                0x0,
                0x223a2d17232652,
                false,
                0x1,
                0xef9020,
                0x2240745cc60ab6,
            ),
        ]);
    }
}
