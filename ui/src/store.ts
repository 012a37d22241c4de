// The UI's model of Tend: the last answers of the API (or the desktop's live feed), the event log from
// the SSE stream, and short in-memory series per worker and pool (what the sparklines, charts and
// Compare draw). Views read it; changes are announced at most once a second (at once after a user's
// action), on an animation frame, and never while the window is hidden: then polls and the feed pause,
// and one render catches the screen up when it is shown again.
import type { Alert, Event, EventOf, HealthDto, LiveScope, LiveUpdate, PoolMetrics, WorkerDto } from "./types";
import type { LiveFeed, Transport } from "./transport/transport";
import { olderPoints } from "./older";

/** A growing time series: seconds (uPlot's x unit) and values, capped to a window. */
export class Series {
  t: number[] = [];
  cpu: (number | null)[] = [];
  mem: (number | null)[] = [];
  constructor(readonly cap: number) {}
  push(tSec: number, cpu: number | null, mem: number | null) {
    const n = this.t.length;
    if (n && tSec <= this.t[n - 1]) return false;
    this.t.push(tSec);
    this.cpu.push(cpu);
    this.mem.push(mem);
    if (this.t.length > this.cap * 1.25) {
      // Trim in batches so the arrays are not shifted on every point.
      const cut = this.t.length - this.cap;
      this.t.splice(0, cut);
      this.cpu.splice(0, cut);
      this.mem.splice(0, cut);
    }
    return true;
  }
  get last() {
    return this.t.length - 1;
  }
}

export type RecycleEntry = EventOf<"recycled"> | EventOf<"recycle_failed">;

const SERIES_POINTS = 15 * 60; // 15 minutes at 1 Hz
const MiB = 1024 * 1024;
const EVENTS_KEPT = 5000;
/** The least time between two renders the data caused. */
const RENDER_EVERY_MS = 1000;
/** A live feed silent this long while the window is shown: the engine is reported unreachable. */
const FEED_SILENT_MS = 5000;

/** The benchmark's counter of what the UI received, in JSON characters (set `window.__tendBytes = 0`). */
function countBytes(...values: unknown[]) {
  const w = window as unknown as { __tendBytes?: number };
  if (w.__tendBytes == null) return;
  for (const v of values) w.__tendBytes += JSON.stringify(v)?.length ?? 0;
}

/** A pool's key across hosts: `api` for this Tend's own, `api@gpu-1` for an agent's. */
export function poolKey(p: { pool: string; host: string | null }): string {
  return p.host ? `${p.pool}@${p.host}` : p.pool;
}

export class Store {
  health: HealthDto | null = null;
  workers: WorkerDto[] = [];
  byId = new Map<string, WorkerDto>();
  pools: PoolMetrics[] = [];
  alerts: Alert[] = [];
  events: Event[] = [];
  recycles: RecycleEntry[] = [];
  series = new Map<string, Series>();
  poolSeries = new Map<string, Series>();
  /** The API answered the last poll (false: banner, keep showing the last known data). */
  reachable = true;
  streamConnected = false;
  lastError = "";
  loaded = false;
  version = 0;
  lastSeq = 0;
  /** Renders so far (a test reads it: it must not move while the window is hidden). */
  renders = 0;
  /** The window is hidden or minimized: nothing is rendered, polls and the live feed pause. */
  hidden = typeof document !== "undefined" && document.visibilityState === "hidden";

  private seeded = false;
  private listeners = new Set<() => void>();
  private eventListeners = new Set<(e: Event) => void>();
  private pending = false;
  private dirty = false;
  private lastRender = -Infinity;
  private timers = new Set<number>();
  private onShown: (() => void)[] = [];
  private unsubscribe: (() => void) | null = null;
  private scope: LiveScope = { view: "summary" };
  private feed: LiveFeed | null = null;
  private lastUpdate = 0;

  constructor(
    readonly transport: Transport,
    readonly pollMs = 1000,
  ) {}

  onChange(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  onEvent(f: (e: Event) => void): () => void {
    this.eventListeners.add(f);
    return () => this.eventListeners.delete(f);
  }

  /**
   * Mark the model changed. Listeners run once, on an animation frame at least a second after the
   * last render (`urgent`: the next frame, for what the user just did); while hidden, once shown.
   */
  changed(urgent = false) {
    this.version++;
    this.dirty = true;
    if (this.hidden || this.pending) return;
    this.pending = true;
    const wait = urgent ? 0 : this.lastRender + RENDER_EVERY_MS - performance.now();
    const frame = () =>
      requestAnimationFrame(() => {
        this.pending = false;
        if (this.hidden) return;
        this.dirty = false;
        this.lastRender = performance.now();
        this.renders++;
        for (const f of this.listeners) f();
      });
    if (wait > 0) window.setTimeout(frame, wait);
    else frame();
  }

  start() {
    this.unsubscribe = this.transport.subscribe(0, {
      onEvent: (e) => this.ingest(e),
      onStatus: (c) => {
        this.streamConnected = c;
        this.changed();
      },
    });
    document.addEventListener("visibilitychange", () => this.setHidden(document.visibilityState === "hidden"));
    if (this.transport.live) {
      this.feed = this.transport.live(
        this.hidden ? { view: "hidden" } : this.scope,
        (u) => this.apply(u),
        (ok) => {
          if (!ok) {
            // An engine without the feed: poll as the browser does.
            this.feed = null;
            this.startPolls();
          }
        },
      );
      this.lastUpdate = Date.now();
      this.every(async () => this.watchFeed(), 2000);
    } else this.startPolls();
  }

  stop() {
    this.unsubscribe?.();
    this.feed?.close();
    for (const t of this.timers) clearTimeout(t);
  }

  /** The screen in view, for the live feed (which sends only the changes it draws). */
  setScope(scope: LiveScope) {
    if (JSON.stringify(scope) === JSON.stringify(this.scope)) return;
    this.scope = scope;
    if (!this.hidden) this.feed?.setScope(scope);
  }

  /** The window was hidden or shown: pause or resume the feed, polls and renders. */
  setHidden(hidden: boolean) {
    if (hidden === this.hidden) return;
    this.hidden = hidden;
    this.feed?.setScope(hidden ? { view: "hidden" } : this.scope);
    if (hidden) return;
    this.lastUpdate = Date.now();
    for (const f of this.onShown.splice(0)) f();
    if (this.dirty) this.changed(true);
  }

  /** Run `f` after `ms`; while the window is hidden, as soon as it is shown again instead. */
  later(f: () => void, ms: number) {
    const t = window.setTimeout(() => {
      this.timers.delete(t);
      if (this.hidden) this.onShown.push(f);
      else f();
    }, ms);
    this.timers.add(t);
  }

  /** Run `f` now and then every `ms` after it settles, paused while the window is hidden. */
  every(f: () => Promise<void>, ms: number) {
    const tick = async () => {
      await f();
      this.later(() => void tick(), ms);
    };
    void tick();
  }

  private startPolls() {
    this.every(() => this.pollFast(), this.pollMs);
    this.every(() => this.pollSlow(), this.pollMs * 2);
  }

  private async watchFeed() {
    const silent = Date.now() - this.lastUpdate;
    if (!this.feed || silent < FEED_SILENT_MS || !this.reachable) return;
    this.reachable = false;
    this.lastError = `no update from the engine for ${Math.round(silent / 1000)} s`;
    this.changed();
  }

  /** One update of the desktop's live feed. */
  apply(u: LiveUpdate) {
    countBytes(u);
    this.lastUpdate = Date.now();
    this.health = u.health;
    this.pools = u.pools;
    for (const p of u.pools) {
      this.seriesOf(this.poolSeries, poolKey(p)).push(u.at / 1000, p.average_cpu_percent, p.total_memory_bytes);
    }
    if (u.full) this.setWorkers(u.workers);
    else this.patchWorkers(u.workers, u.removed);
    if (u.alerts) this.alerts = u.alerts;
    this.arrived();
    this.changed(u.full);
  }

  /** Fresh data arrived: the banner goes, and a small fleet gets its series seeded once. */
  private arrived() {
    this.reachable = true;
    this.lastError = "";
    this.loaded = true;
    if (!this.seeded) {
      this.seeded = true;
      // A small fleet gets its sparklines and Compare lines filled from what the server still holds.
      if (this.workers.length <= 64) void this.seedAll();
    }
  }

  private async pollFast() {
    try {
      const [health, workers] = await Promise.all([this.transport.health(), this.transport.workers()]);
      countBytes(health, workers);
      this.setWorkers(workers);
      this.health = health;
      this.arrived();
    } catch (e) {
      this.reachable = false;
      this.lastError = e instanceof Error ? e.message : String(e);
    }
    this.changed();
  }

  private async pollSlow() {
    try {
      const [pools, alerts] = await Promise.all([this.transport.pools(), this.transport.alerts()]);
      countBytes(pools, alerts);
      this.pools = pools;
      this.alerts = alerts;
      const now = Date.now() / 1000;
      for (const p of pools) {
        this.seriesOf(this.poolSeries, poolKey(p)).push(now, p.average_cpu_percent, p.total_memory_bytes);
      }
      this.changed();
    } catch {
      /* pollFast reports reachability */
    }
  }

  /** Replace the worker list (a poll, or the benchmark's fake feed) and extend the series. */
  setWorkers(workers: WorkerDto[]) {
    this.byId.clear();
    this.patchWorkers(workers, []);
    this.workers = workers;
  }

  /** Apply the feed's changes: workers added or changed replace their row, removed ones go. */
  private patchWorkers(changed: WorkerDto[], removed: string[]) {
    for (const id of removed) this.byId.delete(id);
    for (const w of changed) {
      this.byId.set(w.id, w);
      if (w.last_sample_at != null) {
        this.seriesOf(this.series, w.id).push(w.last_sample_at / 1000, w.cpu_percent, w.memory_bytes);
      }
    }
    if (changed.length || removed.length) this.workers = [...this.byId.values()];
  }

  seriesOf(map: Map<string, Series>, key: string): Series {
    let s = map.get(key);
    if (!s) map.set(key, (s = new Series(SERIES_POINTS)));
    return s;
  }

  /**
   * Fill a worker's series from before the page was opened: the samples the server holds in memory (the
   * last minutes), then the history store's for the rest of the series' span.
   */
  async seed(id: string) {
    const d = await this.transport.worker(id);
    const s = this.seriesOf(this.series, id);
    const first = s.t.length ? s.t[0] : Infinity;
    const recent = d.recent_samples.filter((x) => x.at / 1000 < first);
    s.t.unshift(...recent.map((x) => x.at / 1000));
    s.cpu.unshift(...recent.map((x) => x.metrics.cpu_percent ?? null));
    s.mem.unshift(...recent.map((x) => x.metrics.memory_bytes ?? null));
    const now = Date.now();
    const before = s.t.length ? s.t[0] * 1000 : now;
    const from = now - SERIES_POINTS * 1000;
    const older = before - from > 5000 ? await olderPoints(this.transport, id, from, before, 1000) : null;
    if (older?.t.length) {
      s.t.unshift(...older.t);
      s.cpu.unshift(...older.cpu);
      s.mem.unshift(...older.memMiB.map((v) => (v == null ? null : v * MiB)));
    }
    if (recent.length || older?.t.length) this.changed();
  }

  /** Seed every worker's series, then the pools' (total memory, average CPU per 5 s bucket). */
  async seedAll() {
    await Promise.all(this.workers.map((w) => this.seed(w.id).catch(() => undefined)));
    const BUCKET = 5;
    for (const pool of new Set(this.workers.map((w) => w.pool))) {
      const ps = this.seriesOf(this.poolSeries, pool);
      const first = ps.t.length ? ps.t[0] : Infinity;
      const buckets = new Map<number, Map<string, { cpu: number | null; mem: number | null }>>();
      for (const w of this.workers) {
        if (w.pool !== pool) continue;
        const s = this.series.get(w.id);
        if (!s) continue;
        for (let i = 0; i < s.t.length; i++) {
          const b = Math.floor(s.t[i] / BUCKET) * BUCKET;
          if (b + BUCKET > first) continue;
          let m = buckets.get(b);
          if (!m) buckets.set(b, (m = new Map()));
          m.set(w.id, { cpu: s.cpu[i], mem: s.mem[i] });
        }
      }
      const keys = [...buckets.keys()].sort((a, b) => a - b);
      const cpu: (number | null)[] = [],
        mem: (number | null)[] = [];
      for (const k of keys) {
        const vals = [...(buckets.get(k) as Map<string, { cpu: number | null; mem: number | null }>).values()];
        const c = vals.filter((v) => v.cpu != null).map((v) => v.cpu as number);
        cpu.push(c.length ? c.reduce((a, b) => a + b, 0) / c.length : null);
        mem.push(vals.reduce((a, v) => a + (v.mem ?? 0), 0));
      }
      ps.t.unshift(...keys.map((k) => k + BUCKET));
      ps.cpu.unshift(...cpu);
      ps.mem.unshift(...mem);
    }
    this.changed();
  }

  ingest(e: Event) {
    if (e.seq <= this.lastSeq) return;
    countBytes(e);
    this.lastSeq = e.seq;
    this.events.push(e);
    if (this.events.length > EVENTS_KEPT * 1.2) this.events.splice(0, this.events.length - EVENTS_KEPT);
    if (e.type === "recycled" || e.type === "recycle_failed") this.recycles.push(e);
    if (e.type === "alert_changed") {
      const i = this.alerts.findIndex((a) => a.rule === e.alert.rule && a.subject === e.alert.subject);
      if (i >= 0) this.alerts[i] = e.alert;
      else this.alerts.push(e.alert);
    }
    for (const f of this.eventListeners) f(e);
    this.changed();
  }

  eventsOf(worker: string): Event[] {
    return this.events.filter((e) => "worker" in e && e.worker === worker);
  }

  firing(): Alert[] {
    return this.alerts.filter((a) => a.state === "firing" || a.state === "flapping");
  }

  /** Refresh alerts at once (after ack/silence) rather than on the next slow poll. */
  async refreshAlerts() {
    this.alerts = await this.transport.alerts();
    this.changed(true);
  }
}
