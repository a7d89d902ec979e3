//! The transaction mix: signing keys derived from the seed, a seeded random source, and the
//! transactions of each block (ETH transfers, ERC-20 transfers, approvals and `transferFrom`s,
//! pair swaps, token deployments, storage fills), legacy and EIP-1559 mixed, with a few that
//! fail by design (a transfer above the balance, a swap below its minimum output). With many
//! accounts the mix is [`routed`]'s: swaps through a router and a skewed access pattern.

pub mod routed;

use super::contracts::{self, FILL_SLOTS};
use super::layout::Layout;
use super::GenError;
use alloy_consensus::crypto::secp256k1::{recover_signer, sign_message};
use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy_primitives::{keccak256, Address, Bytes, TxKind, B256, U256};
use rayon::prelude::*;
use routed::Routed;

/// Signing keys the workload sends from.
pub const ACCOUNTS: usize = 3000;
/// Keys 0..TRADERS swap; the genesis grants each pair an allowance on both its tokens from them.
pub const TRADERS: usize = 256;
/// Every key's genesis balance: one million ether.
pub const ACCOUNT_ETHER: u128 = 1_000_000 * ONE_ETHER;
/// Every key's genesis balance of each genesis token.
pub const ACCOUNT_TOKENS: u128 = 1_000_000 * ONE_ETHER;
/// What a deployed token credits its deployer.
pub const DEPLOYED_SUPPLY: u128 = 1_000_000_000 * ONE_ETHER;
/// An amount above any balance: the transfers that must fail use it.
pub const UNPAYABLE: U256 = U256::from_limbs([0, 0, 0, 1 << 60]);
const ONE_ETHER: u128 = 1_000_000_000_000_000_000;
const GWEI: u128 = 1_000_000_000;

/// A seeded random source (SplitMix64): the same seed gives the same workload everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A source for `seed` and `stream` (independent streams for independent uses).
    pub fn new(seed: u64, stream: u64) -> Self {
        Self(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// True with probability `per_mille`/1000.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// A signing key, its address and its next nonce.
#[derive(Debug, Clone)]
pub struct Key {
    secret: B256,
    /// The address the key signs for.
    pub address: Address,
    nonce: u64,
}

impl Key {
    /// Key `index` of `seed`; its address is the signer recovered from a signature it made.
    fn derive(seed: u64, index: usize) -> Result<Self, GenError> {
        let mut material = b"evm-executor gen key".to_vec();
        material.extend_from_slice(&seed.to_be_bytes());
        material.extend_from_slice(&(index as u64).to_be_bytes());
        let secret = keccak256(&material);
        let probe = keccak256(secret);
        let signature = sign_message(secret, probe)
            .map_err(|e| GenError::Signing(format!("key {index}: {e}")))?;
        let address = recover_signer(&signature, probe)
            .map_err(|e| GenError::Signing(format!("key {index}: {e}")))?;
        Ok(Self {
            secret,
            address,
            nonce: 0,
        })
    }
}

/// How many transactions of each kind the workload produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mix {
    /// Plain ETH transfers.
    pub eth_transfers: u64,
    /// ERC-20 `transfer`s (the failing ones included).
    pub token_transfers: u64,
    /// ERC-20 `approve`s.
    pub approvals: u64,
    /// ERC-20 `transferFrom`s.
    pub transfer_froms: u64,
    /// Pair swaps (the failing ones included).
    pub swaps: u64,
    /// Token deployments.
    pub creations: u64,
    /// Storage fills.
    pub fills: u64,
    /// Transactions built to revert.
    pub designed_failures: u64,
    /// Legacy (type 0) transactions.
    pub legacy: u64,
    /// Swaps through two pairs (with a router).
    pub two_hop_swaps: u64,
    /// Transactions that touch an account outside the hot set (with many accounts).
    pub cold: u64,
    /// Transactions that send to an address never seen before.
    pub fresh: u64,
}

/// Builds the transactions block by block; what a block sets up (approvals, deployed tokens) is
/// used only from the next block on. Swaps come from the first [`TRADERS`] keys, or with many
/// accounts from the hot set and the accounts that approved the router.
pub struct Workload {
    chain_id: u64,
    seed: u64,
    rng: Rng,
    keys: Vec<Key>,
    /// Accounts after the keys, which only receive (with many accounts).
    receivers: Vec<Address>,
    layout: Layout,
    /// Key-to-key allowances usable by `transferFrom`, in the order they were granted.
    delegations: Vec<(usize, Address, usize)>,
    deployed: Vec<(Address, usize)>,
    pending_delegations: Vec<(usize, Address, usize)>,
    pending_deployed: Vec<(Address, usize)>,
    token_init_code: Bytes,
    fresh_recipients: u64,
    /// The many-accounts mix's state; `None` for the standard mix.
    routed: Option<Routed>,
    /// Whether the transaction being built picked an account outside the hot set.
    touched_cold: bool,
    /// What has been produced so far.
    pub mix: Mix,
}

/// Calldata: the selector of `signature` and the 32-byte words.
fn calldata(signature: &str, words: &[U256]) -> Bytes {
    let mut data = contracts::selector(signature).to_vec();
    for word in words {
        data.extend_from_slice(&word.to_be_bytes::<32>());
    }
    data.into()
}

/// The address of account `index` beyond the keys: one no key signs for.
fn receiver(seed: u64, index: usize) -> Address {
    let mut material = b"evm-executor gen account".to_vec();
    material.extend_from_slice(&seed.to_be_bytes());
    material.extend_from_slice(&(index as u64).to_be_bytes());
    Address::from_slice(&keccak256(&material)[12..])
}

fn word(address: Address) -> U256 {
    U256::from_be_slice(address.as_slice())
}

impl Workload {
    /// The standard workload of `seed` over the contracts of `layout`: [`ACCOUNTS`] keys picked
    /// uniformly.
    pub fn new(chain_id: u64, seed: u64, layout: Layout) -> Result<Self, GenError> {
        Self::build(chain_id, seed, layout, ACCOUNTS, None)
    }

    /// The workload of `seed` over `accounts` accounts and the contracts of `layout` (which must
    /// have a router), in [`routed`]'s mix: the first [`routed::signing_keys`] accounts are
    /// keys, the rest only receive.
    pub fn with_accounts(
        chain_id: u64,
        seed: u64,
        layout: Layout,
        accounts: usize,
    ) -> Result<Self, GenError> {
        if layout.router.is_none() {
            return Err(GenError::Internal("the routed mix needs a router".into()));
        }
        let routed = Routed::new(accounts);
        let mut workload = Self::build(
            chain_id,
            seed,
            layout,
            routed::signing_keys(accounts),
            Some(routed),
        )?;
        workload.receivers = (workload.keys.len()..accounts)
            .into_par_iter()
            .map(|index| receiver(seed, index))
            .collect();
        Ok(workload)
    }

    fn build(
        chain_id: u64,
        seed: u64,
        layout: Layout,
        keys: usize,
        routed: Option<Routed>,
    ) -> Result<Self, GenError> {
        let keys = (0..keys)
            .into_par_iter()
            .map(|index| Key::derive(seed, index))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            chain_id,
            seed,
            rng: Rng::new(seed, 1),
            keys,
            receivers: Vec::new(),
            layout,
            delegations: Vec::new(),
            deployed: Vec::new(),
            pending_delegations: Vec::new(),
            pending_deployed: Vec::new(),
            token_init_code: contracts::token_init_code(U256::from(DEPLOYED_SUPPLY))?,
            fresh_recipients: 0,
            routed,
            touched_cold: false,
            mix: Mix::default(),
        })
    }

    /// Draw the choices of the blocks from here on from `seed` (the keys and what the blocks
    /// so far set up stay): a second branch of the same chain.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = Rng::new(seed, 1);
    }

    /// The hot set's size (keys `0..hot`), with many accounts.
    pub fn hot_accounts(&self) -> Option<usize> {
        self.routed.as_ref().map(|routed| routed.hot)
    }

    /// Every account's address: the keys' in key order, then the receivers'.
    pub fn addresses(&self) -> impl Iterator<Item = Address> + '_ {
        self.keys
            .iter()
            .map(|key| key.address)
            .chain(self.receivers.iter().copied())
    }

    /// `count` transactions for the next block with their senders (built in order, signed in
    /// parallel).
    pub fn block(&mut self, count: usize) -> Result<(Vec<TxEnvelope>, Vec<Address>), GenError> {
        let unsigned = (0..count)
            .map(|_| self.next_tx())
            .collect::<Result<Vec<_>, _>>()?;
        self.delegations.append(&mut self.pending_delegations);
        self.deployed.append(&mut self.pending_deployed);
        if let Some(routed) = &mut self.routed {
            routed.block_done();
        }
        let senders = unsigned
            .iter()
            .map(|(sender, _)| self.keys[*sender].address)
            .collect();
        let keys = &self.keys;
        let txs = unsigned
            .into_par_iter()
            .map(|(sender, tx)| tx.sign(keys[sender].secret))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((txs, senders))
    }

    /// A key to send from.
    fn random_key(&mut self) -> usize {
        match &self.routed {
            None => self.rng.below(self.keys.len() as u64) as usize,
            Some(routed) => {
                let key = routed.pick(&mut self.rng, self.keys.len());
                self.touched_cold |= key >= routed.hot;
                key
            }
        }
    }

    /// An address no one has used: a fresh recipient.
    fn fresh_address(&mut self) -> Address {
        self.fresh_recipients += 1;
        self.mix.fresh += 1;
        let mut material = b"evm-executor gen recipient".to_vec();
        material.extend_from_slice(&self.seed.to_be_bytes());
        material.extend_from_slice(&self.fresh_recipients.to_be_bytes());
        Address::from_slice(&keccak256(&material)[12..])
    }

    /// Any account: a key, or with many accounts also a receiver.
    fn random_address(&mut self) -> Address {
        let Some(routed) = &self.routed else {
            let key = self.random_key();
            return self.keys[key].address;
        };
        let account = routed.pick(&mut self.rng, self.keys.len() + self.receivers.len());
        self.touched_cold |= account >= routed.hot;
        match account.checked_sub(self.keys.len()) {
            Some(receiver) => self.receivers[receiver],
            None => self.keys[account].address,
        }
    }

    fn small_amount(&mut self) -> U256 {
        U256::from(self.rng.between(1, 1_000_000)) * U256::from(GWEI)
    }

    fn next_tx(&mut self) -> Result<Unsigned, GenError> {
        if self.routed.is_some() {
            return self.next_routed_tx();
        }
        match self.rng.below(100) {
            0..=29 => self.eth_transfer(),
            30..=54 => self.token_transfer(),
            55..=61 => self.delegate(),
            62..=69 => self.transfer_from(),
            70..=84 => self.swap(),
            85..=86 => self.deploy(),
            _ => self.fill(),
        }
    }

    fn eth_transfer(&mut self) -> Result<Unsigned, GenError> {
        let sender = self.random_key();
        let to = if self.rng.chance(100) {
            self.fresh_address()
        } else {
            self.random_address()
        };
        let value = U256::from(self.rng.between(1, 1_000_000)) * U256::from(GWEI * GWEI / 1000);
        self.mix.eth_transfers += 1;
        self.sign(sender, TxKind::Call(to), Bytes::new(), value, 21_000)
    }

    fn token_transfer(&mut self) -> Result<Unsigned, GenError> {
        let (token, sender) = match self.rng.chance(200) && !self.deployed.is_empty() {
            true => self.deployed[self.rng.below(self.deployed.len() as u64) as usize],
            false => (self.layout.random_token(&mut self.rng), self.random_key()),
        };
        let to = self.token_recipient();
        let amount = if self.rng.chance(20) {
            self.mix.designed_failures += 1;
            UNPAYABLE
        } else {
            self.small_amount()
        };
        self.mix.token_transfers += 1;
        let input = calldata(contracts::TRANSFER, &[word(to), amount]);
        self.sign(sender, TxKind::Call(token), input, U256::ZERO, 100_000)
    }

    /// An approval of one key by another, for later `transferFrom`s.
    fn delegate(&mut self) -> Result<Unsigned, GenError> {
        let owner = self.random_key();
        let spender = self.random_key();
        let token = self.layout.random_token(&mut self.rng);
        self.pending_delegations.push((owner, token, spender));
        self.mix.approvals += 1;
        let spender = self.keys[spender].address;
        let input = calldata(contracts::APPROVE, &[word(spender), U256::MAX >> 1]);
        self.sign(owner, TxKind::Call(token), input, U256::ZERO, 80_000)
    }

    fn transfer_from(&mut self) -> Result<Unsigned, GenError> {
        if self.delegations.is_empty() {
            return self.delegate();
        }
        let pick = self.rng.below(self.delegations.len() as u64) as usize;
        let (owner, token, spender) = self.delegations[pick];
        let to = self.random_address();
        let amount = self.small_amount();
        self.mix.transfer_froms += 1;
        let owner = self.keys[owner].address;
        let input = calldata(contracts::TRANSFER_FROM, &[word(owner), word(to), amount]);
        self.sign(spender, TxKind::Call(token), input, U256::ZERO, 120_000)
    }

    fn swap(&mut self) -> Result<Unsigned, GenError> {
        let sender = self.rng.below(TRADERS as u64) as usize;
        let pair = self.layout.pairs[self.rng.below(self.layout.pairs.len() as u64) as usize];
        let zero_for_one = self.rng.chance(500);
        let min_out = if self.rng.chance(30) {
            self.mix.designed_failures += 1;
            UNPAYABLE
        } else {
            U256::ZERO
        };
        self.mix.swaps += 1;
        let amount = self.small_amount();
        let input = calldata(
            contracts::SWAP,
            &[amount, U256::from(u8::from(zero_for_one)), min_out],
        );
        self.sign(
            sender,
            TxKind::Call(pair.address),
            input,
            U256::ZERO,
            250_000,
        )
    }

    fn deploy(&mut self) -> Result<Unsigned, GenError> {
        let sender = self.random_key();
        let address = self.keys[sender].address.create(self.keys[sender].nonce);
        self.pending_deployed.push((address, sender));
        self.mix.creations += 1;
        let input = self.token_init_code.clone();
        self.sign(sender, TxKind::Create, input, U256::ZERO, 600_000)
    }

    fn fill(&mut self) -> Result<Unsigned, GenError> {
        let sender = self.random_key();
        let filler = self.layout.fillers[self.rng.below(self.layout.fillers.len() as u64) as usize];
        let count = self.rng.between(5, 40);
        let start = self.rng.below(FILL_SLOTS);
        let clear = u64::from(self.rng.chance(200));
        self.mix.fills += 1;
        let input = calldata(
            contracts::FILL,
            &[U256::from(start), U256::from(count), U256::from(clear)],
        );
        self.sign(
            sender,
            TxKind::Call(filler),
            input,
            U256::ZERO,
            60_000 + count * 25_000,
        )
    }

    /// Sign a transaction from key `sender` with its next nonce, legacy (EIP-155) or EIP-1559.
    fn sign(
        &mut self,
        sender: usize,
        to: TxKind,
        input: Bytes,
        value: U256,
        gas_limit: u64,
    ) -> Result<Unsigned, GenError> {
        let key = &mut self.keys[sender];
        let nonce = key.nonce;
        key.nonce += 1;
        let tx = if self.rng.chance(400) {
            self.mix.legacy += 1;
            UnsignedTx::Legacy(TxLegacy {
                chain_id: Some(self.chain_id),
                nonce,
                gas_price: 2 * GWEI + u128::from(self.rng.below(1000)) * 1_000_000,
                gas_limit,
                to,
                value,
                input,
            })
        } else {
            UnsignedTx::Eip1559(TxEip1559 {
                chain_id: self.chain_id,
                nonce,
                gas_limit,
                max_fee_per_gas: 3 * GWEI,
                max_priority_fee_per_gas: u128::from(self.rng.between(1, 1000)) * 1_000_000,
                to,
                value,
                access_list: Default::default(),
                input,
            })
        };
        Ok((sender, tx))
    }
}

/// A transaction built but not yet signed.
enum UnsignedTx {
    Legacy(TxLegacy),
    Eip1559(TxEip1559),
}

/// A transaction and the key that must sign it.
type Unsigned = (usize, UnsignedTx);

impl UnsignedTx {
    /// Sign with `secret` (RFC 6979, so the same transaction always gets the same signature).
    fn sign(self, secret: B256) -> Result<TxEnvelope, GenError> {
        let signed =
            |hash: B256| sign_message(secret, hash).map_err(|e| GenError::Signing(format!("{e}")));
        Ok(match self {
            Self::Legacy(tx) => {
                let signature = signed(tx.signature_hash())?;
                tx.into_signed(signature).into()
            }
            Self::Eip1559(tx) => {
                let signature = signed(tx.signature_hash())?;
                tx.into_signed(signature).into()
            }
        })
    }
}
