//! Seeded pseudo-random numbers (SplitMix64): the reconnect jitter of every client (`backoff`), and the demo
//! SDK's traffic (the same `--seed` replays the same demo). Not for anything secret.

use std::ops::Range;

/// A small deterministic generator; statistical quality is ample for picking demo content.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn with_seed(seed: u64) -> Self {
        Rng(seed)
    }

    /// A seed from the clock and the process id, for runs without `--seed` (native only: the browser seeds from
    /// `Math.random()`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn entropy_seed() -> u64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        nanos ^ (u64::from(std::process::id()) << 32)
    }

    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `range` (which must not be empty).
    pub fn usize(&mut self, range: Range<usize>) -> usize {
        assert!(!range.is_empty(), "empty range");
        range.start + (self.u64() % (range.end - range.start) as u64) as usize
    }

    pub fn u32(&mut self, range: Range<u32>) -> u32 {
        self.usize(range.start as usize..range.end as usize) as u32
    }

    pub fn i32(&mut self, range: Range<i32>) -> i32 {
        let span = (range.end - range.start) as usize;
        range.start + self.usize(0..span) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_sequence_and_ranges_hold() {
        let (mut a, mut b) = (Rng::with_seed(42), Rng::with_seed(42));
        for _ in 0..1000 {
            assert_eq!(a.u64(), b.u64());
            let i = a.i32(-5..34);
            assert_eq!(i, b.i32(-5..34));
            assert!((-5..34).contains(&i));
            let f = a.f64();
            assert_eq!(f, b.f64());
            assert!((0.0..1.0).contains(&f));
        }
        assert_ne!(Rng::with_seed(1).u64(), Rng::with_seed(2).u64());
    }
}
