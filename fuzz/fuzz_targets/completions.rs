//! Arbitrary text and cursor offset (any value, in range or not, on a char
//! boundary or not) -> completions never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let offset = u16::from_le_bytes([data[0], data[1]]) as usize;
    let Ok(source) = std::str::from_utf8(&data[2..]) else {
        return;
    };
    for c in loyalty_rules::completions(source, offset) {
        assert!(!c.label.is_empty(), "empty completion label");
    }
    // The end of the text is the common case in editors.
    let _ = loyalty_rules::completions(source, source.len());
});
