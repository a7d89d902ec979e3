//! System-contract upgrades (bnb-chain/bsc `core/systemcontracts/upgrade.go`): at the first
//! block of certain forks the code of listed system contracts is replaced. The list and the
//! bytecode come from the chain data ([`ChainFiles`]: `systemcontracts/upgrades.json` and the
//! hex files it names).

use super::forks::{BscForks, Fork};
use super::ChainFiles;
use alloy_primitives::{Address, Bytes};

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

/// The upgrade list's path under the chain data root.
const UPGRADES_FILE: &str = "systemcontracts/upgrades.json";
/// The directory the list's `code_file` paths are relative to.
const SYSTEM_CONTRACTS_DIR: &str = "systemcontracts/";

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
    /// Read `systemcontracts/upgrades.json` of `files` for `network` (`mainnet`, `chapel`,
    /// …), loading every bytecode file it names. A network the file does not list has no
    /// upgrades.
    pub fn load(files: ChainFiles<'_>, network: &str) -> Result<Self, String> {
        let path = files.show(UPGRADES_FILE);
        let text = files.read(UPGRADES_FILE)?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{path} is not JSON: {e}"))?;
        let table = json
            .get("upgrades")
            .and_then(|u| u.as_object())
            .ok_or_else(|| format!("{path}: no \"upgrades\" object"))?;
        if let Some(unknown) = table
            .keys()
            .find(|k| !UPGRADE_FORKS.iter().any(|(name, _)| name == k))
        {
            return Err(format!("{path}: unknown upgrade fork {unknown:?}"));
        }
        let mut forks = Vec::new();
        for (name, fork) in UPGRADE_FORKS {
            let Some(entries) = table.get(*name).and_then(|f| f.get(network)) else {
                continue;
            };
            let entries = entries
                .as_array()
                .ok_or_else(|| format!("{path}: {name}.{network} is not a list"))?;
            let contracts = entries
                .iter()
                .map(|entry| contract_upgrade(files, entry))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{path}: {name}.{network}: {e}"))?;
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

fn contract_upgrade(
    files: ChainFiles<'_>,
    entry: &serde_json::Value,
) -> Result<ContractUpgrade, String> {
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
    // `code_file` is relative to the `systemcontracts/` directory.
    let file = format!("{SYSTEM_CONTRACTS_DIR}{}", field("code_file")?);
    let hex = files.read(&file)?;
    let code = alloy_primitives::hex::decode(hex.trim())
        .map_err(|e| format!("{} is not hex: {e}", files.show(&file)))?;
    Ok(ContractUpgrade {
        address,
        contract,
        code: code.into(),
    })
}
