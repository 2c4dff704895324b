//! xvs-control: the control plane. `proto` is the request/response contract on the Unix socket
//! (one Rust type for both ends), `cli` the ipvsadm grammar and output formats, `server` the
//! control thread that applies commands as new immutable snapshots, `daemon` the xvsd
//! control-plane runner (socket, signals, `--restore`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod daemon;
pub mod proto;
pub mod runtime;
pub mod server;
