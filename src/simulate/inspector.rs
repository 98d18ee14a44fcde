//! The simulation's inspector: call frames, logs with the frame that emitted them, storage
//! reads and writes, the 64-byte KECCAK256 inputs (mapping keys, so a changed slot can be
//! named by its key), and what protected contracts asked other contracts (with the answer).

use alloy::primitives::{Address, Bytes, Log, U256};
use revm::{
    context_interface::ContextTr,
    inspector::Inspector,
    interpreter::{
        CallInputs, CallOutcome, CallScheme, CallValue, CreateInputs, CreateOutcome, Interpreter,
        interpreter::EthInterpreter,
        interpreter_types::{InputsTr, Jumps, LoopControl, MemoryTr},
    },
};

use crate::types::CallFrame;

const SLOAD: u8 = 0x54;
const SSTORE: u8 = 0x55;
const KECCAK256: u8 = 0x20;

/// Bounds on what one tx may make the recorder keep (a hostile tx cannot grow it further).
const MAX_KECCAK_INPUTS: usize = 16_384;
const MAX_LOGS: usize = 8_192;
const MAX_CALLS_OUT: usize = 1_024;
const MAX_ACCESSES: usize = 262_144;

/// A 64-byte KECCAK256 input: how Solidity finds `mapping[key]` (key ‖ base slot).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeccakInput {
    /// The contract whose code computed it (the storage owner for a mapping).
    pub(crate) address: Address,
    pub(crate) input: [u8; 64],
    /// The hash the EVM computed (the slot), read off its stack after the opcode: the analysis
    /// then hashes nothing again. `None` when the opcode did not complete.
    pub(crate) slot: Option<U256>,
}

/// A call a watched contract made to another contract, and what came back.
#[derive(Debug, Clone)]
pub(crate) struct CallOut {
    pub(crate) frame: usize,
    pub(crate) input: Bytes,
    pub(crate) output: Bytes,
}

/// A log and the frame that emitted it (the log is void if that frame reverted).
#[derive(Debug, Clone)]
pub(crate) struct FrameLog {
    pub(crate) frame: usize,
    pub(crate) log: Log,
}

/// One storage access by a frame, in execution order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StorageAccess {
    pub(crate) seq: u64,
    pub(crate) frame: usize,
    pub(crate) address: Address,
    pub(crate) slot: U256,
    pub(crate) write: bool,
}

/// Frame start/end positions in the same sequence as storage accesses.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FrameSpan {
    pub(crate) start: u64,
    pub(crate) end: u64,
}

#[derive(Debug, Default)]
pub(crate) struct TxRecorder {
    pub(crate) frames: Vec<CallFrame>,
    pub(crate) spans: Vec<FrameSpan>,
    pub(crate) accesses: Vec<StorageAccess>,
    /// Record storage accesses (the costly per-opcode hook).
    pub(crate) track_storage: bool,
    pub(crate) keccak: Vec<KeccakInput>,
    pub(crate) calls_out: Vec<CallOut>,
    pub(crate) logs: Vec<FrameLog>,
    /// Contracts whose outgoing calls are recorded with their answers (the protected ones).
    pub(crate) watched: Vec<Address>,
    live: Vec<usize>,
    seq: u64,
    /// The opcode now running is a KECCAK256 whose input was noted: `step_end` reads its hash.
    keccak_pending: bool,
}

impl TxRecorder {
    /// A recorder that also keeps what `watched` contracts ask other contracts.
    pub(crate) fn watching(watched: Vec<Address>) -> Self {
        Self { watched, ..Self::default() }
    }

    pub(crate) fn reset(&mut self, track_storage: bool) {
        self.frames.clear();
        self.spans.clear();
        self.accesses.clear();
        self.keccak.clear();
        self.calls_out.clear();
        self.logs.clear();
        self.live.clear();
        self.seq = 0;
        self.track_storage = track_storage;
    }

    /// A 64-byte KECCAK256 input (`key ‖ slot`, how a mapping entry's slot is found).
    fn note_keccak(&mut self, interp: &Interpreter<EthInterpreter>) {
        let data = interp.stack.data();
        let [.., size, offset] = data[..] else { return };
        if size != U256::from(64) || self.keccak.len() >= MAX_KECCAK_INPUTS {
            return;
        }
        let Ok(offset) = usize::try_from(offset) else { return };
        if offset.checked_add(64).is_none_or(|end| end > interp.memory.size()) {
            return;
        }
        let mut input = [0u8; 64];
        input.copy_from_slice(&interp.memory.slice_len(offset, 64));
        self.keccak.push(KeccakInput { address: interp.input.target_address(), input, slot: None });
        self.keccak_pending = true;
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn open(
        &mut self,
        caller: Address,
        target: Address,
        code: Address,
        scheme: &'static str,
        value: U256,
        selector: Option<[u8; 4]>,
    ) {
        let index = self.frames.len();
        let start = self.next_seq();
        self.frames.push(CallFrame {
            index,
            parent: self.live.last().copied(),
            depth: self.live.len(),
            caller,
            target,
            code,
            scheme,
            value,
            selector,
            success: false,
            gas_used: 0,
        });
        self.spans.push(FrameSpan { start, end: u64::MAX });
        self.live.push(index);
    }

    fn close(&mut self, success: bool, gas_used: u64, created: Option<Address>) {
        let end = self.next_seq();
        if let Some(index) = self.live.pop() {
            let frame = &mut self.frames[index];
            frame.success = success;
            frame.gas_used = gas_used;
            if let Some(address) = created {
                frame.target = address;
                frame.code = address;
            }
            self.spans[index].end = end;
        }
    }
}

impl<CTX: ContextTr> Inspector<CTX, EthInterpreter> for TxRecorder {
    fn step(&mut self, interp: &mut Interpreter<EthInterpreter>, _ctx: &mut CTX) {
        // `step` always comes before the `step_end` of the same opcode; one that never ran
        // (the frame had ended) leaves nothing for the next `step_end` to read.
        self.keccak_pending = false;
        if !self.track_storage {
            return;
        }
        let op = interp.bytecode.opcode();
        if op == KECCAK256 {
            self.note_keccak(interp);
            return;
        }
        if op != SLOAD && op != SSTORE {
            return;
        }
        let Some(slot) = interp.stack.data().last().copied() else { return };
        let Some(&frame) = self.live.last() else { return };
        if self.accesses.len() >= MAX_ACCESSES {
            return;
        }
        let seq = self.next_seq();
        self.accesses.push(StorageAccess {
            seq,
            frame,
            address: interp.input.target_address(),
            slot,
            write: op == SSTORE,
        });
    }

    fn step_end(&mut self, interp: &mut Interpreter<EthInterpreter>, _ctx: &mut CTX) {
        if !self.keccak_pending {
            return;
        }
        self.keccak_pending = false;
        // A halt (out of gas) leaves an action; on success the top of the stack is the hash.
        if interp.bytecode.action().is_some() {
            return;
        }
        if let Some(&top) = interp.stack.data().last()
            && let Some(k) = self.keccak.last_mut()
        {
            k.slot = Some(top);
        }
    }

    fn log(&mut self, _ctx: &mut CTX, log: Log) {
        if let Some(&frame) = self.live.last()
            && self.logs.len() < MAX_LOGS
        {
            self.logs.push(FrameLog { frame, log });
        }
    }

    fn call(&mut self, ctx: &mut CTX, inputs: &mut CallInputs) -> Option<CallOutcome> {
        let scheme = match inputs.scheme {
            CallScheme::Call => "CALL",
            CallScheme::CallCode => "CALLCODE",
            CallScheme::DelegateCall => "DELEGATECALL",
            CallScheme::StaticCall => "STATICCALL",
        };
        let value = match inputs.value {
            CallValue::Transfer(v) => v,
            CallValue::Apparent(_) => U256::ZERO,
        };
        let selector = {
            let input = inputs.input.as_bytes(ctx);
            input.get(..4).map(|s| [s[0], s[1], s[2], s[3]])
        };
        self.open(
            inputs.caller,
            inputs.target_address,
            inputs.bytecode_address,
            scheme,
            value,
            selector,
        );
        // What a protected contract asks another contract (a price, a share rate, a balance).
        if selector.is_some()
            && inputs.caller != inputs.target_address
            && self.watched.contains(&inputs.caller)
            && self.calls_out.len() < MAX_CALLS_OUT
        {
            let input = Bytes::copy_from_slice(&inputs.input.as_bytes(ctx));
            self.calls_out.push(CallOut {
                frame: self.frames.len() - 1,
                input,
                output: Bytes::new(),
            });
        }
        None
    }

    fn call_end(&mut self, _ctx: &mut CTX, _inputs: &CallInputs, outcome: &mut CallOutcome) {
        if let (Some(&frame), Some(last)) = (self.live.last(), self.calls_out.last_mut())
            && last.frame == frame
        {
            last.output = outcome.result.output.clone();
        }
        self.close(outcome.result.is_ok(), outcome.result.gas.total_gas_spent(), None);
    }

    fn create(&mut self, _ctx: &mut CTX, inputs: &mut CreateInputs) -> Option<CreateOutcome> {
        self.open(inputs.caller(), Address::ZERO, Address::ZERO, "CREATE", inputs.value(), None);
        None
    }

    fn create_end(&mut self, _ctx: &mut CTX, _inputs: &CreateInputs, outcome: &mut CreateOutcome) {
        self.close(outcome.result.is_ok(), outcome.result.gas.total_gas_spent(), outcome.address);
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::{Bytes, TxKind, keccak256};
    use revm::{
        InspectEvm,
        context::TxEnv,
        database::{CacheDB, EmptyDB},
        state::{AccountInfo, Bytecode},
    };

    use super::*;
    use crate::simulate::{SimBlock, build_evm};

    /// Runs `code` at a fresh address with the recorder tracking storage.
    fn recorded(code: &[u8], gas_limit: u64) -> TxRecorder {
        let target = Address::with_last_byte(0xc0);
        let caller = Address::with_last_byte(0xca);
        let mut db = CacheDB::new(EmptyDB::default());
        db.insert_account_info(
            target,
            AccountInfo::default().with_code(Bytecode::new_raw(Bytes::copy_from_slice(code))),
        );
        db.insert_account_info(
            caller,
            AccountInfo::from_balance(U256::from(10u64).pow(U256::from(18))),
        );
        let block = SimBlock {
            number: 1,
            timestamp: 1,
            base_fee: 0,
            gas_limit: 30_000_000,
            beneficiary: Address::ZERO,
            prevrandao: Default::default(),
            excess_blob_gas: 0,
        };
        let mut recorder = TxRecorder::default();
        recorder.reset(true);
        let mut evm = build_evm(db, block, 1, recorder);
        let tx = TxEnv::builder()
            .caller(caller)
            .kind(TxKind::Call(target))
            .gas_limit(gas_limit)
            .gas_price(0)
            .build()
            .expect("tx");
        let _ = evm.inspect_tx(tx);
        std::mem::take(&mut evm.inspector)
    }

    // mem[0..32] = 0x2a, mem[32..64] = 7, KECCAK256(0, 64), SSTORE it at slot 0, STOP.
    const HASH_AND_STORE: [u8; 15] =
        [0x60, 0x2a, 0x5f, 0x52, 0x60, 0x07, 0x60, 0x20, 0x52, 0x60, 0x40, 0x5f, 0x20, 0x5f, 0x55];

    #[test]
    fn a_mapping_key_is_recorded_with_the_hash_the_evm_computed() {
        let r = recorded(&HASH_AND_STORE, 100_000);
        assert_eq!(r.keccak.len(), 1);
        let k = r.keccak[0];
        let mut expected = [0u8; 64];
        expected[31] = 0x2a;
        expected[63] = 7;
        assert_eq!(k.input, expected);
        assert_eq!(k.slot, Some(U256::from_be_bytes(keccak256(expected).0)));
    }

    #[test]
    fn a_keccak_that_runs_out_of_gas_records_no_hash() {
        // Enough gas for the MSTOREs but not for the KECCAK256 (30 + 6 a word).
        let r = recorded(&HASH_AND_STORE, 21_000 + 3 * 7 + 3 * 2 + 10);
        assert!(r.keccak.iter().all(|k| k.slot.is_none()), "{:?}", r.keccak);
    }
}
