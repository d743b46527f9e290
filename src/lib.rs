//! # sipreg — a carrier-scale SIP registrar
//!
//! The crate is split into a **sans-IO core** and a thin **runtime**:
//!
//! | layer | module | contract |
//! |---|---|---|
//! | wire format | [`sip`] | zero-copy request/response views over a receive buffer, stream framing, response writer |
//! | authentication | [`auth`] | HTTP Digest (RFC 2617/7616/8760) challenges and verification, stateless nonces, credentials |
//! | location service | [`store`] | bindings per address-of-record in a sharded concurrent map, expiry, change feed |
//! | registrar | [`engine`] | RFC 3261 §10.3 processing: bytes in, response bytes out |
//! | runtime | [`runtime`] | the only place with sockets, threads, io_uring and the clock |
//! | transport | [`transport`] | the rustls session wrapper (all rustls use) |
//! | configuration | [`config`] | TOML + flags -> validated engine and runtime configuration |
//! | management | [`mgmt`] | HTTP API, Prometheus metrics, binding dump (its own thread; I/O layer like `runtime`) |
//! | durable bindings | [`persist`] | the store's change feed written to fjall by a writer thread; loaded at start (I/O layer) |
//! | shared location | [`remote`] | the engine's compare-and-set ops carried out on Redis / Redis Cluster (I/O layer) |
//!
//! ## The sans-IO contract
//! Nothing outside `runtime`, `mgmt`, `persist`, `remote` (and the binary's `main.rs`) touches sockets, threads, the clock
//! or io_uring. Core functions take the current time ([`time::Instant`]), the source address and
//! the bytes as arguments and return decisions and bytes. `clippy.toml` enforces it with
//! `disallowed-methods`; only those I/O modules opt out. This makes the registrar logic testable with
//! fabricated time and no sockets, and lets both I/O backends drive the very same engine.
#![deny(unsafe_code)]

pub mod auth;
mod bytes;
pub mod config;
pub mod engine;
pub mod mgmt;
pub mod persist;
pub mod remote;
pub mod runtime;
pub mod sip;
pub mod store;
pub mod time;
pub mod transport;
