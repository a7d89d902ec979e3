//! A test's blocks as a tree of branches, imported as a node imports them: each block on top of
//! its parent, whichever branch that is on. The serial pipeline executes one branch at a time;
//! to import a block whose parent is not the block it executed last, the pipeline is unwound to
//! where the two branches meet (`SerialPipeline::unwind_to`, the daemon's reorg path) and the
//! parent's branch is executed from there, its blocks written into the store first as a syncer
//! rewrites a reorganised chain. Every block is executed on top of its parent, so every block
//! gets every check, whichever branch it is on.
//!
//! The head is what a node's fork choice makes it: before the merge the branch with the most
//! total difficulty (the first to reach it on a tie); from the merge, where the total
//! difficulty no longer grows, the last valid block imported (the consensus layer names the
//! newest payload). Fork choice and total difficulty are consensus, the syncer's business; here
//! the runner stands in for the syncer.

use alloy_consensus::{Header, Sealed};
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::map::HashMap;
use alloy_primitives::{B256, U256};
use pipeline::serial::SerialPipeline;
use pipeline::stage::Shared;
use primitives::block::ChainBlock;
use primitives::store::WriteBatch;

/// Why a block was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The block is invalid (or its parent unknown): the reason.
    #[error("{0}")]
    Rejected(String),
    /// The runner could not do its part (a store failure, or a block accepted before that now
    /// fails): the test fails whatever it expects.
    #[error("{0}")]
    Runner(String),
}

/// A block imported, with the total difficulty of its branch up to it.
struct Imported {
    block: ChainBlock,
    total_difficulty: U256,
}

/// The imported blocks, the branch the pipeline has executed, and the head.
pub struct BlockTree<'a> {
    shared: &'a Shared,
    pipeline: SerialPipeline<'a>,
    imported: HashMap<B256, Imported>,
    /// The branch the pipeline has executed: block hashes by number, genesis first.
    executed: Vec<B256>,
    /// The fork choice's head.
    head: B256,
}

impl<'a> BlockTree<'a> {
    /// A tree holding `genesis`, executed by `pipeline` (which starts there).
    pub fn new(shared: &'a Shared, pipeline: SerialPipeline<'a>, genesis: ChainBlock) -> Self {
        let hash = genesis.hash;
        let total_difficulty = genesis.header.difficulty;
        Self {
            shared,
            pipeline,
            imported: HashMap::from_iter([(
                hash,
                Imported {
                    block: genesis,
                    total_difficulty,
                },
            )]),
            executed: vec![hash],
            head: hash,
        }
    }

    /// The fork choice's head.
    pub fn head(&self) -> B256 {
        self.head
    }

    /// Import `block`: execute it on top of its parent, and make it the head when the fork
    /// choice prefers it. A block imported before is accepted again without effect.
    pub fn import(&mut self, block: ChainBlock) -> Result<(), ImportError> {
        if self.imported.contains_key(&block.hash) {
            return Ok(());
        }
        let parent_hash = block.header.parent_hash;
        let Some(parent_difficulty) = self
            .imported
            .get(&parent_hash)
            .map(|parent| parent.total_difficulty)
        else {
            return Err(ImportError::Rejected(format!(
                "block {} has unknown parent {parent_hash:#x}",
                block.number()
            )));
        };
        self.execute_branch_to(parent_hash)?;
        self.execute(&block)?;
        let hash = block.hash;
        let total_difficulty = parent_difficulty.saturating_add(block.header.difficulty);
        let preferred = self.prefers(&block.header, total_difficulty);
        self.executed.push(hash);
        self.imported.insert(
            hash,
            Imported {
                block,
                total_difficulty,
            },
        );
        if preferred {
            self.head = hash;
        }
        Ok(())
    }

    /// Execute the head's branch, so that the store holds the head's state.
    pub fn settle(&mut self) -> Result<(), ImportError> {
        self.execute_branch_to(self.head)
    }

    /// Whether the fork choice prefers a new block (its header, its branch's total difficulty)
    /// to the head.
    fn prefers(&self, header: &Header, total_difficulty: U256) -> bool {
        if self.shared.spec.is_paris_active_at_block(header.number) {
            return true;
        }
        self.imported
            .get(&self.head)
            .is_none_or(|head| total_difficulty > head.total_difficulty)
    }

    /// Unwind the pipeline to where `target`'s branch meets the executed one, then execute
    /// that branch up to `target` (all imported before, so all valid).
    fn execute_branch_to(&mut self, target: B256) -> Result<(), ImportError> {
        let mut branch = Vec::new();
        let mut hash = target;
        let (fork, fork_header) = loop {
            let imported = self.imported.get(&hash).ok_or_else(|| {
                ImportError::Runner(format!("block {hash:#x} was never imported"))
            })?;
            let number = imported.block.number();
            if self.executed.get(number as usize) == Some(&hash) {
                break (number, imported.block.header.clone());
            }
            branch.push(imported.block.clone());
            hash = imported.block.header.parent_hash;
        };
        if fork + 1 < self.executed.len() as u64 {
            self.pipeline
                .unwind_to(self.shared, fork, fork_header, hash)
                .map_err(|e| ImportError::Runner(format!("unwinding to block {fork}: {e}")))?;
            self.executed.truncate(fork as usize + 1);
        }
        for block in branch.into_iter().rev() {
            self.execute(&block).map_err(|e| {
                ImportError::Runner(format!(
                    "block {} accepted before, now: {e}",
                    block.number()
                ))
            })?;
            self.executed.push(block.hash);
        }
        Ok(())
    }

    /// Write `block` as the syncer would, then run it through the stages as the daemon does.
    /// On rejection the block's keys are removed again and the state is untouched.
    fn execute(&mut self, block: &ChainBlock) -> Result<(), ImportError> {
        let store = self.shared.store.store();
        let keys = self.shared.store.keys();
        let number = block.number();
        let mut input = WriteBatch::new();
        input
            .put(
                keys.header(number),
                &Sealed::new_unchecked(block.header.clone(), block.hash),
            )
            .put(keys.transactions(number), &block.body.transactions)
            .put(keys.body(number), &block.body);
        let store_error = |e: primitives::store::StoreError| ImportError::Runner(e.to_string());
        store.write(&input).map_err(store_error)?;
        let Err(error) = self.pipeline.run_next(self.shared) else {
            return Ok(());
        };
        let mut undo = WriteBatch::new();
        undo.remove(keys.header(number))
            .remove(keys.transactions(number))
            .remove(keys.body(number));
        store.write(&undo).map_err(store_error)?;
        Err(ImportError::Rejected(error.to_string()))
    }
}

/// The first block of a merge by total difficulty: the child of the first block whose branch
/// reaches `terminal_total_difficulty`, among `genesis` and the test's `blocks` (as the
/// syncer, following consensus, would know it). Every branch must merge at the same height, as
/// a chain spec names one merge block; a block-number fork cannot express anything else.
pub fn merge_block(
    genesis: &ChainBlock,
    blocks: &[&ChainBlock],
    terminal_total_difficulty: U256,
) -> Result<u64, String> {
    let mut total: HashMap<B256, U256> =
        HashMap::from_iter([(genesis.hash, genesis.header.difficulty)]);
    // (number, whether its parent's branch reached the terminal total difficulty)
    let mut children = Vec::new();
    for block in blocks {
        let Some(parent) = total.get(&block.header.parent_hash).copied() else {
            continue;
        };
        total.insert(block.hash, parent.saturating_add(block.header.difficulty));
        children.push((block.number(), parent >= terminal_total_difficulty));
    }
    let merge = if genesis.header.difficulty >= terminal_total_difficulty {
        genesis.number() + 1
    } else {
        children
            .iter()
            .filter(|(_, merged)| *merged)
            .map(|(number, _)| *number)
            .min()
            .unwrap_or(u64::MAX)
    };
    match children
        .iter()
        .find(|(number, merged)| (*number >= merge) != *merged)
    {
        Some((number, _)) => Err(format!(
            "the branches reach the terminal total difficulty {terminal_total_difficulty} at \
             different heights (block {number} against {merge})"
        )),
        None => Ok(merge),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::BlockBody;

    fn block(parent: &ChainBlock, difficulty: u64, tag: u64) -> ChainBlock {
        let header = Header {
            parent_hash: parent.hash,
            number: parent.number() + 1,
            difficulty: U256::from(difficulty),
            nonce: tag.into(),
            ..Header::default()
        };
        ChainBlock {
            hash: header.hash_slow(),
            header,
            body: BlockBody::default(),
        }
    }

    fn genesis(difficulty: u64) -> ChainBlock {
        let header = Header {
            difficulty: U256::from(difficulty),
            ..Header::default()
        };
        ChainBlock {
            hash: header.hash_slow(),
            header,
            body: BlockBody::default(),
        }
    }

    /// `len` blocks of `difficulty` on top of `from`, tagged `tag`.
    fn branch(from: &ChainBlock, len: usize, difficulty: u64, tag: u64) -> Vec<ChainBlock> {
        let mut blocks: Vec<ChainBlock> = Vec::new();
        for _ in 0..len {
            let parent = blocks.last().unwrap_or(from);
            blocks.push(block(parent, difficulty, tag));
        }
        blocks
    }

    #[test]
    fn the_merge_is_the_child_of_the_first_block_to_reach_the_terminal_difficulty() {
        // ethereum/tests' `ArrowGlacierToParisAtDiffC0000`: 0x20000 a block from a genesis of
        // 0x20000, so block 5 reaches 0xC0000 and block 6 is the first proof-of-stake block,
        // on both branches.
        let genesis = genesis(0x20000);
        let main = branch(&genesis, 7, 0x20000, 1);
        let fork = branch(&genesis, 6, 0x20000, 2);
        let all: Vec<&ChainBlock> = main.iter().chain(&fork).collect();
        assert_eq!(merge_block(&genesis, &all, U256::from(0xC0000)), Ok(6));
        let short: Vec<&ChainBlock> = main[..5].iter().collect();
        assert_eq!(
            merge_block(&genesis, &short, U256::from(0xC0000)),
            Ok(u64::MAX)
        );
        assert_eq!(
            merge_block(&genesis, &all, U256::from(0x20000)),
            Ok(genesis.number() + 1)
        );
    }

    #[test]
    fn branches_merging_at_different_heights_are_refused() {
        let genesis = genesis(0x20000);
        let light = branch(&genesis, 7, 0x20000, 1);
        let heavy = branch(&genesis, 6, 0x40000, 2);
        let all: Vec<&ChainBlock> = light.iter().chain(&heavy).collect();
        assert!(merge_block(&genesis, &all, U256::from(0xC0000)).is_err());
    }
}
