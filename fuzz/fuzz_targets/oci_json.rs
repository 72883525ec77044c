#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oci2ext4_fuzz::oci_json(data));
