// Export: scope, range and metrics → a CSV download. The history store's `export.csv` streams it with
// progress when the server has one; otherwise the samples kept in memory are written here, with the
// same header and escaping.
import { h, replace, setText } from "../dom";
import { csv } from "../csv";
import { fileSize } from "../format";
import type { Ctx, View } from "./view";

const METRICS: [string, string][] = [
  ["cpu_percent", "CPU %"],
  ["memory_bytes", "Memory (bytes)"],
  ["memory_percent", "Memory % of host"],
];
const RANGES: [string, number][] = [
  ["Last 15 min", 900],
  ["Last hour", 3600],
  ["Last 24 h", 86400],
  ["Last 7 days", 7 * 86400],
  ["Last 30 days", 30 * 86400],
];

export function exportView(ctx: Ctx): View {
  const { store, transport } = ctx;
  const poolSel = h("select", { "aria-label": "Pool" });
  const workerSel = h("select", { "aria-label": "Worker" });
  const rangeSel = h(
    "select",
    { "aria-label": "Range" },
    ...RANGES.map(([l, s]) => h("option", { value: String(s) }, l)),
  );
  const kindSel = h(
    "select",
    { "aria-label": "What" },
    h("option", { value: "samples" }, "Samples (metrics over time)"),
    h("option", { value: "events" }, "Lifecycle events"),
    h("option", { value: "recycles" }, "Recycles"),
    h("option", { value: "alerts" }, "Alerts"),
  );
  const checks = h(
    "div.checks",
    ...METRICS.map(([m, l]) =>
      h("label", h("input", { type: "checkbox", value: m, checked: m !== "memory_percent" }), l),
    ),
  );
  const go = h("button.primary", { "data-action": "export" }, "Export CSV");
  const prog = h("progress", { max: 1, value: 0, style: { visibility: "hidden" } });
  const status = h("div.muted", { role: "status" });
  const el = h(
    "div.view",
    h("h1", "Export", h("span.sub", "CSV for spreadsheets and scripts")),
    h(
      "div.panel.form",
      h("label", "Pool"),
      poolSel,
      h("label", "Worker"),
      workerSel,
      h("label", "Data"),
      kindSel,
      h("label", "Range"),
      rangeSel,
      h("label", "Metrics"),
      checks,
      h("label", "Format"),
      h(
        "div",
        h("label", h("input", { type: "radio", name: "fmt", checked: true }), " CSV"),
        h("span.faint", "  · charts as PNG or SVG: the buttons on a worker's page"),
      ),
      h("span"),
      h("div.toolbar", { style: { margin: 0 } }, go, prog),
      h("span"),
      status,
    ),
  );

  let lastPools = "";
  function update() {
    const pools = [...new Set(store.workers.map((w) => w.pool))].sort();
    const k = pools.join() + "|" + store.workers.map((w) => w.id).join();
    if (k === lastPools) return;
    lastPools = k;
    const p = poolSel.value,
      w = workerSel.value;
    replace(poolSel, h("option", { value: "" }, "All pools"), ...pools.map((x) => h("option", { value: x }, x)));
    poolSel.value = p;
    fillWorkers();
    workerSel.value = w;
  }
  function fillWorkers() {
    const ws = store.workers.filter((w) => !poolSel.value || w.pool === poolSel.value);
    replace(workerSel, h("option", { value: "" }, "All workers"), ...ws.map((w) => h("option", { value: w.id }, w.id)));
  }
  poolSel.addEventListener("change", fillWorkers);
  kindSel.addEventListener("change", () => {
    checks.style.opacity = kindSel.value === "samples" ? "1" : ".4";
  });

  go.addEventListener("click", async () => {
    const kind = kindSel.value as "samples" | "events" | "alerts" | "recycles";
    const to = Date.now(),
      from = to - Number(rangeSel.value) * 1000;
    const metrics = [...checks.querySelectorAll("input")].filter((i) => i.checked).map((i) => i.value);
    const scope = workerSel.value || poolSel.value || "all";
    const name = `tend-${kind}-${scope}-${new Date(to).toISOString().slice(0, 19).replace(/[:T]/g, "")}.csv`;
    go.disabled = true;
    prog.style.visibility = "visible";
    prog.removeAttribute("value");
    setText(status, "Exporting…");
    try {
      const q = { kind, pool: poolSel.value || undefined, worker: workerSel.value || undefined, from, to, metrics };
      // Desktop: the history store writes straight into the file picked in the native save dialog.
      let saved = transport.exportCsvToFile ? await transport.exportCsvToFile(q, name) : undefined;
      let note = "from the history store";
      if (saved === undefined) {
        const blob = transport.exportCsvToFile
          ? null
          : await transport.exportCsv(q, (n) => setText(status, `Exporting… ${fileSize(n)}`));
        let out: Blob;
        if (blob) {
          out = blob;
        } else {
          out = new Blob([local(kind, metrics)], { type: "text/csv" });
          note = "from the samples and events kept in memory (this Tend has no history store)";
        }
        saved = await transport.save(name, out);
      }
      prog.value = 1;
      if (!saved) setText(status, "Export cancelled.");
      else if (transport.kind === "browser")
        setText(status, `Saved ${name} (${fileSize(saved.bytes)}, ${note}) to your downloads folder.`);
      else setText(status, `Saved ${saved.path} (${fileSize(saved.bytes)}, ${note}).`);
    } catch (e) {
      setText(status, "Export failed: " + (e instanceof Error ? e.message : String(e)));
    } finally {
      go.disabled = false;
      setTimeout(() => (prog.style.visibility = "hidden"), 800);
    }
  });

  /** The in-memory export: the store's per-worker series, or its event log. */
  function local(kind: string, metrics: string[]): string {
    const ws = store.workers.filter(
      (w) => (!poolSel.value || w.pool === poolSel.value) && (!workerSel.value || w.id === workerSel.value),
    );
    const since = Date.now() - Number(rangeSel.value) * 1000;
    if (kind === "samples") {
      const rows: (string | number | null)[][] = [];
      for (const w of ws) {
        const s = store.series.get(w.id);
        if (!s) continue;
        for (let i = 0; i < s.t.length; i++) {
          if (s.t[i] * 1000 < since) continue;
          const m: Record<string, number | null> = {
            cpu_percent: s.cpu[i],
            memory_bytes: s.mem[i],
            memory_percent: null,
          };
          rows.push([
            new Date(s.t[i] * 1000).toISOString(),
            w.id,
            w.pool,
            w.incarnation,
            w.pid,
            w.state,
            ...metrics.map((k) => m[k] ?? null),
          ]);
        }
      }
      rows.sort((a, b) => String(a[0]).localeCompare(String(b[0])));
      return csv(["time", "worker", "pool", "incarnation", "pid", "state", ...metrics], rows);
    }
    const ids = new Set(ws.map((w) => w.id));
    const evs = store.events.filter(
      (e) => e.at >= since && (!("worker" in e) || e.worker === null || ids.has(e.worker)),
    );
    if (kind === "recycles") {
      return csv(
        ["time", "worker", "pool", "reason", "outcome", "old_pid", "new_pid", "uptime_secs", "requests", "detail"],
        store.recycles
          .filter((r) => r.at >= since && ids.has(r.worker))
          .map((r) =>
            r.type === "recycled"
              ? [
                  new Date(r.at).toISOString(),
                  r.worker,
                  r.pool,
                  r.reason,
                  "recycled",
                  r.old_process?.pid,
                  r.new_process?.pid,
                  r.uptime_secs,
                  r.requests,
                  r.detail,
                ]
              : [new Date(r.at).toISOString(), r.worker, r.pool, r.reason, "failed", null, null, null, null, r.error],
          ),
      );
    }
    if (kind === "alerts") {
      return csv(
        ["time", "rule", "subject", "pool", "severity", "state", "value", "threshold", "since", "message"],
        evs.flatMap((e) =>
          e.type === "alert_changed"
            ? [
                [
                  new Date(e.at).toISOString(),
                  e.alert.rule,
                  e.alert.subject,
                  e.alert.pool,
                  e.alert.severity,
                  e.alert.state,
                  e.alert.value,
                  e.alert.threshold,
                  new Date(e.alert.since).toISOString(),
                  e.alert.message,
                ],
              ]
            : [],
        ),
      );
    }
    return csv(
      ["time", "seq", "type", "worker", "pool", "incarnation", "pid", "from", "to", "cause", "json"],
      evs.map((e) => [
        new Date(e.at).toISOString(),
        e.seq,
        e.type,
        "worker" in e ? e.worker : null,
        "pool" in e ? e.pool : null,
        e.type === "state_changed" ? e.incarnation : null,
        e.type === "state_changed" ? e.process?.pid : null,
        e.type === "state_changed" ? e.from : null,
        e.type === "state_changed" ? e.to : null,
        e.type === "state_changed" ? e.cause : null,
        JSON.stringify(e),
      ]),
    );
  }

  return { el, update };
}
