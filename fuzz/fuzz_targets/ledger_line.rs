//! Ledger lines: the strict line parser every read uses, and the whole-file chain walk
//! (`read_all`'s checks) on the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let one = verify::ledger::parse_ledger_line(bytes);
    let report = verify::ledger::verify_ledger_bytes(bytes).expect("reading a slice cannot fail");
    // A line on disk never holds a newline (JSON whitespace inside an object could).
    if one.is_ok() && !bytes.contains(&b'\n') {
        // A valid line without a newline is a torn tail; with one it is a one-line ledger.
        assert!(!report.is_intact());
        let mut line = bytes.to_vec();
        line.push(b'\n');
        let report = verify::ledger::verify_ledger_bytes(&line).expect("slice");
        assert_eq!(report.lines, 1);
    }
});
