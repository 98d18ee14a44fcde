//! The calls and events preempt names itself (not the protected protocols' own ABIs, which
//! come from config): selectors and topics from these bindings, never written by hand.

use alloy::sol;

sol! {
    /// ERC-20: holdings, supply, allowances, metadata; the calls that move tokens.
    interface IERC20 {
        event Transfer(address indexed from, address indexed to, uint256 value);
        function balanceOf(address account) external view returns (uint256);
        function totalSupply() external view returns (uint256);
        function allowance(address owner, address spender) external view returns (uint256);
        function decimals() external view returns (uint8);
        function symbol() external view returns (string);
        function name() external view returns (string);
        function transfer(address to, uint256 amount) external returns (bool);
        function transferFrom(address from, address to, uint256 amount) external returns (bool);
        function approve(address spender, uint256 amount) external returns (bool);
    }

    /// Who holds a contract's keys: `owner()` (Ownable), `admin()` (common proxies), and the
    /// events that move them.
    interface IPrivileged {
        event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
        event RoleGranted(bytes32 indexed role, address indexed account, address indexed sender);
        event Upgraded(address indexed implementation);
        event AdminChanged(address previousAdmin, address newAdmin);
        function owner() external view returns (address);
        function admin() external view returns (address);
    }

    /// OpenZeppelin's Pausable: the default containment call and the state it leaves.
    interface IPausable {
        function pause() external;
        function paused() external view returns (bool);
    }

    /// The Safe transaction an owner signs (Safe.sol 1.4.1 `SAFE_TX_TYPEHASH`).
    #[derive(Debug)]
    struct SafeTx {
        address to;
        uint256 value;
        bytes data;
        uint8 operation;
        uint256 safeTxGas;
        uint256 baseGas;
        uint256 gasPrice;
        address gasToken;
        address refundReceiver;
        uint256 nonce;
    }

    /// The Safe 1.4.1 functions preempt calls: a pause through the Safe (as an owner or a
    /// module) and the views that tell which; `setup` and `enableModule` for the dev net's Safes.
    interface ISafe {
        function execTransaction(
            address to,
            uint256 value,
            bytes data,
            uint8 operation,
            uint256 safeTxGas,
            uint256 baseGas,
            uint256 gasPrice,
            address gasToken,
            address refundReceiver,
            bytes signatures
        ) external payable returns (bool success);
        function execTransactionFromModule(address to, uint256 value, bytes data, uint8 operation)
            external returns (bool success);
        function nonce() external view returns (uint256);
        function getThreshold() external view returns (uint256);
        function isOwner(address owner) external view returns (bool);
        function isModuleEnabled(address module) external view returns (bool);
        function setup(
            address[] owners,
            uint256 threshold,
            address to,
            bytes data,
            address fallbackHandler,
            address paymentToken,
            uint256 payment,
            address paymentReceiver
        ) external;
        function enableModule(address module) external;
    }
}

#[cfg(test)]
mod tests {
    use alloy::{
        primitives::{b256, keccak256},
        sol_types::{SolCall, SolEvent},
    };

    use super::*;

    #[test]
    fn selectors_and_topics_are_the_well_known_ones() {
        assert_eq!(IERC20::balanceOfCall::SELECTOR, [0x70, 0xa0, 0x82, 0x31]);
        assert_eq!(IERC20::transferFromCall::SELECTOR, [0x23, 0xb8, 0x72, 0xdd]);
        assert_eq!(IPausable::pauseCall::SELECTOR, [0x84, 0x56, 0xcb, 0x59]);
        assert_eq!(IPausable::pausedCall::SELECTOR, [0x5c, 0x97, 0x5a, 0xbb]);
        assert_eq!(IPrivileged::ownerCall::SELECTOR, [0x8d, 0xa5, 0xcb, 0x5b]);
        assert_eq!(ISafe::execTransactionCall::SELECTOR, [0x6a, 0x76, 0x12, 0x02]);
        assert_eq!(ISafe::setupCall::SELECTOR, [0xb6, 0x3e, 0x80, 0x0d]);
        assert_eq!(
            IERC20::Transfer::SIGNATURE_HASH,
            b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef")
        );
        assert_eq!(
            IPrivileged::RoleGranted::SIGNATURE_HASH,
            keccak256("RoleGranted(bytes32,address,address)")
        );
    }
}
