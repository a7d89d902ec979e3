//! The little of go-amino v0.14.1's binary codec (`binary-decode.go`, `decoder.go`,
//! `encoder.go`) that the legacy IAVL and multistore proof operators and the Tendermint v0.31
//! header need, with its quirks:
//! - a struct's fields are read in order; a key for a later field leaves the current one at
//!   its default, a field number not above the last one read is an error, the typ3 must match;
//!   fields after the known ones are skipped (typ3 0, 1, 2 or 5) but must still ascend;
//! - a list field is read as repeated keys of its number (each element length-prefixed) up to a
//!   key of a higher number, which is left for the next field;
//! - a length-prefixed struct or list counts its prefix as the canonical size of its length
//!   (`UvarintSize`), whatever bytes the prefix took, and a list inside one stops at a key of
//!   another number, leaving the outer reader inside the inner list's bytes;
//! - an element of an unpacked list whose length is 0 is the element type's default (a nil
//!   pointer for a pointer to a struct);
//! - a `time.Time` is seconds (field 1) then nanoseconds (field 2), either absent, and whatever
//!   follows them in its bytes is left unread (the outer reader goes on inside it);
//! - an interface value is 4 prefix bytes (or `0x00`, 3 disambiguation bytes and the prefix)
//!   of a registered concrete type, then that type's bare encoding, all of it read.

use sha2::{Digest, Sha256};

/// Why amino bytes were refused.
pub(super) type Error = &'static str;

/// `Typ3_Varint`.
pub(super) const VARINT: u8 = 0;
/// `Typ3_ByteLength`.
pub(super) const BYTE_LENGTH: u8 = 2;

/// Go's `binary.Uvarint`: the value and the bytes it took. At most 10 bytes, the 10th at most
/// 1; running out of bytes is an error.
pub(super) fn uvarint(data: &[u8]) -> Result<(u64, usize), Error> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(10) {
        if byte < 0x80 {
            if i == 9 && byte > 1 {
                return Err("varint overflows a 64-bit integer");
            }
            return Ok((value | u64::from(byte) << (7 * i), i + 1));
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
    }
    if data.len() >= 10 {
        Err("varint overflows a 64-bit integer")
    } else {
        Err("unexpected end of varint")
    }
}

/// Go's `binary.Varint`: a zigzag-encoded `uvarint`.
pub(super) fn varint(data: &[u8]) -> Result<(i64, usize), Error> {
    let (u, n) = uvarint(data)?;
    Ok((((u >> 1) as i64) ^ -((u & 1) as i64), n))
}

/// `DecodeByteSlice`: a length-prefixed byte string and the bytes it took.
pub(super) fn byte_slice(data: &[u8]) -> Result<(&[u8], usize), Error> {
    let (len, n) = uvarint(data)?;
    if len > i64::MAX as u64 {
        return Err("amino: negative length");
    }
    let rest = &data[n..];
    if (rest.len() as u64) < len {
        return Err("amino: insufficient bytes for a byte slice");
    }
    Ok((&rest[..len as usize], n + len as usize))
}

/// `UvarintSize`: the canonical encoded size of `value`.
pub(super) fn uvarint_size(value: u64) -> usize {
    (64 - value.max(1).leading_zeros() as usize).div_ceil(7)
}

/// `decodeFieldNumberAndTyp3`: the field number, typ3 and bytes of the key at `data`.
fn field_key(data: &[u8]) -> Result<(u32, u8, usize), Error> {
    let (value, n) = uvarint(data)?;
    let num = value >> 3;
    if num > (1 << 29) - 1 {
        return Err("amino: invalid field number");
    }
    Ok((num as u32, (value & 7) as u8, n))
}

/// `consumeAny`: the size of a skipped field's value.
fn consume_any(typ3: u8, data: &[u8]) -> Result<usize, Error> {
    match typ3 {
        VARINT => varint(data).map(|(_, n)| n),
        1 if data.len() >= 8 => Ok(8),
        BYTE_LENGTH => byte_slice(data).map(|(_, n)| n),
        5 if data.len() >= 4 => Ok(4),
        1 | 5 => Err("amino: insufficient bytes for a fixed-size value"),
        _ => Err("amino: invalid typ3"),
    }
}

/// How a struct field is encoded.
#[derive(Debug, Clone, Copy)]
pub(super) enum Field {
    /// A single value of this typ3 after the field's key.
    Scalar(u8),
    /// An unpacked list: repeated keys of the field's number, each before an element.
    List,
}

/// Reads a field's value at the start of `data`, giving the bytes it took. For a list field
/// the data starts at the first element's key.
pub(super) type Visit<'v, 'a> = dyn FnMut(u32, &'a [u8]) -> Result<usize, Error> + 'v;

/// Decodes a struct spread over all of `data` (bare), its fields numbered from 1 in order.
pub(super) fn decode_struct<'a>(
    data: &'a [u8],
    fields: &[Field],
    visit: &mut Visit<'_, 'a>,
) -> Result<(), Error> {
    let mut pos = 0;
    let mut last = 0u32;
    for (index, field) in fields.iter().enumerate() {
        let number = index as u32 + 1;
        if pos == data.len() {
            continue;
        }
        match *field {
            Field::List => pos += visit(number, &data[pos..])?,
            Field::Scalar(typ3) => {
                let (found, found_typ3, n) = field_key(&data[pos..])?;
                if number < found {
                    continue;
                }
                if found <= last {
                    return Err("amino: field numbers do not ascend");
                }
                last = found;
                pos += n;
                if found != number {
                    return Err("amino: unexpected field number");
                }
                if found_typ3 != typ3 {
                    return Err("amino: unexpected typ3");
                }
                pos += visit(number, &data[pos..])?;
            }
        }
    }
    while pos < data.len() {
        let (found, typ3, n) = field_key(&data[pos..])?;
        pos += n;
        if found <= last {
            return Err("amino: field numbers do not ascend");
        }
        last = found;
        pos += consume_any(typ3, &data[pos..])?;
    }
    Ok(())
}

/// Decodes a length-prefixed struct (a struct field or list element), giving the bytes it is
/// counted as taking.
pub(super) fn decode_prefixed_struct<'a>(
    data: &'a [u8],
    fields: &[Field],
    visit: &mut Visit<'_, 'a>,
) -> Result<usize, Error> {
    let (body, _) = byte_slice(data)?;
    decode_struct(body, fields, visit)?;
    Ok(uvarint_size(body.len() as u64) + body.len())
}

/// Decodes the elements of an unpacked list of field `number` at the start of `data`, up to a
/// key of a higher number; `element` reads one length-prefixed element. Gives the bytes read.
pub(super) fn decode_list<'a>(
    data: &'a [u8],
    number: u32,
    element: &mut dyn FnMut(&'a [u8]) -> Result<usize, Error>,
) -> Result<usize, Error> {
    let mut pos = 0;
    while pos < data.len() {
        let (found, typ3, n) = field_key(&data[pos..])?;
        if found < number {
            return Err("amino: unexpected repeated field number");
        }
        if found > number {
            break;
        }
        if typ3 != BYTE_LENGTH {
            return Err("amino: unexpected repeated field typ3");
        }
        pos += n;
        pos += element(&data[pos..])?;
    }
    Ok(pos)
}

/// Decodes a length-prefixed list (an element of a list of lists) whose elements are field 1,
/// giving the bytes it is counted as taking: the canonical prefix size and what the inner
/// list read, which may stop short of its end.
pub(super) fn decode_prefixed_list<'a>(
    data: &'a [u8],
    element: &mut dyn FnMut(&'a [u8]) -> Result<usize, Error>,
) -> Result<usize, Error> {
    let (body, _) = byte_slice(data)?;
    let read = decode_list(body, 1, element)?;
    Ok(uvarint_size(body.len() as u64) + read)
}

/// `DecodeUint8`: a uvarint that must fit a byte.
pub(super) fn uint8(data: &[u8]) -> Result<(u8, usize), Error> {
    let (value, n) = uvarint(data)?;
    let value = u8::try_from(value).map_err(|_| "amino: uint8 out of range")?;
    Ok((value, n))
}

/// `decodeReflectBinaryByteArray` of `[N]byte`: at least `N` bytes must remain, and the
/// length-prefixed bytes must be exactly `N` long.
pub(super) fn byte_array<const N: usize>(data: &[u8]) -> Result<([u8; N], usize), Error> {
    if data.len() < N {
        return Err("amino: insufficient bytes for a byte array");
    }
    let (bytes, n) = byte_slice(data)?;
    let array = <[u8; N]>::try_from(bytes).map_err(|_| "amino: byte array length mismatch")?;
    Ok((array, n))
}

/// A `time.Time` as amino keeps it: seconds and nanoseconds since the Unix epoch. The default
/// (a missing field) is the epoch.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Time {
    /// Seconds, within `[-62135596800, 253402300800)`.
    pub(super) seconds: i64,
    /// Nanoseconds, at most 999,999,999.
    pub(super) nanos: u32,
}

/// The bounds `DecodeTime` puts on seconds (years 1 to 9999).
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_800;
const MAX_NANOS: u64 = 999_999_999;

/// A length-prefixed `time.Time` field value (`DecodeTime`), giving the bytes it is counted as
/// taking: the canonical prefix size and what was read of its body.
pub(super) fn time(data: &[u8]) -> Result<(Time, usize), Error> {
    let (body, _) = byte_slice(data)?;
    let mut time = Time::default();
    let mut pos = 0;
    if pos < body.len() {
        let (number, typ3, n) = field_key(body)?;
        match (number, typ3) {
            (1, VARINT) => {
                let (seconds, m) = uvarint(&body[n..])?;
                let seconds = seconds as i64;
                if !(MIN_SECONDS..MAX_SECONDS).contains(&seconds) {
                    return Err("amino: time seconds out of range");
                }
                time.seconds = seconds;
                pos = n + m;
            }
            (2, VARINT) => {}
            _ => return Err("amino: time: expected field 1 or 2"),
        }
    }
    if pos < body.len() {
        let (number, typ3, n) = field_key(&body[pos..])?;
        if (number, typ3) == (2, VARINT) {
            let (nanos, m) = uvarint(&body[pos + n..])?;
            if nanos > MAX_NANOS {
                return Err("amino: time nanoseconds out of range");
            }
            time.nanos = nanos as u32;
            pos += n + m;
        }
    }
    Ok((time, uvarint_size(body.len() as u64) + pos))
}

/// `EncodeTime`: seconds and nanoseconds, each left out when zero.
pub(super) fn put_time(out: &mut Vec<u8>, time: Time) {
    if time.seconds != 0 {
        out.push(0x08);
        put_uvarint(out, time.seconds as u64);
    }
    if time.nanos != 0 {
        out.push(0x10);
        put_uvarint(out, u64::from(time.nanos));
    }
}

/// `NameToDisfix`: the disambiguation bytes and prefix bytes of a registered name.
fn disfix(name: &str) -> ([u8; 3], [u8; 4]) {
    let hash = Sha256::digest(name.as_bytes());
    let mut rest = hash.iter().skip_while(|&&b| b == 0);
    let mut disamb = [0u8; 3];
    for byte in &mut disamb {
        *byte = rest.next().copied().unwrap_or(0);
    }
    let mut rest = rest.skip_while(|&&b| b == 0);
    let mut prefix = [0u8; 4];
    for byte in &mut prefix {
        *byte = rest.next().copied().unwrap_or(0);
    }
    (disamb, prefix)
}

/// The 4 prefix bytes amino gives a registered concrete type's name.
pub(super) fn prefix_of(name: &str) -> [u8; 4] {
    disfix(name).1
}

/// A length-prefixed interface value (`decodeReflectBinaryInterface`) whose concrete type is
/// one of `names`: `concrete` reads that type's bare encoding (given the index in `names` and
/// the bytes after the prefix) and must read them all. Gives the value and the bytes it is
/// counted as taking.
pub(super) fn interface<T>(
    data: &[u8],
    names: &[&str],
    concrete: impl FnOnce(usize, &[u8]) -> Result<(T, usize), Error>,
) -> Result<(T, usize), Error> {
    let (body, _) = byte_slice(data)?;
    if body.len() < 4 {
        return Err("amino: EOF while reading prefix bytes");
    }
    let (found, skip) = if body[0] == 0x00 {
        if body.len() < 8 {
            return Err("amino: EOF while reading disambiguation bytes");
        }
        let index = names.iter().position(|name| {
            let (disamb, prefix) = disfix(name);
            body[1..4] == disamb && body[4..8] == prefix
        });
        (index, 8)
    } else {
        (
            names.iter().position(|name| body[..4] == prefix_of(name)),
            4,
        )
    };
    let index = found.ok_or("amino: unregistered interface prefix")?;
    let (value, n) = concrete(index, &body[skip..])?;
    if skip + n != body.len() {
        return Err("amino: bytes left over after reading interface contents");
    }
    Ok((value, uvarint_size(body.len() as u64) + skip + n))
}

/// Decodes an element of an unpacked list of pointers: `None` (a nil pointer) when its length
/// is 0, else what `element` reads. Gives the bytes it is counted as taking.
pub(super) fn optional<'a, T>(
    data: &'a [u8],
    element: impl FnOnce(&'a [u8]) -> Result<(T, usize), Error>,
) -> Result<(Option<T>, usize), Error> {
    if data.first() == Some(&0) {
        return Ok((None, 1));
    }
    let (value, n) = element(data)?;
    Ok((Some(value), n))
}

/// `UnmarshalBinaryLengthPrefixed` of a struct: the length prefix must cover exactly the rest.
pub(super) fn length_prefixed_body(data: &[u8]) -> Result<&[u8], Error> {
    if data.is_empty() {
        return Err("amino: cannot decode empty bytes");
    }
    let (len, n) = uvarint(data)?;
    if len != (data.len() - n) as u64 {
        return Err("amino: length prefix does not match the bytes");
    }
    Ok(&data[n..])
}

/// Appends `value` as a uvarint (`EncodeUvarint`).
pub(super) fn put_uvarint(out: &mut Vec<u8>, value: u64) {
    super::protobuf::put_varint(out, value);
}

/// Appends `value` as a zigzag varint (`EncodeVarint`, `EncodeInt8`).
pub(super) fn put_zigzag(out: &mut Vec<u8>, value: i64) {
    put_uvarint(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// `EncodeByteSlice`: a uvarint length, then the bytes.
pub(super) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uvarint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_size_is_canonical() {
        for (value, size) in [(0, 1), (1, 1), (127, 1), (128, 2), (16_383, 2), (16_384, 3)] {
            assert_eq!(uvarint_size(value), size, "{value}");
        }
        assert_eq!(uvarint_size(u64::MAX), 10);
    }

    #[test]
    fn varints_follow_go() {
        assert_eq!(uvarint(&[0x96, 0x01]), Ok((150, 2)));
        assert_eq!(varint(&[0x03]), Ok((-2, 1)));
        assert_eq!(varint(&[0x04]), Ok((2, 1)));
        assert!(uvarint(&[0x80]).is_err());
        assert!(uvarint(&[0xff; 9].iter().chain(&[0x02]).copied().collect::<Vec<_>>()).is_err());
        assert_eq!(
            uvarint(&[0xff; 9].iter().chain(&[0x01]).copied().collect::<Vec<_>>()),
            Ok((u64::MAX, 10))
        );
    }
}
