//! The stages run one after another on the calling thread, one block at a time: the daemon's
//! stage code without its threads and channels, for `ef-test` (and tests) that must see each
//! block's outcome before the next block is written.
//!
//! A block runs through headers (load and checks), senders, execution (with its record),
//! merkle (its state root checked, when the store keeps tries), commit and receipts, exactly as
//! the daemon would; a block that fails leaves nothing of its own in the store and the pipeline
//! where it was.

use crate::stage::{Shared, Stage, StageError, Unwind};
use crate::stages::commit::{CommitSettings, CommitStage};
use crate::stages::execution::{ExecutionSettings, ExecutionStage};
use crate::stages::headers::{HeadersSettings, HeadersStage};
use crate::stages::merkle::{MerkleSettings, MerkleStage, VerifyRoot};
use crate::stages::receipts::ReceiptsStage;
use crate::stages::senders::SendersStage;
use crate::startup::StartPoint;
use crate::state::StateLayers;
use alloy_consensus::Header;
use alloy_primitives::B256;
use primitives::block::ChainBlock;
use std::time::Duration;

/// The stages of a serial run, at the head they have reached.
pub struct SerialPipeline<'a> {
    headers: HeadersSettings,
    senders: SendersStage<'a>,
    execution: ExecutionStage<'a>,
    merkle: MerkleStage,
    commit: CommitStage,
    receipts: ReceiptsStage,
    /// The last block through every stage, and its hash.
    head: (u64, B256),
    /// The last block's header, and the layers execution reads through: where execution goes
    /// back to after a block is refused.
    head_header: Header,
    layers: &'a StateLayers,
}

impl<'a> SerialPipeline<'a> {
    /// Stages over `shared` from `start` (nothing pending), `parent` being the header of the
    /// executed head; senders are recovered in the rayon pool the caller runs in. With tries
    /// (`start.merkle`), every block's state root is checked.
    pub fn new(
        shared: &'a Shared,
        start: StartPoint,
        parent: Header,
        parent_hash: B256,
        history_ttl: Duration,
    ) -> Self {
        let head = (parent.number, parent_hash);
        let head_header = parent.clone();
        Self {
            headers: HeadersSettings {
                batch_size: 1,
                poll_interval: Duration::ZERO,
                exit_at_head: true,
            },
            senders: SendersStage::in_current_pool(),
            execution: ExecutionStage::new(
                ExecutionSettings {
                    batch_size: 1,
                    retry_interval: Duration::ZERO,
                    prewarm: crate::state::prewarm::PrewarmMode::KnownKeys,
                    log_transactions: false,
                },
                &shared.layers,
                parent,
            ),
            merkle: MerkleStage::new(
                MerkleSettings {
                    verify: match start.merkle {
                        Some(_) => VerifyRoot::Every,
                        None => VerifyRoot::Off,
                    },
                    cached_levels: crate::stages::merkle::DEFAULT_CACHED_LEVELS,
                },
                start.merkle.unwrap_or(0),
            ),
            commit: CommitStage::new(
                CommitSettings { history_ttl },
                start.committed,
                start.total_txs,
            ),
            receipts: ReceiptsStage::new(start.receipts),
            head,
            head_header,
            layers: &shared.layers,
        }
    }

    /// The last block through every stage, and its hash.
    pub fn head(&self) -> (u64, B256) {
        self.head
    }

    /// Run the synced block after the head through every stage; returns it.
    pub fn run_next(&mut self, shared: &Shared) -> Result<ChainBlock, StageError> {
        let (number, hash) = self.head;
        let mut headers = HeadersStage::new(self.headers.clone(), number + 1, hash);
        let blocks = headers.execute(shared, vec![number + 1..=number + 1])?;
        let recovered = self.senders.execute(shared, blocks)?;
        let block = recovered.first().map(|(block, _)| block.clone());
        let records = self.execution.execute(shared, recovered)?;
        let verified = match self.merkle.execute(shared, records) {
            Ok(verified) => verified,
            Err(error) => {
                // Nothing of the block may stay: its record goes, as after a reorg.
                self.unwind_execution(shared, number)?;
                return Err(error);
            }
        };
        self.commit.execute(shared, verified.clone())?;
        self.receipts.execute(shared, verified)?;
        let block = block.ok_or_else(|| StageError::Thread {
            stage: HeadersStage::ID,
            reason: format!("block {} loaded nothing", number + 1),
        })?;
        self.head = (block.number(), block.hash);
        self.head_header = block.header.clone();
        Ok(block)
    }

    /// Undo every block above `fork` (newest first), each stage its own output, and continue
    /// from `fork` whose header is `parent`.
    pub fn unwind_to(
        &mut self,
        shared: &'a Shared,
        fork: u64,
        parent: Header,
        parent_hash: B256,
    ) -> Result<(), StageError> {
        let stages: &mut [&mut dyn Unwind] = &mut [
            &mut self.receipts,
            &mut self.merkle,
            &mut self.commit,
            &mut self.execution,
        ];
        crate::reorg::unwind_to(shared, fork, self.head.0, stages)?;
        self.execution.restart_at(&shared.layers, parent.clone());
        self.head = (fork, parent_hash);
        self.head_header = parent;
        Ok(())
    }

    /// Undo the execution stage's output above `head` (a block executed but refused later),
    /// and take execution back to `head`: its kept state and next parent.
    fn unwind_execution(&mut self, shared: &Shared, head: u64) -> Result<(), StageError> {
        let executed = shared
            .store
            .checkpoint_block(ExecutionStage::ID)?
            .unwrap_or(head);
        crate::reorg::unwind_to(shared, head, executed, &mut [&mut self.execution])?;
        self.execution
            .restart_at(self.layers, self.head_header.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::stage::{BlockFailure, StageError};
    use crate::stages::merkle::MerkleError;
    use crate::test_utils::{assert_same_snapshot, geth_chain, SyncedStore};
    use alloy_primitives::keccak256;
    use evm::error::BlockError;

    #[test]
    fn a_failing_block_leaves_nothing_and_the_pipeline_where_it_was() {
        let chain = geth_chain();
        let wrong_root = keccak256(chain.block(11).header.state_root);
        // A result that differs from the header (execution), a state that does (merkle).
        for field in ["gasUsed", "stateRoot"] {
            let store = SyncedStore::new(12);
            let mut pipeline = store.execute_to(10);
            store.replace_header(11, |header| match field {
                "gasUsed" => header.gas_used += 1,
                _ => header.state_root = wrong_root,
            });
            // Checkpoint times aside: refusing the block after execution moves the execution
            // checkpoint back, with a new time.
            let before = store.timeless_snapshot();
            let error = pipeline.run_next(&store.shared).expect_err("block 11");
            let refused = match &error {
                StageError::Block {
                    failure: BlockFailure::Execution(BlockError::Mismatch { block, .. }),
                    ..
                } => *block,
                StageError::Block {
                    failure:
                        BlockFailure::StateRoot(MerkleError::StateRoot {
                            block, expected, ..
                        }),
                    ..
                } if *expected == wrong_root => *block,
                _ => panic!("{field}: {error:?}"),
            };
            assert_eq!(refused, 11, "{field}: {error}");
            let what = format!("{field}: nothing of block 11 written");
            assert_same_snapshot(&store.timeless_snapshot(), &before, &what);
            assert_eq!(pipeline.head(), (10, chain.hash(10)));
            store.sync(11..=11);
            for number in 11..=12 {
                let block = pipeline.run_next(&store.shared).expect("run");
                assert_eq!((block.number(), block.hash), (number, chain.hash(number)));
            }
            assert_eq!(pipeline.head(), (12, chain.hash(12)), "{field}");
        }
    }
}
