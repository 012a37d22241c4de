// Worker detail: header and actions, CPU and memory charts with a shared cursor, the recycle limit and
// rule thresholds, range buttons, the lifecycle timeline, and tabs for events, errors, recycles, alerts.
import { h, setText, replace } from "../dom";
import { bytes, duration, int, clock, dateTime, ago, ruleValue } from "../format";
import { badge, setBadge, severity } from "../components/badge";
import { TimeChart } from "../components/chart";
import type { Line } from "../components/chart";
import { Timeline } from "../components/timeline";
import type { Event, WorkerDetailDto } from "../types";
import { recycleWorkers, stopWorker, errorReason } from "./actions";
import { chartsSvg } from "../components/svgchart";
import { olderPoints } from "../older";
import type { Ctx, View } from "./view";

const MiB = 1024 * 1024;
const RANGES: [string, number][] = [
  ["5m", 300],
  ["1h", 3600],
  ["24h", 86400],
  ["7d", 7 * 86400],
  ["30d", 30 * 86400],
];
type Tab = "events" | "errors" | "recycles" | "alerts";

export function workerView(ctx: Ctx, id: string): View {
  const { store, transport } = ctx;
  let detail: WorkerDetailDto | null = null;
  let missing = "";
  let range = 300;
  let tab: Tab = "events";
  let historyNote = "";
  // Chart data, owned here and appended to: seconds, CPU %, memory MiB.
  const t: number[] = [],
    cpu: (number | null)[] = [],
    mem: (number | null)[] = [];
  let alive = true;
  let first = true;

  const title = h("span");
  const stateBadge = badge("INITIALIZING");
  const facts = h("div.facts", { "data-testid": "facts" });
  const err = h("span.err", { role: "alert" });
  const recycleBtn = h("button.primary", { "data-action": "recycle" }, "Recycle…");
  const stopBtn = h("button.danger", { "data-action": "stop" }, "Stop…");
  const pngBtn = h("button.small", { title: "Save both charts as one PNG", "data-action": "png" }, "PNG");
  pngBtn.addEventListener("click", () => savePng());
  const svgBtn = h("button.small", { title: "Save both charts as one SVG", "data-action": "svg" }, "SVG");
  svgBtn.addEventListener("click", () => void saveSvg());
  const rangeSeg = h(
    "div.seg",
    ...RANGES.map(([l, s]) =>
      h("button", { "data-range": l, class: s === range ? "on" : "", onclick: () => setRange(s) }, l),
    ),
  );
  const cpuNow = h("b"),
    memNow = h("b");
  const note = h("div.note");
  const limitLines = (): Line[] => {
    const lines: Line[] = [];
    const lim = detail?.memory_limit_bytes;
    if (lim) lines.push({ value: lim / MiB, label: `recycle limit ${bytes(lim)}`, color: "#dc2626" });
    for (const a of detail?.alerts ?? []) {
      if (a.threshold != null && a.metric === "memory_mb")
        lines.push({ value: a.threshold, label: `${a.rule} ${a.threshold} MiB`, color: "#d97706", dash: [3, 3] });
    }
    return lines;
  };
  const cpuLines = (): Line[] =>
    (detail?.alerts ?? [])
      .filter((a) => a.threshold != null && a.metric === "cpu_percent")
      .map((a) => ({
        value: a.threshold as number,
        label: `${a.rule} ${a.threshold} %`,
        color: "#d97706",
        dash: [3, 3],
      }));
  const cpuChart = new TimeChart({
    height: 150,
    unit: "%",
    series: [{ label: "CPU", color: "#2563eb", fill: true }],
    sync: "worker",
    lines: cpuLines,
  });
  const memChart = new TimeChart({
    height: 170,
    unit: "MiB",
    series: [{ label: "Memory", color: "#7c3aed", fill: true }],
    sync: "worker",
    lines: limitLines,
    yAtLeast: () => (detail?.memory_limit_bytes ? detail.memory_limit_bytes / MiB : null),
  });
  const cursorInfo = h("span.muted");
  const onCursor = (i: number | null) => {
    const d = { t, cpu, mem };
    if (i == null || d.t[i] == null) return setText(cursorInfo, "");
    setText(
      cursorInfo,
      `${clock(d.t[i] * 1000)} · CPU ${d.cpu[i]?.toFixed(1) ?? "—"} % · memory ${d.mem[i]?.toFixed(1) ?? "—"} MiB`,
    );
  };
  cpuChart.el.dataset.chart = "cpu";
  memChart.el.dataset.chart = "memory";
  cpuChart.onCursor = onCursor;
  memChart.onCursor = onCursor;
  const timeline = new Timeline();
  const tabsEl = h("div.tabs");
  const tabBody = h("div");
  const tabs: [Tab, string][] = [
    ["events", "Events"],
    ["errors", "Errors and warnings"],
    ["recycles", "Recycles"],
    ["alerts", "Alerts"],
  ];
  for (const [k, l] of tabs)
    tabsEl.appendChild(
      h(
        "button",
        {
          "data-tab": k,
          onclick: () => {
            tab = k;
            renderTab();
          },
        },
        l,
      ),
    );

  const el = h(
    "div.view",
    h(
      "div.whead",
      h(
        "div",
        h(
          "h1",
          h(
            "a",
            {
              href: "/workers",
              onclick: (e: Event) => {
                (e as unknown as MouseEvent).preventDefault();
                ctx.navigate("/workers");
              },
            },
            "Workers",
          ),
          h("span.faint", "/"),
          title,
          stateBadge,
        ),
        facts,
      ),
      h("div.actions", err, recycleBtn, stopBtn),
    ),
    h(
      "div.panel.charts",
      h(
        "div.toolbar",
        { style: { margin: "2px 6px 6px" } },
        rangeSeg,
        cursorInfo,
        h("span.spacer"),
        note,
        pngBtn,
        svgBtn,
      ),
      h("div.chart-title", h("span", "CPU (% of one core)"), cpuNow),
      cpuChart.el,
      h("div.chart-title", h("span", "Memory (resident)"), memNow),
      memChart.el,
      h("div.chart-title", h("span", "Lifecycle")),
      timeline.el,
    ),
    tabsEl,
    tabBody,
  );

  recycleBtn.addEventListener("click", async () => {
    if (detail) await recycleWorkers(ctx, [detail], err);
  });
  stopBtn.addEventListener("click", async () => {
    if (detail) await stopWorker(ctx, detail, err);
  });

  /** Append one reading (epoch ms, CPU %, bytes) unless the charts already reach that time. */
  function appendPoint(atMs: number, c: number | null | undefined, memBytes: number | null | undefined): boolean {
    const ts = atMs / 1000;
    if (t.length && ts <= t[t.length - 1]) return false;
    t.push(ts);
    cpu.push(c ?? null);
    mem.push(memBytes != null ? memBytes / MiB : null);
    return true;
  }

  function appendSamples(d: WorkerDetailDto) {
    for (const s of d.recent_samples) appendPoint(s.at, s.metrics.cpu_percent, s.metrics.memory_bytes);
  }

  async function poll() {
    if (!alive) return;
    try {
      const d = await transport.worker(id);
      detail = d;
      missing = "";
      appendSamples(d);
    } catch (e) {
      missing = errorReason(e);
    }
    if (first && detail) {
      first = false;
      void setRange(range);
    }
    draw();
    // With the desktop's live feed the samples come with the model (`fromModel`): the detail (incarnations,
    // alerts, errors) is asked for less often.
    if (alive) store.later(() => void poll(), transport.live ? store.pollMs * 5 : store.pollMs);
  }

  /** A newer reading of this worker in the model (live feed or list poll): merged in, appended. */
  function fromModel(): boolean {
    const w = store.byId.get(id);
    if (!detail || w?.last_sample_at == null) return false;
    if (!appendPoint(w.last_sample_at, w.cpu_percent, w.memory_bytes)) return false;
    detail = { ...detail, ...w };
    return true;
  }

  /** The CPU and memory charts stacked into one PNG, with a title line. */
  function savePng() {
    const canvases = [cpuChart.el, memChart.el]
      .map((e) => e.querySelector("canvas"))
      .filter((c): c is HTMLCanvasElement => !!c);
    if (!canvases.length) return;
    const dpr = devicePixelRatio || 1;
    const head = Math.round(28 * dpr);
    const out = document.createElement("canvas");
    out.width = Math.max(...canvases.map((c) => c.width));
    out.height = head + canvases.reduce((a, c) => a + c.height, 0);
    const g = out.getContext("2d");
    if (!g) return;
    const css = getComputedStyle(document.documentElement);
    g.fillStyle = css.getPropertyValue("--panel").trim() || "#fff";
    g.fillRect(0, 0, out.width, out.height);
    g.fillStyle = css.getPropertyValue("--text").trim() || "#000";
    g.font = `${13 * dpr}px system-ui`;
    g.fillText(
      `${id} · CPU % and memory MiB · ${dateTime(Date.now() - range * 1000)} – ${dateTime(Date.now())}`,
      8 * dpr,
      19 * dpr,
    );
    let y = head;
    for (const c of canvases) {
      g.drawImage(c, 0, y);
      y += c.height;
    }
    out.toBlob((b) => {
      if (b) void saveChart("png", b);
    }, "image/png");
  }

  /** The same two charts as vector SVG, from the arrays the live charts draw. */
  async function saveSvg() {
    const to = Date.now() / 1000,
      from = to - range;
    const svg = chartsSvg(
      `${id} · CPU % and memory MiB · ${dateTime(from * 1000)} – ${dateTime(to * 1000)}`,
      t,
      [
        { label: "CPU", unit: "%", color: "#2563eb", values: cpu, lines: cpuLines() },
        { label: "Memory", unit: "MiB", color: "#7c3aed", values: mem, lines: limitLines() },
      ],
      from,
      to,
    );
    await saveChart("svg", new Blob([svg], { type: "image/svg+xml" }));
  }

  async function saveChart(ext: "png" | "svg", blob: Blob) {
    const name = `tend-${id}-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, "")}.${ext}`;
    try {
      const saved = await transport.save(name, blob);
      setText(err, saved && transport.kind === "desktop" ? `Saved ${saved.path}` : "");
    } catch (e) {
      setText(err, "Save failed: " + errorReason(e));
    }
  }

  async function setRange(s: number) {
    range = s;
    for (const b of rangeSeg.querySelectorAll("button"))
      b.classList.toggle("on", b.dataset.range === RANGES.find((r) => r[1] === s)?.[0]);
    historyNote = "";
    const oldest = t.length ? t[0] : Date.now() / 1000;
    const now = Date.now();
    if (now / 1000 - s < oldest - 5) {
      try {
        const step = Math.max(1000, Math.round((s * 1000) / 600));
        const live = t.length ? t[0] : Infinity;
        const o = await olderPoints(transport, id, now - s * 1000, Math.min(now, live * 1000), step);
        if (o?.t.length) {
          // Older points from the store go in front of the in-memory ones; live samples keep appending.
          t.unshift(...o.t);
          cpu.unshift(...o.cpu);
          mem.unshift(...o.memMiB);
          historyNote = Number.isFinite(live)
            ? `older than ${clock(live * 1000)}: history store (${o.tier}${o.stepMs ? `, ${Math.round(o.stepMs / 1000)} s steps` : ""})`
            : "";
        } else if (o) {
          historyNote = `the history store has nothing older yet: showing the ${duration(now / 1000 - oldest)} kept in memory`;
        } else {
          historyNote = `no history store on this server: showing the ${duration(now / 1000 - oldest)} kept in memory`;
        }
      } catch (e) {
        historyNote = "history unavailable: " + errorReason(e);
      }
    }
    draw();
  }

  function draw() {
    if (!alive) return;
    if (!detail) {
      setText(title, id);
      replace(facts, missing ? h("span.err", missing) : h("span", "Loading…"));
      return;
    }
    const d = detail;
    setText(title, d.id);
    setBadge(stateBadge, d.state);
    replace(
      facts,
      h("span", "pid ", h("b", { "data-pid": d.pid ?? "" }, d.pid != null ? String(d.pid) : "—")),
      h("span", "source ", h("b", d.source)),
      h("span", "pool ", h("b", d.pool)),
      h("span", "incarnation ", h("b", String(d.incarnation))),
      h("span", "uptime ", h("b", duration(d.uptime_secs))),
      h("span", "requests ", h("b", int(d.requests))),
      h("span", "restarts ", h("b", String(d.restarts))),
      h("span", "errors ", h("b", int(d.errors)), " · warnings ", h("b", int(d.warnings))),
      d.recycling ? h("span", h("b", `recycling (${d.recycling})`)) : null,
      d.held ? h("span.err", d.held) : null,
    );
    setText(cpuNow, d.cpu_percent != null ? d.cpu_percent.toFixed(1) + " %" : "—");
    setText(
      memNow,
      d.memory_bytes != null
        ? bytes(d.memory_bytes) + (d.memory_limit_bytes ? ` of ${bytes(d.memory_limit_bytes)} limit` : "")
        : "—",
    );
    const live = d.state !== "COMPLETED" && d.state !== "CLEANED" && d.state !== "FAILED" && d.state !== "TERMINATED";
    recycleBtn.disabled = !live || d.recycling != null;
    stopBtn.disabled = !live;
    const now = Date.now() / 1000;
    const from = now - range;
    cpuChart.update([t, cpu], from, now);
    memChart.update([t, mem], from, now);
    const inMemoryNote = t.length && t[0] > from + 5 ? `data since ${clock(t[0] * 1000)}` : "";
    setText(note, historyNote || inMemoryNote);
    const evs = store.eventsOf(id);
    timeline.align(memChart.plotBox());
    timeline.render(d.incarnations, evs, from * 1000, now * 1000);
    timeline.renderAlerts(Timeline.alertEvents(store.events, id), from * 1000, now * 1000);
    renderTab();
  }

  let tabKey = "";
  function renderTab() {
    for (const b of tabsEl.querySelectorAll("button")) b.classList.toggle("on", b.dataset.tab === tab);
    const evs = store.eventsOf(id);
    const key =
      tab +
      evs.length +
      (detail?.alerts.map((a) => a.state + a.acknowledged + a.silenced_until).join() ?? "") +
      (detail?.errors ?? 0);
    if (key === tabKey) return;
    tabKey = key;
    if (tab === "events") {
      const rows = evs.slice(-300).reverse();
      replace(
        tabBody,
        table(
          ["Time", "Event", "Detail"],
          rows.map((e) => [dateTime(e.at), e.type.replace(/_/g, " "), describe(e)]),
          "No events in memory for this worker.",
        ),
      );
    } else if (tab === "errors") {
      const bad = evs
        .filter(
          (e) =>
            (e.type === "state_changed" && ["FAILED", "TIMEOUT", "TERMINATED"].includes(e.to)) ||
            e.type === "recycle_failed" ||
            e.type === "storm_tripped",
        )
        .reverse();
      replace(
        tabBody,
        h(
          "p.muted",
          `Output lines counted as errors: ${int(detail?.errors)} · warnings: ${int(detail?.warnings)} (current incarnation).`,
        ),
        table(
          ["Time", "What", "Detail"],
          bad.map((e) => [dateTime(e.at), e.type === "state_changed" ? e.to : e.type.replace(/_/g, " "), describe(e)]),
          "No failures, timeouts or failed recycles.",
        ),
      );
    } else if (tab === "recycles") {
      const rs = store.recycles.filter((r) => r.worker === id).reverse();
      replace(
        tabBody,
        table(
          ["Time", "Reason", "Outcome", "Old → new pid", "Uptime", "Requests", "Last memory", "Detail"],
          rs.map((r) =>
            r.type === "recycled"
              ? [
                  dateTime(r.at),
                  r.reason,
                  "recycled",
                  `${r.old_process?.pid ?? "—"} → ${r.new_process?.pid ?? "—"}`,
                  duration(r.uptime_secs),
                  int(r.requests),
                  bytes(r.last_metrics?.memory_bytes),
                  r.detail,
                ]
              : [dateTime(r.at), r.reason, "failed", "—", "—", "—", "—", r.error],
          ),
          "No recycles of this worker yet.",
        ),
      );
    } else {
      const as = detail?.alerts ?? [];
      replace(
        tabBody,
        table(
          ["Severity", "Rule", "State", "Value / threshold", "Since", "Message"],
          as.map((a) => [
            severity(a.severity),
            a.rule,
            a.state +
              (a.acknowledged ? " · ack" : "") +
              (a.silenced_until && a.silenced_until > Date.now() ? " · silenced" : ""),
            `${ruleValue(a.unit, a.value)} / ${ruleValue(a.unit, a.threshold)}`,
            ago(a.since),
            a.message,
          ]),
          "No alert rules on this worker.",
        ),
      );
    }
  }

  void poll();
  return {
    el,
    update: () => {
      if (fromModel()) draw();
      renderTab();
    },
    destroy() {
      alive = false;
      cpuChart.destroy();
      memChart.destroy();
    },
    onKey(e) {
      if (e.key === "r" && detail && !recycleBtn.disabled) {
        recycleBtn.click();
        return true;
      }
      if (e.key === "Escape" || e.key === "Backspace") {
        ctx.navigate("/workers");
        return true;
      }
      return false;
    },
  };
}

export function describe(e: Event): string {
  switch (e.type) {
    case "state_changed":
      return `${e.from ?? "—"} → ${e.to} · incarnation ${e.incarnation}${e.process ? ` (pid ${e.process.pid})` : ""} · ${e.cause}`;
    case "recycle_started":
      return `${e.reason}: ${e.detail}`;
    case "recycled":
      return `${e.reason}: pid ${e.old_process?.pid ?? "—"} → ${e.new_process?.pid ?? "—"} after ${duration(e.uptime_secs)}, ${int(e.requests)} requests · ${e.detail}`;
    case "recycle_failed":
      return `${e.reason}: ${e.error}`;
    case "storm_tripped":
      return `${e.restarts} restarts within ${duration(e.window_secs)}: held`;
    case "worker_added":
      return `added to pool ${e.pool} (${e.source})`;
    case "worker_removed":
      return `removed from pool ${e.pool}`;
    case "alert_changed":
      return `${e.alert.rule} ${e.alert.state}: ${e.alert.message}`;
    case "source_status":
      return `${e.source} ${e.degraded ? "degraded" : "recovered"}: ${e.detail}`;
    case "process_escaped":
      return e.detail;
    case "operator_action":
      return `${e.action} ${e.target} by ${e.by}${e.detail ? ` (${e.detail})` : ""}`;
  }
}

export function table(head: string[], rows: (string | Node)[][], empty: string): HTMLElement {
  if (!rows.length) return h("div.empty", empty);
  return h(
    "div.tablewrap",
    h(
      "table.grid",
      h("thead", h("tr", ...head.map((c) => h("th", c)))),
      h("tbody", ...rows.map((r) => h("tr", ...r.map((c) => h("td", c))))),
    ),
  );
}
