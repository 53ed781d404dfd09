//! Warden's integration tests: real components, a real server on a loopback port, a real data
//! directory. One binary, one module per topic.
#![allow(clippy::unwrap_used, missing_docs)]

mod abuse;
mod author;
mod cli;
mod compile_shares;
mod defaults;
mod docs;
mod edge;
mod errors;
mod fixtures;
mod fuzz_corpus;
mod grants;
mod grants_python;
mod guests;
mod hostile_binaries;
mod hostile_cpu;
mod hostile_grants;
mod hostile_host_calls;
mod hostile_memory;
mod hostile_output;
mod isolation;
mod languages;
mod long_calls;
mod open_mode;
mod openapi;
mod outcomes;
mod pipelines;
mod process;
mod races;
mod records;
mod registry;
mod stores;
mod support;
mod tenants;
mod tiers;
