#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| otpbox::fuzz::payment_notice(data));
