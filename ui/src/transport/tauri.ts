// The desktop transport: Tauri IPC. Commands are one-line wrappers over the engine's App facade (see
// src-tauri/src/commands.rs); events arrive on a `Channel` the `subscribe` command feeds from the
// engine's broadcast. Errors come as `{code, message}`, the same codes as the HTTP API.
import { Channel, invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import { ApiError, ERROR_STATUS, isNoStore } from "../types";
import type {
  Alert,
  Event,
  HealthDto,
  History,
  HostDto,
  LiveScope,
  LiveUpdate,
  PoolMetrics,
  RecycleRow,
  SettingsDto,
  WorkerDetailDto,
  WorkerDto,
} from "../types";
import type { EventStreamHandlers, ExportQuery, LiveFeed, NewHost, Saved, Transport } from "./transport";

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    const err = e as { code?: string; message?: string } | string;
    if (typeof err === "object" && err && err.code)
      throw new ApiError(ERROR_STATUS[err.code as keyof typeof ERROR_STATUS] ?? 500, err.code, err.message ?? err.code);
    throw new ApiError(500, "ipc_error", String(err));
  }
}

export class TauriTransport implements Transport {
  readonly kind = "desktop" as const;

  health() {
    return call<HealthDto>("health");
  }
  onOpenWorker(f: (id: string) => void) {
    void listen<string>("open-worker", (e) => f(e.payload));
  }
  workers() {
    return call<WorkerDto[]>("workers");
  }
  hosts() {
    return call<HostDto[]>("hosts");
  }
  addHost(host: NewHost) {
    return call<HostDto[]>("add_host", { host });
  }
  removeHost(name: string) {
    return call<HostDto[]>("remove_host", { name });
  }
  worker(id: string) {
    return call<WorkerDetailDto>("worker", { id });
  }
  workerEvents(id: string) {
    return call<Event[]>("worker_events", { id });
  }
  pools() {
    return call<PoolMetrics[]>("pools");
  }
  alerts() {
    return call<Alert[]>("alerts");
  }
  recycle(id: string) {
    return call<void>("recycle", { id });
  }
  stop(id: string) {
    return call<void>("stop", { id });
  }
  acknowledge(rule: string, subject: string) {
    return call<void>("acknowledge", { rule, subject });
  }
  silence(rule: string, subject: string, minutes: number) {
    return call<void>("silence", { rule, subject, minutes });
  }
  settings() {
    return call<SettingsDto>("settings");
  }

  subscribe(since: number, h: EventStreamHandlers): () => void {
    let open = true;
    const ch = new Channel<Event>();
    ch.onmessage = (e) => {
      if (open) h.onEvent(e);
    };
    call<void>("subscribe", { since, channel: ch }).then(
      () => h.onStatus(true),
      () => h.onStatus(false),
    );
    return () => {
      open = false;
    };
  }

  live(scope: LiveScope, onUpdate: (u: LiveUpdate) => void, onStatus: (ok: boolean) => void): LiveFeed {
    let open = true;
    const ch = new Channel<LiveUpdate>();
    ch.onmessage = (u) => {
      if (open) onUpdate(u);
    };
    const started = call<void>("live", { scope, channel: ch }).then(
      () => onStatus(true),
      () => onStatus(false),
    );
    return {
      setScope: (s) => void started.then(() => call<void>("live_scope", { scope: s })).catch(() => undefined),
      close: () => {
        open = false;
        void call<void>("live_scope", { scope: { view: "hidden" } }).catch(() => undefined);
      },
    };
  }

  async history(id: string, metric: string, from: number, to: number, stepMs?: number): Promise<History | null> {
    try {
      return await call<History>("history", {
        id,
        metric,
        from: Math.round(from),
        to: Math.round(to),
        stepMs: stepMs ? Math.round(stepMs) : null,
      });
    } catch (e) {
      if (isNoStore(e)) return null;
      throw e;
    }
  }

  async recycles(from: number, to: number): Promise<RecycleRow[] | null> {
    try {
      return await call<RecycleRow[]>("recycles", { from: Math.round(from), to: Math.round(to) });
    } catch (e) {
      if (isNoStore(e)) return null;
      throw e;
    }
  }

  /** In the desktop app the CSV goes straight to a file (`exportCsvToFile`); a Blob is never built. */
  async exportCsv(): Promise<Blob | null> {
    return null;
  }

  async exportCsvToFile(q: ExportQuery, name: string): Promise<Saved | null | undefined> {
    try {
      return await call<Saved | null>("export_csv", {
        query: { ...q, from: Math.round(q.from), to: Math.round(q.to) },
        name,
      });
    } catch (e) {
      if (isNoStore(e)) return undefined;
      throw e;
    }
  }

  async save(name: string, blob: Blob): Promise<Saved | null> {
    const data = Array.from(new Uint8Array(await blob.arrayBuffer()));
    return call<Saved | null>("save_file", { name, data });
  }
}

/** True inside the Tauri webview. */
export function inTauri(): boolean {
  return "__TAURI_INTERNALS__" in window;
}
