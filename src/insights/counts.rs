//! Exact per-key counts with a cap on distinct keys: device types, app versions, locales.
//!
//! The keys come from the input, and anything can arrive there: a flood of made-up
//! `device_type` values must not grow a window's memory without bound. So a map holds at most
//! [`MAX_KEYS`] distinct keys; once full, events with a new key are counted under
//! [`OTHER`] (`"(other)"`) instead. Totals stay exact whatever happens; per-key counts are exact
//! as long as the keys fit. A key whose text is literally `(other)` is counted there too.
//! (Locales are two letters, so at most 676 distinct: they always fit.)
//!
//! Merging adds counts key by key. If the union has more than [`MAX_KEYS`] keys, the smallest
//! counts (ties broken by key) move to [`OTHER`]: the result does not depend on merge order, and
//! equals the counts of the whole whenever the union fits the cap.
//!
//! Speed: this sits in the per-event path three times. Keys of up to 7 bytes — every device
//! type, locale and app version the feed sends (`android`, `WA`, `2.3.0`) — are packed with
//! their length into one `u64` and counted by that word: in a short list searched linearly
//! while there are at most `FEW` (8) such keys (device types, app versions: a few compares, no
//! hashing), then in a map that hashes with one multiply; longer keys go to a map of
//! `String`s. Both maps hash with foldhash (`foldhash::fast::RandomState`: a per-process random
//! seed mixed with a per-map one; std's SipHash cost ~20 ns on a short key, most of the
//! aggregation's cost at three lookups per event), and counting a key already present
//! allocates nothing. A random seed keeps collisions unpredictable from outside (foldhash is not
//! a keyed cryptographic hash, so this is mitigation, not a guarantee); the cap of [`MAX_KEYS`]
//! bounds the worst case regardless.
//!
//! Serialized as a JSON object `{key: count}`, sorted by key, with `"(other)"` when non-zero.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most distinct keys kept per map.
pub const MAX_KEYS: usize = 1000;
/// The key that collects counts beyond the cap.
pub const OTHER: &str = "(other)";

/// Longest key packed into a `u64` (the eighth byte holds the length).
const SHORT: usize = 7;

/// Most packed keys kept in [`ShortKeys::Few`] before switching to a map.
const FEW: usize = 8;

/// Counts of packed keys: a list while there are few, a table beyond.
#[derive(Clone, Debug)]
enum ShortKeys {
    /// At most [`FEW`] keys, in the order first seen.
    Few(Vec<(u64, u64)>),
    /// Any number of keys.
    Many(WordTable),
}

/// An open-addressing table from packed keys to counts: linear probing in a power-of-two array
/// at most half full, slots hashed by foldhash (a random seed per table, so made-up keys cannot
/// be chosen to collide). A lookup is a multiply and usually one compare — a third of
/// what a general hash map spent on the locale count, the one map per event that outgrows
/// [`ShortKeys::Few`].
#[derive(Clone, Debug)]
struct WordTable {
    /// `(word, count)`, [`WordTable::EMPTY`] as the word of a free slot.
    slots: Vec<(u64, u64)>,
    len: usize,
    hasher: RandomState,
}

impl WordTable {
    /// Never a packed key: those have a length of at most [`SHORT`] in their top byte.
    const EMPTY: u64 = u64::MAX;

    fn with_capacity(keys: usize) -> Self {
        WordTable {
            slots: vec![(Self::EMPTY, 0); (keys * 2).next_power_of_two().max(16)],
            len: 0,
            hasher: RandomState::default(),
        }
    }

    /// The slot holding `word`, or the free slot where it would go.
    #[inline(always)]
    fn slot_of(&self, word: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = self.hasher.hash_one(word) as usize & mask;
        while self.slots[at].0 != word && self.slots[at].0 != Self::EMPTY {
            at = (at + 1) & mask;
        }
        at
    }

    #[inline(always)]
    fn get_mut(&mut self, word: u64) -> Option<&mut u64> {
        let at = self.slot_of(word);
        let (w, count) = &mut self.slots[at];
        (*w == word).then_some(count)
    }

    /// Adds a key not present yet.
    fn insert(&mut self, word: u64, n: u64) {
        if (self.len + 1) * 2 > self.slots.len() {
            let mut bigger = WordTable::with_capacity(self.slots.len());
            for &(w, c) in self.slots.iter().filter(|(w, _)| *w != Self::EMPTY) {
                bigger.insert(w, c);
            }
            *self = bigger;
        }
        let at = self.slot_of(word);
        self.slots[at] = (word, n);
        self.len += 1;
    }

    fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.slots
            .iter()
            .filter(|(w, _)| *w != Self::EMPTY)
            .copied()
    }
}

impl Default for ShortKeys {
    fn default() -> Self {
        ShortKeys::Few(Vec::new())
    }
}

impl ShortKeys {
    #[inline(always)]
    fn get_mut(&mut self, word: u64) -> Option<&mut u64> {
        match self {
            ShortKeys::Few(list) => list.iter_mut().find(|(w, _)| *w == word).map(|(_, n)| n),
            ShortKeys::Many(table) => table.get_mut(word),
        }
    }

    fn get(&self, word: u64) -> Option<u64> {
        match self {
            ShortKeys::Few(list) => list.iter().find(|(w, _)| *w == word).map(|&(_, n)| n),
            ShortKeys::Many(table) => {
                let at = table.slot_of(word);
                (table.slots[at].0 == word).then_some(table.slots[at].1)
            }
        }
    }

    /// Adds a key not present yet.
    fn insert(&mut self, word: u64, n: u64) {
        match self {
            ShortKeys::Few(list) if list.len() < FEW => list.push((word, n)),
            ShortKeys::Few(list) => {
                let mut table = WordTable::with_capacity(FEW + 1);
                for (w, c) in list.drain(..) {
                    table.insert(w, c);
                }
                table.insert(word, n);
                *self = ShortKeys::Many(table);
            }
            ShortKeys::Many(table) => table.insert(word, n),
        }
    }

    fn len(&self) -> usize {
        match self {
            ShortKeys::Few(list) => list.len(),
            ShortKeys::Many(table) => table.len,
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (u64, u64)> + '_> {
        match self {
            ShortKeys::Few(list) => Box::new(list.iter().copied()),
            ShortKeys::Many(table) => Box::new(table.iter()),
        }
    }
}

impl PartialEq for ShortKeys {
    /// The same keys with the same counts, whatever the form.
    fn eq(&self, other: &ShortKeys) -> bool {
        self.len() == other.len() && self.iter().all(|(w, n)| other.get(w) == Some(n))
    }
}

impl Eq for ShortKeys {}

/// Counts per key, at most [`MAX_KEYS`] keys, plus an [`OTHER`] count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CappedCounts {
    /// Keys of up to [`SHORT`] bytes, packed by [`pack`].
    short: ShortKeys,
    /// Longer keys.
    long: HashMap<String, u64, RandomState>,
    other: u64,
}

/// The key's bytes, zero-padded, with its length in the top byte (so `"a"` and `"a\0"`
/// differ). Only for keys of up to [`SHORT`] bytes. Built from two overlapping loads rather
/// than a variable-length copy, which would cost a `memcpy` call per lookup.
#[inline]
fn pack(key: &str) -> u64 {
    let b = key.as_bytes();
    let len = b.len();
    debug_assert!(len <= SHORT);
    let bytes = match len {
        0 => 0,
        1..=3 => {
            u64::from(b[0])
                | u64::from(b[len / 2]) << (len / 2 * 8)
                | u64::from(b[len - 1]) << ((len - 1) * 8)
        }
        _ => {
            let low = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let high = u32::from_le_bytes([b[len - 4], b[len - 3], b[len - 2], b[len - 1]]);
            u64::from(low) | u64::from(high) << ((len - 4) * 8)
        }
    };
    bytes | (len as u64) << 56
}

fn unpack(word: u64) -> String {
    let bytes = word.to_le_bytes();
    let len = usize::from(bytes[7]).min(SHORT);
    // Packed from a `str`, so valid UTF-8.
    String::from_utf8_lossy(&bytes[..len]).into_owned()
}

fn add_to(count: &mut u64, n: u64) {
    *count = count.saturating_add(n);
}

impl CappedCounts {
    /// An empty map (no allocation).
    pub fn new() -> Self {
        CappedCounts::default()
    }

    /// Counts one occurrence of `key`. Allocates only for a key not seen before.
    #[inline(always)]
    pub fn add(&mut self, key: &str) {
        // The per-event path: a short key already in the short list is counted in line; the
        // rest goes through `add_n`.
        if key.len() <= SHORT {
            if let Some(count) = self.short.get_mut(pack(key)) {
                add_to(count, 1);
                return;
            }
        }
        self.add_n(key, 1);
    }

    /// Counts `n` occurrences of `key`.
    pub fn add_n(&mut self, key: &str, n: u64) {
        let full = self.distinct() >= MAX_KEYS;
        if key.len() <= SHORT {
            let word = pack(key);
            if let Some(count) = self.short.get_mut(word) {
                add_to(count, n);
            } else if full || key == OTHER {
                add_to(&mut self.other, n);
            } else {
                self.short.insert(word, n);
            }
        } else if let Some(count) = self.long.get_mut(key) {
            add_to(count, n);
        } else if full {
            add_to(&mut self.other, n);
        } else {
            self.long.insert(key.to_owned(), n);
        }
    }

    /// Adds `other`'s counts (see the module doc for what happens beyond the cap).
    pub fn merge(&mut self, other: &CappedCounts) {
        for (word, n) in other.short.iter() {
            match self.short.get_mut(word) {
                Some(count) => add_to(count, n),
                None => self.short.insert(word, n),
            }
        }
        for (key, &n) in &other.long {
            match self.long.get_mut(key.as_str()) {
                Some(count) => add_to(count, n),
                None => {
                    self.long.insert(key.clone(), n);
                }
            }
        }
        add_to(&mut self.other, other.other);
        self.trim();
    }

    /// Moves the smallest counts to [`OTHER`] until at most [`MAX_KEYS`] keys remain.
    fn trim(&mut self) {
        if self.distinct() <= MAX_KEYS {
            return;
        }
        let mut ranked = self.entries();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut kept = CappedCounts {
            other: self.other,
            ..CappedCounts::default()
        };
        for (i, (key, n)) in ranked.into_iter().enumerate() {
            if i < MAX_KEYS {
                kept.add_n(&key, n);
            } else {
                add_to(&mut kept.other, n);
            }
        }
        *self = kept;
    }

    /// Every named key with its count, unordered.
    fn entries(&self) -> Vec<(String, u64)> {
        let short = self.short.iter().map(|(w, n)| (unpack(w), n));
        let long = self.long.iter().map(|(k, &n)| (k.clone(), n));
        short.chain(long).collect()
    }

    /// The count of `key` (the [`OTHER`] count for `"(other)"`).
    pub fn get(&self, key: &str) -> u64 {
        let found = if key == OTHER {
            Some(self.other)
        } else if key.len() <= SHORT {
            self.short.get(pack(key))
        } else {
            self.long.get(key).copied()
        };
        found.unwrap_or(0)
    }

    /// Counts that did not fit the cap.
    pub fn other(&self) -> u64 {
        self.other
    }

    /// Number of distinct keys counted by name (a lower bound when [`CappedCounts::other`] is
    /// non-zero).
    pub fn distinct(&self) -> usize {
        self.short.len() + self.long.len()
    }

    /// Sum of all counts, [`OTHER`] included.
    pub fn total(&self) -> u64 {
        self.short
            .iter()
            .map(|(_, n)| n)
            .chain(self.long.values().copied())
            .fold(self.other, |sum, n| sum.saturating_add(n))
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.distinct() == 0 && self.other == 0
    }

    /// The `n` largest counts by name, largest first, ties by key ([`OTHER`] excluded).
    pub fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut all = self.entries();
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    /// Every count sorted by key, [`OTHER`] included when non-zero.
    pub fn sorted(&self) -> BTreeMap<String, u64> {
        let mut sorted: BTreeMap<String, u64> = self.entries().into_iter().collect();
        if self.other > 0 {
            sorted.insert(OTHER.to_owned(), self.other);
        }
        sorted
    }
}

impl Serialize for CappedCounts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.sorted().serialize(s)
    }
}

impl<'de> Deserialize<'de> for CappedCounts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CappedCounts, D::Error> {
        let map = HashMap::<String, u64>::deserialize(d)?;
        let mut counts = CappedCounts::new();
        for (key, n) in map {
            if key == OTHER {
                add_to(&mut counts.other, n);
            } else if n == 0 {
                continue;
            } else if key.len() <= SHORT {
                // Distinct keys (a JSON object's), so distinct packed words.
                counts.short.insert(pack(&key), n);
            } else {
                counts.long.insert(key, n);
            }
        }
        counts.trim();
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn counts_exactly_below_the_cap() {
        let mut c = CappedCounts::new();
        for key in ["ios", "android", "ios", "web-browser", "ios", "web-browser"] {
            c.add(key);
        }
        assert_eq!(
            (c.get("ios"), c.get("android"), c.get("web-browser")),
            (3, 1, 2)
        );
        assert_eq!((c.total(), c.distinct(), c.other()), (6, 3, 0));
        assert_eq!(
            c.top(2),
            vec![("ios".to_owned(), 3), ("web-browser".to_owned(), 2)]
        );
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"android":1,"ios":3,"web-browser":2}"#
        );
    }

    #[test]
    fn pack_is_the_zero_padded_bytes_and_the_length() {
        for key in [
            "", "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "é", "\0",
        ] {
            let mut expected = [0u8; 8];
            expected[..key.len()].copy_from_slice(key.as_bytes());
            expected[7] = key.len() as u8;
            assert_eq!(pack(key), u64::from_le_bytes(expected), "{key:?}");
            assert_eq!(unpack(pack(key)), key);
        }
    }

    /// Made-up keys cannot be chosen to collide in every map: each table draws its own seed.
    #[test]
    fn tables_are_seeded_apart() {
        let (a, b) = (WordTable::with_capacity(16), WordTable::with_capacity(16));
        let word = pack("android");
        assert_eq!(a.hasher.hash_one(word), a.hasher.hash_one(word));
        assert_ne!(a.hasher.hash_one(word), b.hasher.hash_one(word));
    }

    #[test]
    fn packed_keys_keep_their_length_and_bytes() {
        let mut c = CappedCounts::new();
        for key in ["a", "a\0", "", "1234567", "12345678", "é", "ab"] {
            c.add(key);
        }
        assert_eq!(c.distinct(), 7);
        for key in ["a", "a\0", "", "1234567", "12345678", "é", "ab"] {
            assert_eq!(c.get(key), 1, "{key:?}");
        }
        let json = serde_json::to_string(&c).unwrap();
        let back: CappedCounts = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.sorted().keys().next().map(String::as_str), Some(""));
    }

    #[test]
    fn keys_beyond_the_cap_go_to_other_and_totals_stay_exact() {
        let mut c = CappedCounts::new();
        for i in 0..MAX_KEYS + 500 {
            // Short and long keys share the cap.
            c.add(&format!(
                "{}{i}",
                if i % 2 == 0 { "k" } else { "long-key-" }
            ));
        }
        c.add("k0");
        c.add("never-seen");
        assert_eq!(c.distinct(), MAX_KEYS);
        assert_eq!(c.other(), 501);
        assert_eq!(c.get("k0"), 2);
        assert_eq!(c.total(), MAX_KEYS as u64 + 502);
        assert_eq!(c.get(OTHER), 501);
        let json = serde_json::to_string(&c).unwrap();
        let back: CappedCounts = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn literal_other_key_is_counted_as_other() {
        let mut c = CappedCounts::new();
        c.add(OTHER);
        assert_eq!((c.distinct(), c.other(), c.total()), (0, 1, 1));
        assert!(c.top(10).is_empty());
    }

    #[test]
    fn merge_beyond_the_cap_keeps_the_largest_counts_in_any_order() {
        let (mut a, mut b) = (CappedCounts::new(), CappedCounts::new());
        for i in 0..MAX_KEYS {
            a.add_n(&format!("a{i}"), 2);
            b.add_n(&format!("b{i}"), if i < 10 { 5 } else { 1 });
        }
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.distinct(), MAX_KEYS);
        assert_eq!(ab.total(), a.total() + b.total());
        assert_eq!(ab.get("b3"), 5);
        // 1000 a-keys (2 each) and 10 b-keys (5 each) compete for 1000 places: the ten 5s and
        // 990 of the 2s stay, ten 2s and all the 1s go to (other).
        assert_eq!(ab.other(), 10 * 2 + 990);
    }

    #[test]
    fn oversized_or_odd_json_is_capped_on_reading() {
        let entries: Vec<String> = (0..MAX_KEYS + 3).map(|i| format!("\"k{i}\":1")).collect();
        let json = format!("{{{},\"(other)\":4,\"zero\":0}}", entries.join(","));
        let c: CappedCounts = serde_json::from_str(&json).unwrap();
        assert_eq!(c.distinct(), MAX_KEYS);
        assert_eq!(c.total(), MAX_KEYS as u64 + 3 + 4);
        assert!(serde_json::from_str::<CappedCounts>(r#"{"a":-1}"#).is_err());
    }

    proptest! {
        #[test]
        fn merge_of_a_split_equals_the_whole(
            keys in proptest::collection::vec("[a-e]{1,2}|long-[a-c]{4}", 0..200),
            split in any::<proptest::sample::Index>(),
        ) {
            let at = split.index(keys.len() + 1);
            let of = |part: &[String]| {
                let mut c = CappedCounts::new();
                part.iter().for_each(|k| c.add(k));
                c
            };
            let mut merged = of(&keys[..at]);
            merged.merge(&of(&keys[at..]));
            prop_assert_eq!(merged, of(&keys));
        }
    }
}
