// One interface between the UI and Tend. `HttpTransport` speaks HTTP + SSE to `tend serve`; a Tauri
// implementation (IPC commands + events) will implement the same interface in the desktop app.
import type { Alert, Event, HealthDto, History, PoolMetrics, RecycleRow, WorkerDetailDto, WorkerDto } from "../types";

export interface EventStreamHandlers {
  onEvent(e: Event): void;
  /** Connected (true) or lost and retrying (false). */
  onStatus(connected: boolean): void;
}

export interface ExportQuery {
  kind: "samples" | "events" | "alerts" | "recycles";
  pool?: string;
  worker?: string;
  from: number;
  to: number;
  metrics?: string[];
}

export interface Transport {
  health(): Promise<HealthDto>;
  workers(): Promise<WorkerDto[]>;
  worker(id: string): Promise<WorkerDetailDto>;
  workerEvents(id: string): Promise<Event[]>;
  pools(): Promise<PoolMetrics[]>;
  alerts(): Promise<Alert[]>;
  recycle(id: string): Promise<void>;
  stop(id: string): Promise<void>;
  acknowledge(rule: string, subject: string): Promise<void>;
  /** `minutes = 0` lifts the silence. */
  silence(rule: string, subject: string, minutes: number): Promise<void>;
  /** Every event after `since` (replayed from memory), then live ones. Returns the unsubscribe. */
  subscribe(since: number, h: EventStreamHandlers): () => void;
  /** History of one metric, or `null` when this Tend keeps no history store. */
  history(id: string, metric: string, from: number, to: number, stepMs?: number): Promise<History | null>;
  /** Recycles from the history store, or `null` when there is none. */
  recycles(from: number, to: number): Promise<RecycleRow[] | null>;
  /** A CSV export from the history store with progress, or `null` when there is none. */
  exportCsv(q: ExportQuery, progress: (bytes: number) => void): Promise<Blob | null>;
}
