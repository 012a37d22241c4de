//! Measures one collection sweep over N idle processes with each sampler (brief §11: 1000 processes
//! in < 5 ms). Run in release mode: `cargo run -p tend-collect --release --example sweep_cost -- 1000`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tend_collect::{Fields, ProcSampler, Sampler, SysinfoSampler};
use tend_core::ProcessId;

fn main() -> std::io::Result<()> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let sweeps = 50;
    let mut children = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let child = Command::new("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        ids.push(tend_collect::process_id(child.id())?);
        children.push(child);
    }
    println!("{n} idle processes, {sweeps} sweeps each (after one warm-up sweep)");

    report("ProcSampler, all fields", &ids, sweeps, &mut ProcSampler::new()?);
    report("ProcSampler, Fields::BASIC", &ids, sweeps, &mut ProcSampler::with_fields(Fields::BASIC)?);
    report("SysinfoSampler (Some(pids))", &ids, sweeps, &mut SysinfoSampler::new()?);

    // The same files opened, read and closed every time, for the cost of not keeping descriptors.
    let mut buf = Vec::with_capacity(4096);
    let start = Instant::now();
    for _ in 0..sweeps {
        for id in &ids {
            for file in ["stat", "statm", "io"] {
                use std::io::Read;
                buf.clear();
                std::fs::File::open(format!("/proc/{}/{file}", id.pid))?.read_to_end(&mut buf)?;
            }
            std::fs::metadata(format!("/proc/{}/fd", id.pid))?;
        }
    }
    print_line("open/read/close each sweep", start.elapsed() / sweeps, n);

    for mut child in children {
        child.kill()?;
        child.wait()?;
    }
    Ok(())
}

fn report(name: &str, ids: &[ProcessId], sweeps: u32, sampler: &mut dyn Sampler) {
    let start = Instant::now();
    let first = sampler.sample(ids);
    let warm = start.elapsed();
    assert!(first.iter().all(|(_, r)| r.is_ok()), "{name}: a process vanished");
    let start = Instant::now();
    for _ in 0..sweeps {
        std::hint::black_box(sampler.sample(ids));
    }
    print_line(&format!("{name}, first sweep"), warm, ids.len());
    print_line(name, start.elapsed() / sweeps, ids.len());
}

fn print_line(name: &str, per_sweep: Duration, n: usize) {
    let per_process = per_sweep.as_secs_f64() * 1e6 / n as f64;
    println!("{name:<48} {:>9.3} ms/sweep {per_process:>7.2} µs/process", per_sweep.as_secs_f64() * 1e3);
}
