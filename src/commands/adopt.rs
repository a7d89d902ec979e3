//! Taking over a store the original Go service filled: blocks (`blk:*`), state (`st:*`),
//! receipts and `idx:exec:progress`, but no chain record `idx:chain`, no stage checkpoints and
//! no execution records. Nothing is re-executed: the store's state is taken as complete up to
//! `idx:exec:progress`, and the daemon's startup starts every stage there
//! (`pipeline::startup::start_point`).
//!
//! Before writing `idx:chain` the takeover checks what the store lets it check: `blk:hdr:0`
//! against the chain's genesis; the executed block's header (`blk:hdr:{n}`) against the
//! receipts the service wrote for it (`blk:rcpt:{n}`: receipts root and gas used); and the
//! next synced block's parent hash against it. A store that fails a check is refused with what
//! differs. `run` takes over a built-in chain's store by itself; a custom chain's needs its
//! genesis: `init --genesis FILE --adopt`.

use super::{chain_record, check_config_matches, setting_for, CommandError, Context};
use alloy_consensus::proofs::calculate_receipt_root;
use alloy_consensus::Header;
use alloy_consensus::Sealed;
use alloy_primitives::B256;
use evm::chain_data;
use evm::genesis::GenesisSummary;
use primitives::contract::{ChainRecord, ExecProgress};
use primitives::store::WriteBatch;
use primitives::value::ContractRead;

/// Where a takeover found the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adoption {
    /// The last executed block (`idx:exec:progress`).
    pub block: u64,
    /// Its hash (`blk:hdr:{block}`).
    pub hash: B256,
}

/// The chain record `run` works with: `idx:chain` checked against the config; or, for a
/// store without one that the original service filled, the record a takeover writes when the
/// configured chain is built in.
pub fn chain_for_run(ctx: &Context) -> Result<ChainRecord, CommandError> {
    if ctx.chain_record()?.is_some() {
        return ctx.checked_chain();
    }
    let name = ctx.config.chain.name.as_str();
    let Some(progress) = exec_progress(ctx)? else {
        return Err(CommandError::NotInitialised(format!(
            "no {} and no {}",
            ctx.keys.chain(),
            ctx.keys.exec_progress()
        )));
    };
    let Some(chain) = chain_data::built_in(name) else {
        return Err(CommandError::Takeover(format!(
            "there is no {} but {} says blocks up to {} are executed (a store the original \
             service wrote?); a custom chain is taken over with its genesis: run `evm-executor \
             init --genesis FILE --adopt`",
            ctx.keys.chain(),
            ctx.keys.exec_progress(),
            progress.latest_executed_block
        )));
    };
    adopt(ctx, name, &chain.genesis()?.summary())?;
    ctx.checked_chain()
}

/// Take the store over for the chain `name` with `genesis`: check it, then write `idx:chain`
/// (and `blk:hdr:0` when the store lacks it), nothing else. A store that already holds this
/// chain's record is left as it is.
pub fn adopt(
    ctx: &Context,
    name: &str,
    genesis: &GenesisSummary,
) -> Result<Adoption, CommandError> {
    check_config_matches(&ctx.config, name, genesis.chain_id)?;
    let progress_key = ctx.keys.exec_progress();
    let progress = exec_progress(ctx)?;
    if let Some(record) = ctx.chain_record()? {
        if record.genesis_hash != genesis.hash {
            return Err(CommandError::ChainMismatch(format!(
                "the store already holds genesis {:#x} (chain {:?}, id {}), not {:#x}",
                record.genesis_hash, record.name, record.chain_id, genesis.hash
            )));
        }
        let block = progress.map_or(0, |p| p.latest_executed_block);
        tracing::info!(
            block,
            "the store already belongs to this chain; nothing to take over"
        );
        return Ok(Adoption {
            block,
            hash: header(ctx, block)?.map_or(genesis.hash, |(_, hash)| hash),
        });
    }
    let Some(progress) = progress else {
        return Err(CommandError::Takeover(format!(
            "there is no {progress_key}, so no executed state to take over; run `evm-executor \
             init` without --adopt to start from the genesis"
        )));
    };
    let executed = progress.latest_executed_block;
    let mut checked = Vec::new();

    let stored_genesis = header(ctx, 0)?;
    match &stored_genesis {
        Some((_, hash)) if *hash != genesis.hash => {
            let hint = match chain_data::built_in_with_genesis(*hash) {
                Some(other) => format!(
                    "it is the genesis of {0}: set {1}",
                    other.name,
                    setting_for(other.name, other.chain_id)
                ),
                None => "the store belongs to another chain: take it over with that chain's \
                         genesis (chain.name = \"custom\", `init --genesis FILE --adopt`)"
                    .to_string(),
            };
            return Err(CommandError::Takeover(format!(
                "{} is block {hash:#x}, but the genesis of chain {name:?} is {:#x}; {hint}",
                ctx.keys.header(0),
                genesis.hash
            )));
        }
        Some(_) => checked.push(format!("{} is the genesis", ctx.keys.header(0))),
        None => checked.push(format!("{} absent: written", ctx.keys.header(0))),
    }

    let hash = match executed {
        0 => genesis.hash,
        n => {
            let header_key = ctx.keys.header(n);
            let (header, hash) = header(ctx, n)?.ok_or_else(|| {
                CommandError::Takeover(format!(
                    "{progress_key} says block {n} is executed but {header_key} is missing"
                ))
            })?;
            checked.push(check_receipts(ctx, n, &header)?);
            hash
        }
    };
    if let Some((next, _)) = header(ctx, executed + 1)? {
        if next.parent_hash != hash {
            return Err(CommandError::Takeover(format!(
                "{} has parent {:#x}, but the executed block {executed} ({}) is {hash:#x}: the \
                 synced blocks above it are of another branch, and without execution records \
                 nothing below {} can be unwound",
                ctx.keys.header(executed + 1),
                next.parent_hash,
                ctx.keys.header(executed),
                executed + 1
            )));
        }
        checked.push(format!(
            "{} is a child of block {executed}",
            ctx.keys.header(executed + 1)
        ));
    }

    let mut batch = WriteBatch::new();
    if stored_genesis.is_none() {
        let sealed = Sealed::new_unchecked(genesis.header.clone(), genesis.hash);
        batch.put(ctx.keys.header(0), &sealed);
    }
    let record = chain_record(name, genesis);
    // Last: its presence marks the takeover done.
    batch.put(ctx.keys.chain(), &record);
    ctx.store.write(&batch)?;
    tracing::info!(
        chain = name,
        chain_id = record.chain_id,
        genesis = %genesis.hash,
        "took over a store without {key} (as the original service leaves it) at block \
         {executed} ({hash:#x}): checked {}; wrote {key}; execution continues from block {} \
         without re-executing the blocks before it",
        checked.join(", "),
        executed + 1,
        key = ctx.keys.chain(),
    );
    Ok(Adoption {
        block: executed,
        hash,
    })
}

/// `idx:exec:progress`, if present.
fn exec_progress(ctx: &Context) -> Result<Option<ExecProgress>, CommandError> {
    Ok(ctx.store.read(&ctx.keys.exec_progress())?)
}

/// `blk:hdr:{number}` decoded with its hash, if present.
fn header(ctx: &Context, number: u64) -> Result<Option<(Header, B256)>, CommandError> {
    Ok(ctx.store.read(&ctx.keys.header(number))?.map(|header| {
        let hash = header.hash();
        (header.into_inner(), hash)
    }))
}

/// Check the receipts stored for the executed block `number` against its header: the same
/// receipts root and gas used, else the stored header is not the block whose outcome the
/// store holds. Returns what was checked.
fn check_receipts(ctx: &Context, number: u64, header: &Header) -> Result<String, CommandError> {
    let key = ctx.keys.receipts(number);
    let header_key = ctx.keys.header(number);
    let Some(receipts) = ctx.store.read(&key)? else {
        tracing::warn!(
            block = number,
            "{key} is absent: the executed block's header cannot be checked against its receipts"
        );
        return Ok(format!("{key} absent: not checked"));
    };
    let root = calculate_receipt_root(&receipts);
    if root != header.receipts_root {
        return Err(CommandError::Takeover(format!(
            "the receipts at {key} have root {root:#x}, but {header_key} has receiptsRoot {:#x}: \
             the stored block {number} is not the one whose receipts and state the store holds",
            header.receipts_root
        )));
    }
    let gas = receipts.last().map_or(0, |r| r.cumulative_gas_used());
    if gas != header.gas_used {
        return Err(CommandError::Takeover(format!(
            "the receipts at {key} use {gas} gas, but {header_key} has gasUsed {}",
            header.gas_used
        )));
    }
    Ok(format!("{key} matches {header_key}"))
}
