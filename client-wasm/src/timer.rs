//! Browser timer delays: `setTimeout` counts in signed 32-bit milliseconds, and a longer delay fires at once.

/// Longest delay a browser timer can wait, ms: 2^31 − 1 (~24.8 days).
pub const MAX_TIMER_MS: u32 = i32::MAX as u32;

/// `delay_ms` as a timer argument: rounded and clamped to `0..=MAX_TIMER_MS` (NaN or negative: 0), so a delay
/// too long for a timer waits as long as one can instead of wrapping around to "now" (gloo's `Timeout` passes
/// its `u32` to `setTimeout` as an `i32`: 2^31 ms would become negative and fire immediately).
pub fn timer_ms(delay_ms: f64) -> u32 {
    if delay_ms.is_nan() || delay_ms <= 0.0 {
        0
    } else if delay_ms >= MAX_TIMER_MS as f64 {
        MAX_TIMER_MS
    } else {
        delay_ms.round() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_a_timer_cannot_hold_are_clamped_not_wrapped() {
        assert_eq!(timer_ms(0.0), 0);
        assert_eq!(timer_ms(499.6), 500);
        assert_eq!(timer_ms(10_000.0), 10_000);
        assert_eq!(timer_ms(-5.0), 0);
        assert_eq!(timer_ms(f64::NAN), 0);
        assert_eq!(timer_ms(f64::NEG_INFINITY), 0);
        // The values that used to fire at once: 2^31 ms and beyond (as i32 they are negative).
        for huge in [
            2f64.powi(31) - 0.4,
            2f64.powi(31),
            2f64.powi(32),
            2f64.powi(32) + 5.0,
            1e300,
            f64::INFINITY,
        ] {
            let ms = timer_ms(huge);
            assert_eq!(ms, MAX_TIMER_MS, "{huge}");
            assert!(
                ms as i32 > 0,
                "{huge} must stay a positive setTimeout delay"
            );
        }
        assert_eq!(timer_ms(2f64.powi(31) - 1.0), MAX_TIMER_MS);
        assert_eq!(timer_ms(2f64.powi(31) - 2.0), MAX_TIMER_MS - 1);
    }
}
