// Compare: several workers (or a whole pool) overlaid on one chart, one colour each, legend with values.
import { h, setText, replace } from "../dom";
import { bytes, pct } from "../format";
import { TimeChart, PALETTE } from "../components/chart";
import { badge } from "../components/badge";
import type { Ctx, View } from "./view";

const MiB = 1024 * 1024;

export function compare(ctx: Ctx): View {
  const { store } = ctx;
  const picked: string[] = (ctx.query.get("workers") ?? "").split(",").filter(Boolean);
  let metric: "cpu" | "mem" = (ctx.query.get("metric") as "cpu" | "mem") ?? "mem";
  let chart: TimeChart | null = null;
  let chartKey = "";
  const seeded = new Set<string>();
  const picker = h("div.picker");
  const poolBtns = h("span.toolbar", { style: { margin: 0 } });
  const seg = h(
    "div.seg",
    h(
      "button",
      {
        "data-metric": "cpu",
        onclick: () => {
          metric = "cpu";
          chartKey = "";
          update();
        },
      },
      "CPU %",
    ),
    h(
      "button",
      {
        "data-metric": "mem",
        onclick: () => {
          metric = "mem";
          chartKey = "";
          update();
        },
      },
      "Memory",
    ),
  );
  const chartBox = h("div");
  const legend = h("tbody");
  const el = h(
    "div.view",
    h("h1", "Compare", h("span.sub", "workers overlaid, up to the last 15 minutes")),
    h("div.toolbar", seg, h("span.muted", "Whole pool:"), poolBtns),
    h("div.panel", { style: { padding: "10px 12px", marginBottom: "12px" } }, picker),
    h("div.panel", { style: { padding: "8px" } }, chartBox),
    h(
      "div.tablewrap",
      { style: { marginTop: "12px" } },
      h(
        "table.grid.legend-table",
        h(
          "thead",
          h(
            "tr",
            h("th", ""),
            h("th", "Worker"),
            h("th", "State"),
            h("th.num", "Now"),
            h("th.num", "Min"),
            h("th.num", "Max"),
          ),
        ),
        legend,
      ),
    ),
  );

  function toggle(id: string) {
    const i = picked.indexOf(id);
    if (i >= 0) picked.splice(i, 1);
    else picked.push(id);
    chartKey = "";
    history.replaceState(null, "", "/compare?workers=" + picked.map(encodeURIComponent).join(","));
    update();
  }

  function update() {
    for (const b of seg.querySelectorAll("button")) b.classList.toggle("on", b.dataset.metric === metric);
    const ids = store.workers.map((w) => w.id);
    if (picker.childElementCount !== ids.length || picker.dataset.sel !== picked.join()) {
      picker.dataset.sel = picked.join();
      replace(
        picker,
        ...ids.map((id) => {
          const i = picked.indexOf(id);
          return h(
            "span.chip",
            { class: i >= 0 ? "on" : "", "data-worker": id, onclick: () => toggle(id) },
            i >= 0 ? h("span.sw", { style: { background: PALETTE[i % PALETTE.length] } }) : null,
            id,
          );
        }),
      );
      const pools = [...new Set(store.workers.map((w) => w.pool))];
      replace(
        poolBtns,
        ...pools.map((p) =>
          h(
            "button.small",
            {
              onclick: () => {
                picked.splice(0, picked.length, ...store.workers.filter((w) => w.pool === p).map((w) => w.id));
                chartKey = "";
                update();
              },
            },
            p,
          ),
        ),
      );
    }
    if (!picked.length) {
      if (!chartBox.querySelector(".empty")) {
        chart?.destroy();
        chart = null;
        replace(
          chartBox,
          h("div.empty", "Pick workers above, select rows in Workers and press Compare, or take a whole pool."),
        );
      }
      replace(legend);
      return;
    }
    for (const id of picked)
      if (!seeded.has(id)) {
        seeded.add(id);
        void store.seed(id).catch(() => undefined);
      }
    const key = picked.join() + metric;
    if (key !== chartKey || !chart) {
      chartKey = key;
      chart?.destroy();
      chart = new TimeChart({
        height: 320,
        spanGaps: true,
        unit: metric === "cpu" ? "%" : "MiB",
        series: picked.map((id, i) => ({ label: id, color: PALETTE[i % PALETTE.length] })),
      });
      replace(chartBox, chart.el);
    }
    // Align the series on one time axis: union of the sample times, rounded to the second.
    const times = new Set<number>();
    const per = picked.map((id) => store.series.get(id));
    for (const s of per) if (s) for (const ts of s.t) times.add(Math.round(ts));
    const xs = [...times].sort((a, b) => a - b);
    const idx = new Map(xs.map((x, i) => [x, i]));
    const ys = per.map((s) => {
      const out: (number | null)[] = new Array(xs.length).fill(null);
      if (s)
        for (let i = 0; i < s.t.length; i++) {
          const v = metric === "cpu" ? s.cpu[i] : s.mem[i] != null ? (s.mem[i] as number) / MiB : null;
          out[idx.get(Math.round(s.t[i])) as number] = v;
        }
      return out;
    });
    const now = Date.now() / 1000;
    // Up to 15 minutes; less while there is less data, so a fresh page is not a flat line at the edge.
    const span = xs.length ? Math.min(900, Math.max(120, now - xs[0])) : 900;
    chart.update([xs, ...ys], now - span, now);
    replace(
      legend,
      ...picked.map((id, i) => {
        const w = store.byId.get(id);
        const vals = ys[i].filter((v): v is number => v != null);
        const f = (v: number | undefined) => (v == null ? "—" : metric === "cpu" ? pct(v) : bytes(v * MiB));
        return h(
          "tr",
          h(
            "td",
            h("span.sw", {
              style: { display: "inline-block", width: "14px", height: "3px", background: PALETTE[i % PALETTE.length] },
            }),
          ),
          h(
            "td",
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
            ),
          ),
          h("td", w ? badge(w.state) : "gone"),
          h(
            "td.num",
            f(
              metric === "cpu"
                ? (w?.cpu_percent ?? undefined)
                : w?.memory_bytes != null
                  ? w.memory_bytes / MiB
                  : undefined,
            ),
          ),
          h("td.num", f(vals.length ? Math.min(...vals) : undefined)),
          h("td.num", f(vals.length ? Math.max(...vals) : undefined)),
        );
      }),
    );
    void setText;
  }

  return { el, update, destroy: () => chart?.destroy() };
}
