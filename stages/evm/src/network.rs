//! The fork schedules the Ethereum test suites name in a test's `network` field
//! (ethereum/tests and execution-spec-tests, as go-ethereum's `tests/init.go` defines them):
//! a single fork (`Byzantium`: every fork up to it from genesis) or a transition
//! (`BerlinToLondonAt5`: up to Berlin from genesis, the forks after it up to London from
//! block 5). A transition happens at a block number (`At5`), a timestamp (`AtTime15k`) or,
//! for the merge, a total difficulty (`AtDiffC0000`, hexadecimal).

use crate::chain::{ChainSpec, MAINNET_DEPOSIT_CONTRACT};
use alloy_eips::eip7840::BlobParams;
use alloy_genesis::ChainConfig;
use alloy_hardforks::{EthereumChainHardforks, EthereumHardfork as H, ForkCondition};
use alloy_primitives::U256;
use std::collections::BTreeMap;

/// The named forks in activation order; a name stands for itself and every fork before it.
/// Each is what go-ethereum's test configuration of that name adds to the previous one.
const FORKS: &[(&str, &[H])] = &[
    ("Frontier", &[H::Frontier]),
    ("Homestead", &[H::Homestead]),
    ("EIP150", &[H::Tangerine]),
    ("EIP158", &[H::SpuriousDragon]),
    ("Byzantium", &[H::Byzantium]),
    // Constantinople as first scheduled, with EIP-1283; `ConstantinopleFix` (Petersburg)
    // removed EIP-1283 again.
    ("Constantinople", &[H::Constantinople]),
    ("ConstantinopleFix", &[H::Petersburg]),
    ("Istanbul", &[H::Istanbul]),
    ("MuirGlacier", &[H::MuirGlacier]),
    ("Berlin", &[H::Berlin]),
    ("London", &[H::London]),
    ("ArrowGlacier", &[H::ArrowGlacier]),
    ("GrayGlacier", &[H::GrayGlacier]),
    ("Paris", &[H::Paris]),
    ("Shanghai", &[H::Shanghai]),
    ("Cancun", &[H::Cancun]),
    ("Prague", &[H::Prague]),
    ("Osaka", &[H::Osaka]),
    ("BPO1", &[H::Bpo1]),
    ("BPO2", &[H::Bpo2]),
    ("BPO3", &[H::Bpo3]),
    ("BPO4", &[H::Bpo4]),
    ("BPO5", &[H::Bpo5]),
];

/// Other spellings of the same forks.
const ALIASES: &[(&str, &str)] = &[
    ("TangerineWhistle", "EIP150"),
    ("SpuriousDragon", "EIP158"),
    ("Petersburg", "ConstantinopleFix"),
    ("Merge", "Paris"),
];

/// Forks that start at a timestamp rather than a block number.
const TIME_FORKS: &[H] = &[
    H::Shanghai,
    H::Cancun,
    H::Prague,
    H::Osaka,
    H::Bpo1,
    H::Bpo2,
    H::Bpo3,
    H::Bpo4,
    H::Bpo5,
];

/// A `network` name no rule here knows, or a transition that cannot happen as named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown network {name:?}: {reason}")]
pub struct UnknownNetwork {
    /// The name.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A test network's fork schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestNetwork {
    forks: Vec<(H, ForkCondition)>,
}

impl TestNetwork {
    /// The schedule `name` stands for.
    pub fn parse(name: &str) -> Result<Self, UnknownNetwork> {
        let unknown = |reason| UnknownNetwork {
            name: name.to_string(),
            reason,
        };
        let (from, transition) = match name.split_once("To") {
            Some((from, rest)) => {
                let (to, at) = rest
                    .split_once("At")
                    .ok_or_else(|| unknown("a transition names its point with `At`"))?;
                (from, Some((to, at)))
            }
            None => (name, None),
        };
        let from = fork_index(from).ok_or_else(|| unknown("no such fork"))?;
        let mut forks: Vec<(H, ForkCondition)> = FORKS[..=from]
            .iter()
            .flat_map(|(_, forks)| forks.iter())
            .map(|fork| (*fork, at_genesis(*fork)))
            .collect();
        if let Some((to, at)) = transition {
            let point = TransitionPoint::parse(at).ok_or_else(|| unknown("no such point"))?;
            let added: Vec<H> = if to == "Dao" {
                vec![H::Dao]
            } else {
                let to = fork_index(to).ok_or_else(|| unknown("no such fork"))?;
                FORKS
                    .get(from + 1..=to)
                    .filter(|later| !later.is_empty())
                    .ok_or_else(|| unknown("the transition does not go forward"))?
                    .iter()
                    .flat_map(|(_, forks)| forks.iter().copied())
                    .collect()
            };
            for fork in added {
                let condition = point
                    .condition(fork)
                    .ok_or_else(|| unknown("the fork cannot start at that kind of point"))?;
                forks.push((fork, condition));
            }
        }
        Ok(Self { forks })
    }

    /// The total difficulty at which the merge happens, when it is not at genesis: the runner
    /// must then say at which block it happens ([`Self::merge_at_block`]).
    pub fn terminal_total_difficulty(&self) -> Option<U256> {
        self.forks
            .iter()
            .find_map(|(fork, condition)| match condition {
                ForkCondition::TTD {
                    total_difficulty,
                    activation_block_number,
                    ..
                } if *fork == H::Paris && *activation_block_number != 0 => Some(*total_difficulty),
                _ => None,
            })
    }

    /// The schedule with the merge at block `number` (the first proof-of-stake block: the
    /// child of the first block whose total difficulty reaches the terminal total difficulty).
    pub fn merge_at_block(mut self, number: u64) -> Self {
        for (fork, condition) in &mut self.forks {
            if let ForkCondition::TTD {
                activation_block_number,
                fork_block,
                ..
            } = condition
            {
                if *fork == H::Paris {
                    *activation_block_number = number;
                    *fork_block = Some(number);
                }
            }
        }
        self
    }

    /// The chain spec of this schedule with chain id `chain_id` and, per blob-schedule key
    /// (`cancun`, `prague`, `osaka`, `bpo1`, …), the blob parameters a test gives; forks a test
    /// gives none for keep their defaults.
    pub fn chain_spec(
        &self,
        chain_id: u64,
        blob_schedule: &BTreeMap<String, BlobParams>,
    ) -> ChainSpec {
        // alloy-genesis turns a genesis' blob schedule into per-fork parameters (Osaka's
        // blob base cost, the BPO timestamps); the schedule goes through it the same way.
        let mut config = ChainConfig {
            chain_id,
            blob_schedule: blob_schedule.clone(),
            ..Default::default()
        };
        for (fork, condition) in &self.forks {
            let time = match condition {
                ForkCondition::Timestamp(time) => Some(*time),
                _ => None,
            };
            match fork {
                H::Bpo1 => config.bpo1_time = time,
                H::Bpo2 => config.bpo2_time = time,
                H::Bpo3 => config.bpo3_time = time,
                H::Bpo4 => config.bpo4_time = time,
                H::Bpo5 => config.bpo5_time = time,
                _ => {}
            }
        }
        ChainSpec {
            chain_id,
            hardforks: EthereumChainHardforks::new(self.forks.iter().copied()),
            blob_schedule: config.blob_schedule_blob_params(),
            deposit_contract: Some(MAINNET_DEPOSIT_CONTRACT),
            bsc: None,
            storage_only_accounts: Default::default(),
        }
    }
}

/// The position in [`FORKS`] of a fork name or alias.
fn fork_index(name: &str) -> Option<usize> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, canonical)| canonical);
    FORKS.iter().position(|(fork, _)| *fork == name)
}

/// The condition of a fork active from genesis.
fn at_genesis(fork: H) -> ForkCondition {
    if fork == H::Paris {
        ForkCondition::TTD {
            activation_block_number: 0,
            fork_block: Some(0),
            total_difficulty: U256::ZERO,
        }
    } else if TIME_FORKS.contains(&fork) {
        ForkCondition::Timestamp(0)
    } else {
        ForkCondition::Block(0)
    }
}

/// Where a transition's forks start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransitionPoint {
    /// At this block number (`At5`).
    Block(u64),
    /// At this timestamp (`AtTime15k`).
    Time(u64),
    /// When the total difficulty reaches this (`AtDiffC0000`).
    TotalDifficulty(U256),
}

impl TransitionPoint {
    fn parse(text: &str) -> Option<Self> {
        if let Some(time) = text.strip_prefix("Time") {
            return Some(Self::Time(decimal_with_k(time)?));
        }
        if let Some(hex) = text.strip_prefix("Diff") {
            return U256::from_str_radix(hex, 16)
                .ok()
                .map(Self::TotalDifficulty);
        }
        decimal_with_k(text).map(Self::Block)
    }

    /// The condition of `fork` starting at this point; `None` where it cannot: a timestamp fork
    /// at a block number, or a block fork at a timestamp. A block fork of a merge transition
    /// (a difficulty-bomb delay between the first fork and Paris) starts at genesis.
    fn condition(self, fork: H) -> Option<ForkCondition> {
        let timed = TIME_FORKS.contains(&fork);
        match self {
            Self::Block(number) if !timed && fork != H::Paris => Some(ForkCondition::Block(number)),
            Self::Time(time) if timed => Some(ForkCondition::Timestamp(time)),
            Self::TotalDifficulty(total_difficulty) if fork == H::Paris => {
                Some(ForkCondition::TTD {
                    // Unknown until the chain reaches it: see `merge_at_block`.
                    activation_block_number: u64::MAX,
                    fork_block: None,
                    total_difficulty,
                })
            }
            Self::TotalDifficulty(_) if !timed => Some(at_genesis(fork)),
            _ => None,
        }
    }
}

/// `15000` or `15k`.
fn decimal_with_k(text: &str) -> Option<u64> {
    match text.strip_suffix('k') {
        Some(thousands) => thousands.parse::<u64>().ok()?.checked_mul(1000),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::Header;
    use alloy_hardforks::EthereumHardforks;
    use revm::primitives::hardfork::SpecId;

    fn spec(name: &str) -> ChainSpec {
        TestNetwork::parse(name)
            .unwrap_or_else(|e| panic!("{e}"))
            .chain_spec(1, &BTreeMap::new())
    }

    fn header(number: u64, timestamp: u64) -> Header {
        Header {
            number,
            timestamp,
            ..Header::default()
        }
    }

    #[test]
    fn single_fork_networks_have_every_earlier_fork_from_genesis() {
        let cases = [
            ("Frontier", SpecId::FRONTIER),
            ("Homestead", SpecId::HOMESTEAD),
            ("EIP150", SpecId::TANGERINE),
            ("EIP158", SpecId::SPURIOUS_DRAGON),
            ("Byzantium", SpecId::BYZANTIUM),
            ("ConstantinopleFix", SpecId::PETERSBURG),
            ("Petersburg", SpecId::PETERSBURG),
            ("Istanbul", SpecId::ISTANBUL),
            ("Berlin", SpecId::BERLIN),
            ("London", SpecId::LONDON),
            ("Merge", SpecId::MERGE),
            ("Paris", SpecId::MERGE),
            ("Shanghai", SpecId::SHANGHAI),
            ("Cancun", SpecId::CANCUN),
            ("Prague", SpecId::PRAGUE),
            ("Osaka", SpecId::OSAKA),
        ];
        for (name, expected) in cases {
            assert_eq!(spec(name).spec_id(&header(1, 1)), expected, "{name}");
        }
        let constantinople = spec("Constantinople");
        assert!(constantinople.is_constantinople_active_at_block(0));
        assert!(!constantinople.is_petersburg_active_at_block(1_000_000));
        assert!(!spec("Istanbul").is_ethereum_fork_active_at_block(H::MuirGlacier, 1));
        assert!(spec("Berlin").is_ethereum_fork_active_at_block(H::MuirGlacier, 0));
    }

    #[test]
    fn transitions_happen_at_a_block_a_time_or_a_total_difficulty() {
        let homestead = spec("FrontierToHomesteadAt5");
        assert_eq!(homestead.spec_id(&header(4, 100)), SpecId::FRONTIER);
        assert_eq!(homestead.spec_id(&header(5, 100)), SpecId::HOMESTEAD);

        let dao = spec("HomesteadToDaoAt5");
        assert!(dao.is_homestead_active_at_block(0));
        assert_eq!(dao.dao_fork_block(), Some(5));

        let fix = spec("ByzantiumToConstantinopleFixAt5");
        assert_eq!(fix.spec_id(&header(4, 1)), SpecId::BYZANTIUM);
        assert_eq!(fix.spec_id(&header(5, 1)), SpecId::PETERSBURG);
        assert!(fix.is_constantinople_active_at_block(5));

        let cancun = spec("ShanghaiToCancunAtTime15k");
        assert_eq!(cancun.spec_id(&header(1, 14_999)), SpecId::SHANGHAI);
        assert_eq!(cancun.spec_id(&header(2, 15_000)), SpecId::CANCUN);
        assert_eq!(cancun.blob_params_at(15_000), Some(BlobParams::cancun()));

        let merge = TestNetwork::parse("ArrowGlacierToParisAtDiffC0000").unwrap();
        assert_eq!(merge.terminal_total_difficulty(), Some(U256::from(0xC0000)));
        let merged = merge.merge_at_block(6).chain_spec(1, &BTreeMap::new());
        assert_eq!(merged.spec_id(&header(5, 1)), SpecId::LONDON);
        assert_eq!(merged.spec_id(&header(6, 1)), SpecId::MERGE);
        assert!(merged.is_ethereum_fork_active_at_block(H::GrayGlacier, 0));
        assert_eq!(
            TestNetwork::parse("Paris")
                .unwrap()
                .terminal_total_difficulty(),
            None
        );
    }

    #[test]
    fn a_test_blob_schedule_overrides_the_defaults_of_its_forks() {
        let custom = BlobParams {
            target_blob_count: 1,
            max_blob_count: 2,
            ..BlobParams::cancun()
        };
        let spec = TestNetwork::parse("CancunToPragueAtTime15k")
            .unwrap()
            .chain_spec(7, &BTreeMap::from([("prague".to_string(), custom)]));
        assert_eq!(spec.chain_id, 7);
        assert_eq!(spec.blob_params_at(1), Some(BlobParams::cancun()));
        assert_eq!(
            spec.blob_params_at(15_000).map(|p| p.max_blob_count),
            Some(2)
        );
    }

    #[test]
    fn names_that_are_no_schedule_are_refused() {
        for name in [
            "Homestead2",
            "LondonToBerlinAt5",
            "BerlinToLondonAtTime15k",
            "ParisToShanghaiAt5",
            "BerlinToLondon",
            "FrontierToNowhereAt5",
        ] {
            assert!(TestNetwork::parse(name).is_err(), "{name}");
        }
    }
}
