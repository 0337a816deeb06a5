//! The JSON writer of the `processed_data` record: strings escaped as serde_json escapes them,
//! numbers through a stack buffer. Hand-written because it is the hot path of every valid
//! record (benches/transform.rs measures it against serde_json).

/// A number formatted in decimal on the stack (header values and JSON without an allocation).
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    /// Formats `n`.
    pub fn new(mut n: u64) -> Self {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Decimal { buf, start }
    }

    /// Formats a non-negative `n`; a negative one (never a partition or offset of a real
    /// record) as 0.
    pub fn signed(n: i64) -> Self {
        Decimal::new(n.max(0) as u64)
    }

    /// The digits.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
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
            assert_eq!(Decimal::new(n).as_bytes(), n.to_string().as_bytes());
        }
    }
}
