//! Decimal text to the nearest `f64` (ties to even) in little code, for `json_reader`; and integers to decimal
//! text without core's formatting machinery (the relay writes an offset and a timestamp into every frame).
//!
//! core's parser (`str::parse::<f64>`) is correctly rounded but costs the wasm client ~14 KB gzipped (its tables
//! of powers of five and its error paths), a quarter of the package's budget. This one gets the same results
//! with a few hundred bytes: an approximation from the first 19 digits, exact when those digits and the power of
//! ten both fit an `f64` exactly (then one rounding is all there is); otherwise the approximation is corrected
//! ulp by ulp, comparing the decimal value exactly (big integers) with the midpoints between neighbouring floats
//! (Clinger's "algorithm R"). Inputs off the fast path are rare in practice (timestamps and options are small
//! integers or short decimals), so the big-integer work costs nothing where it matters.

use std::cmp::Ordering;

/// Appends `v` in decimal, as `{v}` formats it.
pub(crate) fn push_u64(out: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// How many bytes `push_u64` writes for `v`.
pub(crate) fn u64_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// Significant digits kept. No midpoint between two adjacent `f64`s has more than 767 significant digits, so
/// beyond 800 digits only "are the rest all zero?" matters: a trailing 1 stands for a non-zero rest.
const MAX_DIGITS: usize = 800;

/// Corrections tried at most; the approximation is within a few ulp, so this is never reached.
const MAX_STEPS: usize = 64;

/// The value of the decimal number `int.frac × 10^exp` (ASCII digits; `exp` already clamped to a sane range),
/// correctly rounded to the nearest `f64`; `None` when that is infinite (too large for an `f64`).
pub fn to_f64(int: &[u8], frac: &[u8], exp: i64) -> Option<f64> {
    let total = int.len() + frac.len();
    let digit = |i: usize| {
        u32::from(
            if i < int.len() {
                int[i]
            } else {
                frac[i - int.len()]
            } - b'0',
        )
    };
    // The significant digits are first..=last; value = those digits × 10^e.
    let Some(first) = (0..total).find(|&i| digit(i) != 0) else {
        return Some(0.0);
    };
    let last = (first..total).rfind(|&i| digit(i) != 0).unwrap_or(first);
    let len = last - first + 1;
    let e = exp - frac.len() as i64 + (total - 1 - last) as i64;
    // 10^(lead - 1) <= value < 10^lead.
    let lead = e + len as i64;
    if lead < -324 {
        return Some(0.0); // below half the smallest subnormal
    }
    if lead > 310 {
        return None; // at least 10^309
    }

    // The first 19 digits as an integer, and the power of ten that goes with them.
    let head = len.min(19);
    let m = (first..first + head).fold(0, |m, i| m * 10 + u64::from(digit(i)));
    let head_e = e + (len - head) as i64;
    let p = |n: i64| 10f64.powi(n as i32);
    let approx = if head_e < -22 {
        // Two steps keep the power of ten finite (head_e >= -343 here).
        let half = head_e / 2;
        m as f64 / p(-half) / p(half - head_e)
    } else if head_e < 0 {
        m as f64 / p(-head_e)
    } else {
        m as f64 * p(head_e)
    };
    if head == len && m < 1 << 53 && head_e.unsigned_abs() <= 22 {
        return Some(approx); // both operands exact: a single correctly rounded operation
    }

    // The exact value: all digits, or the first MAX_DIGITS and a 1 for the (non-zero) rest.
    let mut value = Big::ZERO;
    let kept = len.min(MAX_DIGITS);
    for i in first..first + kept {
        value.mul_add(10, digit(i));
    }
    let mut e = e + (len - kept) as i64;
    if kept < len {
        value.mul_add(10, 1);
        e -= 1;
    }
    let mut z = approx.min(f64::MAX);
    for _ in 0..MAX_STEPS {
        let (m, k) = parts(z);
        // Above the midpoint with the next float up (or on it with an odd mantissa): round up.
        let up = value.cmp_scaled(e, 2 * m + 1, k - 1);
        if up == Ordering::Greater || (up == Ordering::Equal && m & 1 == 1) {
            z = f64::from_bits(z.to_bits() + 1);
            if z.is_infinite() {
                return None;
            }
            continue;
        }
        if m > 0 {
            // The float below is closer when z is the first of its binade (normal, mantissa 2^52).
            let (lo, lo_k) = if m == 1 << 52 && k > -1074 {
                (4 * m - 1, k - 2)
            } else {
                (2 * m - 1, k - 1)
            };
            let down = value.cmp_scaled(e, lo, lo_k);
            if down == Ordering::Less || (down == Ordering::Equal && m & 1 == 1) {
                z = f64::from_bits(z.to_bits() - 1);
                continue;
            }
        }
        break;
    }
    Some(z)
}

/// `z = m × 2^k` with `m` an integer (`z` finite, non-negative).
fn parts(z: f64) -> (u64, i32) {
    let bits = z.to_bits();
    let biased = (bits >> 52) as i32;
    let frac = bits & ((1 << 52) - 1);
    if biased == 0 {
        (frac, -1074)
    } else {
        (frac | 1 << 52, biased - 1075)
    }
}

/// Limbs of [`Big`]: 4096 bits. The largest number compared is below 2^3800: 801 digits times 2^1076 on one
/// side, 2^55 times 10^1125 on the other.
const LIMBS: usize = 128;

/// A fixed-width unsigned integer, 32-bit limbs, least significant first. Fixed width keeps the code small:
/// no allocation, no lengths to keep.
#[derive(Clone, Copy)]
struct Big([u32; LIMBS]);

impl Big {
    const ZERO: Big = Big([0; LIMBS]);

    /// `self = self × mul + add`.
    fn mul_add(&mut self, mul: u32, add: u32) {
        let mut carry = u64::from(add);
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(mul) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
    }

    /// Compares `self × 10^e` with `m × 2^k`.
    fn cmp_scaled(&self, e: i64, m: u64, k: i32) -> Ordering {
        // sides[0] is self, sides[1] is m; each power multiplies the side where it is positive.
        let mut right = Big::ZERO;
        right.0[0] = m as u32;
        right.0[1] = (m >> 32) as u32;
        let mut sides = [*self, right];
        for _ in 0..e.unsigned_abs() {
            sides[usize::from(e < 0)].mul_add(10, 0);
        }
        for _ in 0..k.unsigned_abs() {
            sides[usize::from(k >= 0)].mul_add(2, 0);
        }
        let [left, right] = sides;
        for i in (0..LIMBS).rev() {
            if left.0[i] != right.0[i] {
                return left.0[i].cmp(&right.0[i]);
            }
        }
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_written_as_format_writes_them() {
        for v in [0, 7, 10, 99, 100, 1_763_812_801_500, u64::MAX] {
            let mut out = String::from("x");
            push_u64(&mut out, v);
            assert_eq!(out, format!("x{v}"));
            assert_eq!(u64_len(v), out.len() - 1);
        }
    }

    fn parse(text: &str) -> Option<f64> {
        let (mantissa, exp) = match text.split_once(['e', 'E']) {
            Some((m, e)) => (m, e.parse::<i64>().unwrap()),
            None => (text, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        to_f64(int.as_bytes(), frac.as_bytes(), exp)
    }

    #[test]
    fn hard_cases_are_correctly_rounded() {
        let long_half = format!("1.{}1e-300", "0".repeat(900)); // a non-zero digit beyond MAX_DIGITS
        let cases = [
            "2.2250738585072011e-308", // the smallest normal's neighbourhood (was 4 ulp off)
            "2.2250738585072012e-308",
            "2.2250738585072014e-308",
            "4.9406564584124654e-324", // the smallest subnormal
            "2.4703282292062327e-324", // just below half of it: 0
            "2.4703282292062328e-324", // just above: the smallest subnormal
            "1.7976931348623157e308",  // f64::MAX
            "1.7976931348623158e308",  // rounds down to MAX
            "9007199254740993",        // 2^53 + 1: a tie, to even
            "9007199254740995",
            "0.1",
            "123456789012345678901234567890",
            "8.988465674311579e307",
            "1e23",
            "3.0540315017327267e-308",
            "7.2057594037927933e16", // 2^56 + 2^3: a tie
            "1.00000000000000011102230246251565404236316680908203125", // 1 + half an ulp: a tie
            "1.00000000000000011102230246251565404236316680908203126",
            "3200000000000000000000000000001e-343", // deep in the subnormals, 31 digits
            &long_half,
        ];
        for text in cases {
            let want: f64 = text.parse().unwrap();
            let got = parse(text).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "{text}: {got:e} vs {want:e}");
        }
        assert_eq!(parse("1.7976931348623159e308"), None, "rounds to infinity");
        assert_eq!(parse("1e310"), None);
        assert_eq!(parse("1e-400"), Some(0.0));
        assert_eq!(parse("0.000"), Some(0.0));
    }
}
