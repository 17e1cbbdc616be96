#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| otpbox::fuzz::form_query_cookie(data));
