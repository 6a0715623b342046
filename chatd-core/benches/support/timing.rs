//! Timing helpers shared by the chatd-core benchmarks (a module of each bench target, not a
//! target itself: cargo discovers only `benches/*.rs` and `benches/*/main.rs`).

use std::time::{Duration, Instant};

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50 and p90 of `runs` calls of `f`, after one warm-up call.
pub async fn time<F, Fut, T>(runs: usize, mut f: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let _ = f().await;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let _ = f().await;
        samples.push(t.elapsed());
    }
    samples.sort();
    let at = |p: f64| ms(samples[((samples.len() - 1) as f64 * p).round() as usize]);
    (at(0.5), at(0.9))
}
