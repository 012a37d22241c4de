//! The nouns: workers, their identity, their source, and the metrics a sample carries.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use crate::time::Timestamp;

/// A worker's stable id: `pool-N` for a spawned slot, `pool-PID` for an attached process, the
/// orchestrator's own id for a reported worker. Stable across recycles of a slot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(pub String);

impl WorkerId {
    pub fn new(s: impl Into<String>) -> Self {
        WorkerId(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for WorkerId {
    fn from(s: &str) -> Self {
        WorkerId(s.to_owned())
    }
}

/// Where a worker comes from.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Tend started it and supervises it.
    Spawned,
    /// An existing process Tend found by name, command line or pid.
    Attached,
    /// A Docker container.
    Container,
    /// Known only through an orchestrator's reports.
    Reported,
}

/// A process as the kernel knows it: a pid alone is reused, (pid, start time) is not.
/// `start_ticks` is field 22 of `/proc/PID/stat` (clock ticks after boot).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    pub start_ticks: u64,
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.pid, self.start_ticks)
    }
}

/// One reading of a worker's resource use. Every field is optional: sources differ in what they see.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// CPU use in percent of one core (200 = two cores busy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// CPU use in percent of the whole host (all cores = 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_host_percent: Option<f64>,
    /// Resident memory in bytes (containers: usage minus inactive file cache).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Memory in percent of the host's memory (containers: of their limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_read_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_write_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_rx_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_tx_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fds: Option<u32>,
    /// Any other numeric metric, reported by an orchestrator or scraped from the worker.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, f64>,
}

/// Names of the built-in metrics, as rules and the API spell them.
pub const BUILTIN_METRICS: &[&str] = &[
    "cpu_percent",
    "cpu_host_percent",
    "memory_bytes",
    "memory_mb",
    "memory_percent",
    "disk_read_bytes",
    "disk_write_bytes",
    "net_rx_bytes",
    "net_tx_bytes",
    "threads",
    "fds",
];

impl Metrics {
    /// A metric by its rule name; custom metrics by their own name.
    pub fn get(&self, name: &str) -> Option<f64> {
        let u = |v: Option<u64>| v.map(|x| x as f64);
        match name {
            "cpu_percent" => self.cpu_percent,
            "cpu_host_percent" => self.cpu_host_percent,
            "memory_bytes" => u(self.memory_bytes),
            "memory_mb" => self.memory_bytes.map(|b| b as f64 / (1024.0 * 1024.0)),
            "memory_percent" => self.memory_percent,
            "disk_read_bytes" => u(self.disk_read_bytes),
            "disk_write_bytes" => u(self.disk_write_bytes),
            "net_rx_bytes" => u(self.net_rx_bytes),
            "net_tx_bytes" => u(self.net_tx_bytes),
            "threads" => self.threads.map(f64::from),
            "fds" => self.fds.map(f64::from),
            other => self.custom.get(other).copied(),
        }
    }

    /// Overlay `other` onto `self`: fields `other` has win, custom metrics merge.
    pub fn merge(&mut self, other: &Metrics) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            cpu_percent,
            cpu_host_percent,
            memory_bytes,
            memory_percent,
            disk_read_bytes,
            disk_write_bytes,
            net_rx_bytes,
            net_tx_bytes,
            threads,
            fds
        );
        for (k, v) in &other.custom {
            self.custom.insert(k.clone(), *v);
        }
    }
}

/// A reading of one worker at one instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub worker: WorkerId,
    pub at: Timestamp,
    pub metrics: Metrics,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_by_rule_name_covers_builtins_and_custom() {
        let mut m = Metrics { memory_bytes: Some(3 * 1024 * 1024), threads: Some(4), ..Default::default() };
        m.custom.insert("success_rate".into(), 0.25);
        assert_eq!(m.get("memory_mb"), Some(3.0));
        assert_eq!(m.get("memory_bytes"), Some(3.0 * 1024.0 * 1024.0));
        assert_eq!(m.get("threads"), Some(4.0));
        assert_eq!(m.get("success_rate"), Some(0.25));
        assert_eq!(m.get("cpu_percent"), None);
        assert_eq!(m.get("nope"), None);
    }

    #[test]
    fn merge_overlays_present_fields_only() {
        let mut a = Metrics { cpu_percent: Some(1.0), memory_bytes: Some(10), ..Default::default() };
        let mut b = Metrics { memory_bytes: Some(20), ..Default::default() };
        b.custom.insert("x".into(), 1.0);
        a.merge(&b);
        assert_eq!(a.cpu_percent, Some(1.0));
        assert_eq!(a.memory_bytes, Some(20));
        assert_eq!(a.custom.get("x"), Some(&1.0));
    }
}
