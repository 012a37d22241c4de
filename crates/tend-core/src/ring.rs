//! A worker's recent samples in memory, packed. The ring belongs to one worker, so no reading carries
//! the worker's id, and each reading is plain fields with a bit per field that was present: 96 bytes
//! where a [`Sample`] takes 200 plus its own copy of the id. A ring keeps at most 60 of them (a minute at
//! `intensive`; the engine sizes it by the pool's interval), allocated once at its size: ≤ 5.6 KiB a worker.
//! Readings come back out as the same [`Sample`]s, exactly.

use std::collections::{BTreeMap, VecDeque};

use crate::model::{Metrics, Sample, WorkerId};
use crate::time::Timestamp;

/// The last `cap` readings of one worker, oldest first.
#[derive(Clone, Debug, Default)]
pub struct SampleRing {
    items: VecDeque<Packed>,
}

#[derive(Clone, Debug, PartialEq)]
struct Packed {
    at: i64,
    memory_bytes: u64,
    disk_read_bytes: u64,
    disk_write_bytes: u64,
    net_rx_bytes: u64,
    net_tx_bytes: u64,
    cpu_percent: f64,
    cpu_host_percent: f64,
    memory_percent: f64,
    threads: u32,
    fds: u32,
    /// Bit i set: the i-th field of [`pack!`]'s list was present.
    present: u16,
    /// Custom metrics, boxed: most workers have none, and then it costs one pointer (8 bytes a reading
    /// instead of an empty map's 24).
    #[expect(clippy::box_collection, reason = "a pointer, not a 24-byte empty map, in every reading")]
    custom: Option<Box<BTreeMap<String, f64>>>,
}

/// The one list of packed fields: each moves between `Metrics` (an `Option`) and `Packed` (a value and
/// a bit).
macro_rules! fields {
    ($m:ident) => {
        $m!(0 cpu_percent, 1 cpu_host_percent, 2 memory_bytes, 3 memory_percent, 4 disk_read_bytes,
            5 disk_write_bytes, 6 net_rx_bytes, 7 net_tx_bytes, 8 threads, 9 fds)
    };
}

impl Packed {
    fn new(at: Timestamp, m: &Metrics) -> Packed {
        let mut p = Packed {
            at: at.as_millis(),
            memory_bytes: 0,
            disk_read_bytes: 0,
            disk_write_bytes: 0,
            net_rx_bytes: 0,
            net_tx_bytes: 0,
            cpu_percent: 0.0,
            cpu_host_percent: 0.0,
            memory_percent: 0.0,
            threads: 0,
            fds: 0,
            present: 0,
            custom: (!m.custom.is_empty()).then(|| Box::new(m.custom.clone())),
        };
        macro_rules! pack {
            ($($bit:literal $f:ident),*) => { $( if let Some(v) = m.$f { p.$f = v; p.present |= 1 << $bit; } )* };
        }
        fields!(pack);
        p
    }

    fn sample(&self, worker: &WorkerId) -> Sample {
        let mut m = Metrics::default();
        macro_rules! unpack {
            ($($bit:literal $f:ident),*) => { $( if self.present & (1 << $bit) != 0 { m.$f = Some(self.$f); } )* };
        }
        fields!(unpack);
        if let Some(c) = &self.custom {
            m.custom = (**c).clone();
        }
        Sample { worker: worker.clone(), at: Timestamp::from_millis(self.at), metrics: m }
    }
}

impl SampleRing {
    /// Adds a reading, dropping the oldest ones beyond `cap` (at least one is kept).
    pub fn push(&mut self, at: Timestamp, metrics: &Metrics, cap: usize) {
        let cap = cap.max(1);
        if self.items.capacity() == 0 {
            // At its size from the first reading: grown by doubling, a ring of 60 would hold room for 64.
            self.items.reserve_exact(cap);
        }
        // Make room first, so the deque never holds more than `cap` (and never grows past it).
        while self.items.len() >= cap {
            self.items.pop_front();
        }
        self.items.push_back(Packed::new(at, metrics));
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The readings as samples of `worker`, oldest first.
    pub fn samples<'a>(&'a self, worker: &'a WorkerId) -> impl Iterator<Item = Sample> + 'a {
        self.items.iter().map(move |p| p.sample(worker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_come_back_exactly_and_the_ring_keeps_the_last_cap() {
        let full = Metrics {
            cpu_percent: Some(12.345678901),
            cpu_host_percent: Some(0.1),
            memory_bytes: Some(104_857_601),
            memory_percent: Some(3.5),
            disk_read_bytes: Some(u64::MAX),
            disk_write_bytes: Some(0),
            net_rx_bytes: Some(1 << 40),
            net_tx_bytes: Some(7),
            threads: Some(12),
            fds: Some(u32::MAX),
            custom: BTreeMap::from([("queue_depth".to_owned(), 4.25)]),
        };
        let partial = Metrics { memory_bytes: Some(0), threads: Some(0), ..Default::default() };
        let w = WorkerId::new("api-0");
        let mut ring = SampleRing::default();
        for (i, m) in [&full, &partial, &Metrics::default(), &full].into_iter().enumerate() {
            ring.push(Timestamp::from_millis(i as i64 * 1000 - 500), m, 3);
        }
        let back: Vec<Sample> = ring.samples(&w).collect();
        let want: Vec<Sample> = [(1, &partial), (2, &Metrics::default()), (3, &full)]
            .into_iter()
            .map(|(i, m)| Sample {
                worker: w.clone(),
                at: Timestamp::from_millis(i * 1000 - 500),
                metrics: m.clone(),
            })
            .collect();
        assert_eq!(back, want, "present zeros stay present, absent fields stay absent");
        assert_eq!(ring.len(), 3);
        assert!(std::mem::size_of::<Packed>() <= 96, "{} bytes", std::mem::size_of::<Packed>());
    }

    #[test]
    fn a_full_ring_holds_room_for_its_readings_only() {
        let mut ring = SampleRing::default();
        for i in 0..500 {
            ring.push(Timestamp::from_secs(i), &Metrics { cpu_percent: Some(1.0), ..Default::default() }, 60);
        }
        assert_eq!(ring.len(), 60);
        assert_eq!(ring.items.capacity(), 60, "allocated once at its size, never doubled");
        assert_eq!(ring.items.front().map(|p| p.at), Some(440_000), "the oldest kept is 60 readings back");
    }
}
