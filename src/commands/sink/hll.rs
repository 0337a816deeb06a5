//! Our HyperLogLog sketches in the storage format of the `postgresql-hll` extension, so SQL can
//! union the windows of any time range (`hll_union_agg(users_hll)`).
//!
//! The conversion is exact: both are 4096 registers of the register-wise maximum of a rank, and
//! our registers ([`crate::insights::sketch`], precision 12, values 1–53) fit the extension's
//! `log2m = 12, regwidth = 6` (values up to 63). A union in SQL is therefore exactly the sketch of
//! the union, register for register, as [`Hll::merge`] computes it. What differs is only the
//! estimator: `hll_cardinality` uses the classic HyperLogLog estimate with linear counting for
//! small ranges, ours Ertl's improved one; both are within the ±1.6 % standard error, the
//! classic one biased by up to +2 % around 10,000 distinct ids (see the sketch's module doc).
//! The ids were hashed by the pipeline (XXH3), so never mix these columns with the extension's
//! own `hll_add(…, hll_hash_text(…))`: the same id would land in another register.
//!
//! Format (the extension's STORAGE.md, version 1), header of three bytes:
//! - `0x1T`: version 1, type `T` = 1 empty, 3 sparse, 4 full;
//! - `(regwidth − 1) << 5 | log2m` = `0xAC`;
//! - cutoff byte `0x40`: sparse representation on, explicit representation off (the explicit
//!   form lists raw hashes, which a sketch no longer has).
//!
//! Then, sparse: one 18-bit entry per non-zero register (12-bit index, 6-bit value), in index
//! order, packed most significant bit first and zero-padded to a byte; full: the 4096 registers
//! at 6 bits each, most significant bit first — the same bits as our dense form. The shorter of
//! the two is written, as the extension itself does.

use crate::insights::sketch::{Hll, PRECISION, REGISTERS};

/// Bits per register in the extension's format.
const REGWIDTH: u8 = 6;
const TYPE_EMPTY: u8 = 1;
const TYPE_SPARSE: u8 = 3;
const TYPE_FULL: u8 = 4;
/// Sparse on, explicit off.
const CUTOFF: u8 = 0x40;
/// Bits of one sparse entry: index then value.
const ENTRY_BITS: usize = PRECISION as usize + REGWIDTH as usize;

/// The extension's encoding of `hll` (see the module doc).
pub fn to_postgresql_hll(hll: &Hll) -> Vec<u8> {
    let registers = registers(hll);
    let nonzero: Vec<(usize, u8)> = registers
        .iter()
        .enumerate()
        .filter(|&(_, &r)| r != 0)
        .map(|(i, &r)| (i, r))
        .collect();
    let header = |kind: u8| [0x10 | kind, (REGWIDTH - 1) << 5 | PRECISION, CUTOFF];
    if nonzero.is_empty() {
        return header(TYPE_EMPTY).to_vec();
    }
    let mut bits = BitWriter::default();
    if nonzero.len() * ENTRY_BITS < REGISTERS * usize::from(REGWIDTH) {
        bits.bytes.extend_from_slice(&header(TYPE_SPARSE));
        for (index, value) in nonzero {
            bits.push(index as u32, PRECISION);
            bits.push(u32::from(value), REGWIDTH);
        }
    } else {
        bits.bytes.extend_from_slice(&header(TYPE_FULL));
        for &value in registers.iter() {
            bits.push(u32::from(value), REGWIDTH);
        }
    }
    bits.bytes
}

/// Every register's value, from the sketch's own serialized form (its registers are private).
fn registers(hll: &Hll) -> Box<[u8; REGISTERS]> {
    let bytes = hll.to_bytes();
    let mut out = Box::new([0u8; REGISTERS]);
    // `to_bytes` writes one of two forms and `Hll` can only hold valid registers; anything
    // else would be a bug in the sketch module, caught by the round-trip tests below.
    match bytes[0] {
        1 => {
            for (i, three) in bytes[2..].chunks_exact(3).enumerate() {
                let n = u32::from_be_bytes([0, three[0], three[1], three[2]]);
                for j in 0..4 {
                    out[i * 4 + j] = (n >> (18 - 6 * j) & 63) as u8;
                }
            }
        }
        _ => {
            let mut rest = &bytes[2..];
            let count = read_varint(&mut rest);
            let mut next = 0usize;
            for _ in 0..count {
                let index = next + read_varint(&mut rest) as usize;
                out[index] = rest[0];
                rest = &rest[1..];
                next = index + 1;
            }
        }
    }
    out
}

/// A LEB128 varint from the front of `bytes` (the sketch's sparse form).
fn read_varint(bytes: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    let mut shift = 0;
    while let Some((&b, rest)) = bytes.split_first() {
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    value
}

/// Packs values most significant bit first.
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0: start a new one).
    used: u8,
}

impl BitWriter {
    fn push(&mut self, value: u32, width: u8) {
        for bit in (0..width).rev() {
            if self.used == 0 {
                self.bytes.push(0);
            }
            let last = self.bytes.len() - 1;
            self.bytes[last] |= (((value >> bit) & 1) as u8) << (7 - self.used);
            self.used = (self.used + 1) % 8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch_of(n: u64) -> Hll {
        let mut hll = Hll::new();
        for i in 0..n {
            hll.insert(format!("user-{i}").as_bytes());
        }
        hll
    }

    /// Reads the extension's format back into registers (test-only inverse).
    fn decode(bytes: &[u8]) -> Box<[u8; REGISTERS]> {
        assert_eq!(bytes[1], 0xAC);
        assert_eq!(bytes[2], CUTOFF);
        let bit = |i: usize| (bytes[3 + i / 8] >> (7 - i % 8)) & 1;
        let read =
            |at: usize, width: usize| (0..width).fold(0u32, |v, k| v << 1 | u32::from(bit(at + k)));
        let mut out = Box::new([0u8; REGISTERS]);
        match bytes[0] {
            0x11 => assert_eq!(bytes.len(), 3),
            0x13 => {
                let entries = (bytes.len() - 3) * 8 / ENTRY_BITS;
                for e in 0..entries {
                    let index = read(e * ENTRY_BITS, 12) as usize;
                    out[index] = read(e * ENTRY_BITS + 12, 6) as u8;
                }
            }
            0x14 => {
                assert_eq!(bytes.len(), 3 + REGISTERS * 6 / 8);
                for (i, r) in out.iter_mut().enumerate() {
                    *r = read(i * 6, 6) as u8;
                }
            }
            other => panic!("type byte {other:#x}"),
        }
        out
    }

    #[test]
    fn empty_sketch_is_the_empty_type() {
        // As `SELECT hll_empty(12, 6, 0, 1)` prints it.
        assert_eq!(to_postgresql_hll(&Hll::new()), [0x11, 0xAC, 0x40]);
    }

    #[test]
    fn one_register_matches_the_extension_layout() {
        // `hll_add(hll_empty(12,6,0,1), hll_hash_integer(1))` is \x13ac40afe0c0: register
        // 2814 = 3, as 101011111110 000011 padded.
        let mut bits = BitWriter::default();
        bits.push(2814, 12);
        bits.push(3, 6);
        assert_eq!(bits.bytes, [0xAF, 0xE0, 0xC0]);
    }

    #[test]
    fn registers_survive_both_forms() {
        for n in [1u64, 20, 300, 1_000, 5_000, 50_000] {
            let hll = sketch_of(n);
            let bytes = to_postgresql_hll(&hll);
            let expect_sparse = registers(&hll).iter().filter(|&&r| r != 0).count() <= 1365;
            assert_eq!(bytes[0], if expect_sparse { 0x13 } else { 0x14 }, "{n}");
            assert_eq!(decode(&bytes), registers(&hll), "{n} distinct");
        }
    }

    #[test]
    fn registers_are_read_from_both_sketch_forms() {
        // A merge of registers equals the merge of sketches: the decoding is faithful.
        let (a, b) = (sketch_of(40), sketch_of(4_000));
        let mut merged = a.clone();
        merged.merge(&b);
        let (ra, rb) = (registers(&a), registers(&b));
        let max: Vec<u8> = ra.iter().zip(rb.iter()).map(|(x, y)| *x.max(y)).collect();
        assert_eq!(registers(&merged).to_vec(), max);
        assert_eq!(ra.iter().filter(|&&r| r != 0).count(), 40);
    }
}
