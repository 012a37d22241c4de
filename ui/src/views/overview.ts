// Overview: one card per pool — source, workers by state, CPU and memory sparklines, errors, recycles.
import { h, setText, replace } from "../dom";
import { bytes, pct, int } from "../format";
import { stateVar } from "../components/badge";
import { Sparkline } from "../components/spark";
import { poolKey } from "../store";
import type { PoolMetrics, RecycleReason, State } from "../types";
import { STATES } from "../types";
import { describe } from "./worker";
import { clock } from "../format";
import type { Ctx, View } from "./view";

const SOURCE_LABEL: Record<string, string> = {
  spawned: "spawn",
  attached: "attach",
  container: "docker",
  reported: "reported",
};

interface Card {
  el: HTMLElement;
  stack: HTMLElement;
  legend: HTMLElement;
  cpu: Sparkline;
  mem: Sparkline;
  cpuNow: HTMLElement;
  memNow: HTMLElement;
  vals: Record<string, HTMLElement>;
  reasons: HTMLElement;
  last: string;
}

export function overview(ctx: Ctx): View {
  const { store } = ctx;
  const intro = h("div");
  const grid = h("div.cards");
  const activity = h("tbody");
  const attention = h("tbody");
  const lower = h(
    "div",
    { style: { display: "grid", gridTemplateColumns: "minmax(0, 3fr) minmax(0, 2fr)", gap: "12px", marginTop: "4px" } },
    h("div", h("h2", "Recent activity"), h("div.tablewrap", h("table.grid.fixed", activity))),
    h("div", h("h2", "Needs attention"), h("div.tablewrap", h("table.grid.fixed", attention))),
  );
  const hostStrip = h("div.hosts", { "data-testid": "hosts" });
  const el = h(
    "div.view",
    h("h1", "Overview", h("span.sub", "pools and their workers")),
    intro,
    hostStrip,
    grid,
    lower,
  );
  let actKey = "";
  let hostKey = "";

  /** A hub: one badge per agent, its workers by pool and state, and whether it answers. */
  function drawHosts() {
    const by = new Map<string, { stale: boolean; pools: Map<string, Partial<Record<State, number>>> }>();
    for (const w of store.workers) {
      if (!w.host) continue;
      const host = by.get(w.host) ?? { stale: false, pools: new Map() };
      host.stale ||= w.stale;
      const pool = host.pools.get(w.pool) ?? {};
      pool[w.state] = (pool[w.state] ?? 0) + 1;
      host.pools.set(w.pool, pool);
      by.set(w.host, host);
    }
    const key = JSON.stringify([...by].map(([n, x]) => [n, x.stale, [...x.pools]]));
    if (key === hostKey) return;
    hostKey = key;
    replace(
      hostStrip,
      ...[...by]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, x]) =>
          h(
            "a.panel.host",
            { href: `/workers?host=${encodeURIComponent(name)}`, "data-host": name, title: "Show this host's workers" },
            h("b", name),
            h(`span.host-status.${x.stale ? "unreachable" : "ok"}`, x.stale ? " not answering" : " ok"),
            ...[...x.pools].map(([pool, states]) =>
              h(
                "span.muted",
                ` · ${pool}: `,
                STATES.filter((st) => states[st])
                  .map((st) => `${states[st]} ${st}`)
                  .join(", "),
              ),
            ),
          ),
        ),
    );
  }
  const cards = new Map<string, Card>();

  function makeCard(p: PoolMetrics): Card {
    const cpu = new Sparkline("#2563eb");
    const mem = new Sparkline("#7c3aed");
    const cpuNow = h("b"),
      memNow = h("b");
    const vals: Record<string, HTMLElement> = {};
    const kv = (k: string, label: string) => h("div", h("span.k", label), (vals[k] = h("span.v", "—")));
    const stack = h("div.stack"),
      legend = h("div.legend"),
      reasons = h("div.reasons");
    const host = p.host ? `&host=${encodeURIComponent(p.host)}` : "";
    const el = h(
      "div.panel.card",
      {
        "data-pool": poolKey(p),
        onclick: () => ctx.navigate(`/workers?pool=${encodeURIComponent(p.pool)}${host}`),
        title: "Show this pool's workers",
      },
      h(
        "div.card-head",
        h("span.name", p.pool),
        p.host ? h("span.tag", { title: "the agent it runs on" }, p.host) : null,
        h("span.tag", SOURCE_LABEL[p.source ?? ""] ?? p.source ?? "—"),
        h("span.spacer"),
        (vals.workers = h("span.muted")),
      ),
      stack,
      legend,
      h(
        "div.sparks",
        h("div.spark", h("div.k", h("span", "CPU (avg, 15 min)"), cpuNow), cpu.el),
        h("div.spark", h("div.k", h("span", "Memory (total, 15 min)"), memNow), mem.el),
      ),
      h(
        "div.kv",
        kv("requests", "Requests"),
        kv("errors", "Errors"),
        kv("warnings", "Warnings"),
        kv("restarts", "Restarts"),
      ),
      reasons,
    );
    return { el, stack, legend, cpu, mem, cpuNow, memNow, vals, reasons, last: "" };
  }

  function update() {
    const h0 = store.health;
    if (h0?.demo && !intro.firstChild) {
      intro.appendChild(
        h(
          "div.banner.info",
          h(
            "span",
            h("b", "No config given — running the demo pool. "),
            "Three workers of Tend's own demo worker; one leaks and is recycled about every 20 s. To watch your own workers, write a config to ",
            h("code", "tend.toml"),
            " (pools, commands, recycle limits; see the README) and start ",
            h("code", "tend serve --config tend.toml"),
            ".",
          ),
        ),
      );
    }
    if (!store.loaded) {
      if (!grid.firstChild) grid.appendChild(h("div.empty", "Connecting to Tend…"));
      return;
    }
    drawHosts();
    if (!store.pools.length) {
      if (!grid.querySelector(".empty")) replace(grid, h("div.empty", "No pools configured."));
      return;
    }
    grid.querySelector(".empty")?.remove();
    // This Tend's pools first, then each agent's, grouped by host.
    const pools = [...store.pools].sort((a, b) => (a.host ?? "").localeCompare(b.host ?? ""));
    for (const p of pools) {
      const pk = poolKey(p);
      let c = cards.get(pk);
      if (!c) {
        c = makeCard(p);
        cards.set(pk, c);
        grid.appendChild(c.el);
      }
      const key = JSON.stringify(p.by_state) + p.total_workers;
      if (key !== c.last) {
        c.last = key;
        const total = Math.max(1, p.total_workers);
        replace(
          c.stack,
          ...STATES.filter((s) => p.by_state[s]).map((s) =>
            h("span", {
              title: `${s}: ${p.by_state[s]}`,
              style: { width: ((p.by_state[s] ?? 0) / total) * 100 + "%", background: stateVar(s) },
            }),
          ),
        );
        replace(
          c.legend,
          ...STATES.filter((s) => p.by_state[s]).map((s: State) =>
            h(
              "span.count",
              h("span.dot", { style: { background: stateVar(s) } }),
              h("b", String(p.by_state[s])),
              s.toLowerCase(),
            ),
          ),
        );
      }
      setText(c.vals.workers, `${p.active_workers} of ${p.total_workers} workers live`);
      setText(c.vals.requests, int(p.total_requests));
      setText(c.vals.errors, int(p.total_errors));
      setText(c.vals.warnings, int(p.total_warnings));
      setText(c.vals.restarts, int(p.restarts));
      setText(c.cpuNow, pct(p.average_cpu_percent));
      setText(c.memNow, bytes(p.total_memory_bytes));
      const s = store.poolSeries.get(pk);
      if (s) {
        c.cpu.draw(s.t, s.cpu, 900);
        c.mem.draw(s.t, s.mem, 900);
      }
      const reasons = Object.entries(p.recycles_by_reason) as [RecycleReason, number][];
      const lastHour = p.host ? "" : recyclesLastHour(p.pool);
      setText(
        c.reasons,
        reasons.length
          ? `Recycles: ${reasons.map(([r, n]) => `${r} ${n}`).join(" · ")}${lastHour ? ` (last hour: ${lastHour})` : ""}`
          : "No recycles yet",
      );
    }
    updateLower();
  }

  function updateLower() {
    const evs = store.events.filter((e) => e.type !== "alert_changed" || e.alert.state !== "inactive");
    const recent = evs.slice(-12).reverse();
    const att = store.alerts.filter((a) => a.state === "firing" || a.state === "pending" || a.state === "flapping");
    const held = store.workers.filter((w) => w.held || w.state === "FAILED" || w.state === "TIMEOUT");
    const key = (recent[0]?.seq ?? 0) + "|" + JSON.stringify(att) + held.map((w) => w.id + w.state).join();
    if (key === actKey) return;
    actKey = key;
    const wlink = (id: string) => h("a", { href: "/workers/" + encodeURIComponent(id) }, id);
    replace(
      activity,
      ...(recent.length
        ? recent.map((e) =>
            h(
              "tr",
              h("td.muted", { style: { width: "70px" } }, clock(e.at)),
              h(
                "td",
                { style: { width: "110px" } },
                "worker" in e
                  ? e.worker === null
                    ? ""
                    : wlink(e.worker)
                  : e.type === "alert_changed"
                    ? wlink(e.alert.subject)
                    : "",
              ),
              h(
                "td.ellipsis",
                { title: describe(e) },
                h("b", e.type.replace(/_/g, " ")),
                " ",
                h("span.muted", describe(e)),
              ),
            ),
          )
        : [h("tr", h("td.empty", "No events yet."))]),
    );
    replace(
      attention,
      ...[
        ...att.map((a) =>
          h(
            "tr",
            h("td", { style: { width: "80px" } }, h(`span.sev.${a.severity}`, a.severity)),
            h("td", { style: { width: "90px" } }, wlink(a.subject)),
            h("td.ellipsis", { title: a.message }, a.state, " · ", h("span.muted", a.message)),
          ),
        ),
        ...held.map((w) =>
          h(
            "tr",
            h("td", h("span.sev.critical", w.state.toLowerCase())),
            h("td", wlink(w.id)),
            h("td.muted", w.held ?? w.last_event?.cause ?? ""),
          ),
        ),
      ].concat(
        att.length || held.length
          ? []
          : [h("tr", h("td.empty", "All quiet: no alert pending or firing, no worker failed or held."))],
      ),
    );
  }

  function recyclesLastHour(pool: string): string {
    const since = Date.now() - 3600_000;
    const by = new Map<string, number>();
    for (const r of store.recycles)
      if (r.pool === pool && r.at >= since && r.type === "recycled") by.set(r.reason, (by.get(r.reason) ?? 0) + 1);
    return [...by].map(([r, n]) => `${r} ${n}`).join(" · ");
  }

  return { el, update };
}
