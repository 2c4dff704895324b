//! A fixed-size log-linear latency histogram (about 3% relative precision, 1 ns to ~18 min),
//! cheap enough to record every packet at the sink, and the percentiles and CDF it reports.
//!
//! Invariants: `record` never allocates and never panics (values beyond the range land in the
//! last bucket); percentiles return a bucket's lower bound, so they never overstate.

/// Sub-buckets per power of two.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two covered above the linear range.
const EXPS: usize = 40;
const BUCKETS: usize = SUB + EXPS * SUB;

/// A latency histogram in nanoseconds.
#[derive(Clone, Debug)]
pub struct Hist {
    counts: Box<[u64]>,
    n: u64,
    max: u64,
}

impl Default for Hist {
    fn default() -> Self {
        Self::new()
    }
}

// Bucket indices and exponents are small, so the casts cannot truncate.
#[allow(clippy::cast_possible_truncation)]
fn index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = ((v >> (e - SUB_BITS)) as usize) & (SUB - 1);
    let i = SUB + (e - SUB_BITS) as usize * SUB + sub;
    i.min(BUCKETS - 1)
}

// Inverse of `index` (lower bound).
fn lower(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let e = (i - SUB) / SUB + SUB_BITS as usize;
    let sub = (i - SUB) % SUB;
    ((SUB + sub) as u64) << (e - SUB_BITS as usize)
}

impl Hist {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            n: 0,
            max: 0,
        }
    }

    /// Count one value.
    #[inline]
    pub fn record(&mut self, v: u64) {
        if let Some(c) = self.counts.get_mut(index(v)) {
            *c += 1;
        }
        self.n += 1;
        self.max = self.max.max(v);
    }

    /// Values recorded.
    #[must_use]
    pub const fn count(&self) -> u64 {
        self.n
    }

    /// Largest value recorded.
    #[must_use]
    pub const fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), 0 if empty.
    #[must_use]
    // Quantile ranks are below 2^53, where f64 is exact enough.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    pub fn quantile(&self, q: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.n as f64).ceil() as u64).max(1);
        let mut acc = 0;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c;
            if acc >= rank {
                return lower(i);
            }
        }
        self.max
    }

    /// (value, fraction at or below it) for every non-empty bucket: the CDF.
    #[must_use]
    // Counts are below 2^53.
    #[allow(clippy::cast_precision_loss)]
    pub fn cdf(&self) -> Vec<(u64, f64)> {
        let mut acc = 0u64;
        let mut out = Vec::new();
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 {
                acc += c;
                out.push((lower(i), acc as f64 / self.n.max(1) as f64));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_lower_agree() {
        for v in [0u64, 1, 31, 32, 33, 63, 64, 100, 1000, 123_456, 1 << 30] {
            let l = lower(index(v));
            assert!(l <= v, "{v}: lower {l}");
            assert!(v - l <= v / 16, "{v}: lower {l} too far");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_run() {
        let mut h = Hist::new();
        for v in 1..=10_000u64 {
            h.record(v * 100);
        }
        let p50 = h.quantile(0.5);
        let p99 = h.quantile(0.99);
        assert!((480_000..=500_000).contains(&p50), "{p50}");
        assert!((960_000..=990_000).contains(&p99), "{p99}");
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max(), 1_000_000);
        let cdf = h.cdf();
        assert!((cdf.last().unwrap().1 - 1.0).abs() < 1e-9);
        assert!(cdf.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(Hist::new().quantile(0.5), 0);
    }
}
