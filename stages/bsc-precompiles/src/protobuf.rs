//! The little of the protobuf wire format that CometBFT's light block (0x67) and the ICS23 and
//! Tendermint Merkle proofs (0x65) need, read and written the way gogoproto's generated code
//! (greenfield-cometbft v1.3.2 `proto/tendermint/**.pb.go`, bnb-chain/ics23 `proofs.pb.go`)
//! does it:
//! - varints take at most 10 bytes, bits past the 64th are dropped;
//! - a tag's field number is its value shifted right by 3, truncated to a signed 32-bit number,
//!   and must be positive; wire type 4 (end group) is an error, wire types 6 and 7 too;
//! - unknown fields are skipped, groups included; a known field with another wire type is an
//!   error;
//! - 32-bit integer fields keep the low 32 bits of the varint.
//!
//! Writing follows proto3: a scalar field equal to its default is left out.

/// Why an encoding was refused.
type Error = &'static str;

/// One field's value as it appears on the wire.
pub(super) enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 2.
    Bytes(&'a [u8]),
    /// Wire types 1, 3 (a whole group, skipped) and 5: never a field this module reads.
    Other,
}

impl<'a> Value<'a> {
    /// The value of a varint field (int64, uint64, enum), or `err` for another wire type.
    pub(super) fn varint(&self, err: Error) -> Result<u64, Error> {
        match self {
            Value::Varint(v) => Ok(*v),
            _ => Err(err),
        }
    }

    /// The value of an int32 / uint32 / enum field: the low 32 bits of the varint.
    pub(super) fn varint32(&self, err: Error) -> Result<u32, Error> {
        self.varint(err).map(|v| v as u32)
    }

    /// The contents of a length-delimited field, or `err` for another wire type.
    pub(super) fn bytes(&self, err: Error) -> Result<&'a [u8], Error> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(err),
        }
    }
}

/// Reads the fields of one message in order.
pub(super) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over the encoding of one message.
    pub(super) fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// The next field's number and value, `None` at the end of the message.
    pub(super) fn next_field(&mut self) -> Result<Option<(i32, Value<'a>)>, Error> {
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let field = (tag >> 3) as u32 as i32;
        let wire_type = tag & 7;
        if wire_type == 4 {
            return Err("protobuf: end group outside a group");
        }
        if field <= 0 {
            return Err("protobuf: illegal field number");
        }
        let value = match wire_type {
            0 => Value::Varint(self.varint()?),
            2 => Value::Bytes(self.length_delimited()?),
            1 => {
                self.advance(8)?;
                Value::Other
            }
            5 => {
                self.advance(4)?;
                Value::Other
            }
            3 => {
                self.skip_group()?;
                Value::Other
            }
            _ => return Err("protobuf: illegal wire type"),
        };
        Ok(Some((field, value)))
    }

    /// Reads on through the rest of a varint of which `taken` bytes, all with the continuation
    /// bit, were at the end of the field just read (gogoproto's packed-field loop does this):
    /// the varint must end within 10 bytes in all, before the message does.
    pub(super) fn continue_varint(&mut self, taken: usize) -> Result<(), Error> {
        for _ in taken..10 {
            let byte = *self
                .data
                .get(self.pos)
                .ok_or("protobuf: unexpected end of data")?;
            self.pos += 1;
            if byte < 0x80 {
                return Ok(());
            }
        }
        Err("protobuf: varint overflow")
    }

    fn varint(&mut self) -> Result<u64, Error> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            if shift >= 64 {
                return Err("protobuf: varint overflow");
            }
            let byte = *self
                .data
                .get(self.pos)
                .ok_or("protobuf: unexpected end of data")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    fn advance(&mut self, n: u64) -> Result<(), Error> {
        let remaining = (self.data.len() - self.pos) as u64;
        if n > remaining {
            return Err("protobuf: unexpected end of data");
        }
        self.pos += n as usize;
        Ok(())
    }

    fn length_delimited(&mut self) -> Result<&'a [u8], Error> {
        let len = self.varint()?;
        if len > i64::MAX as u64 {
            return Err("protobuf: invalid length");
        }
        let start = self.pos;
        self.advance(len)?;
        Ok(&self.data[start..self.pos])
    }

    /// Skips the rest of a group whose start tag was just read: every field up to the end tag
    /// that closes it (any end tag, whatever its field number, as gogoproto's `skip` does).
    fn skip_group(&mut self) -> Result<(), Error> {
        let mut depth = 1u64;
        while depth > 0 {
            if self.pos >= self.data.len() {
                return Err("protobuf: unexpected end of data in a group");
            }
            let tag = self.varint()?;
            match tag & 7 {
                0 => {
                    self.varint()?;
                }
                1 => self.advance(8)?,
                2 => {
                    self.length_delimited()?;
                }
                3 => depth += 1,
                4 => depth -= 1,
                5 => self.advance(4)?,
                _ => return Err("protobuf: illegal wire type"),
            }
        }
        Ok(())
    }
}

/// Appends `value` as a varint.
pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a varint field (int64 / uint64 / int32 / enum; negative numbers as their 64-bit
/// two's complement), left out when zero.
pub(super) fn put_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        put_varint(out, u64::from(field) << 3);
        put_varint(out, value);
    }
}

/// Appends an sfixed64 field, left out when zero.
pub(super) fn put_sfixed64_field(out: &mut Vec<u8>, field: u32, value: i64) {
    if value != 0 {
        put_varint(out, (u64::from(field) << 3) | 1);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// Appends a bytes, string or embedded message field, even when empty.
pub(super) fn put_bytes_field_always(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | 2);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// Appends a bytes or string field, left out when empty.
pub(super) fn put_bytes_field(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    if !value.is_empty() {
        put_bytes_field_always(out, field, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(data: &[u8]) -> Result<Vec<(i32, Option<u64>)>, Error> {
        let mut reader = Reader::new(data);
        let mut out = Vec::new();
        while let Some((field, value)) = reader.next_field()? {
            out.push((field, value.varint("not a varint").ok()));
        }
        Ok(out)
    }

    /// Examples from the protobuf encoding guide: 150 is `96 01`, -1 as int64 takes 10 bytes.
    #[test]
    fn varints_follow_the_protobuf_encoding() {
        let mut out = Vec::new();
        put_varint_field(&mut out, 1, 150);
        assert_eq!(out, [0x08, 0x96, 0x01]);
        let mut out = Vec::new();
        put_varint_field(&mut out, 2, -1i64 as u64);
        assert_eq!(
            out,
            [0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        assert_eq!(fields(&out).unwrap(), [(2, Some(u64::MAX))]);
    }

    /// gogoproto's limits: an 11-byte varint, field number 0, an end group, wire type 7, a
    /// length past the end are errors; a group is skipped whole.
    #[test]
    fn malformed_encodings_are_errors() {
        let eleven = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(fields(&eleven).is_err());
        assert!(fields(&[0x00, 0x01]).is_err());
        assert!(fields(&[0x0c]).is_err());
        assert!(fields(&[0x0f]).is_err());
        assert!(fields(&[0x0a, 0x05, 0x01]).is_err());
        // field 1 group { field 2 varint 5 } end group, then field 3 varint 7
        let group = [0x0b, 0x10, 0x05, 0x0c, 0x18, 0x07];
        assert_eq!(fields(&group).unwrap(), [(1, None), (3, Some(7))]);
        assert!(fields(&group[..3]).is_err());
    }
}
