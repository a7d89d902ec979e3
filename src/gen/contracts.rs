//! The generator's contracts, assembled by [`super::asm`]: an ERC-20 token (runtime and a
//! deploying init code), a constant-product pair that trades two tokens through
//! `transferFrom`/`transfer`, a router that swaps along a path of one or two pairs, and a
//! storage filler. Storage layout of the token: the balance of
//! `a` at `keccak(a ‖ 0)`, the allowance of `owner` to `spender` at
//! `keccak(spender ‖ keccak(owner ‖ 1))` (Solidity's mapping layout); the pair keeps its
//! reserves in slots 0 and 1.

use super::asm::{op, Asm, AsmError};
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};

/// The first four bytes of keccak256 of a function signature.
pub fn selector(signature: &str) -> [u8; 4] {
    let hash = keccak256(signature.as_bytes());
    [hash[0], hash[1], hash[2], hash[3]]
}

/// keccak256 of an event signature (its topic 0).
pub fn topic(signature: &str) -> B256 {
    keccak256(signature.as_bytes())
}

/// `transfer(address,uint256)`.
pub const TRANSFER: &str = "transfer(address,uint256)";
/// `approve(address,uint256)`.
pub const APPROVE: &str = "approve(address,uint256)";
/// `transferFrom(address,address,uint256)`.
pub const TRANSFER_FROM: &str = "transferFrom(address,address,uint256)";
/// `balanceOf(address)`.
pub const BALANCE_OF: &str = "balanceOf(address)";
/// The pair's `swap(uint256 amountIn, uint256 zeroForOne, uint256 minOut)`.
pub const SWAP: &str = "swap(uint256,uint256,uint256)";
/// The router's `route(amountIn, minOut, tokenIn, tokenOut, hops, pair1, zeroForOne1, out1,
/// pair2, zeroForOne2, out2)`: `out` is the token a hop pays out; the second hop's words are
/// read only when `hops` is 2.
pub const ROUTE: &str =
    "route(uint256,uint256,address,address,uint256,address,uint256,address,address,uint256,address)";
/// The filler's `fill(uint256 start, uint256 count, uint256 clear)`.
pub const FILL: &str = "fill(uint256,uint256,uint256)";
/// ERC-20 `Transfer` event.
pub const TRANSFER_EVENT: &str = "Transfer(address,address,uint256)";
/// ERC-20 `Approval` event.
pub const APPROVAL_EVENT: &str = "Approval(address,address,uint256)";
/// The pair's `Swap(address indexed sender, uint256 amountIn, uint256 amountOut, uint256 zeroForOne)`.
pub const SWAP_EVENT: &str = "Swap(address,uint256,uint256,uint256)";
/// Slots the filler writes into: `fill` takes its slot numbers modulo this.
pub const FILL_SLOTS: u64 = 4096;

/// Token balance slot of `holder`: keccak(holder ‖ 0).
pub fn balance_slot(holder: Address) -> B256 {
    let mut buf = [0u8; 64];
    buf[12..32].copy_from_slice(holder.as_slice());
    keccak256(buf)
}

/// Token allowance slot of `owner` to `spender`: keccak(spender ‖ keccak(owner ‖ 1)).
pub fn allowance_slot(owner: Address, spender: Address) -> B256 {
    let mut buf = [0u8; 64];
    buf[12..32].copy_from_slice(owner.as_slice());
    buf[63] = 1;
    let inner = keccak256(buf);
    buf[12..32].copy_from_slice(spender.as_slice());
    buf[32..].copy_from_slice(inner.as_slice());
    keccak256(buf)
}

/// `[address] -> [keccak(address ‖ index)]`, using memory 0..64.
fn mapping_slot(asm: &mut Asm, index: u64) {
    asm.push_u64(0)
        .ops(&[op::MSTORE])
        .push_u64(index)
        .push_u64(0x20)
        .ops(&[op::MSTORE])
        .push_u64(0x40)
        .push_u64(0)
        .ops(&[op::SHA3]);
}

/// `[spender, owner] -> [allowance slot]`.
fn allowance_slot_code(asm: &mut Asm) {
    mapping_slot(asm, 1);
    asm.push_u64(0x20)
        .ops(&[op::MSTORE])
        .push_u64(0)
        .ops(&[op::MSTORE])
        .push_u64(0x40)
        .push_u64(0)
        .ops(&[op::SHA3]);
}

/// Push calldata word `index` (after the selector).
fn arg(asm: &mut Asm, index: u64) {
    asm.push_u64(4 + 32 * index).ops(&[op::CALLDATALOAD]);
}

/// Return the word 1 (`true`).
fn return_true(asm: &mut Asm) {
    asm.push_u64(1)
        .push_u64(0)
        .ops(&[op::MSTORE])
        .push_u64(0x20)
        .push_u64(0)
        .ops(&[op::RETURN]);
}

/// `[value, to, from] -> []`: move `value` from `from`'s balance to `to`'s (reverting when
/// `from` holds less) and log `Transfer(from, to, value)`.
fn move_balance(asm: &mut Asm) {
    asm.ops(&[op::dup(1)]);
    mapping_slot(asm, 0); // [v to from fslot]
    asm.ops(&[op::DUP1, op::SLOAD]) // [v to from fslot fbal]
        .ops(&[op::dup(5), op::dup(2), op::LT])
        .jump_if("revert")
        .ops(&[op::dup(5), op::SWAP1, op::SUB, op::SWAP1, op::SSTORE]) // [v to from]
        .ops(&[op::dup(2)]);
    mapping_slot(asm, 0); // [v to from tslot]
    asm.ops(&[
        op::DUP1,
        op::SLOAD,
        op::dup(5),
        op::ADD,
        op::SWAP1,
        op::SSTORE,
    ])
    .ops(&[op::dup(3)])
    .push_u64(0)
    .ops(&[op::MSTORE, op::dup(2), op::dup(2)])
    .push(U256::from_be_bytes(topic(TRANSFER_EVENT).0))
    .push_u64(0x20)
    .push_u64(0)
    .ops(&[op::LOG3, op::POP, op::POP, op::POP]);
}

/// Dispatch on the selector: jump to each `(signature, label)`, else revert.
fn dispatch(asm: &mut Asm, routes: &[(&str, &str)]) {
    asm.push_u64(0)
        .ops(&[op::CALLDATALOAD])
        .push_u64(0xe0)
        .ops(&[op::SHR]);
    for (signature, label) in routes {
        asm.ops(&[op::DUP1])
            .push(U256::from_be_slice(&selector(signature)))
            .ops(&[op::EQ])
            .jump_if(label);
    }
    asm.label("revert")
        .push_u64(0)
        .push_u64(0)
        .ops(&[op::REVERT]);
}

/// The ERC-20 runtime code: `transfer`, `approve`, `transferFrom`, `balanceOf`.
pub fn token_runtime() -> Result<Bytes, AsmError> {
    let mut asm = Asm::new();
    dispatch(
        &mut asm,
        &[
            (TRANSFER, "transfer"),
            (APPROVE, "approve"),
            (TRANSFER_FROM, "transfer_from"),
            (BALANCE_OF, "balance_of"),
        ],
    );
    asm.label("transfer");
    arg(&mut asm, 1);
    arg(&mut asm, 0);
    asm.ops(&[op::CALLER]);
    move_balance(&mut asm);
    return_true(&mut asm);

    asm.label("approve");
    arg(&mut asm, 1);
    arg(&mut asm, 0); // [v spender]
    asm.ops(&[op::DUP1, op::CALLER]);
    allowance_slot_code(&mut asm); // [v spender slot]
    asm.ops(&[op::dup(3), op::SWAP1, op::SSTORE, op::dup(2)])
        .push_u64(0)
        .ops(&[op::MSTORE, op::DUP1, op::CALLER])
        .push(U256::from_be_bytes(topic(APPROVAL_EVENT).0))
        .push_u64(0x20)
        .push_u64(0)
        .ops(&[op::LOG3]);
    return_true(&mut asm);

    asm.label("transfer_from");
    arg(&mut asm, 2);
    arg(&mut asm, 1);
    arg(&mut asm, 0); // [v to from]
    asm.ops(&[op::CALLER, op::dup(2)]);
    allowance_slot_code(&mut asm); // [v to from aslot]
    asm.ops(&[op::DUP1, op::SLOAD, op::dup(5), op::dup(2), op::LT])
        .jump_if("revert")
        .ops(&[op::dup(5), op::SWAP1, op::SUB, op::SWAP1, op::SSTORE]);
    move_balance(&mut asm);
    return_true(&mut asm);

    asm.label("balance_of");
    arg(&mut asm, 0);
    mapping_slot(&mut asm, 0);
    asm.ops(&[op::SLOAD])
        .push_u64(0)
        .ops(&[op::MSTORE])
        .push_u64(0x20)
        .push_u64(0)
        .ops(&[op::RETURN]);
    asm.assemble()
}

/// Init code that deploys [`token_runtime`], crediting `supply` to the deployer (with a
/// `Transfer` from the zero address).
pub fn token_init_code(supply: U256) -> Result<Bytes, AsmError> {
    let runtime = token_runtime()?;
    let mut asm = Asm::new();
    asm.push(supply).ops(&[op::CALLER]);
    mapping_slot(&mut asm, 0);
    asm.ops(&[op::SSTORE])
        .push(supply)
        .push_u64(0)
        .ops(&[op::MSTORE, op::CALLER])
        .push_u64(0)
        .push(U256::from_be_bytes(topic(TRANSFER_EVENT).0))
        .push_u64(0x20)
        .push_u64(0)
        .ops(&[op::LOG3])
        .push_u64(runtime.len() as u64)
        .ops(&[op::DUP1])
        .push_label("@runtime")
        .push_u64(0)
        .ops(&[op::CODECOPY])
        .push_u64(0)
        .ops(&[op::RETURN])
        .mark("runtime")
        .raw(&runtime);
    asm.assemble()
}

/// Call `token` with the `len` bytes of calldata at memory 0x80 (selector included); revert
/// unless the call succeeds.
fn call_token(asm: &mut Asm, token: Address, len: u64) {
    call(asm, len, |asm| {
        asm.push_address(token);
    });
}

/// Call the address `target` pushes, with the `len` bytes of calldata at memory 0x80, its
/// return word landing at memory 0; revert unless the call succeeds.
fn call(asm: &mut Asm, len: u64, target: impl FnOnce(&mut Asm)) {
    asm.push_u64(0x20)
        .push_u64(0)
        .push_u64(len)
        .push_u64(0x80)
        .push_u64(0);
    target(asm);
    asm.ops(&[op::GAS, op::CALL, op::ISZERO]).jump_if("revert");
}

/// Call the address in calldata word `index` (see [`call`]).
fn call_arg(asm: &mut Asm, index: u64, len: u64) {
    call(asm, len, |asm| arg(asm, index));
}

/// Store a selector at memory 0x80 (the call buffer).
fn call_selector(asm: &mut Asm, signature: &str) {
    asm.push(U256::from_be_slice(&selector(signature)))
        .push_u64(0xe0)
        .ops(&[op::SHL])
        .push_u64(0x80)
        .ops(&[op::MSTORE]);
}

/// One direction of the swap: pull `amountIn` of `token_in`, pay out of `token_out` by
/// x·y = k with a 0.3 % fee, update the reserves, log `Swap`.
fn swap_leg(asm: &mut Asm, token_in: Address, token_out: Address, slot_in: u64, slot_out: u64) {
    call_selector(asm, TRANSFER_FROM);
    asm.ops(&[op::CALLER])
        .push_u64(0x84)
        .ops(&[op::MSTORE, op::ADDRESS])
        .push_u64(0xa4)
        .ops(&[op::MSTORE]);
    arg(asm, 0);
    asm.push_u64(0xc4).ops(&[op::MSTORE]);
    call_token(asm, token_in, 0x64);
    // out = in·997·rOut / (rIn·1000 + in·997)
    arg(asm, 0);
    asm.push_u64(997)
        .ops(&[op::MUL, op::DUP1])
        .push_u64(slot_out)
        .ops(&[op::SLOAD, op::MUL])
        .push_u64(slot_in)
        .ops(&[op::SLOAD])
        .push_u64(1000)
        .ops(&[
            op::MUL,
            op::dup(3),
            op::ADD,
            op::SWAP1,
            op::DIV,
            op::SWAP1,
            op::POP,
        ]);
    // [out]: revert below minOut
    asm.ops(&[op::DUP1]);
    arg(asm, 2);
    asm.ops(&[op::GT]).jump_if("revert");
    arg(asm, 0);
    asm.push_u64(slot_in)
        .ops(&[op::SLOAD, op::ADD])
        .push_u64(slot_in)
        .ops(&[op::SSTORE, op::DUP1])
        .push_u64(slot_out)
        .ops(&[op::SLOAD, op::SUB])
        .push_u64(slot_out)
        .ops(&[op::SSTORE]);
    call_selector(asm, TRANSFER);
    asm.ops(&[op::CALLER])
        .push_u64(0x84)
        .ops(&[op::MSTORE, op::DUP1])
        .push_u64(0xa4)
        .ops(&[op::MSTORE]);
    call_token(asm, token_out, 0x44);
    arg(asm, 0);
    asm.push_u64(0)
        .ops(&[op::MSTORE])
        .push_u64(0x20)
        .ops(&[op::MSTORE]);
    arg(asm, 1);
    asm.push_u64(0x40)
        .ops(&[op::MSTORE, op::CALLER])
        .push(U256::from_be_bytes(topic(SWAP_EVENT).0))
        .push_u64(0x60)
        .push_u64(0)
        .ops(&[op::LOG2]);
    return_true(asm);
}

/// The constant-product pair of `token0` and `token1` (reserves in slots 0 and 1):
/// `swap(amountIn, zeroForOne, minOut)` sells token0 for token1 when `zeroForOne` is non-zero,
/// token1 for token0 otherwise; the caller must have approved the pair on the token it sells.
pub fn pair_runtime(token0: Address, token1: Address) -> Result<Bytes, AsmError> {
    let mut asm = Asm::new();
    dispatch(&mut asm, &[(SWAP, "swap")]);
    asm.label("swap");
    arg(&mut asm, 1);
    asm.jump_if("zero_for_one");
    swap_leg(&mut asm, token1, token0, 1, 0);
    asm.label("zero_for_one");
    swap_leg(&mut asm, token0, token1, 0, 1);
    asm.assemble()
}

/// One hop of a route, `[amount] -> [amount out]`: `swap(amount, zeroForOne, 0)` on the pair
/// in calldata word `pair` (which pulls the router's `amount` and pays the router), then the
/// router's balance of the token in word `out` (it holds none between transactions, so that
/// is what the hop paid).
fn route_hop(asm: &mut Asm, pair: u64, zero_for_one: u64, out: u64) {
    call_selector(asm, SWAP);
    asm.ops(&[op::DUP1]).push_u64(0x84).ops(&[op::MSTORE]);
    arg(asm, zero_for_one);
    asm.push_u64(0xa4)
        .ops(&[op::MSTORE])
        .push_u64(0)
        .push_u64(0xc4)
        .ops(&[op::MSTORE]);
    call_arg(asm, pair, 0x64);
    asm.ops(&[op::POP]);
    call_selector(asm, BALANCE_OF);
    asm.ops(&[op::ADDRESS]).push_u64(0x84).ops(&[op::MSTORE]);
    call_arg(asm, out, 0x24);
    asm.push_u64(0).ops(&[op::MLOAD]);
}

/// The router: [`ROUTE`] pulls `amountIn` of `tokenIn` from the caller (who must have approved
/// the router), swaps it through one or two pairs (the router has approved every pair on its
/// tokens), reverts when the output is below `minOut`, and pays the output of `tokenOut` to the
/// caller. It trusts the path it is given: the generator only builds consistent ones.
pub fn router_runtime() -> Result<Bytes, AsmError> {
    let mut asm = Asm::new();
    dispatch(&mut asm, &[(ROUTE, "route")]);
    asm.label("route");
    call_selector(&mut asm, TRANSFER_FROM);
    asm.ops(&[op::CALLER])
        .push_u64(0x84)
        .ops(&[op::MSTORE, op::ADDRESS])
        .push_u64(0xa4)
        .ops(&[op::MSTORE]);
    arg(&mut asm, 0);
    asm.push_u64(0xc4).ops(&[op::MSTORE]);
    call_arg(&mut asm, 2, 0x64);
    arg(&mut asm, 0); // [amount]
    route_hop(&mut asm, 5, 6, 7);
    arg(&mut asm, 4);
    asm.push_u64(1).ops(&[op::EQ]).jump_if("pay");
    route_hop(&mut asm, 8, 9, 10);
    asm.label("pay"); // [amount]
    asm.ops(&[op::DUP1]);
    arg(&mut asm, 1);
    asm.ops(&[op::GT]).jump_if("revert");
    call_selector(&mut asm, TRANSFER);
    asm.ops(&[op::CALLER])
        .push_u64(0x84)
        .ops(&[op::MSTORE, op::DUP1])
        .push_u64(0xa4)
        .ops(&[op::MSTORE]);
    call_arg(&mut asm, 3, 0x44);
    return_true(&mut asm);
    asm.assemble()
}

/// The storage filler: `fill(start, count, clear)` writes `count` slots from `start` (modulo
/// [`FILL_SLOTS`]) with `number·2^16 + i + 1`, or zero when `clear` is non-zero.
pub fn filler_runtime() -> Result<Bytes, AsmError> {
    let mut asm = Asm::new();
    dispatch(&mut asm, &[(FILL, "fill")]);
    asm.label("fill");
    arg(&mut asm, 1);
    asm.push_u64(0)
        .label("loop")
        .ops(&[op::dup(2), op::dup(2), op::LT, op::ISZERO]);
    asm.jump_if("done").ops(&[op::DUP1]);
    arg(&mut asm, 0);
    asm.ops(&[op::ADD])
        .push_u64(FILL_SLOTS - 1)
        .ops(&[op::AND, op::dup(2), op::NUMBER])
        .push_u64(0x10000)
        .ops(&[op::MUL, op::ADD])
        .push_u64(1)
        .ops(&[op::ADD]);
    arg(&mut asm, 2);
    asm.ops(&[op::ISZERO, op::MUL, op::SWAP1, op::SSTORE])
        .push_u64(1)
        .ops(&[op::ADD])
        .jump("loop")
        .label("done")
        .ops(&[op::STOP]);
    asm.assemble()
}
