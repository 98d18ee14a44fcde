//! `preempt bench`: the latency benchmarking harness.

pub mod svg;
