//! Solidity signatures of the fixture and Uniswap V2 functions the dev net calls
//! (see fixtures/contracts/*.sol).

use alloy::sol;

sol! {
    interface IDemoToken {
        function mint(address to, uint256 amount) external;
        function approve(address spender, uint256 amount) external returns (bool);
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
    }

    interface IEthVault {
        function deposit() external payable;
        function withdraw(uint256 amount) external;
    }

    interface IStakePool {
        function stake() external payable returns (uint256 shares);
        function exit(uint256 shares) external returns (uint256 amount);
    }

    interface IShareLender {
        function fund() external payable;
    }

    interface ILendingPool {
        function deposit(uint256 amount) external;
        function withdraw(uint256 amount) external;
        function depositCollateral(uint256 amount) external;
        function borrow(uint256 amount) external;
    }

    interface IFlashBorrowerSafe {
        function run(uint256 amount, uint256 collateralTopUp) external;
    }

    /// VaultReentrancyAttack and ReadOnlyReentrancyAttack: both take the stake as msg.value.
    interface IEthAttack {
        function attack() external payable;
    }

    interface IPriceManipulationAttack {
        function attack(uint256 pumpAmount, uint256 collateralAmount, uint256 borrowAmount) external;
    }

    interface ITreasuryTakeoverAttack {
        function attack(address token) external;
    }
}
