// One interface between the UI and Tend. `HttpTransport` speaks HTTP + SSE to `tend serve`;
// `TauriTransport` speaks Tauri IPC (commands + a Channel of events) inside the desktop app.
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

/** An agent to add from the Hosts screen. */
export interface NewHost {
  name: string;
  url: string;
  token: string;
  /** A PEM file of the CA to trust, or null for the system's. */
  ca: string | null;
}

export interface EventStreamHandlers {
  onEvent(e: Event): void;
  /** Connected (true) or lost and retrying (false). */
  onStatus(connected: boolean): void;
}

/** A running live feed: steer it to the screen in view, or end it. */
export interface LiveFeed {
  setScope(scope: LiveScope): void;
  close(): void;
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
  /** The agents of this Tend when it is a hub (`[[remote]]`), each with its status; empty otherwise. */
  hosts(): Promise<HostDto[]>;
  /**
   * Desktop only: add an agent (saved in the app's config directory, its token in the OS keyring when
   * there is one, else in a file only its owner may read) and start watching it.
   */
  addHost?(h: NewHost): Promise<HostDto[]>;
  /** Desktop only: forget an agent added in the app (and its stored token). */
  removeHost?(name: string): Promise<HostDto[]>;
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
  /**
   * Desktop only: one update a second with the changes the screen in view draws (see LiveScope),
   * instead of polling. `onStatus(false)` when the feed could not be started.
   */
  live?(scope: LiveScope, onUpdate: (u: LiveUpdate) => void, onStatus: (ok: boolean) => void): LiveFeed;
  /** Desktop only: `f` gets a worker's id when a notification about it is clicked. */
  onOpenWorker?(f: (id: string) => void): void;
  /** History of one metric, or `null` when this Tend keeps no history store. */
  history(id: string, metric: string, from: number, to: number, stepMs?: number): Promise<History | null>;
  /** Recycles from the history store, or `null` when there is none. */
  recycles(from: number, to: number): Promise<RecycleRow[] | null>;
  /** A CSV export from the history store with progress, or `null` when there is none. */
  exportCsv(q: ExportQuery, progress: (bytes: number) => void): Promise<Blob | null>;
  /**
   * Desktop only: the history store writes the CSV straight to a file the user picks in a native save
   * dialog. `null`: cancelled; `undefined`: no history store here (export from memory instead).
   */
  exportCsvToFile?(q: ExportQuery, name: string): Promise<Saved | null | undefined>;
  /** Save a file the UI made (chart PNG/SVG, CSV from memory): a download, or a native save dialog. */
  save(name: string, blob: Blob): Promise<Saved | null>;
  /** Config path, data directory, retention, notification budget; `null` when this server has none. */
  settings(): Promise<SettingsDto | null>;
  /** "desktop" inside the Tauri app, "browser" against `tend serve`. */
  readonly kind: "desktop" | "browser";
}

/** Where a saved file went: a path (desktop) or the browser's downloads. */
export interface Saved {
  path: string;
  bytes: number;
}
