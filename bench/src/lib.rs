//! xvs-bench: the packet generator and the harness that runs xvs against its peers.
#![forbid(unsafe_code)]
