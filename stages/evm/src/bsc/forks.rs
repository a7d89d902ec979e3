//! BSC's fork schedule: the `hardforks.json` of the chain data directory (bnb-chain/bsc
//! `params/config.go`), asked the way the client asks it.
//!
//! Block forks are active from their block number; time forks from their timestamp, and only
//! once London is active at the block (`IsShanghai`, `IsKepler`, … in `params/config.go` all
//! check `IsLondon(num)` first). A time fork's *transition block* (`IsOnX`) is the one whose
//! timestamp reaches the fork while its parent's did not.

use alloy_primitives::map::HashMap;
use bsc_precompiles::BscFork;
use revm::primitives::hardfork::SpecId;

/// Every fork key `hardforks.json` may hold, block forks first. `ChainID` is read separately.
const BLOCK_KEYS: &[&str] = &[
    "HomesteadBlock",
    "EIP150Block",
    "EIP155Block",
    "EIP158Block",
    "ByzantiumBlock",
    "ConstantinopleBlock",
    "PetersburgBlock",
    "IstanbulBlock",
    "MuirGlacierBlock",
    "RamanujanBlock",
    "NielsBlock",
    "MirrorSyncBlock",
    "BrunoBlock",
    "EulerBlock",
    "NanoBlock",
    "MoranBlock",
    "GibbsBlock",
    "PlanckBlock",
    "LubanBlock",
    "PlatoBlock",
    "BerlinBlock",
    "LondonBlock",
    "HertzBlock",
    "HertzfixBlock",
];

/// The time forks `hardforks.json` may hold.
const TIME_KEYS: &[&str] = &[
    "ShanghaiTime",
    "KeplerTime",
    "FeynmanTime",
    "FeynmanFixTime",
    "CancunTime",
    "HaberTime",
    "HaberFixTime",
    "BohrTime",
    "PascalTime",
    "PragueTime",
    "LorentzTime",
    "MaxwellTime",
    "FermiTime",
    "OsakaTime",
    "MendelTime",
    "BPO1Time",
    "BPO2Time",
    "AmsterdamTime",
    "PasteurTime",
];

/// A fork of the schedule, by its `hardforks.json` key (`"HertzBlock"`, `"FeynmanTime"`, …).
pub type Fork = &'static str;

/// One network's fork schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BscForks {
    /// EIP-155 chain id of the network.
    pub chain_id: u64,
    /// Block forks that are scheduled, by key.
    blocks: HashMap<&'static str, u64>,
    /// Time forks that are scheduled, by key.
    times: HashMap<&'static str, u64>,
}

impl BscForks {
    /// Read one network's section of `hardforks.json` (`{"ChainID": 56, "HertzBlock": …,
    /// "FeynmanTime": …}`; `null` for a fork that is not scheduled). Unknown keys are errors,
    /// so a misspelt fork cannot silently stay off.
    pub fn from_json(section: &serde_json::Value) -> Result<Self, String> {
        let object = section
            .as_object()
            .ok_or_else(|| "the network's section is not a JSON object".to_string())?;
        let mut chain_id = None;
        let mut blocks = HashMap::default();
        let mut times = HashMap::default();
        for (key, value) in object {
            let number = match value {
                serde_json::Value::Null => None,
                other => Some(other.as_u64().ok_or_else(|| {
                    format!("{key} is {other}, expected a non-negative integer or null")
                })?),
            };
            if key == "ChainID" {
                chain_id = number;
            } else if let Some(known) = BLOCK_KEYS.iter().find(|k| **k == key) {
                if let Some(n) = number {
                    blocks.insert(*known, n);
                }
            } else if let Some(known) = TIME_KEYS.iter().find(|k| **k == key) {
                if let Some(t) = number {
                    times.insert(*known, t);
                }
            } else {
                return Err(format!("unknown fork key {key:?}"));
            }
        }
        Ok(Self {
            chain_id: chain_id.ok_or_else(|| "ChainID is missing".to_string())?,
            blocks,
            times,
        })
    }

    /// When `fork` activates, if it is scheduled: a block number for `…Block` keys, a unix
    /// time for `…Time` keys.
    pub fn activation(&self, fork: Fork) -> Option<u64> {
        self.blocks
            .get(fork)
            .or_else(|| self.times.get(fork))
            .copied()
    }

    /// Is the block fork `fork` active at block `number` (`isBlockForked`)?
    pub fn block_active(&self, fork: Fork, number: u64) -> bool {
        debug_assert!(BLOCK_KEYS.contains(&fork), "{fork} is not a block fork");
        self.blocks.get(fork).is_some_and(|at| number >= *at)
    }

    /// Is `number` the block where the block fork `fork` activates (`IsOnX(num)`)?
    pub fn block_transition(&self, fork: Fork, number: u64) -> bool {
        self.blocks.get(fork) == Some(&number)
    }

    /// Is the time fork `fork` active for block `number` with timestamp `time` (`IsX(num,
    /// time)`: London at the block and the time reached)?
    pub fn time_active(&self, fork: Fork, number: u64, time: u64) -> bool {
        debug_assert!(TIME_KEYS.contains(&fork), "{fork} is not a time fork");
        self.block_active("LondonBlock", number)
            && self.times.get(fork).is_some_and(|at| time >= *at)
    }

    /// Is block `number` (timestamp `time`, its parent's `parent_time`) the first block of the
    /// time fork `fork` (`IsOnX(num, lastBlockTime, currentBlockTime)`)?
    pub fn time_transition(&self, fork: Fork, number: u64, parent_time: u64, time: u64) -> bool {
        !self.time_active(fork, number.saturating_sub(1), parent_time)
            && self.time_active(fork, number, time)
    }

    /// Is `fork` (block or time) active for block `number` at `time`?
    pub fn active(&self, fork: Fork, number: u64, time: u64) -> bool {
        if BLOCK_KEYS.contains(&fork) {
            self.block_active(fork, number)
        } else {
            self.time_active(fork, number, time)
        }
    }

    /// Is block `number` (at `time`, parent at `parent_time`) the first block of `fork`?
    pub fn transition(&self, fork: Fork, number: u64, parent_time: u64, time: u64) -> bool {
        if BLOCK_KEYS.contains(&fork) {
            self.block_transition(fork, number)
        } else {
            self.time_transition(fork, number, parent_time, time)
        }
    }

    /// Which of BSC's precompile sets a block runs with: the first set whose fork is active,
    /// in the order of bnb-chain/bsc `core/vm/contracts.go` `activePrecompiledContracts`
    /// (Osaka; Prague and Haber share Haber's set; Cancun and Feynman share Feynman's; then
    /// Hertz, Plato, Luban, Planck, Moran, Nano).
    pub fn precompile_fork(&self, number: u64, time: u64) -> BscFork {
        let order: [(&[Fork], BscFork); 10] = [
            (&["OsakaTime"], BscFork::Osaka),
            (&["PragueTime", "HaberTime"], BscFork::Haber),
            (&["CancunTime", "FeynmanTime"], BscFork::Feynman),
            (&["HertzBlock"], BscFork::Hertz),
            (&["PlatoBlock"], BscFork::Plato),
            (&["LubanBlock"], BscFork::Luban),
            (&["PlanckBlock"], BscFork::Planck),
            (&["MoranBlock"], BscFork::Moran),
            (&["NanoBlock"], BscFork::Nano),
            (&[], BscFork::Istanbul),
        ];
        order
            .into_iter()
            .find(|(forks, _)| {
                forks.is_empty() || forks.iter().any(|fork| self.active(fork, number, time))
            })
            .map_or(BscFork::Istanbul, |(_, set)| set)
    }

    /// The revm rules of a block: go-ethereum's `Rules` for BSC (`params/config.go`), where
    /// the time forks need no merge (`IsInBSC()` stands in for it). Pre-Hertz BSC runs Muir
    /// Glacier; Hertz brings Berlin and London; Kepler/Shanghai, Haber/Cancun,
    /// Pascal/Prague and Mendel/Osaka follow by time.
    pub fn spec_id(&self, number: u64, time: u64) -> SpecId {
        let time_forks = [
            ("OsakaTime", SpecId::OSAKA),
            ("PragueTime", SpecId::PRAGUE),
            ("CancunTime", SpecId::CANCUN),
            ("ShanghaiTime", SpecId::SHANGHAI),
        ];
        if let Some((_, spec)) = time_forks
            .iter()
            .find(|(fork, _)| self.time_active(fork, number, time))
        {
            return *spec;
        }
        let block_forks = [
            ("LondonBlock", SpecId::LONDON),
            ("BerlinBlock", SpecId::BERLIN),
            // revm folds Muir Glacier (a difficulty-bomb delay) into Istanbul and
            // Constantinople into Petersburg.
            ("MuirGlacierBlock", SpecId::ISTANBUL),
            ("IstanbulBlock", SpecId::ISTANBUL),
            ("PetersburgBlock", SpecId::PETERSBURG),
            ("ByzantiumBlock", SpecId::BYZANTIUM),
            ("EIP158Block", SpecId::SPURIOUS_DRAGON),
            ("EIP150Block", SpecId::TANGERINE),
            ("HomesteadBlock", SpecId::HOMESTEAD),
        ];
        block_forks
            .iter()
            .find(|(fork, _)| self.block_active(fork, number))
            .map_or(SpecId::FRONTIER, |(_, spec)| *spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(json: &str) -> BscForks {
        BscForks::from_json(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn time_forks_wait_for_london_and_transition_on_the_parent_time() {
        let forks = schedule(
            r#"{"ChainID":7,"LondonBlock":10,"BerlinBlock":10,"MuirGlacierBlock":0,
            "ShanghaiTime":100,"FeynmanTime":200,"PragueTime":null}"#,
        );
        // Time reached but London not yet active at block 9: still Muir Glacier.
        assert_eq!(forks.spec_id(9, 150), SpecId::ISTANBUL);
        assert_eq!(forks.spec_id(10, 99), SpecId::LONDON);
        assert_eq!(forks.spec_id(10, 100), SpecId::SHANGHAI);
        assert!(forks.time_transition("FeynmanTime", 20, 199, 200));
        assert!(!forks.time_transition("FeynmanTime", 21, 200, 203));
        assert!(!forks.time_active("PragueTime", 20, u64::MAX));
        assert!(BscForks::from_json(&serde_json::json!({"ChainID":1,"HerzBlock":1})).is_err());
    }
}
