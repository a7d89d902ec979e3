//! A small EVM assembler for the generator's contracts: opcodes, minimal-width pushes, named
//! labels (each a `JUMPDEST`) and pushes of their offsets, resolved in a second pass.

use alloy_primitives::{Address, Bytes, U256};
use std::collections::BTreeMap;

/// The opcodes the generator's contracts use.
#[allow(missing_docs)]
pub mod op {
    pub const STOP: u8 = 0x00;
    pub const ADD: u8 = 0x01;
    pub const MUL: u8 = 0x02;
    pub const SUB: u8 = 0x03;
    pub const DIV: u8 = 0x04;
    pub const LT: u8 = 0x10;
    pub const GT: u8 = 0x11;
    pub const EQ: u8 = 0x14;
    pub const ISZERO: u8 = 0x15;
    pub const AND: u8 = 0x16;
    pub const SHL: u8 = 0x1b;
    pub const SHR: u8 = 0x1c;
    pub const SHA3: u8 = 0x20;
    pub const ADDRESS: u8 = 0x30;
    pub const CALLER: u8 = 0x33;
    pub const CALLDATALOAD: u8 = 0x35;
    pub const CODECOPY: u8 = 0x39;
    pub const NUMBER: u8 = 0x43;
    pub const POP: u8 = 0x50;
    pub const MLOAD: u8 = 0x51;
    pub const MSTORE: u8 = 0x52;
    pub const SLOAD: u8 = 0x54;
    pub const SSTORE: u8 = 0x55;
    pub const JUMP: u8 = 0x56;
    pub const JUMPI: u8 = 0x57;
    pub const GAS: u8 = 0x5a;
    pub const JUMPDEST: u8 = 0x5b;
    pub const PUSH0: u8 = 0x5f;
    pub const PUSH2: u8 = 0x61;
    pub const DUP1: u8 = 0x80;
    pub const SWAP1: u8 = 0x90;
    pub const LOG2: u8 = 0xa2;
    pub const LOG3: u8 = 0xa3;
    pub const CALL: u8 = 0xf1;
    pub const RETURN: u8 = 0xf3;
    pub const REVERT: u8 = 0xfd;

    /// `DUPn` for n in 1..=16.
    pub const fn dup(n: u8) -> u8 {
        DUP1 + n - 1
    }
}

/// A program that cannot be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsmError {
    /// A label is pushed or jumped to but never defined.
    #[error("label {0:?} is used but not defined")]
    Undefined(String),
    /// A label is defined twice.
    #[error("label {0:?} is defined twice")]
    Duplicate(String),
    /// The code is too long for a two-byte label offset.
    #[error("label {0:?} lies beyond offset 0xffff")]
    TooFar(String),
}

enum Item {
    Bytes(Vec<u8>),
    Label(String),
    PushLabel(String),
}

/// A program under construction; every method appends and returns `self` for chaining.
#[derive(Default)]
pub struct Asm {
    items: Vec<Item>,
}

impl Asm {
    /// An empty program.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append opcodes.
    pub fn ops(&mut self, ops: &[u8]) -> &mut Self {
        self.items.push(Item::Bytes(ops.to_vec()));
        self
    }

    /// Append raw bytes (already assembled code or data).
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.items.push(Item::Bytes(bytes.to_vec()));
        self
    }

    /// Push `value` with the shortest push (`PUSH0` for zero).
    pub fn push(&mut self, value: U256) -> &mut Self {
        let bytes = value.to_be_bytes_trimmed_vec();
        self.push_bytes(&bytes)
    }

    /// Push a small number.
    pub fn push_u64(&mut self, value: u64) -> &mut Self {
        self.push(U256::from(value))
    }

    /// Push an address as a 20-byte immediate.
    pub fn push_address(&mut self, address: Address) -> &mut Self {
        self.push_bytes(address.as_slice())
    }

    /// Push up to 32 bytes as one immediate (`PUSH0` when empty).
    fn push_bytes(&mut self, bytes: &[u8]) -> &mut Self {
        debug_assert!(bytes.len() <= 32);
        let mut code = vec![op::PUSH0 + bytes.len() as u8];
        code.extend_from_slice(bytes);
        self.items.push(Item::Bytes(code));
        self
    }

    /// Define `name` here (emits `JUMPDEST`).
    pub fn label(&mut self, name: &str) -> &mut Self {
        self.items.push(Item::Label(name.to_string()));
        self
    }

    /// Define `name` here without a `JUMPDEST` (a data or code offset, not a jump target).
    pub fn mark(&mut self, name: &str) -> &mut Self {
        self.items.push(Item::Label(format!("@{name}")));
        self
    }

    /// Push the offset of label `name` (a `PUSH2`); `@name` refers to a [`Asm::mark`].
    pub fn push_label(&mut self, name: &str) -> &mut Self {
        self.items.push(Item::PushLabel(name.to_string()));
        self
    }

    /// `JUMP` to `name`.
    pub fn jump(&mut self, name: &str) -> &mut Self {
        self.push_label(name).ops(&[op::JUMP])
    }

    /// `JUMPI` to `name` (the condition must be on the stack).
    pub fn jump_if(&mut self, name: &str) -> &mut Self {
        self.push_label(name).ops(&[op::JUMPI])
    }

    /// Resolve the labels and return the bytecode.
    pub fn assemble(&self) -> Result<Bytes, AsmError> {
        let mut offsets = BTreeMap::new();
        let mut offset = 0usize;
        for item in &self.items {
            match item {
                Item::Bytes(bytes) => offset += bytes.len(),
                Item::PushLabel(_) => offset += 3,
                Item::Label(name) => {
                    if offsets.insert(name.clone(), offset).is_some() {
                        return Err(AsmError::Duplicate(name.clone()));
                    }
                    if !name.starts_with('@') {
                        offset += 1;
                    }
                }
            }
        }
        let mut code = Vec::with_capacity(offset);
        for item in &self.items {
            match item {
                Item::Bytes(bytes) => code.extend_from_slice(bytes),
                Item::Label(name) if !name.starts_with('@') => code.push(op::JUMPDEST),
                Item::Label(_) => {}
                Item::PushLabel(name) => {
                    let target = *offsets
                        .get(name)
                        .ok_or_else(|| AsmError::Undefined(name.clone()))?;
                    let target =
                        u16::try_from(target).map_err(|_| AsmError::TooFar(name.clone()))?;
                    code.push(op::PUSH2);
                    code.extend_from_slice(&target.to_be_bytes());
                }
            }
        }
        Ok(code.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_resolve_to_their_jumpdest_and_pushes_are_minimal() {
        let mut asm = Asm::new();
        asm.push_u64(0)
            .push_u64(0x1234)
            .jump("end")
            .ops(&[op::STOP])
            .label("end")
            .ops(&[op::STOP]);
        // PUSH0; PUSH2 0x1234; PUSH2 0x0009 JUMP; STOP; JUMPDEST (offset 9); STOP
        assert_eq!(
            asm.assemble().unwrap().to_vec(),
            vec![0x5f, 0x61, 0x12, 0x34, 0x61, 0x00, 0x09, 0x56, 0x00, 0x5b, 0x00]
        );
    }

    #[test]
    fn undefined_and_duplicate_labels_are_errors() {
        assert_eq!(
            Asm::new().jump("nowhere").assemble(),
            Err(AsmError::Undefined("nowhere".into()))
        );
        assert_eq!(
            Asm::new().label("a").label("a").assemble(),
            Err(AsmError::Duplicate("a".into()))
        );
    }
}
