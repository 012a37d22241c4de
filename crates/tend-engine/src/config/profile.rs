//! The monitoring profiles: per pool, how often it is sampled and which metric groups are collected; and
//! how many readings each worker keeps in memory for its sampling interval.

use std::fmt;
use std::time::Duration;

/// How long a worker's recent readings stay in memory: enough for the live charts to append to and for the
/// console to show the last minutes while the history store is failing. Older readings are the store's.
pub const RING_SPAN: Duration = Duration::from_secs(60);

/// Readings kept in memory per worker, for a pool sampled every `interval`: [`RING_SPAN`] of them, at
/// least 10 (a slow pool still shows a short trend) and at most 60 (a pool sampled faster than once a
/// second keeps less time, not more memory). A reading takes 96 bytes, so a worker's ring is at most
/// 5.6 KiB.
pub fn ring_depth(interval: Duration) -> usize {
    let per_span = RING_SPAN.as_millis().div_ceil(interval.as_millis().max(1));
    per_span.clamp(10, 60) as usize
}

/// A monitoring profile: how often a pool is sampled, how much history is kept in memory and which
/// metrics are collected.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    Intensive,
    Realtime,
    #[default]
    Standard,
    Batch,
    Minimal,
    Daemon,
    Disabled,
}

impl Profile {
    pub const ALL: [Profile; 7] = [
        Profile::Intensive,
        Profile::Realtime,
        Profile::Standard,
        Profile::Batch,
        Profile::Minimal,
        Profile::Daemon,
        Profile::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Intensive => "intensive",
            Profile::Realtime => "realtime",
            Profile::Standard => "standard",
            Profile::Batch => "batch",
            Profile::Minimal => "minimal",
            Profile::Daemon => "daemon",
            Profile::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The sampling interval; `None` for `disabled`.
    pub fn interval(self) -> Option<Duration> {
        let secs = match self {
            Profile::Intensive => 1,
            Profile::Realtime => 5,
            Profile::Standard => 10,
            Profile::Batch => 30,
            Profile::Minimal => 60,
            Profile::Daemon => 120,
            Profile::Disabled => return None,
        };
        Some(Duration::from_secs(secs))
    }

    /// The metric groups collected.
    pub fn metric_groups(self) -> &'static [MetricGroup] {
        use MetricGroup::*;
        match self {
            Profile::Intensive | Profile::Realtime => &[Cpu, Memory, Threads, Fds, Io],
            Profile::Standard => &[Cpu, Memory, Threads, Fds],
            Profile::Batch | Profile::Minimal | Profile::Daemon => &[Cpu, Memory],
            Profile::Disabled => &[],
        }
    }

    pub fn collects(self, group: MetricGroup) -> bool {
        self.metric_groups().contains(&group)
    }

    /// Whether a built-in metric (by its rule name) is collected; custom metrics always are.
    pub fn collects_metric(self, metric: &str) -> bool {
        match MetricGroup::of(metric) {
            Some(group) => self.collects(group),
            None => self != Profile::Disabled,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Groups of built-in metrics that a profile switches on or off.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum MetricGroup {
    Cpu,
    Memory,
    Threads,
    Fds,
    /// Disk and network bytes.
    Io,
}

impl MetricGroup {
    /// The built-in metric names (as rules spell them) in this group.
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            MetricGroup::Cpu => &["cpu_percent", "cpu_host_percent"],
            MetricGroup::Memory => &["memory_bytes", "memory_mb", "memory_percent"],
            MetricGroup::Threads => &["threads"],
            MetricGroup::Fds => &["fds"],
            MetricGroup::Io => &["disk_read_bytes", "disk_write_bytes", "net_rx_bytes", "net_tx_bytes"],
        }
    }

    /// The group of a built-in metric; `None` for custom metrics.
    pub fn of(metric: &str) -> Option<MetricGroup> {
        [MetricGroup::Cpu, MetricGroup::Memory, MetricGroup::Threads, MetricGroup::Fds, MetricGroup::Io]
            .into_iter()
            .find(|g| g.metrics().contains(&metric))
    }
}
