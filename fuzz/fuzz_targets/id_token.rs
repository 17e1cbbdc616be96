#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| otpbox::fuzz::id_token(data));
