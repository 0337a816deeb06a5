//! Stable 64-bit hashes: XXH3 for the cardinality sketches, XXH64 for record digests, both from
//! the `xxhash-rust` crate.
//!
//! Sketches from different builds, machines and instances must merge, so the hash that places
//! an id in a register has to be the same everywhere and forever: std's `DefaultHasher` is
//! explicitly unstable across Rust releases, and `RandomState` is random per process. Both
//! hashes are Yann Collet's, specified byte for byte; the tests check the published vectors
//! (the reference `xxhsum` sanity-check tables) and values pinned from the sketches and digests
//! this program has written, since a different hash would put the same id in another register:
//! - [`xxh3_64`] (`XXH3_64bits`, seed 0, default secret) places ids in sketch registers. It is
//!   the faster of the two on ids (a UUID takes a few independent multiplies rather than XXH64's
//!   serial rounds), and it runs twice per event.
//! - [`xxh64`] (XXH64) digests insight records: `kafka-pipeline insights` and the sink recognise
//!   an exact re-send by it, and the sink stores the digests.
//!
//! The count maps need no stable hash and use foldhash instead (see [`super::counts`]).

pub use xxhash_rust::xxh3::xxh3_64;
pub use xxhash_rust::xxh64::xxh64;

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
