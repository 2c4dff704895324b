//! cargo-fuzz entry point for [`xvs_fuzz::pipeline_bursts`] (see fuzz/README.md).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xvs_fuzz::pipeline_bursts(data);
});
