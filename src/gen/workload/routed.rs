//! The mix of a workload over many accounts, shaped like BNB Smart Chain's: BEP-20 transfers,
//! swaps through a router along one or two pairs, native transfers, approvals (of the router,
//! or of another account for `transferFrom`), token deployments and storage fills. Access is
//! skewed: most picks come from a hot set (the first keys), a steady share from all accounts
//! (cold ones, whose account and token balance slots no recent block touched), and some
//! transfers go to addresses never seen before. Senders come from the first [`signing_keys`]
//! accounts, recipients from all of them.

use super::{calldata, word, Unsigned, Workload, UNPAYABLE};
use crate::gen::contracts;
use crate::gen::workload::Rng;
use crate::gen::GenError;
use alloy_primitives::{Address, TxKind, U256};

/// Per mille of account picks taken from the hot set; the rest are uniform over all accounts.
const HOT_PICKS_PER_MILLE: u64 = 900;
/// The hot set is this share of the accounts (1 %)...
const HOT_DIVISOR: usize = 100;
/// ...but at least this many (or all of them, when there are fewer).
const MIN_HOT: usize = 1000;
/// At most this many accounts are keys that send; the rest only receive. A key costs a signature
/// and its recovery to derive (some 50 µs of CPU): a million would take a minute, and senders
/// picked from 100,000 are still mostly cold.
const MAX_SIGNING_KEYS: usize = 100_000;
/// Per mille of token transfers sent to a fresh address.
const FRESH_TOKEN_RECIPIENTS_PER_MILLE: u64 = 50;
/// Per mille of approvals that approve the router (the rest approve another account).
const ROUTER_APPROVALS_PER_MILLE: u64 = 500;
/// Per mille of swaps sent by an account that approved the router in an earlier block (most of
/// them outside the hot set) instead of by a hot account.
const APPROVED_SWAPPERS_PER_MILLE: u64 = 150;
/// Per mille of swaps that take two hops.
const TWO_HOP_PER_MILLE: u64 = 400;
/// Per mille of swaps whose minimum output no pool can pay (they revert by design).
const FAILING_SWAPS_PER_MILLE: u64 = 30;
/// Gas limit of a swap: the router's pull and payment, and each hop's pair swap and balance read.
const SWAP_GAS_BASE: u64 = 150_000;
/// Gas limit added per hop.
const SWAP_GAS_PER_HOP: u64 = 150_000;

/// The hot set's size for `accounts` accounts.
pub fn hot_set(accounts: usize) -> usize {
    (accounts / HOT_DIVISOR).max(MIN_HOT).min(accounts)
}

/// How many of `accounts` accounts are signing keys: all of them up to [`MAX_SIGNING_KEYS`],
/// and never fewer than the hot set.
pub fn signing_keys(accounts: usize) -> usize {
    accounts.min(MAX_SIGNING_KEYS).max(hot_set(accounts))
}

/// The state of the routed mix: the hot set and who approved the router on which token.
#[derive(Debug, Clone)]
pub(super) struct Routed {
    /// Keys `0..hot` are the hot set (and have approved the router on every genesis token).
    pub(super) hot: usize,
    /// Router approvals usable now: (key, token).
    approvals: Vec<(usize, Address)>,
    /// Router approvals made in the block being built.
    pending_approvals: Vec<(usize, Address)>,
}

impl Routed {
    /// The mix over `accounts` keys.
    pub(super) fn new(accounts: usize) -> Self {
        Self {
            hot: hot_set(accounts),
            approvals: Vec::new(),
            pending_approvals: Vec::new(),
        }
    }

    /// A key: from the hot set most of the time, else any of the `accounts`.
    pub(super) fn pick(&self, rng: &mut Rng, accounts: usize) -> usize {
        let range = match rng.chance(HOT_PICKS_PER_MILLE) {
            true => self.hot,
            false => accounts,
        };
        rng.below(range as u64) as usize
    }

    /// The block is built: its approvals can be used from the next one on.
    pub(super) fn block_done(&mut self) {
        self.approvals.append(&mut self.pending_approvals);
    }
}

impl Workload {
    /// The next transaction of the routed mix.
    pub(super) fn next_routed_tx(&mut self) -> Result<Unsigned, GenError> {
        self.touched_cold = false;
        let tx = match self.rng.below(100) {
            0..=24 => self.eth_transfer(),
            25..=59 => self.token_transfer(),
            60..=77 => self.router_swap(),
            78..=84 => match self.rng.chance(ROUTER_APPROVALS_PER_MILLE) {
                true => self.approve_router(),
                false => self.delegate(),
            },
            85..=89 => self.transfer_from(),
            90..=91 => self.deploy(),
            _ => self.fill(),
        }?;
        if self.touched_cold {
            self.mix.cold += 1;
        }
        Ok(tx)
    }

    /// The recipient of a token transfer: with many accounts sometimes a fresh address.
    pub(super) fn token_recipient(&mut self) -> Address {
        if self.routed.is_some() && self.rng.chance(FRESH_TOKEN_RECIPIENTS_PER_MILLE) {
            return self.fresh_address();
        }
        self.random_address()
    }

    fn router(&self) -> Result<Address, GenError> {
        self.layout
            .router
            .ok_or_else(|| GenError::Internal("the routed mix needs a router".into()))
    }

    /// An approval of the router, letting its owner swap that token from the next block on.
    fn approve_router(&mut self) -> Result<Unsigned, GenError> {
        let router = self.router()?;
        let owner = self.random_key();
        let token = self.layout.random_token(&mut self.rng);
        if let Some(routed) = &mut self.routed {
            routed.pending_approvals.push((owner, token));
        }
        self.mix.approvals += 1;
        let input = calldata(contracts::APPROVE, &[word(router), U256::MAX >> 1]);
        self.sign(owner, TxKind::Call(token), input, U256::ZERO, 80_000)
    }

    /// Who swaps which token: a hot key (approved at genesis) on any token, or an account that
    /// approved the router on its token in an earlier block.
    fn swapper(&mut self) -> (usize, Address) {
        let hot = self.routed.as_ref().map_or(0, |routed| routed.hot).max(1);
        let approved = self
            .routed
            .as_ref()
            .map_or(0, |routed| routed.approvals.len());
        if self.rng.chance(APPROVED_SWAPPERS_PER_MILLE) && approved > 0 {
            let pick = self.rng.below(approved as u64) as usize;
            if let Some(&(key, token)) = self
                .routed
                .as_ref()
                .and_then(|routed| routed.approvals.get(pick))
            {
                self.touched_cold |= key >= hot;
                return (key, token);
            }
        }
        let key = self.rng.below(hot as u64) as usize;
        (key, self.layout.random_token(&mut self.rng))
    }

    /// A swap through the router from one genesis token to another, directly or through a
    /// third.
    fn router_swap(&mut self) -> Result<Unsigned, GenError> {
        let router = self.router()?;
        let (sender, token_in) = self.swapper();
        let others: Vec<Address> = self
            .layout
            .tokens
            .iter()
            .copied()
            .filter(|token| *token != token_in)
            .collect();
        let token_out = others[self.rng.below(others.len() as u64) as usize];
        let mut path = vec![token_in];
        if self.rng.chance(TWO_HOP_PER_MILLE) {
            let middles: Vec<Address> = others
                .iter()
                .copied()
                .filter(|token| *token != token_out)
                .collect();
            path.push(middles[self.rng.below(middles.len() as u64) as usize]);
        }
        path.push(token_out);
        let min_out = if self.rng.chance(FAILING_SWAPS_PER_MILLE) {
            self.mix.designed_failures += 1;
            UNPAYABLE
        } else {
            U256::ZERO
        };
        let amount = self.small_amount();
        let hops = path.len() - 1;
        let mut words = vec![
            amount,
            min_out,
            word(token_in),
            word(token_out),
            U256::from(hops),
        ];
        for leg in path.windows(2) {
            let (pair, zero_for_one) = self.layout.pair_for(leg[0], leg[1]).ok_or_else(|| {
                GenError::Internal(format!("no pair trades {} for {}", leg[0], leg[1]))
            })?;
            words.extend([
                word(pair.address),
                U256::from(u8::from(zero_for_one)),
                word(leg[1]),
            ]);
        }
        self.mix.swaps += 1;
        if hops == 2 {
            self.mix.two_hop_swaps += 1;
        }
        let input = calldata(contracts::ROUTE, &words);
        let gas = SWAP_GAS_BASE + SWAP_GAS_PER_HOP * hops as u64;
        self.sign(sender, TxKind::Call(router), input, U256::ZERO, gas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hot_set_is_a_hundredth_of_the_accounts_with_a_floor() {
        assert_eq!(hot_set(1_000_000), 10_000);
        assert_eq!(hot_set(20_000), 1000);
        assert_eq!(hot_set(500), 500);
    }

    #[test]
    fn beyond_the_signing_keys_accounts_only_receive() {
        let accounts = MAX_SIGNING_KEYS + 50_000;
        let layout = crate::gen::layout::Layout::routed();
        let mut workload = Workload::with_accounts(1, 9, layout, accounts).expect("workload");
        let addresses: Vec<Address> = workload.addresses().collect();
        assert_eq!(addresses.len(), accounts);
        let distinct: std::collections::HashSet<_> = addresses.iter().collect();
        assert_eq!(
            distinct.len(),
            accounts,
            "every account has its own address"
        );
        let keys: std::collections::HashSet<_> = addresses[..MAX_SIGNING_KEYS].iter().collect();
        let receivers: std::collections::HashSet<_> =
            addresses[MAX_SIGNING_KEYS..].iter().collect();
        let (txs, senders) = workload.block(3000).expect("a block");
        assert!(senders.iter().all(|sender| keys.contains(sender)));
        let received = txs
            .iter()
            .filter_map(alloy_consensus::Transaction::to)
            .filter(|to| receivers.contains(to))
            .count();
        // ETH transfers (a quarter) go to a cold pick one time in ten, a third of those a
        // receiver: some 25 of 3,000.
        assert!(received >= 5, "{received} transactions sent to a receiver");
    }

    #[test]
    fn picks_come_mostly_from_the_hot_set() {
        let routed = Routed::new(1_000_000);
        let mut rng = Rng::new(1, 1);
        let picks = 100_000;
        let hot = (0..picks)
            .filter(|_| routed.pick(&mut rng, 1_000_000) < routed.hot)
            .count();
        // 90 % hot picks plus the 1 % of uniform picks that land in the hot set.
        let share = hot as f64 / picks as f64;
        assert!((0.90..0.92).contains(&share), "hot share {share}");
    }
}
