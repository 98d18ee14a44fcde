//! Which entry points of a new contract to call: the names attack contracts use, and the
//! selectors its dispatcher compares the calldata against (a cheap scan of the runtime code).

use alloy::primitives::keccak256;

/// Entry points exploit contracts are written with: plain triggers first, then the flash-loan
/// callbacks of the lenders attacks borrow from (Aave V2/V3, ERC-3156, Balancer, Uniswap).
pub const ATTACK_ENTRY_POINTS: [&str; 14] = [
    "attack()",
    "exploit()",
    "execute()",
    "run()",
    "start()",
    "pwn()",
    "drain()",
    "go()",
    "onFlashLoan(address,address,uint256,uint256,bytes)",
    "executeOperation(address,uint256,uint256,address,bytes)",
    "executeOperation(address[],uint256[],uint256[],address,bytes)",
    "receiveFlashLoan(address[],uint256[],uint256[],bytes)",
    "uniswapV2Call(address,uint256,uint256,bytes)",
    "uniswapV3FlashCallback(uint256,uint256,bytes)",
];

/// The 4-byte selector of a function signature.
pub fn selector_of(signature: &str) -> [u8; 4] {
    let h = keccak256(signature.as_bytes());
    [h[0], h[1], h[2], h[3]]
}

/// The attack entry points with their selectors.
pub fn attack_entry_points() -> Vec<([u8; 4], &'static str)> {
    ATTACK_ENTRY_POINTS.iter().map(|s| (selector_of(s), *s)).collect()
}

const PUSH1: u8 = 0x60;
const PUSH4: u8 = 0x63;
const PUSH32: u8 = 0x7f;
const EQ: u8 = 0x14;
const DUP1: u8 = 0x80;
const DUP16: u8 = 0x8f;

/// Selectors the code's dispatcher compares against: `PUSH4 s EQ` or `PUSH4 s DUPn EQ` (how
/// solc and vyper lay out a dispatcher), in code order, at most `cap`. Push data is skipped,
/// so bytes inside other constants are never taken for opcodes.
pub fn dispatcher_selectors(code: &[u8], cap: usize) -> Vec<[u8; 4]> {
    let mut out: Vec<[u8; 4]> = Vec::new();
    let mut i = 0;
    while i < code.len() && out.len() < cap {
        let op = code[i];
        if op == PUSH4 && i + 5 <= code.len() {
            let selector = [code[i + 1], code[i + 2], code[i + 3], code[i + 4]];
            let next = code.get(i + 5).copied();
            let after = code.get(i + 6).copied();
            let compared = next == Some(EQ)
                || (next.is_some_and(|n| (DUP1..=DUP16).contains(&n)) && after == Some(EQ));
            if compared && selector != [0; 4] && selector != [0xff; 4] && !out.contains(&selector) {
                out.push(selector);
            }
        }
        if (PUSH1..=PUSH32).contains(&op) {
            i += usize::from(op - PUSH1) + 1;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_keccak_of_the_signature() {
        assert_eq!(selector_of("attack()"), [0x9e, 0x5f, 0xaa, 0xfc]);
        assert_eq!(selector_of("transfer(address,uint256)"), [0xa9, 0x05, 0x9c, 0xbb]);
    }

    #[test]
    fn a_solc_dispatcher_yields_its_selectors_and_push_data_is_never_read_as_code() {
        // DUP1 PUSH4 9e5faafc EQ PUSH2 0040 JUMPI
        // PUSH4 8da5cb5b DUP2 EQ PUSH2 0050 JUMPI   (optimizer layout)
        // PUSH4 aabbccdd GT                          (a binary-search split, not a selector)
        // PUSH32 <.. 63 11223344 14 ..>              (a constant that looks like a compare)
        let mut code = vec![0x80, 0x63, 0x9e, 0x5f, 0xaa, 0xfc, 0x14, 0x61, 0x00, 0x40, 0x57];
        code.extend([0x63, 0x8d, 0xa5, 0xcb, 0x5b, 0x81, 0x14, 0x61, 0x00, 0x50, 0x57]);
        code.extend([0x63, 0xaa, 0xbb, 0xcc, 0xdd, 0x11]);
        let mut constant = vec![0x7f];
        constant.extend([0u8; 26]);
        constant.extend([0x63, 0x11, 0x22, 0x33, 0x44, 0x14]);
        code.extend(constant);
        assert_eq!(
            dispatcher_selectors(&code, 16),
            vec![[0x9e, 0x5f, 0xaa, 0xfc], [0x8d, 0xa5, 0xcb, 0x5b]]
        );
        assert_eq!(dispatcher_selectors(&code, 1).len(), 1, "capped");
        assert!(dispatcher_selectors(&[0x63, 0x01], 16).is_empty(), "truncated code");
    }
}
