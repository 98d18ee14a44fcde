#!/usr/bin/env node
// Compile fixtures/contracts/*.sol with the pinned solcjs API and write deterministic artifacts
// to fixtures/artifacts/<ContractName>.json; the same for the precision corpus
// (fixtures/contracts/corpus/*.sol → fixtures/artifacts/corpus/, with the OpenZeppelin contracts
// it deploys unchanged); copy the real Uniswap V2 artifacts from npm to
// fixtures/artifacts/uniswap/ and the Safe 1.4.1 ones to fixtures/artifacts/safe/. Run through
// scripts/build-fixtures.sh (which installs .tools).
'use strict';

const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const MODULES = path.join(ROOT, '.tools', 'node_modules');
const SRC_DIR = 'fixtures/contracts';
const OUT_DIR = path.join(ROOT, 'fixtures', 'artifacts');
const UNI_DIR = path.join(OUT_DIR, 'uniswap');
const SAFE_DIR = path.join(OUT_DIR, 'safe');

const solc = require(path.join(MODULES, 'solc'));
// Ethereum Keccak-256 from solc's own js-sha3 (0.8): resolved from solc's folder, because npm may
// hoist an older js-sha3 (another package's, without `keccak256`) to the top of node_modules.
const { keccak256 } = require(require.resolve('js-sha3', { paths: [path.join(MODULES, 'solc')] }));

// --check: compile and compare with the committed artifacts, write nothing, fail on any difference.
const CHECK = process.argv.includes('--check');
const stale = [];

function writeJson(file, value) {
  const text = JSON.stringify(value, null, 2) + '\n';
  if (fs.existsSync(file) && fs.readFileSync(file, 'utf8') === text) return false;
  if (CHECK) {
    stale.push(path.relative(ROOT, file));
    return true;
  }
  fs.writeFileSync(file, text);
  return true;
}

function hex(s) {
  if (typeof s !== 'string' || !/^(0x)?[0-9a-fA-F]*$/.test(s)) throw new Error('not hex bytecode');
  return s.startsWith('0x') ? s : '0x' + s;
}

// Resolve imports: "@..." from .tools/node_modules, anything else from the repo root.
function findImports(importPath) {
  const base = importPath.startsWith('@') ? MODULES : ROOT;
  const file = path.resolve(base, importPath);
  if (!file.startsWith(base + path.sep)) return { error: 'import outside the allowed roots: ' + importPath };
  try {
    return { contents: fs.readFileSync(file, 'utf8') };
  } catch (e) {
    return { error: 'not found: ' + importPath };
  }
}

// One compile set: every top-level .sol under srcDir (their imports come along), written as
// <ContractName>.json into outDir; `npm` names contracts of imported npm sources
// ([source path, contract name]) whose artifacts are written too.
function compileSet({ srcDir, outDir, npm = [] }) {
  const files = fs
    .readdirSync(path.join(ROOT, srcDir))
    .filter((f) => f.endsWith('.sol'))
    .sort();
  if (files.length === 0) throw new Error('no sources in ' + srcDir);

  const sources = {};
  const sourceBytes = {};
  for (const f of files) {
    const name = srcDir + '/' + f;
    const bytes = fs.readFileSync(path.join(ROOT, name));
    sourceBytes[name] = bytes;
    sources[name] = { content: bytes.toString('utf8') };
  }

  const input = {
    language: 'Solidity',
    sources,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };

  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const diags = output.errors || [];
  const errors = diags.filter((d) => d.severity === 'error');
  for (const d of diags.filter((d) => d.severity !== 'error')) {
    const loc = d.sourceLocation ? `${d.sourceLocation.file}:${d.sourceLocation.start}` : '';
    console.warn(`warning: ${loc} ${d.message}`);
  }
  if (errors.length > 0) {
    for (const d of errors) console.error(d.formattedMessage || d.message);
    throw new Error(`${errors.length} compile error(s)`);
  }

  const compiler = 'solc-' + solc.version().replace(/\.Emscripten\.clang$/, '');
  fs.mkdirSync(outDir, { recursive: true });
  const written = new Set();
  let changed = 0;
  const emit = (sourceName, contractName, c, sourceKeccak256) => {
    if (written.has(contractName)) throw new Error('duplicate contract name ' + contractName);
    written.add(contractName);
    const artifact = {
      contractName,
      sourceName,
      sourceKeccak256,
      compiler,
      abi: c.abi,
      bytecode: hex(c.evm.bytecode.object),
      deployedBytecode: hex(c.evm.deployedBytecode.object),
    };
    if (writeJson(path.join(outDir, contractName + '.json'), artifact)) changed++;
  };
  for (const sourceName of Object.keys(sources)) {
    const contracts = (output.contracts || {})[sourceName] || {};
    for (const contractName of Object.keys(contracts).sort()) {
      const c = contracts[contractName];
      if (!c.evm.bytecode.object) continue; // interfaces and abstract contracts
      emit(sourceName, contractName, c, '0x' + keccak256(sourceBytes[sourceName]));
    }
  }
  for (const [sourceName, contractName] of npm) {
    const c = ((output.contracts || {})[sourceName] || {})[contractName];
    if (!c || !c.evm.bytecode.object) throw new Error(`${sourceName}:${contractName} not in the compile output`);
    const source = findImports(sourceName);
    if (source.error) throw new Error(source.error);
    emit(sourceName, contractName, c, '0x' + keccak256(source.contents));
  }

  // Remove artifacts of contracts that no longer exist.
  for (const f of fs.readdirSync(outDir)) {
    if (f.endsWith('.json') && !written.has(f.slice(0, -5))) {
      if (CHECK) stale.push(path.relative(ROOT, path.join(outDir, f)) + ' (no source)');
      else fs.unlinkSync(path.join(outDir, f));
      changed++;
    }
  }
  console.log(`compiled ${files.length} sources in ${srcDir} with ${compiler}: ${written.size} artifacts (${changed} changed)`);
}

function copyUniswap() {
  const pins = [
    ['@uniswap/v2-core', 'UniswapV2Factory'],
    ['@uniswap/v2-core', 'UniswapV2Pair'],
    ['@uniswap/v2-periphery', 'UniswapV2Router02'],
    ['@uniswap/v2-periphery', 'WETH9'],
  ];
  fs.mkdirSync(UNI_DIR, { recursive: true });
  for (const [pkg, name] of pins) {
    const pkgDir = path.join(MODULES, pkg);
    const version = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;
    const build = JSON.parse(fs.readFileSync(path.join(pkgDir, 'build', name + '.json'), 'utf8'));
    const bytecode = build.evm && build.evm.bytecode && build.evm.bytecode.object;
    if (!bytecode) throw new Error(`${pkg}/build/${name}.json has no evm.bytecode.object`);
    writeJson(path.join(UNI_DIR, name + '.json'), {
      contractName: name,
      abi: build.abi,
      bytecode: hex(bytecode),
      source: `npm:${pkg}@${version}`,
    });
  }
  console.log(`copied ${pins.length} Uniswap V2 artifacts`);
}

// The Safe singleton, proxy factory and fallback handler the devnet deploys (hardhat artifacts).
function copySafe() {
  const pkg = '@safe-global/safe-contracts';
  const pins = [
    'contracts/Safe.sol/Safe.json',
    'contracts/proxies/SafeProxyFactory.sol/SafeProxyFactory.json',
    'contracts/handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json',
  ];
  const pkgDir = path.join(MODULES, pkg);
  const version = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;
  fs.mkdirSync(SAFE_DIR, { recursive: true });
  for (const file of pins) {
    const build = JSON.parse(fs.readFileSync(path.join(pkgDir, 'build', 'artifacts', file), 'utf8'));
    if (!build.bytecode || build.bytecode === '0x') throw new Error(`${pkg}/build/artifacts/${file} has no bytecode`);
    writeJson(path.join(SAFE_DIR, build.contractName + '.json'), {
      contractName: build.contractName,
      abi: build.abi,
      bytecode: hex(build.bytecode),
      source: `npm:${pkg}@${version}`,
    });
  }
  console.log(`copied ${pins.length} Safe artifacts`);
}

try {
  fs.mkdirSync(OUT_DIR, { recursive: true });
  compileSet({ srcDir: SRC_DIR, outDir: OUT_DIR });
  // The precision corpus (see src/devnet/corpus): its own contracts plus OpenZeppelin ones from npm.
  compileSet({
    srcDir: SRC_DIR + '/corpus',
    outDir: path.join(OUT_DIR, 'corpus'),
    npm: [
      ['@openzeppelin/contracts/governance/TimelockController.sol', 'TimelockController'],
      ['@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol', 'ERC1967Proxy'],
    ],
  });
  copyUniswap();
  copySafe();
  if (stale.length) {
    console.error('build-fixtures --check: artifacts do not match their sources; run scripts/build-fixtures.sh:');
    for (const f of stale) console.error('  ' + f);
    process.exit(1);
  }
} catch (e) {
  console.error('build-fixtures: ' + e.message);
  process.exit(1);
}
