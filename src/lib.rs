//! Reredis: a Redis-compatible, clustered key-value server.
//!
//! `main.rs` turns the command line into a [`config::Config`] and calls [`node::start`]; tests
//! and benchmarks start nodes in-process the same way.

pub mod acl;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod glob;
pub mod healthcheck;
pub mod http;
pub mod node;
pub mod observe;
pub mod persist;
pub mod pubsub;
pub mod resp;
pub mod server;
pub mod store;

pub use node::{NodeHandle, start};

/// jemalloc for every user of the crate (binary, tests, benches): its statistics are what
/// `used_memory`, `MEMORY STATS` and maxmemory read, and it fragments less than glibc's malloc
/// under many small allocations.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The Redis version we report (INFO, HELLO): the release whose behaviour we match, so clients
/// that switch features on by version see what they expect.
pub const REDIS_VERSION: &str = "7.0.15";
