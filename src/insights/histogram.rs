//! A mergeable log-scale histogram of event-time lag in milliseconds.
//!
//! Buckets are HDR-style: values below 32 ms have a bucket each; above, every power of two is
//! split into 32 equal sub-buckets, so a bucket is at most 1/32 of its lower bound wide. A
//! quantile is reported as its bucket's midpoint (capped at the exact maximum), off by at most
//! 1/64 ≈ 1.6% of the true value. 1920 buckets cover all of `u64`, so nothing overflows: a lag of
//! decades (a 1970 timestamp) lands in a bucket like any other.
//!
//! Merging adds bucket counts, which is exact, associative and commutative: the quantiles of a
//! merged histogram are those of the union of the inputs, within the bucket error.
//!
//! Negative lag (an event time after the processing time: a producer with a fast clock) is
//! recorded as 0 and also counted in [`LagHistogram::negative`].
//!
//! Memory: up to [`SPARSE_LIMIT`] occupied buckets live in a sorted list (lags in one window
//! cluster in a few dozen buckets); beyond that, a dense array of 1920 counters (15 KiB).
//!
//! Serialized form ([`LagHistogram::to_base64`]): the byte `0x01`, a varint number of occupied
//! buckets, then per occupied bucket in index order a varint gap (index minus the previous
//! index minus one) and a varint count, then the varint maximum and the varint negative count.
//!
//! Hand-written rather than the `hdrhistogram` crate: this form is part of the insight record
//! contract (records of any version must keep reading and merging), and a fixed bucket layout
//! with nothing to configure means every instance's histograms merge without agreeing on
//! bounds or precision first.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::codec::{from_base64, put_varint, to_base64, Cursor};

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Number of buckets: exact ones below 2^SUB_BITS, then 32 per power of two up to 2^63.
pub const BUCKETS: usize = SUB + (64 - SUB_BITS as usize - 1) * SUB + SUB;
/// Occupied buckets held in the sorted list before the histogram turns dense.
pub const SPARSE_LIMIT: usize = 64;
const FORMAT: u8 = 1;

/// Lag distribution of one window (or of several, merged).
#[derive(Clone, Default)]
pub struct LagHistogram {
    buckets: Buckets,
    count: u64,
    max: u64,
    negative: u64,
}

#[derive(Clone)]
enum Buckets {
    /// Occupied buckets as (index, count), sorted by index.
    Sparse(Vec<(u16, u64)>),
    /// Every bucket.
    Dense(Box<[u64; BUCKETS]>),
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets::Sparse(Vec::new())
    }
}

/// Why a serialized histogram was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramError(String);

impl fmt::Display for HistogramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid lag histogram: {}", self.0)
    }
}

impl std::error::Error for HistogramError {}

/// The bucket of `value`.
#[inline]
pub fn bucket_of(value: u64) -> usize {
    if value < SUB as u64 {
        value as usize
    } else {
        let exponent = 63 - value.leading_zeros(); // >= SUB_BITS
        let sub = (value >> (exponent - SUB_BITS)) as usize & (SUB - 1);
        SUB + (exponent - SUB_BITS) as usize * SUB + sub
    }
}

/// The smallest and largest value of bucket `index`.
pub fn bucket_range(index: usize) -> (u64, u64) {
    if index < SUB {
        return (index as u64, index as u64);
    }
    let exponent = (index / SUB) as u32 + SUB_BITS - 1;
    let sub = (index % SUB) as u64;
    let width_bits = exponent - SUB_BITS;
    let low = (SUB as u64 + sub) << width_bits;
    (low, low + ((1u64 << width_bits) - 1))
}

impl LagHistogram {
    /// An empty histogram (no allocation).
    pub fn new() -> Self {
        LagHistogram::default()
    }

    /// Records one lag; a negative one counts as 0 and in [`LagHistogram::negative`].
    #[inline]
    pub fn record(&mut self, lag_ms: i64) {
        let value = if lag_ms < 0 {
            self.negative += 1;
            0
        } else {
            lag_ms as u64
        };
        self.count += 1;
        self.max = self.max.max(value);
        self.add(bucket_of(value), 1);
    }

    #[inline]
    fn add(&mut self, index: usize, n: u64) {
        match &mut self.buckets {
            Buckets::Dense(counts) => counts[index] = counts[index].saturating_add(n),
            Buckets::Sparse(list) => match list.binary_search_by_key(&(index as u16), |e| e.0) {
                Ok(at) => list[at].1 = list[at].1.saturating_add(n),
                Err(at) if list.len() < SPARSE_LIMIT => list.insert(at, (index as u16, n)),
                Err(_) => {
                    let mut counts = Box::new([0u64; BUCKETS]);
                    for &(i, c) in list.iter() {
                        counts[usize::from(i)] = c;
                    }
                    counts[index] = n;
                    self.buckets = Buckets::Dense(counts);
                }
            },
        }
    }

    /// Occupied buckets as (index, count), in index order.
    fn occupied(&self) -> Box<dyn Iterator<Item = (usize, u64)> + '_> {
        match &self.buckets {
            Buckets::Sparse(list) => Box::new(list.iter().map(|&(i, c)| (usize::from(i), c))),
            Buckets::Dense(counts) => Box::new(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| c != 0)
                    .map(|(i, &c)| (i, c)),
            ),
        }
    }

    /// Adds `other`'s counts to `self`.
    pub fn merge(&mut self, other: &LagHistogram) {
        for (index, n) in other.occupied() {
            self.add(index, n);
        }
        self.count = self.count.saturating_add(other.count);
        self.negative = self.negative.saturating_add(other.negative);
        self.max = self.max.max(other.max);
    }

    /// Number of lags recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest lag recorded (exact), 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Number of negative lags recorded (as 0).
    pub fn negative(&self) -> u64 {
        self.negative
    }

    /// The `q`-quantile (`q` in `[0, 1]`, clamped): the midpoint of the bucket holding the
    /// ⌈q·count⌉-th smallest lag, at most [`LagHistogram::max`] (and exactly the maximum when
    /// that rank is the last). `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == self.count {
            // The largest lag is known exactly.
            return Some(self.max);
        }
        let mut seen = 0u64;
        for (index, n) in self.occupied() {
            seen += n;
            if seen >= rank {
                let (low, high) = bucket_range(index);
                return Some((low + (high - low) / 2).min(self.max));
            }
        }
        Some(self.max)
    }

    /// The binary form (see the module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        let occupied: Vec<(usize, u64)> = self.occupied().collect();
        let mut out = Vec::with_capacity(8 + occupied.len() * 4);
        out.push(FORMAT);
        put_varint(&mut out, occupied.len() as u64);
        let mut next = 0;
        for (index, n) in occupied {
            put_varint(&mut out, (index - next) as u64);
            put_varint(&mut out, n);
            next = index + 1;
        }
        put_varint(&mut out, self.max);
        put_varint(&mut out, self.negative);
        out
    }

    /// Reads the binary form back and checks that it is consistent.
    pub fn from_bytes(bytes: &[u8]) -> Result<LagHistogram, HistogramError> {
        let err = |what: &str| HistogramError(what.to_owned());
        let mut cursor = Cursor::new(bytes);
        let format = cursor.byte().map_err(err)?;
        if format != FORMAT {
            return Err(HistogramError(format!("unknown format {format}")));
        }
        let occupied = cursor.varint().map_err(err)?;
        if occupied > BUCKETS as u64 {
            return Err(err("more buckets than exist"));
        }
        let mut histogram = LagHistogram::new();
        let (mut next, mut last) = (0u64, None);
        for _ in 0..occupied {
            let index = next.saturating_add(cursor.varint().map_err(err)?);
            let n = cursor.varint().map_err(err)?;
            if index >= BUCKETS as u64 {
                return Err(err("bucket index out of range"));
            }
            if n == 0 {
                return Err(err("empty bucket listed"));
            }
            histogram.add(index as usize, n);
            histogram.count = histogram.count.saturating_add(n);
            next = index + 1;
            last = Some(index as usize);
        }
        histogram.max = cursor.varint().map_err(err)?;
        histogram.negative = cursor.varint().map_err(err)?;
        cursor.finish().map_err(err)?;
        let max_fits = match last {
            Some(top) => {
                let (low, high) = bucket_range(top);
                (low..=high).contains(&histogram.max)
            }
            None => histogram.max == 0,
        };
        if !max_fits {
            return Err(err("maximum outside the highest bucket"));
        }
        let zeros = histogram
            .occupied()
            .find(|&(i, _)| i == 0)
            .map_or(0, |e| e.1);
        if histogram.negative > zeros {
            return Err(err("more negative lags than lags in bucket 0"));
        }
        Ok(histogram)
    }

    /// [`LagHistogram::to_bytes`] in base64, as carried in insight records.
    pub fn to_base64(&self) -> String {
        to_base64(&self.to_bytes())
    }

    /// Reads [`LagHistogram::to_base64`]'s output.
    pub fn from_base64(text: &str) -> Result<LagHistogram, HistogramError> {
        let bytes = from_base64(text).map_err(HistogramError)?;
        LagHistogram::from_bytes(&bytes)
    }
}

impl PartialEq for LagHistogram {
    /// Equal when counts, maximum and negative count are equal, whatever the memory form.
    fn eq(&self, other: &LagHistogram) -> bool {
        self.count == other.count
            && self.max == other.max
            && self.negative == other.negative
            && self.occupied().eq(other.occupied())
    }
}

impl Eq for LagHistogram {}

impl fmt::Debug for LagHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LagHistogram(count {}, p50 {:?}, p99 {:?}, max {}, negative {})",
            self.count,
            self.quantile(0.5),
            self.quantile(0.99),
            self.max,
            self.negative
        )
    }
}

impl Serialize for LagHistogram {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for LagHistogram {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LagHistogram, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        LagHistogram::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Largest relative error of a reported quantile: half a bucket of 1/32.
    const BUCKET_ERROR: f64 = 1.0 / 64.0;

    fn exact_quantile(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    fn assert_close(reported: u64, exact: u64, what: &str) {
        let error = reported.abs_diff(exact) as f64 / exact.max(1) as f64;
        assert!(
            error <= BUCKET_ERROR,
            "{what}: reported {reported}, exact {exact} ({:.2}%)",
            error * 100.0
        );
    }

    #[test]
    fn buckets_tile_the_whole_range() {
        assert_eq!(BUCKETS, 1920);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_range(BUCKETS - 1).1, u64::MAX);
        let mut expected_low = 0u64;
        for index in 0..BUCKETS {
            let (low, high) = bucket_range(index);
            assert_eq!(low, expected_low, "bucket {index}");
            assert!(high >= low);
            assert_eq!(bucket_of(low), index);
            assert_eq!(bucket_of(high), index);
            assert!(
                (high - low) as f64 <= low as f64 / 32.0,
                "bucket {index} too wide"
            );
            expected_low = high.wrapping_add(1);
        }
        for v in 0..64 {
            assert_eq!(bucket_range(bucket_of(v)), (v, v), "small values are exact");
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution_are_within_the_bucket_error() {
        // 100,000 lags, log-uniform-ish between 1 ms and ~17 minutes.
        let mut lags: Vec<u64> = (0..100_000u64)
            .map(|i| {
                let x = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
                (1000.0f64).powf(x * 2.0) as u64
            })
            .collect();
        let mut h = LagHistogram::new();
        for &lag in &lags {
            h.record(lag as i64);
        }
        lags.sort_unstable();
        assert_eq!(h.count(), 100_000);
        assert_eq!(h.max(), *lags.last().unwrap());
        for q in [0.5, 0.95, 0.99] {
            assert_close(
                h.quantile(q).unwrap(),
                exact_quantile(&lags, q),
                &format!("p{q}"),
            );
        }
        assert_eq!(h.quantile(1.0), Some(h.max()));
        assert_eq!(h.quantile(0.0), Some(lags[0]));
    }

    #[test]
    fn empty_and_single_value() {
        let mut h = LagHistogram::new();
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.max(), 0);
        h.record(1234);
        for q in [0.0, 0.5, 0.99, 1.0] {
            assert_close(h.quantile(q).unwrap(), 1234, "single");
        }
        assert_eq!(h.max(), 1234);
    }

    #[test]
    fn negative_lag_clamps_to_zero_and_is_counted() {
        let mut h = LagHistogram::new();
        h.record(-5_000);
        h.record(-1);
        h.record(10);
        assert_eq!((h.count(), h.negative(), h.max()), (3, 2, 10));
        assert_eq!(h.quantile(0.5), Some(0));
        assert_eq!(h.quantile(1.0), Some(10));
        h.record(i64::MIN);
        assert_eq!(h.negative(), 3);
    }

    #[test]
    fn extreme_lags_do_not_overflow() {
        let mut h = LagHistogram::new();
        h.record(i64::MAX);
        h.record(1_720_589_697_000); // an event from 1970 processed in 2024
        assert_eq!(h.max(), i64::MAX as u64);
        assert_eq!(h.quantile(1.0), Some(i64::MAX as u64));
        assert_close(h.quantile(0.5).unwrap(), 1_720_589_697_000, "decades");
        let back = LagHistogram::from_bytes(&h.to_bytes()).unwrap();
        assert_eq!(back, h);
    }

    /// The serialized form as the hand-written base64 wrote it (records published before
    /// must still read).
    #[test]
    fn serialized_form_is_pinned() {
        let mut h = LagHistogram::new();
        for lag in [-5, 0, 1, 7, 250, 1_000, 60_000] {
            h.record(lag);
        }
        let text = "AQYAAgABBQF2AT8BuwEB4NQDAQ==";
        assert_eq!(h.to_base64(), text);
        assert_eq!(LagHistogram::from_base64(text).unwrap(), h);
    }

    #[test]
    fn sparse_and_dense_forms_agree() {
        let mut h = LagHistogram::new();
        for lag in 0..5_000 {
            h.record(lag * 7);
        }
        assert!(matches!(h.buckets, Buckets::Dense(_)));
        let back = LagHistogram::from_base64(&h.to_base64()).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.quantile(0.99), h.quantile(0.99));
    }

    #[test]
    fn corrupt_serializations_are_rejected() {
        let bad = |bytes: &[u8]| LagHistogram::from_bytes(bytes).unwrap_err().to_string();
        assert!(bad(&[]).contains("truncated"));
        assert!(bad(&[2, 0, 0, 0]).contains("unknown format"));
        assert!(bad(&[FORMAT, 1, 5, 0, 5, 0]).contains("empty bucket"));
        // One lag of 5 ms but a maximum of 6.
        assert!(bad(&[FORMAT, 1, 5, 1, 6, 0]).contains("maximum"));
        assert!(bad(&[FORMAT, 0, 3, 0]).contains("maximum"));
        // A negative lag without a lag in bucket 0.
        assert!(bad(&[FORMAT, 1, 5, 1, 5, 1]).contains("negative"));
        assert!(bad(&[FORMAT, 1, 0x80, 0x0f, 1, 0, 0]).contains("out of range"));
        assert!(bad(&[FORMAT, 0, 0, 0, 0]).contains("trailing"));
        assert!(LagHistogram::from_bytes(&[FORMAT, 1, 5, 1, 5, 0]).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Merging the histograms of a split equals the histogram of the whole, in any order.
        #[test]
        fn merge_of_a_split_equals_the_whole(
            lags in proptest::collection::vec(-1_000i64..10_000_000, 0..400),
            split in any::<proptest::sample::Index>(),
        ) {
            let at = if lags.is_empty() { 0 } else { split.index(lags.len() + 1) };
            let of = |part: &[i64]| {
                let mut h = LagHistogram::new();
                part.iter().for_each(|&l| h.record(l));
                h
            };
            let (a, b, whole) = (of(&lags[..at]), of(&lags[at..]), of(&lags));
            let mut ab = a.clone();
            ab.merge(&b);
            let mut ba = b;
            ba.merge(&a);
            prop_assert_eq!(&ab, &whole);
            prop_assert_eq!(&ba, &whole);
            let back = LagHistogram::from_base64(&whole.to_base64()).unwrap();
            prop_assert_eq!(&back, &whole);
            if !lags.is_empty() {
                let mut sorted: Vec<u64> = lags.iter().map(|&l| l.max(0) as u64).collect();
                sorted.sort_unstable();
                for q in [0.5, 0.95, 0.99] {
                    let (reported, exact) = (whole.quantile(q).unwrap(), exact_quantile(&sorted, q));
                    prop_assert!(reported.abs_diff(exact) as f64 <= exact as f64 * BUCKET_ERROR);
                }
            }
        }
    }
}
