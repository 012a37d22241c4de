// The frame: top bar (counts by state, firing alerts, Tend's own cost), the side navigation, the
// degraded/connection banner, and the router that swaps views. Everything redraws at most once per frame.
import { h, setText, replace } from "./dom";
import { bytes, pct } from "./format";
import { stateVar } from "./components/badge";
import { Store } from "./store";
import type { Transport } from "./transport/transport";
import { STATES } from "./types";
import { overview } from "./views/overview";
import { workers } from "./views/workers";
import { workerView } from "./views/worker";
import { compare } from "./views/compare";
import { alertsView } from "./views/alerts";
import { recyclesView } from "./views/recycles";
import { exportView } from "./views/export";
import { settings } from "./views/settings";
import { hostsView } from "./views/hosts";
import type { Ctx, View } from "./views/view";
import "./styles.css";

const NAV: [string, string][] = [
  ["/", "Overview"],
  ["/workers", "Workers"],
  ["/compare", "Compare"],
  ["/alerts", "Alerts"],
  ["/recycles", "Recycles"],
  ["/export", "Export"],
  ["/settings", "Settings"],
  ["/hosts", "Hosts"],
];

/** Screens that draw every worker's numbers: the live feed sends them every change. */
const PER_WORKER = new Set(["/workers", "/compare"]);

export function mount(root: HTMLElement, transport: Transport, store = new Store(transport)) {
  const counts = h("div.counts");
  const alertsChip = h("a.alerts-chip", { href: "/alerts", "data-testid": "alerts-chip" });
  const conn = h("span.conn", h("span.dot"), h("span", "live"));
  const selfcost = h("span.selfcost");
  const top = h(
    "header.topbar",
    h("div.brand", h("span.logo"), "Tend"),
    counts,
    alertsChip,
    h("span.spacer"),
    conn,
    selfcost,
  );
  const navLinks = NAV.map(([p, l]) =>
    h(
      "a",
      { href: p, "data-nav": l.toLowerCase() },
      h("span", l),
      l === "Alerts" ? h("span.badge-n", { style: { display: "none" } }) : null,
    ),
  );
  const nav = h("nav.side", ...navLinks, h("div.foot"));
  const banner = h("div", { style: { padding: "0 18px" } });
  const main = h("main", banner);
  root.replaceChildren(top, nav, main);

  let view: View | null = null;
  let viewEl: HTMLElement | null = null;

  function navigate(path: string, push = true) {
    if (push && path !== location.pathname + location.search) history.pushState(null, "", path);
    route();
  }

  const ctxFor = (): Ctx => ({ store, transport, navigate, query: new URLSearchParams(location.search) });

  function route() {
    view?.destroy?.();
    const path = location.pathname.replace(/\/+$/, "") || "/";
    const ctx = ctxFor();
    const m = path.match(/^\/workers\/(.+)$/);
    store.setScope(
      m
        ? { view: "worker", id: decodeURIComponent(m[1]) }
        : PER_WORKER.has(path)
          ? { view: "workers" }
          : { view: "summary" },
    );
    view = m
      ? workerView(ctx, decodeURIComponent(m[1]))
      : path === "/workers"
        ? workers(ctx)
        : path === "/compare"
          ? compare(ctx)
          : path === "/alerts"
            ? alertsView(ctx)
            : path === "/recycles"
              ? recyclesView(ctx)
              : path === "/export"
                ? exportView(ctx)
                : path === "/settings"
                  ? settings(ctx)
                  : path === "/hosts"
                    ? hostsView(ctx)
                    : overview(ctx);
    if (viewEl) viewEl.remove();
    viewEl = view.el;
    main.appendChild(viewEl);
    main.scrollTop = 0;
    const section = path === "/" ? "/" : "/" + path.split("/")[1];
    for (const a of navLinks) a.classList.toggle("active", a.getAttribute("href") === section);
    document.title = "Tend · " + (NAV.find(([p]) => p === section)?.[1] ?? "Overview");
    view.update();
  }

  // Links inside the app navigate without reloading.
  document.addEventListener("click", (e) => {
    const a = (e.target as Element).closest?.("a");
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
    const href = a.getAttribute("href");
    if (!href?.startsWith("/") || href.startsWith("/api/")) return;
    e.preventDefault();
    navigate(href);
  });
  addEventListener("popstate", () => route());
  // Desktop: a click on a notification about a worker opens its page.
  transport.onOpenWorker?.((id) => navigate("/workers/" + encodeURIComponent(id)));

  document.addEventListener("keydown", (e) => {
    const t = e.target as HTMLElement;
    if (e.ctrlKey || e.metaKey || e.altKey || document.querySelector("dialog[open]")) return;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA") && e.key !== "Escape")
      return;
    if (view?.onKey?.(e)) {
      e.preventDefault();
      return;
    }
    const n = Number(e.key);
    if (n >= 1 && n <= NAV.length) {
      navigate(NAV[n - 1][0]);
      e.preventDefault();
    }
  });

  let lastCounts = "";
  // The UI benchmark reads how long each batched update took (only when it asks for it).
  const workTimes = (window as unknown as { __tendWork?: number[] }).__tendWork;
  function frame() {
    const t0 = performance.now();
    render();
    workTimes?.push(performance.now() - t0);
  }
  function render() {
    const hl = store.health;
    const by = hl?.by_state ?? {};
    const key = JSON.stringify(by) + (hl ? 1 : 0);
    if (key !== lastCounts) {
      lastCounts = key;
      const shown = STATES.filter((s) => by[s]);
      replace(
        counts,
        ...(hl
          ? (shown.length ? shown : []).map((s) =>
              h(
                "a.count",
                { href: "/workers?state=" + s, "data-state": s, title: `${by[s]} ${s}` },
                h("span.dot", { style: { background: stateVar(s) } }),
                h("b", String(by[s])),
                s.toLowerCase(),
              ),
            )
          : [h("span.count", "connecting…")]),
      );
      if (hl && !shown.length) counts.appendChild(h("span.count", "no workers"));
    }
    const firing = store.firing().length;
    alertsChip.classList.toggle("on", firing > 0);
    setText(alertsChip, firing ? `▲ ${firing} alert${firing > 1 ? "s" : ""} firing` : "no alerts firing");
    const badgeN = navLinks[3].querySelector(".badge-n") as HTMLElement;
    badgeN.style.display = firing ? "" : "none";
    setText(badgeN, String(firing));
    const live = store.reachable && store.streamConnected;
    conn.classList.toggle("off", !live);
    setText(conn.lastElementChild as HTMLElement, live ? "live" : store.reachable ? "reconnecting" : "offline");
    if (hl) {
      const t = hl.tend;
      replace(selfcost, "tend ", h("b", pct(t.cpu_percent)), " cpu · ", h("b", bytes(t.memory_bytes)));
      setText(nav.lastElementChild as HTMLElement, `tend ${hl.version}${hl.demo ? " · demo" : ""}`);
    }
    // Banner: a failing source, or Tend itself unreachable. Never a blank screen: the last data stays.
    const msgs: [string, string][] = [];
    if (!store.reachable && store.loaded)
      msgs.push([
        "error",
        `Lost contact with Tend (${store.lastError}) — retrying every second; showing the last known state.`,
      ]);
    else if (!store.reachable)
      msgs.push([
        "error",
        `Cannot reach Tend at ${location.origin}/api/v1 (${store.lastError || "connecting"}) — retrying.`,
      ]);
    if (hl?.status === "degraded")
      for (const [s, d] of Object.entries(hl.degraded))
        msgs.push(["warn", `⚠ ${s} unreachable — ${d}. Retrying; other sources keep reporting.`]);
    if (hl?.status === "stopping") msgs.push(["warn", "Tend is stopping: workers are being drained."]);
    if (hl?.transport?.insecure_http)
      msgs.push([
        "warn",
        "⚠ This console is served over plain HTTP on a network address (insecure_http = true): tokens and data cross the network unencrypted. Set [server] tls.",
      ]);
    const bkey = JSON.stringify(msgs);
    if (banner.dataset.key !== bkey) {
      banner.dataset.key = bkey;
      replace(
        banner,
        ...msgs.map(([k, m]) =>
          h(`div.banner.${k}`, { role: "status", style: { marginTop: "12px", marginBottom: "0" } }, m),
        ),
      );
    }
    view?.update();
  }
  store.onChange(frame);
  // Tests read how many times the screen was rendered (it must not move while the window is hidden).
  Object.defineProperty(window, "__tendRenders", { get: () => store.renders, configurable: true });
  route();
  store.start();
  return { store, navigate };
}
