//! `Millis`: a JavaScript timestamp (milliseconds since the Unix epoch, as `Date.now()` gives it).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch. Accepts any JSON number; integral values are written back without a
/// fractional part (`1700000000000`, not `1700000000000.0`), so a round trip keeps what the SDK sent.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Millis(pub f64);

impl Millis {
    /// The current wall-clock time (native only: the browser has `Date.now()`). Whole milliseconds, computed
    /// in `u64` (not `Duration::as_millis`'s `u128`, whose conversion to `f64` is a libcall, `__floattidf`, on
    /// every publication): `u64` milliseconds last 584 million years.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Millis::from_duration(d)
    }

    /// A time since the Unix epoch in whole milliseconds (truncated, as `Duration::as_millis`).
    pub fn from_duration(d: std::time::Duration) -> Self {
        let ms = d
            .as_secs()
            .saturating_mul(1000)
            .saturating_add(u64::from(d.subsec_millis()));
        Millis(ms as f64)
    }
}

impl Millis {
    /// Appends the JSON form (as `Serialize` writes it) to `out`: an integral value (every `Millis::now`) without
    /// an allocation or core's formatting.
    pub fn push_json(self, out: &mut String) {
        let v = self.0;
        if v.fract() == 0.0 && v.abs() <= MAX_EXACT {
            if v < 0.0 {
                out.push('-');
            }
            crate::decimal::push_u64(out, v.abs() as u64);
        } else {
            out.push_str(&serde_json::to_string(&self).unwrap_or_else(|_| "0".into()));
        }
    }

    /// How many bytes `push_json` writes.
    pub fn json_len(self) -> usize {
        let v = self.0;
        if v.fract() == 0.0 && v.abs() <= MAX_EXACT {
            usize::from(v < 0.0) + crate::decimal::u64_len(v.abs() as u64)
        } else {
            serde_json::to_string(&self).map_or(1, |s| s.len())
        }
    }
}

/// 2^53: beyond it f64 has no exact integers and JSON readers disagree anyway.
const MAX_EXACT: f64 = 9_007_199_254_740_992.0;

impl From<u64> for Millis {
    fn from(v: u64) -> Self {
        Millis(v as f64)
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.fract() == 0.0 && v.abs() <= MAX_EXACT {
            s.serialize_i64(v as i64)
        } else {
            s.serialize_f64(v)
        }
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        f64::deserialize(d).map(Millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_duration_is_as_millis() {
        use std::time::Duration;
        for d in [
            Duration::ZERO,
            Duration::from_nanos(999_999),
            Duration::from_millis(1),
            Duration::new(1_764_640_000, 999_999_999),
            Duration::new(1_764_640_000, 123_456_789),
            Duration::from_millis(9_007_199_254_740_993),
        ] {
            assert_eq!(Millis::from_duration(d).0, d.as_millis() as f64, "{d:?}");
        }
        // Beyond u64 milliseconds it saturates instead of wrapping.
        assert_eq!(Millis::from_duration(Duration::MAX).0, u64::MAX as f64);
        #[cfg(not(target_arch = "wasm32"))]
        assert!(Millis::now().0 > 1.7e12 && Millis::now().0.fract() == 0.0);
    }

    #[test]
    fn push_json_writes_what_serialize_writes() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -12.0,
            1.5,
            1_763_812_801_500.0,
            9_007_199_254_740_992.0,
            9_007_199_254_740_994.0,
            -9_007_199_254_740_992.0,
            1e300,
            f64::NAN,
            f64::INFINITY,
        ] {
            let mut out = String::from("[");
            Millis(v).push_json(&mut out);
            assert_eq!(
                out,
                format!("[{}", serde_json::to_string(&Millis(v)).unwrap()),
                "{v}"
            );
            assert_eq!(Millis(v).json_len(), out.len() - 1, "{v}");
        }
    }
}
