//! The simulation's inspector: call frames always; storage reads and writes (a per-opcode
//! hook) only on the re-run a reentrancy check asks for.

use alloy::primitives::{Address, U256};
use revm::{
    context_interface::ContextTr,
    inspector::Inspector,
    interpreter::{
        CallInputs, CallOutcome, CallScheme, CallValue, CreateInputs, CreateOutcome, Interpreter,
        interpreter::EthInterpreter,
        interpreter_types::{InputsTr, Jumps},
    },
};

use crate::types::CallFrame;

const SLOAD: u8 = 0x54;
const SSTORE: u8 = 0x55;

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
    live: Vec<usize>,
    seq: u64,
}

impl TxRecorder {
    pub(crate) fn reset(&mut self, track_storage: bool) {
        self.frames.clear();
        self.spans.clear();
        self.accesses.clear();
        self.live.clear();
        self.seq = 0;
        self.track_storage = track_storage;
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
        if op != SLOAD && op != SSTORE {
            return;
        }
        let Some(slot) = interp.stack.data().last().copied() else { return };
        let Some(&frame) = self.live.last() else { return };
        let seq = self.next_seq();
        self.accesses.push(StorageAccess {
            seq,
            frame,
            address: interp.input.target_address(),
            slot,
            write: op == SSTORE,
        });
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
        None
    }

    fn call_end(&mut self, _ctx: &mut CTX, _inputs: &CallInputs, outcome: &mut CallOutcome) {
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
