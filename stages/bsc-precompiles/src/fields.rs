//! The fixed-width fields the light-client precompiles' inputs and consensus states are made
//! of (bnb-chain/bsc `core/vm/contracts_lightclient.go`, `lightclient/v1/types.go`,
//! `lightclient/v2/lightclient.go`): 32-byte length words, big-endian integers, zero-padded
//! names and hashes.

/// A length word's width.
pub(super) const WORD_LEN: usize = 32;

/// A big-endian `uint64` from the first 8 bytes of `bytes`.
pub(super) fn be_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(buf)
}

/// A 32-byte length word: its last 8 bytes, big-endian.
pub(super) fn length_word(word: &[u8]) -> u64 {
    be_u64(&word[WORD_LEN - 8..WORD_LEN])
}

/// Copies `src` to the front of `dst`, the rest of `dst` staying zero (Go's `copy`).
pub(super) fn copy_front(dst: &mut [u8], src: &[u8]) {
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
}

/// `bytes.Trim(name, "\x00")`.
pub(super) fn trim_zeros(name: &[u8]) -> &[u8] {
    let start = name.iter().position(|&b| b != 0).unwrap_or(name.len());
    let end = name.iter().rposition(|&b| b != 0).map_or(start, |i| i + 1);
    &name[start..end]
}
