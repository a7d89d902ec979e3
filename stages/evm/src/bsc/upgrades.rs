//! System-contract upgrades (bnb-chain/bsc `core/systemcontracts/upgrade.go`): at the first
//! block of certain forks the code of listed system contracts is replaced. The list and the
//! bytecode come from the chain data directory (`systemcontracts/upgrades.json` and the hex
//! files it names).

use super::forks::{BscForks, Fork};
use alloy_primitives::{Address, Bytes};
use std::path::Path;

/// The forks that carry upgrades, as `upgrades.json` names them, with the schedule key that
/// activates each, in the order `upgradeBuildInSystemContract` applies them.
const UPGRADE_FORKS: &[(&str, Fork)] = &[
    ("ramanujan", "RamanujanBlock"),
    ("niels", "NielsBlock"),
    ("mirror", "MirrorSyncBlock"),
    ("bruno", "BrunoBlock"),
    ("euler", "EulerBlock"),
    ("gibbs", "GibbsBlock"),
    ("moran", "MoranBlock"),
    ("planck", "PlanckBlock"),
    ("luban", "LubanBlock"),
    ("plato", "PlatoBlock"),
    ("kepler", "KeplerTime"),
    ("feynman", "FeynmanTime"),
    ("feynmanFix", "FeynmanFixTime"),
    ("haberFix", "HaberFixTime"),
    ("bohr", "BohrTime"),
    ("pascal", "PascalTime"),
    ("lorentz", "LorentzTime"),
    ("maxwell", "MaxwellTime"),
    ("fermi", "FermiTime"),
];

/// One contract's new code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractUpgrade {
    /// The system contract.
    pub address: Address,
    /// Its name in `upgrades.json` (for messages).
    pub contract: String,
    /// The new code.
    pub code: Bytes,
}

/// The upgrades of one fork on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkUpgrade {
    /// The fork's name in `upgrades.json` (`"bruno"`, `"feynman"`, …).
    pub name: &'static str,
    /// The schedule key that activates it.
    pub fork: Fork,
    /// The contracts replaced, in file order.
    pub contracts: Vec<ContractUpgrade>,
}

/// Every upgrade of one network, in application order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upgrades {
    /// Forks with upgrades for this network.
    pub forks: Vec<ForkUpgrade>,
}

impl Upgrades {
    /// Read `systemcontracts/upgrades.json` under `data_dir` for `network` (`mainnet`,
    /// `chapel`, …), loading every bytecode file it names. A network the file does not list
    /// has no upgrades.
    pub fn load(data_dir: &Path, network: &str) -> Result<Self, String> {
        let dir = data_dir.join("systemcontracts");
        let path = dir.join("upgrades.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        let table = json
            .get("upgrades")
            .and_then(|u| u.as_object())
            .ok_or_else(|| format!("{}: no \"upgrades\" object", path.display()))?;
        if let Some(unknown) = table
            .keys()
            .find(|k| !UPGRADE_FORKS.iter().any(|(name, _)| name == k))
        {
            return Err(format!(
                "{}: unknown upgrade fork {unknown:?}",
                path.display()
            ));
        }
        let mut forks = Vec::new();
        for (name, fork) in UPGRADE_FORKS {
            let Some(entries) = table.get(*name).and_then(|f| f.get(network)) else {
                continue;
            };
            let entries = entries
                .as_array()
                .ok_or_else(|| format!("{}: {name}.{network} is not a list", path.display()))?;
            let contracts = entries
                .iter()
                .map(|entry| contract_upgrade(&dir, entry))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {name}.{network}: {e}", path.display()))?;
            forks.push(ForkUpgrade {
                name,
                fork,
                contracts,
            });
        }
        Ok(Self { forks })
    }

    /// The contracts whose code changes at block `number` (timestamp `time`, parent's
    /// `parent_time`), in the order they are applied.
    pub fn at_block<'a>(
        &'a self,
        forks: &'a BscForks,
        number: u64,
        parent_time: u64,
        time: u64,
    ) -> impl Iterator<Item = &'a ContractUpgrade> + 'a {
        self.forks
            .iter()
            .filter(move |u| forks.transition(u.fork, number, parent_time, time))
            .flat_map(|u| u.contracts.iter())
    }
}

fn contract_upgrade(dir: &Path, entry: &serde_json::Value) -> Result<ContractUpgrade, String> {
    let field = |name: &str| {
        entry
            .get(name)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("an entry lacks {name:?}"))
    };
    let address: Address = field("address")?
        .parse()
        .map_err(|e| format!("address {:?}: {e}", field("address").unwrap_or_default()))?;
    let contract = field("contract")?.to_string();
    let file = dir.join(field("code_file")?);
    let hex = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let code = alloy_primitives::hex::decode(hex.trim())
        .map_err(|e| format!("{} is not hex: {e}", file.display()))?;
    Ok(ContractUpgrade {
        address,
        contract,
        code: code.into(),
    })
}
