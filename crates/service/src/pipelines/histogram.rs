//! Call wall times of a pipeline node on a log scale, for the p99 in its `NodeStats`.

/// Call wall times on a log scale (8 buckets per doubling), for a p99 within about 10%.
#[derive(Debug, Clone)]
pub(super) struct Histogram {
    buckets: [u64; BUCKETS],
    count: u64,
}

const BUCKETS: usize = 8 * 40;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: [0; BUCKETS],
            count: 0,
        }
    }
}

impl Histogram {
    fn bucket(us: u64) -> usize {
        if us < 8 {
            return us as usize;
        }
        let exponent = 63 - us.leading_zeros() as usize; // floor(log2)
        let fraction = ((us >> (exponent - 3)) & 7) as usize;
        ((exponent - 2) * 8 + fraction).min(BUCKETS - 1)
    }

    /// The upper bound of a bucket, in microseconds.
    fn upper(bucket: usize) -> u64 {
        if bucket < 8 {
            return bucket as u64;
        }
        let exponent = bucket / 8 + 2;
        let fraction = (bucket % 8) as u64;
        ((8 + fraction + 1) << (exponent - 3)) - 1
    }

    pub(super) fn add(&mut self, us: u64) {
        self.buckets[Histogram::bucket(us)] += 1;
        self.count += 1;
    }

    pub(super) fn p99(&self) -> u64 {
        let rank = self.count - self.count / 100;
        let mut seen = 0;
        for (bucket, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank && n > 0 {
                return Histogram::upper(bucket);
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn p99_is_within_a_bucket_of_the_truth() {
        let mut histogram = Histogram::default();
        for us in 1..=1000 {
            histogram.add(us);
        }
        let p99 = histogram.p99();
        assert!((990..=1100).contains(&p99), "{p99}");
        for us in [0, 7, 8, 9, 100, 12_345, 1 << 40] {
            let bucket = Histogram::bucket(us);
            assert!(Histogram::upper(bucket) >= us.min(Histogram::upper(super::BUCKETS - 1)));
        }
    }
}
