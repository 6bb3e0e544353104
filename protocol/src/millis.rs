//! `Millis`: a JavaScript timestamp (milliseconds since the Unix epoch, as `Date.now()` gives it).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch. Accepts any JSON number; integral values are written back without a
/// fractional part (`1700000000000`, not `1700000000000.0`), so a round trip keeps what the SDK sent.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Millis(pub f64);

impl Millis {
    /// The current wall-clock time (native only: the browser has `Date.now()`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Millis(d.as_millis() as f64)
    }
}

impl From<u64> for Millis {
    fn from(v: u64) -> Self {
        Millis(v as f64)
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        // 2^53: beyond it f64 has no exact integers and JSON readers disagree anyway.
        if v.fract() == 0.0 && v.abs() <= 9_007_199_254_740_992.0 {
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
