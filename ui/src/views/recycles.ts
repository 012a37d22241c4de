// Recycles: every recycle with reason, worker, old and new pid, uptime, requests, last memory. From the
// history store when the server has one, else from the events kept in memory.
import { h, replace } from "../dom";
import { bytes, dateTime, duration, int } from "../format";
import type { RecycleRow } from "../types";
import { table } from "./worker";
import type { Ctx, View } from "./view";

export function recyclesView(ctx: Ctx): View {
  const { store, transport } = ctx;
  let stored: RecycleRow[] | null = null;
  let source = "events in memory";
  let key = "";
  const info = h("span.sub");
  const body = h("div");
  const el = h("div.view", h("h1", "Recycles", info), body);

  void (async () => {
    try {
      stored = await transport.recycles(Date.now() - 30 * 86400_000, Date.now() + 60_000);
      if (stored) source = "history store, last 30 days";
    } catch {
      stored = null;
    }
    key = "";
    update();
  })();

  const link = (id: string) =>
    h(
      "a",
      {
        href: "/workers/" + id,
        onclick: (e: MouseEvent) => {
          e.preventDefault();
          ctx.navigate("/workers/" + encodeURIComponent(id));
        },
      },
      id,
    );

  function update() {
    const k = source + store.recycles.length + (stored?.length ?? -1);
    if (k === key) return;
    key = k;
    const rows: (string | Node)[][] = [];
    if (stored) {
      const seen = new Set(stored.map((r) => r.at + r.worker));
      const live = store.recycles.filter((r) => !seen.has(r.at + r.worker));
      for (const r of live)
        stored.push(
          r.type === "recycled"
            ? {
                at: r.at,
                worker: r.worker,
                pool: r.pool,
                reason: r.reason,
                detail: r.detail,
                outcome: "recycled",
                old_pid: r.old_process?.pid ?? null,
                new_pid: r.new_process?.pid ?? null,
                uptime_secs: r.uptime_secs,
                requests: r.requests,
                last_metrics: r.last_metrics ?? null,
              }
            : {
                at: r.at,
                worker: r.worker,
                pool: r.pool,
                reason: r.reason,
                detail: r.error,
                outcome: "failed",
                old_pid: null,
                new_pid: null,
                uptime_secs: null,
                requests: null,
                last_metrics: null,
              },
        );
      stored.sort((a, b) => b.at - a.at);
      for (const r of stored)
        rows.push([
          dateTime(r.at),
          link(r.worker),
          r.pool,
          r.reason,
          r.outcome,
          `${r.old_pid ?? "—"} → ${r.new_pid ?? "—"}`,
          duration(r.uptime_secs),
          int(r.requests),
          bytes(r.last_metrics?.memory_bytes),
          r.detail,
        ]);
    } else {
      for (const r of [...store.recycles].reverse()) {
        rows.push(
          r.type === "recycled"
            ? [
                dateTime(r.at),
                link(r.worker),
                r.pool,
                r.reason,
                "recycled",
                `${r.old_process?.pid ?? "—"} → ${r.new_process?.pid ?? "—"}`,
                duration(r.uptime_secs),
                int(r.requests),
                bytes(r.last_metrics?.memory_bytes),
                r.detail,
              ]
            : [dateTime(r.at), link(r.worker), r.pool, r.reason, "failed", "—", "—", "—", "—", r.error],
        );
      }
    }
    info.textContent = `${rows.length} recycles · ${source}`;
    replace(
      body,
      table(
        ["Time", "Worker", "Pool", "Reason", "Outcome", "Old → new pid", "Uptime", "Requests", "Last memory", "Detail"],
        rows,
        "No recycles yet. A worker is recycled when it crosses its pool's limits (memory, TTL, requests), hangs, dies, or on request.",
      ),
    );
  }

  return { el, update };
}
