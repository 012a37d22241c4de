//! Order statistics for repeated measurements: the bench reports medians and spread, never means,
//! because the development machines are shared and noisy; and the least-squares slope of a series
//! (the soak's RSS trend). Pure functions; no I/O.

/// Median, spread and extremes of one series of measurements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub p10: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

impl Summary {
    /// `None` for an empty series. Percentiles are nearest-rank on the sorted values.
    pub fn of(values: &[f64]) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((q * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)];
        Some(Summary {
            n: v.len(),
            min: v[0],
            p10: at(0.1),
            median: at(0.5),
            p90: at(0.9),
            max: v[v.len() - 1],
        })
    }

    /// The nearest-rank `q` quantile (0..=1) of `values`; `None` for an empty series.
    pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let last = v.len().checked_sub(1)?;
        Some(v[((q * last as f64).round() as usize).min(last)])
    }

    /// "p10–p90" with `digits` decimals.
    pub fn spread(&self, digits: usize) -> String {
        format!("{:.digits$}–{:.digits$}", self.p10, self.p90)
    }
}

/// The least-squares slope of y over x; `None` with fewer than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let (mx, my) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points
        .iter()
        .fold((0.0, 0.0), |(num, den), (x, y)| (num + (x - mx) * (y - my), den + (x - mx).powi(2)));
    (points.len() >= 2 && den > 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_is_least_squares() {
        let line: Vec<(f64, f64)> = (0..10).map(|x| (f64::from(x), 3.0 + 0.5 * f64::from(x))).collect();
        assert!((slope(&line).unwrap() - 0.5).abs() < 1e-12);
        // Noise around a flat line: the fit, not the last minus the first.
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 1.0), (3.0, 3.0)]), Some(0.4));
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn median_and_percentiles_are_nearest_rank() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!((s.min, s.median, s.max, s.n), (1.0, 3.0, 5.0, 5));
        let s = Summary::of(&(0..=100).map(f64::from).collect::<Vec<_>>()).unwrap();
        assert_eq!((s.p10, s.median, s.p90), (10.0, 50.0, 90.0));
        assert_eq!(s.spread(0), "10–90");
        assert_eq!(Summary::of(&[]), None);
    }
}
