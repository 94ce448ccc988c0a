#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| melo::fuzzing::http_body(data));
