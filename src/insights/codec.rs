//! The byte layer under the sketch and histogram encodings: LEB128 varints and a cursor that
//! reads them back, failing (never panicking) on truncated or oversized input, and the base64
//! the encodings travel in inside insight records.
//!
//! Base64 is the `base64` crate's standard engine: RFC 4648's alphabet with padding, what
//! `base64 -d`, Python's `base64.b64decode` and jq's `@base64d` read. Decoding is strict: wrong
//! characters, wrong length, missing or misplaced padding and non-zero bits after the last byte
//! are errors, so every accepted string has exactly one byte form.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// `bytes` in padded base64.
pub fn to_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Reads [`to_base64`]'s output (strictly: see the module doc).
pub fn from_base64(text: &str) -> Result<Vec<u8>, String> {
    STANDARD.decode(text).map_err(|e| format!("base64: {e}"))
}

/// Appends `value` as an unsigned LEB128 varint (7 bits a byte, low bits first).
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads bytes and varints from a slice.
pub struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes }
    }

    /// The next byte.
    pub fn byte(&mut self) -> Result<u8, &'static str> {
        let (&first, rest) = self.bytes.split_first().ok_or("truncated")?;
        self.bytes = rest;
        Ok(first)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.bytes.len() < n {
            return Err("truncated");
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// The next varint; at most ten bytes, and the value must fit in 64 bits.
    pub fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err("varint overflows 64 bits");
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 10 bytes")
    }

    /// Fails unless every byte has been read (trailing garbage is an error).
    pub fn finish(&self) -> Result<(), &'static str> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err("trailing bytes")
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn varint_layout_and_limits() {
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        put_varint(&mut out, u64::MAX);
        assert_eq!(out.len(), 10);
        assert_eq!(Cursor::new(&out).varint(), Ok(u64::MAX));
        // 2^64 does not fit.
        let mut too_big = vec![0x80; 9];
        too_big.push(0x02);
        assert!(Cursor::new(&too_big).varint().is_err());
        assert!(Cursor::new(&[0x80, 0x80]).varint().is_err());
        assert!(Cursor::new(&[0x80; 11]).varint().is_err());
    }

    /// RFC 4648, section 10, and the two characters beyond the letters and digits.
    #[test]
    fn base64_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(to_base64(plain.as_bytes()), encoded);
            assert_eq!(from_base64(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(to_base64(&[0xfb, 0xff, 0xbf]), "+/+/");
        assert_eq!(from_base64("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
    }

    #[test]
    fn malformed_base64_is_rejected() {
        for text in [
            "Zg=",       // length not a multiple of 4
            "Zg",        // padding missing
            "Zg=a",      // padding before the end
            "Z===",      // too much padding
            "Zg==Zg==",  // padding mid-string
            "Zm9v YmFy", // a space
            "Zm9-",      // the URL-safe alphabet's '-'
            "Zm9_",      // and '_'
            "Zh==",      // 'f' with a stray bit set after it
        ] {
            let error = from_base64(text).unwrap_err();
            assert!(error.starts_with("base64: "), "{text:?}: {error}");
        }
    }

    proptest! {
        #[test]
        fn base64_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let text = to_base64(&bytes);
            prop_assert_eq!(text.len(), bytes.len().div_ceil(3) * 4);
            prop_assert_eq!(from_base64(&text).unwrap(), bytes);
        }

        #[test]
        fn varints_round_trip(values in proptest::collection::vec(any::<u64>(), 0..20)) {
            let mut out = Vec::new();
            for &v in &values {
                put_varint(&mut out, v);
            }
            let mut cursor = Cursor::new(&out);
            for &v in &values {
                prop_assert_eq!(cursor.varint(), Ok(v));
            }
            prop_assert!(cursor.finish().is_ok());
        }
    }
}
