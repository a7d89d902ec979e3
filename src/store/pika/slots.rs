//! Redis Cluster hash slots: the slot of a key (CRC16 of the key or of its `{hash tag}`, modulo
//! 16384, as the cluster specification defines it) and the slot map a node reports with
//! `CLUSTER SLOTS` (which master serves each slot).

use super::node::node_addr;
use redis::Value;

/// Hash slots of a Redis Cluster.
pub const SLOT_COUNT: usize = 16384;

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0) by byte, as a table: the state keys
/// of one commit batch are hashed by the hundred thousand.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The slot of `key`: only the part between the first `{` and the next `}` is hashed when it is
/// not empty (a hash tag), else the whole key.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOT_COUNT as u16
}

/// Which master serves each slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    /// The masters as `host:port`, sorted.
    masters: Vec<String>,
    /// Per slot, its master's index in `masters`, or `None` while no master serves it.
    owners: Vec<Option<u16>>,
}

impl SlotMap {
    /// The map in a `CLUSTER SLOTS` reply from `asked_host` (whose name stands in for a node
    /// that reports an empty host), or why the reply cannot be read.
    pub fn from_cluster_slots(reply: &Value, asked_host: &str) -> Result<Self, String> {
        let Value::Array(ranges) = reply else {
            return Err(format!("CLUSTER SLOTS replied {reply:?}, not an array"));
        };
        let mut assigned: Vec<(usize, usize, String)> = Vec::with_capacity(ranges.len());
        for range in ranges {
            let Value::Array(fields) = range else {
                return Err(format!("a CLUSTER SLOTS range is {range:?}, not an array"));
            };
            let (Some(first), Some(last), Some(Value::Array(master))) =
                (int(fields.first()), int(fields.get(1)), fields.get(2))
            else {
                return Err(format!("a CLUSTER SLOTS range reads {fields:?}"));
            };
            let host = match master.first() {
                Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
                Some(Value::SimpleString(text)) => text.clone(),
                other => return Err(format!("a CLUSTER SLOTS master's host is {other:?}")),
            };
            let host = if host.is_empty() {
                asked_host.to_string()
            } else {
                host
            };
            let port = int(master.get(1))
                .and_then(|port| u16::try_from(port).ok())
                .filter(|port| *port > 0)
                .ok_or_else(|| format!("master {host} has no valid port: {master:?}"))?;
            if host == "?" {
                return Err(format!(
                    "the master of slots {first}-{last} has no known address"
                ));
            }
            if first > last || last >= SLOT_COUNT as i64 || first < 0 {
                return Err(format!("slots {first}-{last} are out of range"));
            }
            let addr = node_addr(&host, port);
            assigned.push((first as usize, last as usize, addr));
        }
        let mut masters: Vec<String> = assigned.iter().map(|(_, _, a)| a.clone()).collect();
        masters.sort();
        masters.dedup();
        let mut owners = vec![None; SLOT_COUNT];
        for (first, last, addr) in &assigned {
            let index = masters.binary_search(addr).ok().map(|i| i as u16);
            owners[*first..=*last].fill(index);
        }
        Ok(Self { masters, owners })
    }

    /// The master serving `slot`, as `host:port`.
    pub fn master_of(&self, slot: u16) -> Option<&str> {
        let index = (*self.owners.get(usize::from(slot))?)?;
        self.masters.get(usize::from(index)).map(String::as_str)
    }

    /// Every master, as `host:port`, sorted.
    pub fn masters(&self) -> &[String] {
        &self.masters
    }

    /// The number of slots no master serves.
    pub fn uncovered(&self) -> usize {
        self.owners.iter().filter(|owner| owner.is_none()).count()
    }
}

fn int(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Int(n) => Some(*n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_xmodem() {
        // The check value of CRC-16/XMODEM, and the cluster specification's example.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        // Below 16384, so the slot is the CRC itself.
        assert_eq!(key_slot(b"123456789"), 0x31C3);
    }

    #[test]
    fn hash_tags_follow_the_specification() {
        // The specification's examples: only the first {...} with something inside counts.
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"no-tag}{"), crc16(b"no-tag}{") % 16384);
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"0123abcd".to_vec()),
        ])
    }

    fn range(first: i64, last: i64, master: Value) -> Value {
        Value::Array(vec![Value::Int(first), Value::Int(last), master])
    }

    #[test]
    fn slot_map_from_cluster_slots() {
        let reply = Value::Array(vec![
            range(0, 5460, node("10.0.0.1", 7000)),
            range(5461, 10922, node("", 7001)),
            range(10923, 16000, node("10.0.0.3", 7002)),
        ]);
        let map = SlotMap::from_cluster_slots(&reply, "seed").expect("a valid reply");
        assert_eq!(
            map.masters(),
            ["10.0.0.1:7000", "10.0.0.3:7002", "seed:7001"]
        );
        assert_eq!(map.master_of(0), Some("10.0.0.1:7000"));
        assert_eq!(map.master_of(5461), Some("seed:7001"));
        assert_eq!(map.master_of(16000), Some("10.0.0.3:7002"));
        assert_eq!(map.master_of(16001), None);
        assert_eq!(map.uncovered(), 16383 - 16000);
    }

    #[test]
    fn unreadable_cluster_slots_replies_are_refused() {
        assert!(SlotMap::from_cluster_slots(&Value::Okay, "h").is_err());
        let unknown = Value::Array(vec![range(0, 1, node("?", 7000))]);
        assert!(SlotMap::from_cluster_slots(&unknown, "h").is_err());
        let beyond = Value::Array(vec![range(0, 16384, node("h", 7000))]);
        assert!(SlotMap::from_cluster_slots(&beyond, "h").is_err());
    }
}
