//! cargo-fuzz entry point for [`xvs_fuzz::restore`] (see fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xvs_fuzz::restore(data);
});
