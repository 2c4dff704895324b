//! xvs-tests: helpers for end-to-end tests (namespaces, veths, processes), all removed on drop.
#![forbid(unsafe_code)]
