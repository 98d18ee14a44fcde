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
        interpreter_types::{InputsTr, Jumps, MemoryTr},
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
        self.keccak.push(KeccakInput { address: interp.input.target_address(), input });
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
