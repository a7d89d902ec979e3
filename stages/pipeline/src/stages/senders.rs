//! Senders stage: recovers every transaction's sender on a rayon pool (secp256k1, the C
//! library). No durable output.
//!
//! Several blocks are recovered at once and passed on in order. One block at a time would make
//! each block a barrier: a pool thread that finishes its share waits for the others, and on a
//! machine where the other stages want the same cores, a descheduled pool thread holds the
//! whole stage up.
//!
//! A block whose senders cannot be recovered ends the stage without stopping the others: the
//! headers stage loads no more, the blocks before it go on through execution, commit and
//! receipts, and then the error is reported.

use crate::stage::{Shared, Stage, StageError, StageIo};
use alloy_hardforks::EthereumHardforks;
use alloy_primitives::Address;
use crossbeam_channel::{bounded, Receiver, TryRecvError};
use evm::chain::ChainSpec;
use primitives::block::ChainBlock;
use primitives::load::{recover_senders, LoadError};
use primitives::stage_id::StageId;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

const STAGE: StageId = StageId::Senders;

/// A block with its recovered senders, in transaction order.
pub type SendersBlock = (ChainBlock, Vec<Address>);

/// Blocks under recovery at once, per pool thread.
const BLOCKS_IN_FLIGHT_PER_THREAD: usize = 4;

/// A block's recovery as the pool reports it: `None` if it panicked.
type Recovered = (ChainBlock, Option<Result<Vec<Address>, LoadError>>);

/// A block handed to the pool: where its result will come, and when it was handed over.
type InFlight = (Receiver<Recovered>, Instant);

/// The senders stage: the rayon pool that recovers signatures.
pub struct SendersStage<'a> {
    /// A pool of the stage's own, or `None` for the rayon pool the caller runs in.
    pool: Option<&'a rayon::ThreadPool>,
}

impl<'a> SendersStage<'a> {
    /// Recover on `pool` (the daemon's: the stage's own threads).
    pub fn new(pool: &'a rayon::ThreadPool) -> Self {
        Self { pool: Some(pool) }
    }

    /// Recover on the rayon pool the caller runs in (`ef-test`, whose cases already run in
    /// parallel: waiting on another pool from inside one would let a worker start more cases
    /// on the same stack).
    pub fn in_current_pool() -> Self {
        Self { pool: None }
    }

    /// Run `work` on the stage's pool.
    fn install<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        match self.pool {
            Some(pool) => pool.install(work),
            None => work(),
        }
    }

    /// Recover the senders of every block from `io.input`, several blocks at a time, and pass
    /// them on in block order.
    pub fn run(
        &mut self,
        shared: &Shared,
        io: StageIo<ChainBlock, SendersBlock>,
    ) -> Result<(), StageError> {
        let meter = shared.meter(STAGE);
        let threads = self.pool.map_or_else(rayon::current_num_threads, |pool| {
            pool.current_num_threads()
        });
        let window = BLOCKS_IN_FLIGHT_PER_THREAD * threads.max(1);
        let mut in_flight: VecDeque<InFlight> = VecDeque::with_capacity(window);
        let mut input_open = true;
        loop {
            // Hand over what is waiting (waiting for input only when nothing is in flight).
            while input_open && in_flight.len() < window && !shared.control.stopping() {
                let block = if in_flight.is_empty() {
                    meter.recv(STAGE, &io.input)
                } else {
                    match io.input.try_recv() {
                        Ok(block) => Some(block),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => None,
                    }
                };
                let Some(block) = block else {
                    input_open = false;
                    break;
                };
                in_flight.push_back(spawn_recovery(&shared.spec, self.pool, block));
            }
            if shared.control.stopping() {
                break;
            }
            let Some((result, started)) = in_flight.pop_front() else {
                break;
            };
            let (block, senders) = result.recv().map_err(|_| {
                failed(
                    shared,
                    StageError::Thread {
                        stage: STAGE,
                        reason: "a recovery job vanished".into(),
                    },
                )
            })?;
            let senders = senders
                .ok_or_else(|| {
                    failed(
                        shared,
                        StageError::Thread {
                            stage: STAGE,
                            reason: format!("block {}: sender recovery panicked", block.number()),
                        },
                    )
                })?
                .map_err(|error| failed(shared, StageError::block(STAGE, error)))?;
            shared.record_block_progress(STAGE, &block, started);
            crate::stage::send_all(shared, STAGE, &io.outputs, vec![(block, senders)]);
        }
        Ok(())
    }
}

impl Stage for SendersStage<'_> {
    type Input = ChainBlock;
    type Output = SendersBlock;
    const ID: StageId = STAGE;

    /// Recover the senders of `input`'s blocks on the pool.
    fn execute(
        &mut self,
        shared: &Shared,
        input: Vec<ChainBlock>,
    ) -> Result<Vec<SendersBlock>, StageError> {
        input
            .into_iter()
            .map(|block| {
                let started = Instant::now();
                let homestead = shared.spec.is_homestead_active_at_block(block.number());
                let senders = self
                    .install(|| recover_senders(&block, homestead))
                    .map_err(|error| StageError::block(STAGE, error))?;
                shared.record_block_progress(STAGE, &block, started);
                Ok((block, senders))
            })
            .collect()
    }
}

/// Start recovering `block`'s senders on `pool`.
fn spawn_recovery(
    spec: &Arc<ChainSpec>,
    pool: Option<&rayon::ThreadPool>,
    block: ChainBlock,
) -> InFlight {
    let homestead = spec.is_homestead_active_at_block(block.number());
    let (result_tx, result_rx) = bounded(1);
    let job = move || {
        let senders = catch_unwind(AssertUnwindSafe(|| recover_senders(&block, homestead))).ok();
        // The stage may have stopped and dropped the receiver: nothing then waits for it.
        let _ = result_tx.send((block, senders));
    };
    match pool {
        Some(pool) => pool.spawn(job),
        None => rayon::spawn(job),
    }
    (result_rx, Instant::now())
}

/// `error` for a block that failed; the headers stage is told to load no more, while the
/// stages after this one finish the blocks before it.
fn failed(shared: &Shared, error: StageError) -> StageError {
    shared.control.stop_loading();
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::{BlockFailure, ErrorAction, StageIo};
    use crate::test_utils::{geth_chain, SyncedStore, CHAIN_LENGTH};
    use alloy_consensus::crypto::secp256k1::sign_message;
    use alloy_consensus::{SignableTransaction, Signed, Transaction, TxEip1559, TxEnvelope};
    use alloy_primitives::{address, b256, Signature, U256};
    use std::collections::BTreeMap;

    /// Every sender `txinfo.json` names is the one recovered for its transaction.
    fn assert_known_senders(recovered: &[SendersBlock]) {
        let known = &geth_chain().senders;
        assert!(
            known.len() >= 378,
            "txinfo.json names {} senders",
            known.len()
        );
        for tx in known {
            let (block, senders) = &recovered[tx.block as usize - 1];
            assert_eq!(block.number(), tx.block);
            assert_eq!(*block.body.transactions[tx.index].tx_hash(), tx.hash);
            assert_eq!(
                senders[tx.index], tx.sender,
                "block {} transaction {}",
                tx.block, tx.index
            );
        }
        // Each sender's transactions carry its nonces in order from zero, up to the nonce
        // the head state gives it.
        let mut nonces: BTreeMap<Address, Vec<u64>> = BTreeMap::new();
        for (block, senders) in recovered {
            assert_eq!(senders.len(), block.body.transactions.len());
            for (tx, sender) in block.body.transactions.iter().zip(senders) {
                nonces.entry(*sender).or_default().push(tx.nonce());
            }
        }
        for (sender, nonces) in nonces {
            let count = nonces.len() as u64;
            assert_eq!(nonces, (0..count).collect::<Vec<_>>(), "nonces of {sender}");
            assert_eq!(geth_chain().head_state[&sender].nonce, count, "{sender}");
        }
    }

    #[test]
    fn recovered_senders_are_the_ones_txinfo_names() {
        let store = SyncedStore::new(CHAIN_LENGTH);
        let blocks = store.loaded(1, CHAIN_LENGTH);
        let recovered = SendersStage::in_current_pool()
            .execute(&store.shared, blocks)
            .expect("recover");
        assert_known_senders(&recovered);
    }

    /// [`SendersStage::run`] on a pool of two threads over `blocks`; with what it passed on.
    fn run_on_two_threads(
        store: &SyncedStore,
        blocks: Vec<ChainBlock>,
    ) -> (Result<(), StageError>, Vec<SendersBlock>) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("pool");
        let (input, input_rx) = crossbeam_channel::unbounded();
        let (output_tx, output) = crossbeam_channel::unbounded();
        for block in blocks {
            input.send(block).expect("send");
        }
        drop(input);
        let io = StageIo {
            input: input_rx,
            outputs: vec![output_tx],
        };
        let result = SendersStage::new(&pool).run(&store.shared, io);
        (result, output.try_iter().collect())
    }

    #[test]
    fn run_passes_blocks_on_in_order_with_their_senders() {
        let store = SyncedStore::new(CHAIN_LENGTH);
        let (result, recovered) = run_on_two_threads(&store, store.loaded(1, CHAIN_LENGTH));
        result.expect("run");
        let numbers: Vec<u64> = recovered.iter().map(|(b, _)| b.number()).collect();
        assert_eq!(numbers, (1..=CHAIN_LENGTH).collect::<Vec<_>>());
        assert_known_senders(&recovered);
    }

    /// `block` with its first EIP-1559 transaction signed again by `sign`; returns the
    /// transaction's position.
    fn resign(block: &mut ChainBlock, sign: impl Fn(&Signed<TxEip1559>) -> Signature) -> usize {
        let (index, resigned) = block
            .body
            .transactions
            .iter()
            .enumerate()
            .find_map(|(index, tx)| match tx {
                TxEnvelope::Eip1559(signed) => {
                    let signature = sign(signed);
                    Some((index, signed.tx().clone().into_signed(signature).into()))
                }
                _ => None,
            })
            .expect("an EIP-1559 transaction");
        block.body.transactions[index] = resigned;
        index
    }

    /// `block` with the signature of its first EIP-1559 transaction made invalid (r = 0);
    /// returns the transaction's position.
    fn with_bad_signature(block: &mut ChainBlock) -> usize {
        resign(block, |signed| {
            let signature = signed.signature();
            Signature::new(U256::ZERO, signature.s(), signature.v())
        })
    }

    #[test]
    fn each_transaction_is_recovered_on_its_own() {
        // The fixture chain has one sender; a transaction signed by another key (the first
        // development account of Hardhat and Anvil) must be recovered to that key's address.
        let secret = b256!("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
        let owner = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
        let number = block_with_eip1559();
        let store = SyncedStore::new(number);
        let mut blocks = store.loaded(number, number);
        let index = resign(&mut blocks[0], |signed| {
            sign_message(secret, signed.signature_hash()).expect("sign")
        });
        let recovered = SendersStage::in_current_pool()
            .execute(&store.shared, blocks)
            .expect("recover");
        let senders = &recovered[0].1;
        let fixture_sender = geth_chain().senders[0].sender;
        for (at, sender) in senders.iter().enumerate() {
            let expected = if at == index { owner } else { fixture_sender };
            assert_eq!(*sender, expected, "transaction {at}");
        }
    }

    /// A block with an EIP-1559 transaction (type 2 in the chain file).
    fn block_with_eip1559() -> u64 {
        (1..=CHAIN_LENGTH)
            .find(|&n| geth_chain().block(n).tx_types.contains(&2))
            .expect("an EIP-1559 transaction in the chain")
    }

    #[test]
    fn a_bad_signature_is_an_error_naming_block_and_transaction() {
        let number = block_with_eip1559();
        let store = SyncedStore::new(number);
        let mut blocks = store.loaded(number - 1, number);
        let index = with_bad_signature(&mut blocks[1]);
        let hash = *blocks[1].body.transactions[index].tx_hash();
        let error = SendersStage::in_current_pool()
            .execute(&store.shared, blocks)
            .expect_err("bad signature");
        let StageError::Block {
            stage: StageId::Senders,
            failure:
                BlockFailure::Load(LoadError::Signature {
                    block,
                    index: at,
                    hash: named,
                    ..
                }),
        } = &error
        else {
            panic!("not a signature error of the senders stage: {error:?}");
        };
        assert_eq!((*block, *at, *named), (number, index, hash));
        let message = error.to_string();
        assert!(
            message.contains(&format!("block {number}"))
                && message.contains(&format!("transaction {index}"))
                && message.contains(&format!("{hash:#x}")),
            "{message}"
        );
        assert_eq!(error.action(), ErrorAction::Stop);
    }

    #[test]
    fn run_passes_on_the_blocks_before_a_bad_signature_and_stops_loading() {
        let number = block_with_eip1559();
        let store = SyncedStore::new(number + 1);
        let mut blocks = store.loaded(number - 1, number + 1);
        with_bad_signature(&mut blocks[1]);
        let (result, recovered) = run_on_two_threads(&store, blocks);
        let error = result.expect_err("bad signature");
        assert!(
            error.to_string().contains(&format!("block {number}")),
            "{error}"
        );
        let passed: Vec<u64> = recovered.iter().map(|(b, _)| b.number()).collect();
        assert_eq!(passed, [number - 1]);
        assert!(store.shared.control.loading_stopped());
        assert!(
            !store.shared.control.aborted(),
            "the stages after senders finish"
        );
    }
}
