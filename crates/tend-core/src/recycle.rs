//! The recycle policy: which limit (TTL, request count, memory) a worker incarnation has reached, the
//! per-incarnation jitter that keeps a pool from recycling all at once, the restart backoff and the
//! storm breaker. Pure arithmetic over what the fleet tells it.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::time::Timestamp;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecycleReason {
    Ttl,
    Requests,
    Memory,
    Died,
    Hung,
    Manual,
    Rule,
}

impl RecycleReason {
    pub const ALL: [RecycleReason; 7] = [
        RecycleReason::Ttl,
        RecycleReason::Requests,
        RecycleReason::Memory,
        RecycleReason::Died,
        RecycleReason::Hung,
        RecycleReason::Manual,
        RecycleReason::Rule,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecycleReason::Ttl => "ttl",
            RecycleReason::Requests => "requests",
            RecycleReason::Memory => "memory",
            RecycleReason::Died => "died",
            RecycleReason::Hung => "hung",
            RecycleReason::Manual => "manual",
            RecycleReason::Rule => "rule",
        }
    }

    /// Planned recycles keep the old incarnation serving until the replacement is READY and count
    /// against `max_unavailable`; the others replace something already gone or broken.
    pub fn is_planned(self) -> bool {
        !matches!(self, RecycleReason::Died | RecycleReason::Hung)
    }
}

impl fmt::Display for RecycleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecyclePolicy {
    pub ttl: Option<Duration>,
    pub max_requests: Option<u64>,
    /// Fraction (0..=0.5) by which TTL and max_requests are lowered per incarnation, never raised.
    pub jitter: f64,
    pub memory_bytes: Option<u64>,
    /// The memory limit is not applied during the first `warmup` of an incarnation.
    pub warmup: Duration,
    pub max_unavailable: u32,
    /// Replace workers that die (spawned pools).
    pub on_death: bool,
    /// More than `storm_max` restarts within `storm_window` trips the breaker.
    pub storm_max: u32,
    pub storm_window: Duration,
}

impl Default for RecyclePolicy {
    fn default() -> Self {
        RecyclePolicy {
            ttl: None,
            max_requests: None,
            jitter: 0.1,
            memory_bytes: None,
            warmup: Duration::ZERO,
            max_unavailable: 1,
            on_death: true,
            storm_max: 5,
            storm_window: Duration::from_secs(60),
        }
    }
}

/// What the policy needs to know about one incarnation.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub started: Timestamp,
    pub requests: u64,
    pub memory_bytes: Option<u64>,
    /// Stable per incarnation; picks its jitter.
    pub seed: u64,
}

impl RecyclePolicy {
    /// The first limit reached, with a sentence for people. Memory is checked first because it is the
    /// one that hurts the host; then requests; then age.
    pub fn due(&self, u: &Usage, now: Timestamp) -> Option<(RecycleReason, String)> {
        let age = now.since(u.started);
        if let (Some(limit), Some(mem)) = (self.memory_bytes, u.memory_bytes)
            && mem > limit
            && age >= self.warmup
        {
            return Some((
                RecycleReason::Memory,
                format!("memory {:.1} MiB above limit {:.1} MiB", mib(mem), mib(limit)),
            ));
        }
        if let Some(max) = self.max_requests {
            let limit = self.jittered(max as f64, u.seed).max(1.0) as u64;
            if u.requests >= limit {
                return Some((
                    RecycleReason::Requests,
                    format!("{} requests reached limit {limit}", u.requests),
                ));
            }
        }
        if let Some(ttl) = self.ttl {
            let limit = Duration::from_secs_f64(self.jittered(ttl.as_secs_f64(), u.seed));
            if age >= limit {
                return Some((
                    RecycleReason::Ttl,
                    format!("age {:.0}s reached TTL {:.0}s", age.as_secs_f64(), limit.as_secs_f64()),
                ));
            }
        }
        None
    }

    /// `base` lowered by up to `jitter`, the same every time for the same seed.
    pub fn jittered(&self, base: f64, seed: u64) -> f64 {
        let j = self.jitter.clamp(0.0, 0.5);
        // Top 53 bits of a mixed seed → uniform fraction in [0, 1).
        let frac = (mix(seed) >> 11) as f64 / (1u64 << 53) as f64;
        base * (1.0 - j * frac)
    }

    /// Delay before replacing a worker that died, after `recent` restarts in the storm window:
    /// 0.5 s, 1 s, 2 s ... capped at 30 s.
    pub fn backoff(&self, recent: u32) -> Duration {
        RESTART_BACKOFF.nth(recent)
    }
}

/// Restarts of a dying worker: doubling from 0.5 s up to 30 s.
const RESTART_BACKOFF: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// SplitMix64 finalizer: spreads nearby seeds (slot 1, slot 2...) across the range.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable seed from a worker id and incarnation number (FNV-1a, then mixed).
pub fn seed(worker: &str, incarnation: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in worker.bytes().chain(incarnation.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// Remembers recent restarts of one worker and says when they come too fast.
#[derive(Clone, Debug, Default)]
pub struct StormBreaker {
    restarts: VecDeque<Timestamp>,
}

impl StormBreaker {
    pub fn record(&mut self, now: Timestamp) {
        self.restarts.push_back(now);
    }

    /// Restarts within the window ending now.
    pub fn recent(&mut self, window: Duration, now: Timestamp) -> u32 {
        let from = now.minus(window);
        while self.restarts.front().is_some_and(|t| *t < from) {
            self.restarts.pop_front();
        }
        u32::try_from(self.restarts.len()).unwrap_or(u32::MAX)
    }

    /// More than `max` restarts within `window`.
    pub fn tripped(&mut self, max: u32, window: Duration, now: Timestamp) -> bool {
        self.recent(window, now) > max
    }

    pub fn reset(&mut self) {
        self.restarts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1024 * 1024;

    fn usage(started: i64, requests: u64, mem_mb: Option<u64>) -> Usage {
        Usage {
            started: Timestamp::from_secs(started),
            requests,
            memory_bytes: mem_mb.map(|m| m * MB),
            seed: 7,
        }
    }

    #[test]
    fn whichever_limit_comes_first() {
        let p = RecyclePolicy {
            ttl: Some(Duration::from_secs(3600)),
            max_requests: Some(1000),
            jitter: 0.0,
            memory_bytes: Some(200 * MB),
            warmup: Duration::from_secs(10),
            ..Default::default()
        };
        let now = Timestamp::from_secs(100);
        // (started, requests, memory MiB, expected reason)
        let cases: &[(i64, u64, Option<u64>, Option<RecycleReason>)] = &[
            (50, 10, Some(100), None),
            (50, 10, Some(201), Some(RecycleReason::Memory)),
            (95, 10, Some(500), None), // warm-up: 5 s old, limit not applied yet
            (90, 10, Some(500), Some(RecycleReason::Memory)), // exactly at warm-up end
            (50, 1000, Some(100), Some(RecycleReason::Requests)),
            (50, 999, None, None),
            (100 - 3600, 0, None, Some(RecycleReason::Ttl)),
            (100 - 3600, 5000, Some(300), Some(RecycleReason::Memory)), // all three: memory first
            (100 - 3600, 5000, None, Some(RecycleReason::Requests)),
        ];
        for (i, (started, req, mem, want)) in cases.iter().enumerate() {
            let got = p.due(&usage(*started, *req, *mem), now).map(|(r, _)| r);
            assert_eq!(got, *want, "case {i}");
        }
        let (_, why) = p.due(&usage(50, 0, Some(212)), now).unwrap();
        assert_eq!(why, "memory 212.0 MiB above limit 200.0 MiB");
    }

    #[test]
    fn jitter_only_lowers_and_spreads_a_pool() {
        let p = RecyclePolicy { max_requests: Some(1000), jitter: 0.2, ..Default::default() };
        let limits: Vec<f64> = (0..50).map(|slot| p.jittered(1000.0, seed("api-0", slot))).collect();
        assert!(limits.iter().all(|l| (800.0..=1000.0).contains(l)), "{limits:?}");
        let min = limits.iter().cloned().fold(f64::MAX, f64::min);
        let max = limits.iter().cloned().fold(0.0, f64::max);
        assert!(max - min > 100.0, "50 incarnations should spread over the band: {min}..{max}");
        assert_eq!(p.jittered(1000.0, 42), p.jittered(1000.0, 42), "deterministic");
        let none = RecyclePolicy { jitter: 0.0, ..p };
        assert_eq!(none.jittered(1000.0, 42), 1000.0);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RecyclePolicy::default();
        let got: Vec<u64> = (0..9).map(|n| p.backoff(n).as_millis() as u64).collect();
        assert_eq!(got, vec![0, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    }

    #[test]
    fn storm_breaker_counts_only_the_window() {
        let mut b = StormBreaker::default();
        let w = Duration::from_secs(60);
        for s in [0, 10, 20, 30, 40] {
            b.record(Timestamp::from_secs(s));
        }
        assert!(!b.tripped(5, w, Timestamp::from_secs(41)));
        b.record(Timestamp::from_secs(50));
        assert!(b.tripped(5, w, Timestamp::from_secs(51)), "6 restarts in 60 s > 5");
        assert!(!b.tripped(5, w, Timestamp::from_secs(61)), "the one at 0 s left the window");
        assert_eq!(b.recent(w, Timestamp::from_secs(200)), 0);
    }
}
