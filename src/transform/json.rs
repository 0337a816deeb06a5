//! The JSON writer of the `processed_data` record: strings escaped as serde_json escapes them,
//! numbers through `itoa` (serde_json's own integer formatter).
//!
//! Hand-written rather than serialized by serde_json because it runs for every valid record:
//! serde_json checks each string for escapes byte by byte (15 % of a worker in a profile), while
//! `needs_no_escape` checks eight bytes at a time and copies the string whole, which is almost
//! always. A property test in `transform` holds the bytes equal to serde_json's.

/// Appends `n` in decimal, as `to_string` writes it, through `itoa`'s stack buffer (no
/// allocation, no formatting machinery).
#[inline]
pub(crate) fn write_decimal(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Writes `s` as a JSON string: copied as is when nothing needs escaping, else by serde_json.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if needs_no_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, s).expect("a str always serializes");
    }
}

/// Writes `s`, which has nothing to escape, as a JSON string.
#[inline]
pub(crate) fn write_plain_json_str(out: &mut Vec<u8>, s: &str) {
    debug_assert!(needs_no_escape(s.as_bytes()), "{s:?} needs escaping");
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// Whether no byte of `b` is a control character, `"` or `\`, checked eight bytes at a time
/// (this check ran at 12 instructions per byte one byte at a time, the largest cost of writing
/// an output record).
#[inline]
pub(crate) fn needs_no_escape(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A high bit set in the result for each byte of `x` that is zero (exact for the flagged
    // bytes that matter here: any flag means some byte was zero).
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let flagged = |x: u64| {
        // Per byte c < 0x80, (c + 0x60) has its high bit set exactly when c >= 0x20 (no carry
        // leaves the byte); bytes >= 0x80 are never control characters.
        let control = !((x & !HIGHS) + ONES * 0x60) & !x & HIGHS;
        let quote = has_zero(x ^ (ONES * u64::from(b'"')));
        let backslash = has_zero(x ^ (ONES * u64::from(b'\\')));
        control | quote | backslash != 0
    };
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"));
    if b.len() < 8 {
        return b.iter().all(|&c| c >= 0x20 && c != b'"' && c != b'\\');
    }
    // Whole words, then the last eight bytes (overlapping the last word read).
    let mut at = 0;
    while at + 8 <= b.len() {
        if flagged(word(at)) {
            return false;
        }
        at += 8;
    }
    at == b.len() || !flagged(word(b.len() - 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_matches_to_string() {
        for n in [0, 7, 10, 41, 1_720_589_697, u64::MAX] {
            let mut out = Vec::new();
            write_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        for n in [i64::MIN, -1, 0, i64::MAX] {
            let mut out = Vec::new();
            write_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
