//! `import FILE`: a chain file in geth `export` format (concatenated RLP blocks) into
//! `blk:hdr`, `blk:txs`, `blk:body`, `blk:txhash` and `idx:sync:progress`, exactly as the Block
//! Syncer writes them.
//!
//! The file is streamed one block at a time. Each block must follow its parent (number and
//! parent hash) and its body must match its header. Blocks are written in batches, and
//! `idx:sync:progress` moves only after a batch's data is stored; when a block is bad, the good
//! blocks before it are still written and the progress names the last of them.

use super::{CommandError, Context};
use alloy_consensus::Sealed;
use alloy_primitives::B256;
use primitives::block::{check_body, decode_block, ChainBlock};
use primitives::contract::SyncProgress;
use primitives::store::WriteBatch;
use primitives::value::ContractRead;
use std::io::{BufReader, ErrorKind, Read};
use std::path::Path;
use std::time::{Duration, Instant};

/// Blocks written per store batch: bounds memory to a few hundred blocks whatever the file size.
const BLOCKS_PER_BATCH: usize = 256;
/// A block larger than this is taken for corruption rather than allocated.
const MAX_BLOCK_BYTES: u64 = 256 * 1024 * 1024;
/// How often a progress line is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What `import` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOutcome {
    /// The first block written (0 when none).
    pub first: u64,
    /// The last block written; `idx:sync:progress` holds it (0 when none).
    pub last: u64,
    /// Blocks written.
    pub blocks: u64,
    /// Transactions in them.
    pub transactions: u64,
}

/// Reads the file one top-level RLP item at a time, tracking the byte offset.
struct BlockReader<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> BlockReader<R> {
    /// The next item's bytes, `Ok(None)` at a clean end of file, or a reason it is malformed.
    fn next_item(&mut self) -> Result<Option<Vec<u8>>, String> {
        let mut first = [0u8; 1];
        match self.inner.read(&mut first) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => return self.next_item(),
            Err(e) => return Err(format!("read error: {e}")),
        }
        let mut item = vec![first[0]];
        let payload_len = match first[0] {
            0xc0..=0xf7 => u64::from(first[0] - 0xc0),
            0xf8..=0xff => {
                let len_of_len = usize::from(first[0] - 0xf7);
                let mut len_bytes = [0u8; 8];
                self.read_exact(&mut len_bytes[8 - len_of_len..])?;
                item.extend_from_slice(&len_bytes[8 - len_of_len..]);
                u64::from_be_bytes(len_bytes)
            }
            other => {
                return Err(format!(
                    "expected an RLP list (a block), found byte {other:#04x}"
                ))
            }
        };
        if payload_len > MAX_BLOCK_BYTES {
            return Err(format!(
                "block claims {payload_len} bytes; the file is corrupt"
            ));
        }
        let header_len = item.len();
        item.resize(header_len + payload_len as usize, 0);
        self.read_exact(&mut item[header_len..])?;
        self.offset += item.len() as u64;
        Ok(Some(item))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), String> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            ErrorKind::UnexpectedEof => "file is truncated inside this block".to_string(),
            _ => format!("read error: {e}"),
        })
    }
}

/// The blocks decoded but not yet written, and what they add up to.
struct PendingBatch {
    writes: WriteBatch,
    blocks: usize,
    last: Option<u64>,
}

/// Import `path` into the store.
pub fn run(ctx: &Context, path: &Path) -> Result<ImportOutcome, CommandError> {
    ctx.checked_chain()?;
    let file = std::fs::File::open(path).map_err(|e| CommandError::Import {
        block: 0,
        offset: 0,
        reason: format!("cannot open {}: {e}", path.display()),
    })?;
    let mut reader = BlockReader {
        inner: BufReader::with_capacity(1 << 20, file),
        offset: 0,
    };
    let mut outcome = ImportOutcome {
        first: 0,
        last: 0,
        blocks: 0,
        transactions: 0,
    };
    let mut batch = PendingBatch {
        writes: WriteBatch::new(),
        blocks: 0,
        last: None,
    };
    // The hash and number of the block the next one must extend.
    let mut parent: Option<(u64, B256)> = None;
    let started = Instant::now();
    let mut last_report = Instant::now();

    loop {
        let offset = reader.offset;
        let expected = parent.map_or(1, |(number, _)| number + 1);
        let fail = |reason: String| CommandError::Import {
            block: expected,
            offset,
            reason,
        };
        let step = match reader.next_item() {
            Ok(None) => break,
            Ok(Some(item)) => {
                decode_and_check(ctx, &item, offset, parent).map_err(|(block, reason)| {
                    CommandError::Import {
                        block,
                        offset,
                        reason,
                    }
                })
            }
            Err(reason) => Err(fail(reason)),
        };
        let block = match step {
            Ok(Some(block)) => block,
            Ok(None) => {
                // The genesis block itself, matching the store's: nothing to write.
                parent = Some((0, ctx.checked_chain()?.genesis_hash));
                continue;
            }
            Err(error) => {
                flush(ctx, &mut batch)?;
                return Err(error);
            }
        };
        queue_block(ctx, &mut batch, &block);
        if outcome.blocks == 0 {
            outcome.first = block.number();
        }
        outcome.blocks += 1;
        outcome.last = block.number();
        outcome.transactions += block.body.transactions.len() as u64;
        parent = Some((block.number(), block.hash));
        if batch.blocks >= BLOCKS_PER_BATCH {
            flush(ctx, &mut batch)?;
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            tracing::info!(
                block = outcome.last,
                blocks = outcome.blocks,
                txs = outcome.transactions,
                bytes = reader.offset,
                blocks_per_sec = (outcome.blocks as f64 / started.elapsed().as_secs_f64()) as u64,
                "importing"
            );
        }
    }
    flush(ctx, &mut batch)?;
    Ok(outcome)
}

/// Decode one item and check it extends `parent` with a body matching its header. `Ok(None)`
/// for a genesis block identical to the store's. Errors carry the block number they concern.
fn decode_and_check(
    ctx: &Context,
    item: &[u8],
    offset: u64,
    parent: Option<(u64, B256)>,
) -> Result<Option<ChainBlock>, (u64, String)> {
    let expected = parent.map_or(1, |(number, _)| number + 1);
    let origin = format!("byte offset {offset}");
    let mut buf = item;
    let block = decode_block(&origin, &mut buf).map_err(|e| (expected, e.reason))?;
    let number = block.number();
    if number == 0 && parent.is_none() {
        let genesis = ctx.checked_chain().map_err(|e| (0, e.to_string()))?;
        if block.hash != genesis.genesis_hash {
            return Err((
                0,
                format!(
                    "genesis block {:#x} is not the store's genesis {:#x}",
                    block.hash, genesis.genesis_hash
                ),
            ));
        }
        return Ok(None);
    }
    let parent_hash = match parent {
        Some((parent_number, hash)) => {
            if number != parent_number + 1 {
                return Err((
                    number,
                    format!(
                        "expected block {} after block {parent_number}",
                        parent_number + 1
                    ),
                ));
            }
            hash
        }
        None => stored_hash(ctx, number - 1).map_err(|reason| (number, reason))?,
    };
    if block.header.parent_hash != parent_hash {
        return Err((
            number,
            format!(
                "parentHash {:#x} does not match block {}'s hash {parent_hash:#x}",
                block.header.parent_hash,
                number - 1
            ),
        ));
    }
    check_body(&block.header, &block.body).map_err(|e| (number, e.to_string()))?;
    Ok(Some(block))
}

/// The hash of the block already in the store at `number`.
fn stored_hash(ctx: &Context, number: u64) -> Result<B256, String> {
    let key = ctx.keys.header(number);
    let header = ctx.store.read(&key).map_err(|e| e.to_string())?;
    header
        .map(|header| header.hash())
        .ok_or_else(|| format!("its parent {key} is not in the store; import earlier blocks first"))
}

fn queue_block(ctx: &Context, batch: &mut PendingBatch, block: &ChainBlock) {
    let number = block.number();
    let keys = &ctx.keys;
    let header = Sealed::new_unchecked(block.header.clone(), block.hash);
    batch.writes.put(keys.header(number), &header);
    batch
        .writes
        .put(keys.transactions(number), &block.body.transactions);
    batch.writes.put(keys.body(number), &block.body);
    for tx in &block.body.transactions {
        batch.writes.put(keys.tx_block(tx.tx_hash()), &number);
    }
    batch.blocks += 1;
    batch.last = Some(number);
}

/// Write the queued blocks, then move `idx:sync:progress` to the last of them.
fn flush(ctx: &Context, batch: &mut PendingBatch) -> Result<(), CommandError> {
    let Some(last) = batch.last.take() else {
        return Ok(());
    };
    ctx.store.write(&batch.writes)?;
    let progress = SyncProgress {
        latest_synced_block: last,
    };
    let mut marker = WriteBatch::new();
    marker.put(ctx.keys.sync_progress(), &progress);
    ctx.store.write(&marker)?;
    batch.writes = WriteBatch::new();
    batch.blocks = 0;
    Ok(())
}
