//! Stable 64-bit hashes: XXH3 for the cardinality sketches, xxHash64 for the count maps.
//!
//! Sketches from different builds, machines and instances must merge, so the hash that places
//! an id in a register has to be the same everywhere and forever: std's `DefaultHasher` is
//! explicitly unstable across Rust releases, and `RandomState` is random per process. Both
//! hashes here are Yann Collet's, specified byte for byte, with published test vectors that the
//! tests check (the reference `xxhsum` sanity-check tables):
//! - [`xxh3_64`] (`XXH3_64bits`, seed 0, default secret) places ids in sketch registers. It is
//!   the faster of the two on ids: a UUID takes four independent multiplies, ~5 ns here against
//!   ~11 ns for XXH64's serial rounds, and it runs twice per event.
//! - [`xxh64`] (XXH64) seeds [`KeyedState`], the hasher of the per-key count maps, with a seed
//!   drawn at random per map: std's SipHash costs ~20 ns on a short key, and three lookups per
//!   event were most of the aggregation's cost. A random seed keeps collisions unpredictable
//!   from outside (neither hash is a keyed cryptographic hash, so this is mitigation, not a
//!   guarantee); the maps' cap of 1000 keys bounds the worst case regardless.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME64_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME64_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME64_5: u64 = 0x27D4_EB2F_1656_67C5;

/// XXH64 of `input` with `seed`, as the reference implementation computes it.
pub fn xxh64(input: &[u8], seed: u64) -> u64 {
    let len = input.len();
    let mut at = 0;
    let mut h = if len >= 32 {
        let mut v1 = seed.wrapping_add(PRIME64_1).wrapping_add(PRIME64_2);
        let mut v2 = seed.wrapping_add(PRIME64_2);
        let mut v3 = seed;
        let mut v4 = seed.wrapping_sub(PRIME64_1);
        while at + 32 <= len {
            v1 = round(v1, read_u64(input, at));
            v2 = round(v2, read_u64(input, at + 8));
            v3 = round(v3, read_u64(input, at + 16));
            v4 = round(v4, read_u64(input, at + 24));
            at += 32;
        }
        let mut h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        h = merge_round(h, v1);
        h = merge_round(h, v2);
        h = merge_round(h, v3);
        merge_round(h, v4)
    } else {
        seed.wrapping_add(PRIME64_5)
    };
    h = h.wrapping_add(len as u64);

    while at + 8 <= len {
        h ^= round(0, read_u64(input, at));
        h = h
            .rotate_left(27)
            .wrapping_mul(PRIME64_1)
            .wrapping_add(PRIME64_4);
        at += 8;
    }
    if at + 4 <= len {
        h ^= u64::from(read_u32(input, at)).wrapping_mul(PRIME64_1);
        h = h
            .rotate_left(23)
            .wrapping_mul(PRIME64_2)
            .wrapping_add(PRIME64_3);
        at += 4;
    }
    for &byte in &input[at..] {
        h ^= u64::from(byte).wrapping_mul(PRIME64_5);
        h = h.rotate_left(11).wrapping_mul(PRIME64_1);
    }
    xxh64_avalanche(h)
}

/// XXH3's default secret (the reference implementation's `XXH3_kSecret`).
const SECRET: [u8; 192] = [
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
];

const PRIME32_1: u64 = 0x9E37_79B1;
const PRIME32_2: u64 = 0x85EB_CA77;
const PRIME32_3: u64 = 0xC2B2_AE3D;
const PRIME_MX1: u64 = 0x1656_6791_9E37_79F9;
const PRIME_MX2: u64 = 0x9FB2_1C65_1E98_DF25;

/// XXH3 64-bit of `input` with seed 0 and the default secret (`XXH3_64bits`), as the reference
/// implementation computes it. About twice as fast as [`xxh64`] on a 36-byte UUID: its short
/// paths are a few independent 64×64→128-bit multiplies rather than a serial chain.
pub fn xxh3_64(input: &[u8]) -> u64 {
    let len = input.len();
    match len {
        0 => xxh64_avalanche(read_u64(&SECRET, 56) ^ read_u64(&SECRET, 64)),
        1..=3 => {
            let combined = u32::from(input[0]) << 16
                | u32::from(input[len >> 1]) << 24
                | u32::from(input[len - 1])
                | (len as u32) << 8;
            let flip = u64::from(read_u32(&SECRET, 0) ^ read_u32(&SECRET, 4));
            xxh64_avalanche(u64::from(combined) ^ flip)
        }
        4..=8 => {
            let first = u64::from(read_u32(input, 0));
            let last = u64::from(read_u32(input, len - 4));
            let flip = read_u64(&SECRET, 8) ^ read_u64(&SECRET, 16);
            let mut h = (last | first << 32) ^ flip;
            h ^= h.rotate_left(49) ^ h.rotate_left(24);
            h = h.wrapping_mul(PRIME_MX2);
            h ^= (h >> 35).wrapping_add(len as u64);
            h = h.wrapping_mul(PRIME_MX2);
            h ^ (h >> 28)
        }
        9..=16 => {
            let low = read_u64(input, 0) ^ (read_u64(&SECRET, 24) ^ read_u64(&SECRET, 32));
            let high = read_u64(input, len - 8) ^ (read_u64(&SECRET, 40) ^ read_u64(&SECRET, 48));
            let acc = (len as u64)
                .wrapping_add(low.swap_bytes())
                .wrapping_add(high)
                .wrapping_add(folded_multiply(low, high));
            xxh3_avalanche(acc)
        }
        17..=128 => {
            // Pairs of 16-byte blocks from both ends, inward, each with its own secret slice
            // (unrolled as in the reference, so the secret words are constants).
            let mut acc = (len as u64).wrapping_mul(PRIME64_1);
            if len > 32 {
                if len > 64 {
                    if len > 96 {
                        acc = acc.wrapping_add(mix16(input, 48, 96));
                        acc = acc.wrapping_add(mix16(input, len - 64, 112));
                    }
                    acc = acc.wrapping_add(mix16(input, 32, 64));
                    acc = acc.wrapping_add(mix16(input, len - 48, 80));
                }
                acc = acc.wrapping_add(mix16(input, 16, 32));
                acc = acc.wrapping_add(mix16(input, len - 32, 48));
            }
            acc = acc.wrapping_add(mix16(input, 0, 0));
            acc = acc.wrapping_add(mix16(input, len - 16, 16));
            xxh3_avalanche(acc)
        }
        129..=240 => {
            let mut acc = (len as u64).wrapping_mul(PRIME64_1);
            for i in 0..8 {
                acc = acc.wrapping_add(mix16(input, 16 * i, 16 * i));
            }
            acc = xxh3_avalanche(acc);
            for i in 8..len / 16 {
                acc = acc.wrapping_add(mix16(input, 16 * i, 16 * (i - 8) + 3));
            }
            // The last 16 bytes, keyed from the end of the minimum secret size (136).
            acc = acc.wrapping_add(mix16(input, len - 16, 136 - 17));
            xxh3_avalanche(acc)
        }
        _ => xxh3_long(input),
    }
}

/// Inputs over 240 bytes: 64-byte stripes into eight accumulators, scrambled after every
/// 1024-byte block, the last stripe overlapping the end.
fn xxh3_long(input: &[u8]) -> u64 {
    const STRIPE: usize = 64;
    const STRIPES_PER_BLOCK: usize = (SECRET.len() - STRIPE) / 8;
    const BLOCK: usize = STRIPE * STRIPES_PER_BLOCK;
    let len = input.len();
    let mut acc = [
        PRIME32_3, PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME32_2, PRIME64_5, PRIME32_1,
    ];
    let blocks = (len - 1) / BLOCK;
    for b in 0..blocks {
        for s in 0..STRIPES_PER_BLOCK {
            accumulate(&mut acc, input, b * BLOCK + s * STRIPE, s * 8);
        }
        for (i, a) in acc.iter_mut().enumerate() {
            *a ^= *a >> 47;
            *a ^= read_u64(&SECRET, SECRET.len() - STRIPE + 8 * i);
            *a = a.wrapping_mul(PRIME32_1);
        }
    }
    let stripes = (len - 1 - BLOCK * blocks) / STRIPE;
    for s in 0..stripes {
        accumulate(&mut acc, input, blocks * BLOCK + s * STRIPE, s * 8);
    }
    accumulate(&mut acc, input, len - STRIPE, SECRET.len() - STRIPE - 7);
    let mut result = (len as u64).wrapping_mul(PRIME64_1);
    for i in 0..4 {
        result = result.wrapping_add(folded_multiply(
            acc[2 * i] ^ read_u64(&SECRET, 11 + 16 * i),
            acc[2 * i + 1] ^ read_u64(&SECRET, 11 + 16 * i + 8),
        ));
    }
    xxh3_avalanche(result)
}

/// One 64-byte stripe at `at` into the accumulators, keyed by the secret at `key`.
#[inline(always)]
fn accumulate(acc: &mut [u64; 8], input: &[u8], at: usize, key: usize) {
    for i in 0..8 {
        let value = read_u64(input, at + 8 * i);
        let keyed = value ^ read_u64(&SECRET, key + 8 * i);
        acc[i ^ 1] = acc[i ^ 1].wrapping_add(value);
        acc[i] = acc[i].wrapping_add((keyed & 0xFFFF_FFFF).wrapping_mul(keyed >> 32));
    }
}

/// The 16 input bytes at `at`, keyed by the secret at `key`, folded to 64 bits.
#[inline(always)]
fn mix16(input: &[u8], at: usize, key: usize) -> u64 {
    folded_multiply(
        read_u64(input, at) ^ read_u64(&SECRET, key),
        read_u64(input, at + 8) ^ read_u64(&SECRET, key + 8),
    )
}

#[inline(always)]
fn xxh3_avalanche(mut h: u64) -> u64 {
    h ^= h >> 37;
    h = h.wrapping_mul(PRIME_MX1);
    h ^ (h >> 32)
}

/// Builds [`KeyedHasher`]s with a seed drawn at random when the state is created.
#[derive(Clone, Debug)]
pub struct KeyedState {
    seed: u64,
}

impl Default for KeyedState {
    fn default() -> Self {
        // std's RandomState carries per-process random keys: hashing a constant with it gives a
        // seed an outsider cannot predict.
        KeyedState {
            seed: RandomState::new().hash_one(0x6b61_666b_615f_7069_u64),
        }
    }
}

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher { state: self.seed }
    }
}

/// A [`Hasher`] that chains [`xxh64`] over each byte write (and a folded multiply over each
/// `u64`), seeded by its [`KeyedState`].
#[derive(Clone, Debug)]
pub struct KeyedHasher {
    state: u64,
}

impl Hasher for KeyedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.state = xxh64(bytes, self.state);
    }

    /// `str` hashes as its bytes then `0xff`: mix the byte in without another full pass.
    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.state = folded_multiply(self.state ^ u64::from(byte), PRIME64_1);
    }

    /// A packed short key: one folded multiply (the full 128-bit product, halves xored), which
    /// spreads every input bit over both the high bits (hashbrown's tag) and the low bits (its
    /// bucket index).
    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.state = folded_multiply(self.state ^ word, PRIME64_2);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.state
    }
}

#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

#[inline(always)]
fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(PRIME64_2))
        .rotate_left(31)
        .wrapping_mul(PRIME64_1)
}

#[inline(always)]
fn merge_round(acc: u64, lane: u64) -> u64 {
    (acc ^ round(0, lane))
        .wrapping_mul(PRIME64_1)
        .wrapping_add(PRIME64_4)
}

#[inline(always)]
fn xxh64_avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(PRIME64_2);
    h ^= h >> 29;
    h = h.wrapping_mul(PRIME64_3);
    h ^ (h >> 32)
}

/// The little-endian word at `at` (the hash is defined on bytes, whatever the machine).
#[inline]
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[inline]
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_string_vectors() {
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        // 39 bytes: one 32-byte stripe, then the 4-byte and 1-byte tails.
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition", 0),
            0xFBCE_A83C_8A37_8BF1
        );
    }

    /// `XSUM_XXH3_testdata` of the reference sanity check (seed 0): its own test buffer, hashed
    /// at lengths covering every path — empty, 1–3, 4–8, 9–16, 17–128 (each number of block
    /// pairs), 129–240, and the long path with a partial block, whole blocks and scrambles.
    #[test]
    fn xxh3_reference_sanity_check_vectors() {
        const PRIME32: u64 = 2_654_435_761;
        const PRIME64: u64 = 11_400_714_785_074_694_797;
        let mut buffer = vec![0u8; 4160];
        let mut gen = PRIME32;
        for byte in buffer.iter_mut() {
            *byte = (gen >> 56) as u8;
            gen = gen.wrapping_mul(PRIME64);
        }
        let cases: [(usize, u64); 25] = [
            (0, 0x2D06_8005_38D3_94C2),
            (1, 0xC44B_DFF4_074E_ECDB),
            (2, 0x7A99_7804_4CB8_A8BB),
            (3, 0x5424_7382_A8D6_B94D),
            (4, 0xE5DC_74BC_5184_8A51),
            (6, 0x27B5_6A84_CD2D_7325),
            (8, 0x24CC_C9AC_AA9F_65E4),
            (9, 0x14D5_001C_15DD_3F2B),
            (12, 0xA713_DAF0_DFBB_77E7),
            (16, 0x981B_17D3_6C74_98C9),
            (17, 0x796F_5ACD_3A60_F862),
            (24, 0xA3FE_70BF_9D35_10EB),
            (48, 0x397D_A259_ECBA_1F11),
            (64, 0x9CB4_8487_720E_C49D),
            (80, 0xBCDE_FBBB_2C47_C90A),
            (128, 0xFCFF_2412_6754_D861),
            (129, 0x98F1_B0A6_79A2_CA29),
            (195, 0xCD94_217E_E362_EC3A),
            (222, 0xB916_3B55_8664_D356),
            (240, 0x81C3_C2B6_7F56_8CCF),
            (241, 0xC5A6_39EC_D203_0E5E),
            (403, 0xCDEB_804D_65C6_DEA4),
            (512, 0x617E_4959_9013_CB6B),
            (2048, 0xDD59_E2C3_A5F0_38E0),
            (4160, 0x4F32_3B15_321E_94E1),
        ];
        for (len, expected) in cases {
            assert_eq!(xxh3_64(&buffer[..len]), expected, "length {len}");
        }
    }

    #[test]
    fn keyed_hasher_is_consistent_within_a_state_and_seeded_across_states() {
        let (a, b) = (KeyedState::default(), KeyedState::default());
        assert_eq!(a.hash_one("ios"), a.hash_one(String::from("ios")));
        assert_ne!(a.hash_one("ios"), a.hash_one("android"));
        assert_ne!(a.seed, b.seed);
        assert_ne!(a.hash_one("ios"), b.hash_one("ios"));
        assert_eq!(a.hash_one(7u64), a.hash_one(7u64));
        assert_ne!(a.hash_one(7u64), a.hash_one(8u64));
        assert_ne!(a.hash_one(7u64), b.hash_one(7u64));
    }

    /// The sanity check of the reference `xxhsum`: a 101-byte buffer of pseudo-random bytes,
    /// hashed at lengths 0, 1, 14 and 101 with seeds 0 and 2654435761 (every code path).
    #[test]
    fn reference_sanity_check_vectors() {
        const PRIME: u32 = 2_654_435_761;
        let mut buffer = [0u8; 101];
        let mut gen = PRIME;
        for byte in buffer.iter_mut() {
            *byte = (gen >> 24) as u8;
            gen = gen.wrapping_mul(gen);
        }
        let seed = u64::from(PRIME);
        let cases: [(usize, u64, u64); 8] = [
            (0, 0, 0xEF46_DB37_51D8_E999),
            (0, seed, 0xAC75_FDA2_929B_17EF),
            (1, 0, 0x4FCE_394C_C889_52D8),
            (1, seed, 0x7398_40CB_819F_A723),
            (14, 0, 0xCFFA_8DB8_81BC_3A3D),
            (14, seed, 0x5B96_1158_5EFC_C9CB),
            (101, 0, 0x0EAB_5433_84F8_78AD),
            (101, seed, 0xCAA6_5939_306F_1E21),
        ];
        for (len, seed, expected) in cases {
            assert_eq!(
                xxh64(&buffer[..len], seed),
                expected,
                "length {len}, seed {seed}"
            );
        }
    }

    /// Hashes of ids as the feed sends them, and a fold over every prefix of a 2100-byte buffer
    /// (every length path of both hashes; XXH64 seeded with the length), as the hand-written
    /// implementation computed them: sketches and digests written before must still match.
    #[test]
    fn pinned_values() {
        let ids: [(&str, u64, u64); 5] = [
            (
                "a1b2c3d4-0f2f-42e3-8505-1234567890ab",
                0xF41E_DD33_972B_7271,
                0x2618_AEFD_E4CC_E2C5,
            ),
            (
                "00000000-0000-0000-0000-000000000000",
                0xED65_B077_2BE5_0EE9,
                0xFB92_6CCD_4E3E_5BC9,
            ),
            ("device-42", 0xF4D6_AE3D_B8F9_78FA, 0xFA14_5487_96D4_19F1),
            ("user-1", 0x7C76_15C1_1438_E5C9, 0xA173_746B_114C_6BE8),
            ("android", 0x1672_76A1_BB29_B020, 0x5713_450B_F807_6197),
        ];
        for (id, xxh3, xxh64_0) in ids {
            assert_eq!(xxh3_64(id.as_bytes()), xxh3, "XXH3 of {id:?}");
            assert_eq!(xxh64(id.as_bytes(), 0), xxh64_0, "XXH64 of {id:?}");
        }
        let buffer: Vec<u8> = (0..2100u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let (mut xxh3_fold, mut xxh64_fold) = (0u64, 0u64);
        for len in 0..=buffer.len() {
            xxh3_fold = xxh3_fold.rotate_left(5) ^ xxh3_64(&buffer[..len]);
            xxh64_fold = xxh64_fold.rotate_left(5) ^ xxh64(&buffer[..len], len as u64);
        }
        assert_eq!(xxh3_fold, 0xCA51_A016_D826_D0C0);
        assert_eq!(xxh64_fold, 0x7B9D_3FE8_E615_05A5);
    }
}
