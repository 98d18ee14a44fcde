//! Solidity signatures of the corpus contracts and the npm contracts it drives
//! (see fixtures/contracts/corpus/*.sol).

use alloy::sol;

sol! {
    interface IERC20 {
        function approve(address spender, uint256 amount) external returns (bool);
        function transfer(address to, uint256 amount) external returns (bool);
        function transferFrom(address from, address to, uint256 amount) external returns (bool);
        function balanceOf(address account) external view returns (uint256);
        function totalSupply() external view returns (uint256);
    }

    interface IMintable {
        function mint(address to, uint256 amount) external;
    }

    interface IHookToken {
        function setHooks(bool enabled) external;
    }

    interface IWeth {
        function deposit() external payable;
    }

    interface IPausable {
        function paused() external view returns (bool);
    }

    interface IUniswapV2Factory {
        function createPair(address tokenA, address tokenB) external returns (address pair);
        function getPair(address tokenA, address tokenB) external view returns (address pair);
    }

    interface IUniswapV2Router02 {
        function addLiquidity(
            address tokenA,
            address tokenB,
            uint256 amountADesired,
            uint256 amountBDesired,
            uint256 amountAMin,
            uint256 amountBMin,
            address to,
            uint256 deadline
        ) external returns (uint256 amountA, uint256 amountB, uint256 liquidity);
        function removeLiquidity(
            address tokenA,
            address tokenB,
            uint256 liquidity,
            uint256 amountAMin,
            uint256 amountBMin,
            address to,
            uint256 deadline
        ) external returns (uint256 amountA, uint256 amountB);
        function swapExactTokensForTokens(
            uint256 amountIn,
            uint256 amountOutMin,
            address[] path,
            address to,
            uint256 deadline
        ) external returns (uint256[] amounts);
        function swapExactETHForTokens(uint256 amountOutMin, address[] path, address to, uint256 deadline)
            external payable returns (uint256[] amounts);
    }

    interface IUniswapV2Pair {
        function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast);
        function token0() external view returns (address);
        function swap(uint256 amount0Out, uint256 amount1Out, address to, bytes data) external;
    }

    interface IEtherBank {
        function deposit() external payable;
        function withdraw(uint256 amount) external;
        function withdrawAll() external;
        function balanceOf(address account) external view returns (uint256);
        function totalAssets() external view returns (uint256);
    }

    interface IBankDrainAttack {
        function attack() external payable;
    }

    interface IBankLeakAttack {
        function attack(uint256 reentries) external payable;
    }

    struct WalletCall {
        address target;
        uint256 value;
        bytes data;
    }

    interface ISmartWallet {
        function setHook(uint8 mode, address watched, bytes viewCall) external;
        function exec(address target, uint256 value, bytes data) external payable returns (bytes);
        function execBatch(WalletCall[] calls) external payable;
        function reads() external view returns (uint256);
    }

    interface IHookShareVault {
        function deposit(uint256 assets) external returns (uint256 shares);
        function redeem(uint256 shares) external returns (uint256 assets);
        function sweep(address token, address to) external;
        function balanceOf(address account) external view returns (uint256);
        function totalAssets() external view returns (uint256);
        function convertToAssets(uint256 shares) external view returns (uint256);
    }

    interface IHookVaultReentrancyAttack {
        function attack(uint256 amount, uint256 maxReentries) external;
    }

    interface IERC4626 {
        function deposit(uint256 assets, address receiver) external returns (uint256 shares);
        function redeem(uint256 shares, address receiver, address owner) external returns (uint256 assets);
        function withdraw(uint256 assets, address receiver, address owner) external returns (uint256 shares);
        function balanceOf(address account) external view returns (uint256);
        function totalAssets() external view returns (uint256);
        function approve(address spender, uint256 amount) external returns (bool);
        function multicall(bytes[] data) external returns (bytes[] results);
    }

    interface ILendMarket {
        function deposit(uint256 amount) external;
        function withdraw(uint256 amount) external;
        function depositCollateral(uint256 amount) external;
        function withdrawCollateral(uint256 amount) external;
        function borrow(uint256 amount) external;
        function repay(uint256 amount) external;
        function liquidate(address borrower, uint256 repayAmount) external returns (uint256 seized);
        function multicall(bytes[] data) external returns (bytes[] results);
        function maxBorrow(address user) external view returns (uint256);
        function debtOf(address user) external view returns (uint256);
        function collateralOf(address user) external view returns (uint256);
        function supplied(address user) external view returns (uint256);
        function healthy(address user) external view returns (bool);
    }

    interface IManualFeed {
        function setPrice(uint256 price) external;
    }

    interface IRateVault {
        function stake() external payable returns (uint256 shares);
        function unstake(uint256 shares) external returns (uint256 amount);
        function getRate() external view returns (uint256);
    }

    interface IRateReadOnlyAttack {
        function attack() external payable;
    }

    interface ISpotPriceAttack {
        function attack(uint256 pumpAmount, uint256 collateralAmount, uint256 borrowAmount) external;
    }

    interface IFlashRefinancer {
        function open(uint256 collateral, uint256 debt) external;
        function close() external;
    }

    interface IPairBreaker {
        function swapExactIn(address tokenIn, uint256 amountIn, uint256 minOut, address to) external returns (uint256 amountOut);
    }

    interface IRoleTreasury {
        function setupRole(bytes32 role, address account) external;
        function pay(address token, address to, uint256 amount) external;
        function payEth(address to, uint256 amount) external;
        function grantRole(bytes32 role, address account) external;
        function revokeRole(bytes32 role, address account) external;
        function transferOwnership(address newOwner) external;
        function hasRole(bytes32 role, address account) external view returns (bool);
        function owner() external view returns (address);
    }

    interface IProxyTreasury {
        function initialize(address owner) external;
        function withdraw(address token, address to, uint256 amount) external;
        function withdrawEth(address to, uint256 amount) external;
        function upgradeToAndCall(address newImplementation, bytes data) external payable;
        function owner() external view returns (address);
    }

    interface IInitHijackAttack {
        function attack(address token) external;
    }

    interface IFlashGovernor {
        function propose(address target, uint256 value, bytes data) external returns (uint256 id);
        function vote(uint256 id) external;
        function execute(uint256 id) external;
        function proposalCount() external view returns (uint256);
        function payout(address token, address to, uint256 amount) external;
        function sweep(address to) external;
    }

    interface IFlashVoteAttack {
        function attack(uint256 id, uint256 amount) external;
    }

    interface ITimelockController {
        function schedule(address target, uint256 value, bytes data, bytes32 predecessor, bytes32 salt, uint256 delay) external;
    }

    interface IExecutorGate {
        function execute(address target, uint256 value, bytes payload, bytes32 predecessor, bytes32 salt) external payable;
    }

    struct RouteCall {
        address target;
        bytes data;
    }

    interface ISwapAggregator {
        function swapExactIn(address pair, address tokenIn, uint256 amountIn, uint256 minOut, address to) external returns (uint256 amountOut);
        function executeRoute(address tokenIn, uint256 amountIn, RouteCall[] calls, address tokenOut, uint256 minOut) external returns (uint256 amountOut);
        function sendWithPermit(address token, uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s, address to) external;
        function multicall(bytes[] data) external returns (bytes[] results);
    }

    interface ILedgerToken {
        function transferWithSig(address from, address to, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external;
        function transferDigest(address from, address to, uint256 value, uint256 deadline) external view returns (bytes32);
        function permitDigest(address owner, address spender, uint256 value, uint256 deadline) external view returns (bytes32);
    }

    interface ISigReplayAttack {
        function replay(address from, address to, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s, uint256 times) external;
    }

    interface IVestingRewards {
        function allocate(address[] accounts, uint256 amountEach) external;
        function claim(address account) external returns (uint256 amount);
        function claimable(address account) external view returns (uint256);
    }
}
