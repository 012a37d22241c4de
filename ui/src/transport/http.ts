// The browser transport: `fetch` against `/api/v1` and an `EventSource` on `/api/v1/events`.
import { download } from "../csv";
import { ApiError, EVENT_TYPES, isNoStore } from "../types";
import type {
  Alert,
  Event,
  HealthDto,
  History,
  HostDto,
  PoolMetrics,
  RecycleRow,
  SettingsDto,
  WorkerDetailDto,
  WorkerDto,
} from "../types";
import type { EventStreamHandlers, ExportQuery, Saved, Transport } from "./transport";

async function apiError(res: Response): Promise<ApiError> {
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    return new ApiError(res.status, body.error?.code ?? "http_" + res.status, body.error?.message ?? res.statusText);
  } catch {
    return new ApiError(res.status, "http_" + res.status, res.statusText || "request failed");
  }
}

export class HttpTransport implements Transport {
  readonly kind = "browser" as const;
  constructor(private readonly base = "/api/v1") {}

  async save(name: string, blob: Blob): Promise<Saved> {
    download(name, blob);
    return { path: `${name} in your downloads folder`, bytes: blob.size };
  }

  /** `null` from an older server without the route: the Settings view says what it does not know. */
  async settings(): Promise<SettingsDto | null> {
    try {
      return await this.get<SettingsDto>("/settings");
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }
  }

  private async get<T>(path: string): Promise<T> {
    const res = await fetch(this.base + path, { headers: { accept: "application/json" } });
    if (!res.ok) throw await apiError(res);
    return (await res.json()) as T;
  }

  private async post(path: string, body?: unknown): Promise<void> {
    const res = await fetch(this.base + path, {
      method: "POST",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw await apiError(res);
  }

  health() {
    return this.get<HealthDto>("/health");
  }
  workers() {
    return this.get<WorkerDto[]>("/workers");
  }
  hosts() {
    return this.get<HostDto[]>("/hosts");
  }
  worker(id: string) {
    return this.get<WorkerDetailDto>("/workers/" + encodeURIComponent(id));
  }
  workerEvents(id: string) {
    return this.get<Event[]>("/workers/" + encodeURIComponent(id) + "/events");
  }
  pools() {
    return this.get<PoolMetrics[]>("/pools");
  }
  alerts() {
    return this.get<Alert[]>("/alerts");
  }
  recycle(id: string) {
    return this.post("/workers/" + encodeURIComponent(id) + "/recycle");
  }
  stop(id: string) {
    return this.post("/workers/" + encodeURIComponent(id) + "/stop");
  }
  acknowledge(rule: string, subject: string) {
    return this.post("/alerts/ack", { rule, subject });
  }
  silence(rule: string, subject: string, minutes: number) {
    return this.post("/alerts/silence", { rule, subject, minutes });
  }

  subscribe(since: number, h: EventStreamHandlers): () => void {
    // EventSource reconnects by itself and sends Last-Event-ID, so nothing is missed across a drop.
    const es = new EventSource(`${this.base}/events?since=${since}`);
    const onMessage = (m: MessageEvent<string>) => {
      try {
        h.onEvent(JSON.parse(m.data) as Event);
      } catch {
        /* a malformed line is skipped; the next poll brings the state anyway */
      }
    };
    for (const t of EVENT_TYPES) es.addEventListener(t, onMessage);
    es.onopen = () => h.onStatus(true);
    es.onerror = () => h.onStatus(false);
    return () => es.close();
  }

  async history(id: string, metric: string, from: number, to: number, stepMs?: number): Promise<History | null> {
    const q = new URLSearchParams({ metric, from: String(from), to: String(to) });
    if (stepMs) q.set("step", `${Math.round(stepMs / 1000)}s`);
    try {
      return await this.get<History>(`/workers/${encodeURIComponent(id)}/history?${q}`);
    } catch (e) {
      if (isNoStore(e)) return null;
      throw e;
    }
  }

  async recycles(from: number, to: number): Promise<RecycleRow[] | null> {
    try {
      return await this.get<RecycleRow[]>(`/recycles?from=${from}&to=${to}`);
    } catch (e) {
      if (isNoStore(e)) return null;
      throw e;
    }
  }

  async exportCsv(q: ExportQuery, progress: (bytes: number) => void): Promise<Blob | null> {
    const p = new URLSearchParams({ kind: q.kind, from: String(q.from), to: String(q.to) });
    if (q.pool) p.set("pool", q.pool);
    if (q.worker) p.set("worker", q.worker);
    if (q.metrics?.length) p.set("metrics", q.metrics.join(","));
    const res = await fetch(`${this.base}/export.csv?${p}`);
    if (!res.ok) {
      const e = await apiError(res);
      if (isNoStore(e)) return null;
      throw e;
    }
    if (!res.body) return await res.blob();
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let n = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      n += value.byteLength;
      progress(n);
    }
    return new Blob(chunks as BlobPart[], { type: "text/csv" });
  }
}
