//! A minimal RLP framing reader and writer, written for the tests alone so that expected bytes
//! never come from the project's own codecs: it splits bytes into items and wraps payloads as
//! lists or strings, and knows nothing about blocks or transactions.

/// One RLP item framed inside some bytes.
#[derive(Debug, Clone, Copy)]
pub struct RlpItem<'a> {
    /// The item's whole encoding: length prefix and payload.
    pub encoded: &'a [u8],
    /// The payload: a string's bytes, or a list's concatenated elements.
    pub payload: &'a [u8],
    /// True for a list, false for a byte string.
    pub is_list: bool,
}

impl<'a> RlpItem<'a> {
    /// The elements of a list item; panics on a string.
    pub fn elements(&self) -> Vec<RlpItem<'a>> {
        assert!(self.is_list, "RLP: expected a list, found a string");
        split_items(self.payload)
    }

    /// The payload of a string item read as a big-endian integer; panics on a list or on
    /// more than eight bytes.
    pub fn as_u64(&self) -> u64 {
        assert!(!self.is_list, "RLP: expected an integer, found a list");
        assert!(self.payload.len() <= 8, "RLP: integer wider than 64 bits");
        self.payload
            .iter()
            .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte))
    }
}

/// Frame the item at the front of `buf`; panics when `buf` does not start with a complete item.
pub fn first_item(buf: &[u8]) -> RlpItem<'_> {
    let prefix = *buf.first().expect("RLP: empty input");
    let (prefix_len, payload_len, is_list) = match prefix {
        0x00..=0x7f => (0, 1, false),
        0x80..=0xb7 => (1, usize::from(prefix - 0x80), false),
        0xb8..=0xbf => long_form(buf, prefix - 0xb7, false),
        0xc0..=0xf7 => (1, usize::from(prefix - 0xc0), true),
        0xf8..=0xff => long_form(buf, prefix - 0xf7, true),
    };
    let end = prefix_len + payload_len;
    assert!(
        end <= buf.len(),
        "RLP: item of {end} bytes overruns the {} bytes left",
        buf.len()
    );
    RlpItem {
        encoded: &buf[..end],
        payload: &buf[prefix_len..end],
        is_list,
    }
}

/// Prefix length, payload length and kind of a long-form item whose length takes
/// `len_of_len` bytes after the prefix byte.
fn long_form(buf: &[u8], len_of_len: u8, is_list: bool) -> (usize, usize, bool) {
    let len_of_len = usize::from(len_of_len);
    let length_bytes = buf
        .get(1..1 + len_of_len)
        .expect("RLP: truncated length of a long item");
    let payload_len = length_bytes
        .iter()
        .fold(0usize, |acc, byte| (acc << 8) | usize::from(*byte));
    (1 + len_of_len, payload_len, is_list)
}

/// Split `buf` into its consecutive top-level items (a chain file, or a list's payload).
pub fn split_items(mut buf: &[u8]) -> Vec<RlpItem<'_>> {
    let mut items = Vec::new();
    while !buf.is_empty() {
        let item = first_item(buf);
        buf = &buf[item.encoded.len()..];
        items.push(item);
    }
    items
}

/// The length prefix for a payload of `len` bytes; `short_base` is 0x80 for strings, 0xc0 for
/// lists.
fn length_prefix(short_base: u8, len: usize) -> Vec<u8> {
    if len <= 55 {
        return vec![short_base + len as u8];
    }
    let len_bytes: Vec<u8> = len
        .to_be_bytes()
        .into_iter()
        .skip_while(|byte| *byte == 0)
        .collect();
    let mut prefix = vec![short_base + 55 + len_bytes.len() as u8];
    prefix.extend(len_bytes);
    prefix
}

/// Wrap `payload` (already encoded items, concatenated) as an RLP list.
pub fn frame_list(payload: &[u8]) -> Vec<u8> {
    let mut out = length_prefix(0xc0, payload.len());
    out.extend_from_slice(payload);
    out
}

/// Encode `bytes` as an RLP string.
pub fn encode_string(bytes: &[u8]) -> Vec<u8> {
    if let [single] = bytes {
        if *single < 0x80 {
            return vec![*single];
        }
    }
    let mut out = length_prefix(0x80, bytes.len());
    out.extend_from_slice(bytes);
    out
}

/// Concatenate the encodings of `items` (to re-frame a subset of a list).
pub fn concat_encoded<'a>(items: impl IntoIterator<Item = &'a RlpItem<'a>>) -> Vec<u8> {
    items
        .into_iter()
        .flat_map(|item| item.encoded.iter().copied())
        .collect()
}

/// Encode an unsigned integer as an RLP string (big-endian, no leading zeros; 0 is `0x80`).
pub fn encode_u64(value: u64) -> Vec<u8> {
    let bytes: Vec<u8> = value
        .to_be_bytes()
        .into_iter()
        .skip_while(|byte| *byte == 0)
        .collect();
    encode_string(&bytes)
}
