//! The genesis of a workload with many accounts, written one account at a time: the allocation
//! of [`genesis::allocation`] goes to `genesis.json` as compact JSON (storage values without
//! their leading zero bytes, which geth-style parsers left-pad) and into the generator's
//! [`World`] in the same pass, so neither the whole allocation nor its JSON text is ever held at
//! once. The genesis header is init's (`evm::genesis::genesis_header`) with the world's state
//! root.

use super::genesis;
use super::layout::Layout;
use super::world::World;
use super::GenError;
use alloy_consensus::Header;
use alloy_genesis::{Genesis, GenesisAccount};
use alloy_primitives::{hex, Address, B256};
use evm::genesis::genesis_header;
use std::io::{BufWriter, Write};
use std::path::Path;

/// What the chain starts from.
pub struct Start {
    /// The genesis without its allocation (config and header fields).
    pub genesis: Genesis,
    /// The block-0 header.
    pub header: Header,
    /// Its hash.
    pub hash: B256,
    /// The genesis state.
    pub world: World,
}

/// Write the genesis over `layout` and `keys` (the first `traders` may swap at once) with
/// `gas_limit` per block to `path`, and return what the chain starts from.
pub fn write(
    path: &Path,
    layout: &Layout,
    keys: &[Address],
    traders: usize,
    gas_limit: u64,
) -> Result<Start, GenError> {
    let genesis = genesis::without_alloc(gas_limit);
    let mut fields = match serde_json::to_value(&genesis)? {
        serde_json::Value::Object(fields) => fields,
        other => return Err(GenError::Internal(format!("genesis serialised as {other}"))),
    };
    fields.remove("alloc");
    let head = serde_json::to_string(&fields)?;
    let head = head
        .strip_suffix('}')
        .ok_or_else(|| GenError::Internal("genesis JSON is not an object".into()))?;
    let file = std::fs::File::create(path).map_err(super::io_error(path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut world = World::default();
    let accounts = genesis::allocation(layout, keys, traders)?;
    let written = || -> std::io::Result<()> {
        write!(out, "{head},\"alloc\":{{")?;
        for (index, (address, account)) in accounts.enumerate() {
            if index > 0 {
                out.write_all(b",")?;
            }
            write_account(&mut out, &address, &account)?;
            world.insert_genesis_account(address, &account);
        }
        out.write_all(b"}}\n")?;
        out.flush()
    };
    written().map_err(super::io_error(path))?;
    let mut header = genesis_header(&genesis, true);
    header.state_root = world.state_root();
    let hash = header.hash_slow();
    world.push_block_hash(hash);
    Ok(Start {
        genesis,
        header,
        hash,
        world,
    })
}

/// `"0x…":{"balance":…,"nonce":…,"code":…,"storage":{…}}` (absent fields left out).
fn write_account(
    out: &mut impl Write,
    address: &Address,
    account: &GenesisAccount,
) -> std::io::Result<()> {
    write!(
        out,
        "\"{address:#x}\":{{\"balance\":\"{:#x}\"",
        account.balance
    )?;
    if let Some(nonce) = account.nonce {
        write!(out, ",\"nonce\":\"{nonce:#x}\"")?;
    }
    if let Some(code) = &account.code {
        write!(out, ",\"code\":\"{}\"", hex::encode_prefixed(code))?;
    }
    if let Some(storage) = &account.storage {
        out.write_all(b",\"storage\":{")?;
        for (index, (slot, value)) in storage.iter().enumerate() {
            if index > 0 {
                out.write_all(b",")?;
            }
            write!(out, "\"{slot:#x}\":\"{}\"", short_hex(value))?;
        }
        out.write_all(b"}")?;
    }
    out.write_all(b"}")
}

/// A word as the shortest even-length hex with `0x` (genesis storage values are bytes, left-padded
/// when read).
fn short_hex(value: &B256) -> String {
    let start = value.iter().position(|byte| *byte != 0).unwrap_or(31);
    hex::encode_prefixed(&value[start..])
}
