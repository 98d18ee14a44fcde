//! Integration tests against a real anvil with the demo protocol deployed.

#[path = "../support/mod.rs"]
mod support;

mod check;
mod cli;
mod fixtures;
mod fork;
mod fuzz;
mod guard;
mod ladder;
mod run;
mod safe;
mod submit;
