//! anvil's ten default dev accounts, each given the role it plays in the demo.

use alloy::{
    primitives::{Address, B256, b256},
    signers::local::PrivateKeySigner,
};

/// One of anvil's funded dev accounts and the role it plays in the demo.
#[derive(Clone, Debug)]
pub struct DevAccount {
    pub name: &'static str,
    pub address: Address,
    pub signer: PrivateKeySigner,
}

/// The roles, in anvil's account order (mnemonic "test test … junk", index 0..=9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Deployer = 0,
    Guardian = 1,
    User = 2,
    Attacker = 3,
    Whale = 4,
    LiquidityProvider = 5,
    Lender = 6,
    Borrower = 7,
}

/// (role name, private key). These are anvil's public test keys; never use them elsewhere.
const DEV_KEYS: [(&str, B256); 10] = [
    ("deployer", b256!("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")),
    ("guardian", b256!("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")),
    ("user", b256!("5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a")),
    ("attacker", b256!("7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6")),
    ("whale", b256!("47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a")),
    ("lp", b256!("8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba")),
    ("lender", b256!("92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e")),
    ("borrower", b256!("4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356")),
    ("relay-auth", b256!("dbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97")),
    ("spare", b256!("2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6")),
];

/// anvil's default dev accounts: 0 deployer, 1 guardian, 2 user, 3 attacker, 4 whale, 5 lp,
/// 6 lender, 7 borrower, 8 relay-auth (spare), 9 spare.
pub fn dev_accounts() -> Vec<DevAccount> {
    DEV_KEYS.iter().map(|&(name, key)| dev_account(name, key)).collect()
}

fn dev_account(name: &'static str, key: B256) -> DevAccount {
    // The keys are compile-time constants known to be valid secp256k1 scalars (anvil's own).
    let signer =
        PrivateKeySigner::from_bytes(&key).expect("anvil dev key is a valid secp256k1 key");
    DevAccount { name, address: signer.address(), signer }
}

impl Role {
    pub(crate) fn account(self) -> DevAccount {
        let (name, key) = DEV_KEYS[self as usize];
        dev_account(name, key)
    }
}
