//! Integration tests against a real anvil with the demo protocol deployed.

#[path = "../support/mod.rs"]
mod support;

mod adversarial;
mod alerts;
mod check;
mod cli;
mod corpus;
mod creations;
mod fixtures;
mod flood;
mod fork;
mod fuzz;
mod guard;
mod ingest_adversarial;
mod keys;
mod ladder;
mod metrics;
mod probe;
mod replay;
mod run;
mod safe;
mod shadow;
mod store;
mod submit;
