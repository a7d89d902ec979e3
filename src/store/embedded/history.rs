//! History keys kept block by block.
//!
//! The commit stage writes about a thousand history keys per block (`st:{n}:acc:{Addr}`,
//! `st:{n}:stor:{Addr}:{slot}`) and the prune stage deletes them all a window later. As single
//! B-tree entries they were most of the embedded store's work. Here each block's history is one
//! value, keyed by the key's text up to and including `st:{n}:` (the block part); the value
//! lists the entries (the rest of each key, its expiry and its value) sorted by name. Reads
//! of history are rare (consumers looking back); writes and prunes become one entry per block.
//! Nothing outside the embedded store sees this: every key keeps its contract spelling.

/// One entry of a block's history value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntry<'a> {
    /// The key's name part (`HistoryKey::name` of `primitives::keys`).
    pub name: &'a [u8],
    /// Unix milliseconds after which the entry reads as absent.
    pub expiry_ms: Option<u64>,
    /// The value as written.
    pub value: &'a [u8],
}

impl HistoryEntry<'_> {
    /// True when the entry has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expiry_ms.is_some_and(|expiry| expiry <= now_ms)
    }
}

/// The entries of a block's history value, in name order, or why it is malformed.
///
/// Layout of each entry: name length (u16 BE), name, expiry (u64 BE Unix ms, 0 for none),
/// value length (u32 BE), value.
pub fn decode(stored: &[u8]) -> Result<Vec<HistoryEntry<'_>>, String> {
    let mut stored = stored;
    let mut entries = Vec::new();
    while !stored.is_empty() {
        entries.push(next_entry(&mut stored)?);
    }
    Ok(entries)
}

/// The entry named `name` in a block's history value, reading no further than its place in
/// name order.
pub fn find<'a>(stored: &'a [u8], name: &[u8]) -> Result<Option<HistoryEntry<'a>>, String> {
    let mut stored = stored;
    while !stored.is_empty() {
        let entry = next_entry(&mut stored)?;
        match entry.name.cmp(name) {
            std::cmp::Ordering::Less => continue,
            std::cmp::Ordering::Equal => return Ok(Some(entry)),
            std::cmp::Ordering::Greater => break,
        }
    }
    Ok(None)
}

/// The entry at the start of `stored`, which moves past it.
fn next_entry<'a>(stored: &mut &'a [u8]) -> Result<HistoryEntry<'a>, String> {
    let name_len = usize::from(u16::from_be_bytes(*take_array(stored)?));
    let name = take(stored, name_len)?;
    let expiry = u64::from_be_bytes(*take_array(stored)?);
    let value_len = u32::from_be_bytes(*take_array(stored)?) as usize;
    let value = take(stored, value_len)?;
    Ok(HistoryEntry {
        name,
        expiry_ms: (expiry != 0).then_some(expiry),
        value,
    })
}

/// Append `entry` to a block's history value (callers append in name order).
pub fn encode(entry: &HistoryEntry<'_>, out: &mut Vec<u8>) -> Result<(), String> {
    let name_len = u16::try_from(entry.name.len())
        .map_err(|_| format!("a history key name of {} bytes", entry.name.len()))?;
    let value_len = u32::try_from(entry.value.len())
        .map_err(|_| format!("a history value of {} bytes", entry.value.len()))?;
    out.extend_from_slice(&name_len.to_be_bytes());
    out.extend_from_slice(entry.name);
    out.extend_from_slice(&entry.expiry_ms.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(&value_len.to_be_bytes());
    out.extend_from_slice(entry.value);
    Ok(())
}

/// The next `len` bytes of `stored`.
fn take<'a>(stored: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
    let (taken, rest) = stored
        .split_at_checked(len)
        .ok_or("a history value cut short")?;
    *stored = rest;
    Ok(taken)
}

/// The next `N` bytes of `stored`.
fn take_array<'a, const N: usize>(stored: &mut &'a [u8]) -> Result<&'a [u8; N], String> {
    let (taken, rest) = stored
        .split_first_chunk::<N>()
        .ok_or("a history value cut short")?;
    *stored = rest;
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_reported() {
        let written = [
            HistoryEntry {
                name: b"acc:0xAb",
                expiry_ms: None,
                value: b"null",
            },
            HistoryEntry {
                name: b"stor:0xAb:0x01",
                expiry_ms: Some(1_700_000_000_000),
                value: b"",
            },
        ];
        let mut stored = Vec::new();
        for entry in &written {
            encode(entry, &mut stored).expect("encode");
        }
        assert_eq!(decode(&stored).expect("decode"), written);
        for entry in &written {
            assert_eq!(find(&stored, entry.name), Ok(Some(*entry)));
        }
        for absent in [&b"acc:0x00"[..], b"acc:0xAc", b"zzz"] {
            assert_eq!(find(&stored, absent), Ok(None));
        }
        for cut in 1..stored.len() {
            if let Ok(entries) = decode(&stored[..cut]) {
                // Only the cut after the first entry decodes, to that entry alone.
                assert_eq!(entries, written[..1], "cut at {cut}");
            }
        }
    }
}
