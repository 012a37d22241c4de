// The UI benchmark page: the real app over a fake transport of N synthetic workers whose metrics and
// states change every second (`?workers=500`). Playwright opens it and records frame times.
import { mount } from "./app";
import type { EventStreamHandlers, Transport } from "./transport/transport";
import type { Alert, Event, HealthDto, HostDto, PoolMetrics, State, WorkerDetailDto, WorkerDto } from "./types";
import { STATES } from "./types";

const params = new URLSearchParams(location.search);
const N = Number(params.get("workers") ?? 500);
const MiB = 1024 * 1024;
const POOLS = ["api", "batch", "etl", "render", "mail"];
const LIVE: State[] = ["READY", "WORKING", "WORKING", "WORKING", "COMPLETING", "INITIALIZING"];

class FakeTransport implements Transport {
  readonly kind = "browser" as const;
  async save() {
    return null;
  }
  async settings() {
    return null;
  }
  private seq = 0;
  private tick = 0;
  private handlers: EventStreamHandlers | null = null;
  private ws: WorkerDto[];
  constructor() {
    const now = Date.now();
    this.ws = Array.from({ length: N }, (_, i) => ({
      id: `${POOLS[i % POOLS.length]}-${Math.floor(i / POOLS.length)}`,
      pool: POOLS[i % POOLS.length],
      source: "spawned",
      slot: i,
      pid: 10000 + i,
      process: { pid: 10000 + i, start_ticks: 1 },
      state: LIVE[i % LIVE.length],
      incarnation: 1,
      cpu_percent: 5,
      memory_bytes: 40 * MiB,
      memory_percent: 0.2,
      memory_limit_bytes: 200 * MiB,
      threads: 4,
      fds: 12,
      uptime_secs: 100 + i,
      restarts: 0,
      requests: i * 10,
      log_lines: 0,
      errors: 0,
      warnings: 0,
      recycling: null,
      held: null,
      host: null,
      stale: false,
      last_event: { at: now, state: "WORKING", cause: "busy" },
      last_sample_at: now,
      task_id: null,
      container: null,
      labels: {},
    }));
    setInterval(() => this.step(), 1000);
  }
  private step() {
    this.tick++;
    const now = Date.now();
    for (let i = 0; i < this.ws.length; i++) {
      const w = this.ws[i];
      w.cpu_percent = 5 + 40 * Math.abs(Math.sin((this.tick + i) / 7));
      w.memory_bytes = (40 + ((this.tick * 3 + i) % 150)) * MiB;
      w.uptime_secs += 1;
      w.requests += 2;
      w.last_sample_at = now;
    }
    // A few state changes per second, as events.
    for (let k = 0; k < 5; k++) {
      const w = this.ws[(this.tick * 7 + k * 31) % this.ws.length];
      const to = LIVE[(this.tick + k) % LIVE.length];
      const from = w.state;
      w.state = to;
      w.last_event = { at: now, state: to, cause: "synthetic" };
      this.handlers?.onEvent({
        seq: ++this.seq,
        at: now,
        type: "state_changed",
        worker: w.id,
        pool: w.pool,
        incarnation: 1,
        process: w.process,
        from,
        to,
        cause: "synthetic",
      });
    }
  }
  async health(): Promise<HealthDto> {
    const by: Partial<Record<State, number>> = {};
    for (const w of this.ws) by[w.state] = (by[w.state] ?? 0) + 1;
    return {
      status: "ok",
      version: "bench",
      started: null,
      uptime_secs: this.tick,
      degraded: {},
      workers: N,
      by_state: by,
      alerts_firing: 0,
      config: "bench",
      demo: false,
      tend: { cpu_percent: 1, memory_bytes: 30 * MiB },
      discovery: null,
      transport: { tls: false, insecure_http: false, tokens: false },
    };
  }
  async workers(): Promise<WorkerDto[]> {
    return this.ws.map((w) => ({ ...w }));
  }
  async hosts(): Promise<HostDto[]> {
    return [];
  }
  async worker(id: string): Promise<WorkerDetailDto> {
    const w = this.ws.find((x) => x.id === id) ?? this.ws[0];
    return { ...w, incarnations: [], recent_samples: [], alerts: [] };
  }
  async workerEvents(): Promise<Event[]> {
    return [];
  }
  async pools(): Promise<PoolMetrics[]> {
    return POOLS.map((p) => {
      const ws = this.ws.filter((w) => w.pool === p);
      const by: Partial<Record<State, number>> = {};
      for (const w of ws) by[w.state] = (by[w.state] ?? 0) + 1;
      return {
        pool: p,
        source: "spawned",
        total_workers: ws.length,
        active_workers: ws.length,
        completed_workers: 0,
        failed_workers: 0,
        by_state: by,
        total_memory_bytes: ws.reduce((a, w) => a + (w.memory_bytes ?? 0), 0),
        average_cpu_percent: 20,
        total_requests: 0,
        total_errors: 0,
        total_warnings: 0,
        average_task_time_secs: null,
        success_rate: null,
        restarts: 0,
        recycles_by_reason: {},
        host: null,
      };
    });
  }
  async alerts(): Promise<Alert[]> {
    return [];
  }
  async recycle() {}
  async stop() {}
  async acknowledge() {}
  async silence() {}
  subscribe(_since: number, h: EventStreamHandlers) {
    this.handlers = h;
    h.onStatus(true);
    return () => {
      this.handlers = null;
    };
  }
  async history() {
    return null;
  }
  async recycles() {
    return null;
  }
  async exportCsv() {
    return null;
  }
}

void STATES;
const root = document.getElementById("app");
// Open the screen under test (`?view=/workers`) in place: the router reads the path.
history.replaceState(null, "", (params.get("view") ?? "/workers") + location.search);
(window as unknown as { __tendWork: number[] }).__tendWork = [];
if (root) {
  const app = mount(root, new FakeTransport());
  (window as unknown as { tendBench: unknown }).tendBench = app;
}
