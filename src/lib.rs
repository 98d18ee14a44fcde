//! preempt: simulates pending transactions against forked state and pauses a protected
//! contract when a simulation shows it being drained or re-entered.

pub mod alert;
#[cfg(feature = "dev")]
pub mod bench;
pub mod check;
pub mod config;
pub mod detect;
#[cfg(feature = "dev")]
pub mod devnet;
pub mod fork;
pub mod guard;
pub mod incident;
pub mod ingest;
pub mod probe;
pub mod respond;
pub mod run;
pub mod shadow;
pub mod simulate;
pub mod status;
pub mod submit;
pub mod telemetry;
pub mod types;
pub mod worker;
