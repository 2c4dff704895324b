//! Test helpers: packet builders for tests, benches and the tests crate (feature `testutil`).
