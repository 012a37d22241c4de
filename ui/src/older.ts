// CPU and memory of one worker from the history store, for the part of a chart older than what the
// server keeps in memory (the last minute at `intensive`). Used by the worker page and by the
// store's seeding of sparklines and Compare lines, so both merge store points the same way.

import type { Tier } from "./types";
import type { Transport } from "./transport/transport";

/** Points older than the live ones, oldest first; memory in MiB. */
export interface Older {
  t: number[];
  cpu: (number | null)[];
  memMiB: (number | null)[];
  tier: Tier;
  stepMs: number;
}

/**
 * The store's points in [from, before) (ms), one per `stepMs` at most; `null` when this Tend keeps no
 * history store; empty arrays when it holds nothing there yet.
 */
export async function olderPoints(
  transport: Transport,
  id: string,
  from: number,
  before: number,
  stepMs: number,
): Promise<Older | null> {
  const [c, m] = await Promise.all([
    transport.history(id, "cpu_percent", from, before, stepMs),
    transport.history(id, "memory_mb", from, before, stepMs),
  ]);
  if (!c || !m) return null;
  const mem = new Map(m.points.map((p) => [p.t, p.avg]));
  // Half a second of margin: the store's first point may be the in-memory first one, rounded.
  const pts = c.points.filter((p) => p.t < before - 500);
  return {
    t: pts.map((p) => p.t / 1000),
    cpu: pts.map((p) => p.avg),
    memMiB: pts.map((p) => mem.get(p.t) ?? null),
    tier: c.tier,
    stepMs: c.step_ms,
  };
}
