//! Percentiles of latency samples, by one rule for every report and chart.

/// Nearest-rank percentile: the smallest sample `x` such that at least a fraction `q` of the
/// samples are `<= x` (on a sorted copy; `q` is clamped to `0..=1`, `q = 0` gives the minimum).
///
/// Non-finite samples are ignored. Returns `None` when no sample is left or `q` is NaN.
pub fn percentile(samples: &[f64], q: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    percentile_sorted(&sorted, q)
}

/// [`percentile`] on data that is already sorted ascending and finite.
pub(crate) fn percentile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() || q.is_nan() {
        return None;
    }
    let n = sorted.len();
    let r = q.clamp(0.0, 1.0) * n as f64;
    // Tolerate float noise so that e.g. q = k/n picks rank k, not k + 1.
    let rank =
        if (r - r.round()).abs() < 1e-9 * (n as f64).max(1.0) { r.round() } else { r.ceil() };
    let rank = (rank as usize).clamp(1, n);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank_and_ignores_non_finite_samples() {
        let data: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&data, 0.5), Some(50.0));
        assert_eq!(percentile(&data, 0.99), Some(99.0));
        assert_eq!(percentile(&data, 0.9), Some(90.0));
        assert_eq!(percentile(&data, 0.0), Some(1.0));
        assert_eq!(percentile(&data, 1.0), Some(100.0));
        assert_eq!(percentile(&data, 0.001), Some(1.0));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[f64::NAN], 0.5), None);
        assert_eq!(percentile(&[3.0, f64::NAN, 1.0, 2.0], 0.5), Some(2.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&data, f64::NAN), None);
    }
}
