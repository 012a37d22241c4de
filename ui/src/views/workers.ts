// Workers: a dense table, virtualized (only the rows in view exist in the DOM), sortable, filterable,
// with keyboard navigation: ↑/↓ or j/k move, Enter opens, r recycles, x selects, / filters.
import { h, setText } from "../dom";
import { bytes, duration, int, ago } from "../format";
import { setBadge } from "../components/badge";
import type { State, WorkerDto } from "../types";
import { STATES } from "../types";
import { recycleWorkers } from "./actions";
import type { Ctx, View } from "./view";

const ROW = 30;
const OVERSCAN = 8;

type Key = "state" | "id" | "host" | "pool" | "pid" | "cpu" | "mem" | "uptime" | "requests" | "restarts" | "last";
const COLS: { key: Key | "sel"; label: string; num?: boolean; width: string }[] = [
  { key: "sel", label: "", width: "18px" },
  { key: "state", label: "State", width: "106px" },
  { key: "id", label: "Worker", width: "minmax(100px, 1.1fr)" },
  { key: "host", label: "Host", width: "minmax(60px, .5fr)" },
  { key: "pool", label: "Pool", width: "minmax(60px, .6fr)" },
  { key: "pid", label: "PID", num: true, width: "60px" },
  { key: "cpu", label: "CPU", num: true, width: "104px" },
  { key: "mem", label: "Memory / limit", num: true, width: "158px" },
  { key: "uptime", label: "Uptime", num: true, width: "80px" },
  { key: "requests", label: "Requests", num: true, width: "70px" },
  { key: "restarts", label: "Restarts", num: true, width: "56px" },
  { key: "last", label: "Last event", width: "minmax(120px, 1.8fr)" },
];
const STATE_ORDER = new Map(STATES.map((s, i) => [s, i]));

function sortValue(w: WorkerDto, k: Key): number | string {
  switch (k) {
    case "state":
      return STATE_ORDER.get(w.state) ?? 99;
    case "id":
      return w.id;
    case "host":
      return w.host ?? "";
    case "pool":
      return w.pool;
    case "pid":
      return w.pid ?? -1;
    case "cpu":
      return w.cpu_percent ?? -1;
    case "mem":
      return w.memory_bytes ?? -1;
    case "uptime":
      return w.uptime_secs;
    case "requests":
      return w.requests;
    case "restarts":
      return w.restarts;
    case "last":
      return w.last_event?.at ?? 0;
  }
}

const collator = new Intl.Collator("en", { numeric: true });

interface Row {
  el: HTMLDivElement;
  sel: HTMLInputElement;
  badge: HTMLSpanElement;
  id: HTMLAnchorElement;
  host: HTMLDivElement;
  pool: HTMLDivElement;
  pid: HTMLDivElement;
  cpuT: HTMLSpanElement;
  cpuB: HTMLElement;
  memT: HTMLSpanElement;
  memB: HTMLElement;
  uptime: HTMLDivElement;
  requests: HTMLDivElement;
  restarts: HTMLDivElement;
  last: HTMLDivElement;
  wid: string;
}

export function workers(ctx: Ctx): View {
  const { store } = ctx;
  let sortKey: Key = "id";
  let sortDir = 1;
  let text = ctx.query.get("q") ?? "";
  let poolF = ctx.query.get("pool") ?? "";
  // "" every host, "local" this Tend's own workers, else an agent's name.
  let hostF = ctx.query.get("host") ?? "";
  let stateF = (ctx.query.get("state") ?? "") as State | "";
  let cursor = 0;
  const selected = new Set<string>();
  let rows: WorkerDto[] = [];
  let lastVersion = -1;

  const filter = h("input", {
    type: "search",
    placeholder: "Filter: id, host, pool, pid, state  ( / )",
    value: text,
    style: { width: "280px" },
    "aria-label": "Filter workers",
  });
  const poolSel = h("select", { "aria-label": "Pool" });
  const hostSel = h("select", { "aria-label": "Host", style: { display: "none" } });
  const stateSel = h(
    "select",
    { "aria-label": "State" },
    h("option", { value: "" }, "All states"),
    ...STATES.map((s) => h("option", { value: s }, s)),
  );
  stateSel.value = stateF;
  const compareBtn = h("button", { disabled: true }, "Compare");
  const recycleBtn = h("button", { disabled: true }, "Recycle…");
  const err = h("span.err");
  const head = h("div.vt-head");
  const spacer = h("div.vt-spacer");
  const body = h("div.vt-body", { tabindex: 0, "aria-label": "Workers" }, spacer);
  const foot = h("div.vt-foot");
  const table = h(
    "div.vt",
    { style: { "--cols": COLS.map((c) => c.width).join(" ") } as unknown as Partial<CSSStyleDeclaration> },
    head,
    body,
    foot,
  );
  table.style.setProperty("--cols", COLS.map((c) => c.width).join(" "));
  const countEl = h("span.sub");
  const el = h(
    "div.view.fill",
    h("h1", "Workers", countEl),
    h(
      "div.toolbar",
      filter,
      hostSel,
      poolSel,
      stateSel,
      h("span.spacer"),
      err,
      compareBtn,
      recycleBtn,
      h(
        "span.kbd",
        h("kbd", "j"),
        "/",
        h("kbd", "k"),
        " move · ",
        h("kbd", "Enter"),
        " open · ",
        h("kbd", "r"),
        " recycle · ",
        h("kbd", "x"),
        " select",
      ),
    ),
    table,
  );

  const headCells = COLS.map((c) => {
    const d = h("div", { class: c.num ? "num" : "", "data-key": c.key }, c.label);
    if (c.key === "sel") {
      const all = h("input", {
        type: "checkbox",
        "aria-label": "Select all shown",
        onclick: (e: Event) => {
          const on = (e.target as HTMLInputElement).checked;
          for (const w of rows) on ? selected.add(w.id) : selected.delete(w.id);
          paint();
        },
      });
      d.replaceChildren(all);
    } else {
      d.addEventListener("click", () => {
        if (sortKey === c.key) sortDir = -sortDir;
        else {
          sortKey = c.key as Key;
          sortDir = c.num ? -1 : 1;
        }
        lastVersion = -1;
        update();
      });
    }
    head.appendChild(d);
    return d;
  });

  filter.addEventListener("input", () => {
    text = filter.value;
    cursor = 0;
    lastVersion = -1;
    update();
  });
  filter.addEventListener("keydown", (e) => {
    if (e.key === "Escape" || e.key === "Enter") {
      filter.blur();
      body.focus();
    }
  });
  hostSel.addEventListener("change", () => {
    hostF = hostSel.value;
    cursor = 0;
    lastVersion = -1;
    update();
  });
  poolSel.addEventListener("change", () => {
    poolF = poolSel.value;
    cursor = 0;
    lastVersion = -1;
    update();
  });
  stateSel.addEventListener("change", () => {
    stateF = stateSel.value as State | "";
    cursor = 0;
    lastVersion = -1;
    update();
  });
  compareBtn.addEventListener("click", () =>
    ctx.navigate("/compare?workers=" + [...selected].map(encodeURIComponent).join(",")),
  );
  recycleBtn.addEventListener("click", async () => {
    const ws = [...selected].map((id) => store.byId.get(id)).filter((w): w is WorkerDto => !!w);
    if (await recycleWorkers(ctx, ws, err)) selected.clear();
    paint();
  });
  body.addEventListener("scroll", () => paint());

  const pool: Row[] = [];
  function makeRow(): Row {
    const sel = h("input", { type: "checkbox", "aria-label": "Select" });
    const badge = h("span.badge");
    const id = h("a");
    const cpuT = h("span"),
      cpuB = h("i"),
      memT = h("span"),
      memB = h("i");
    const r: Row = {
      el: h("div.vt-row", { role: "row" }),
      sel,
      badge,
      id,
      host: h("div.muted", { "data-col": "host" }),
      pool: h("div"),
      pid: h("div.num", { "data-col": "pid" }),
      cpuT,
      cpuB,
      memT,
      memB,
      uptime: h("div.num"),
      requests: h("div.num"),
      restarts: h("div.num"),
      last: h("div.muted"),
      wid: "",
    };
    r.el.append(
      h("div", sel),
      h("div", badge),
      h("div.id", id),
      r.host,
      r.pool,
      r.pid,
      h("div.meter", cpuT, h("span.bar", cpuB)),
      h("div.meter", memT, h("span.bar", memB)),
      r.uptime,
      r.requests,
      r.restarts,
      r.last,
    );
    sel.addEventListener("click", (e) => {
      e.stopPropagation();
      sel.checked ? selected.add(r.wid) : selected.delete(r.wid);
      paint();
    });
    id.addEventListener("click", (e) => {
      e.preventDefault();
      ctx.navigate("/workers/" + encodeURIComponent(r.wid));
    });
    r.el.addEventListener("click", () => {
      cursor = rows.findIndex((w) => w.id === r.wid);
      paint();
    });
    r.el.addEventListener("dblclick", () => ctx.navigate("/workers/" + encodeURIComponent(r.wid)));
    spacer.appendChild(r.el);
    return r;
  }

  function fill(r: Row, w: WorkerDto, i: number) {
    r.el.style.transform = `translateY(${i * ROW}px)`;
    if (r.wid !== w.id) {
      r.wid = w.id;
      r.el.dataset.worker = w.id;
      r.id.textContent = w.id;
      r.id.href = "/workers/" + encodeURIComponent(w.id);
    }
    r.el.classList.toggle("cursor", i === cursor);
    r.el.classList.toggle("sel", selected.has(w.id));
    // An agent that stopped answering: its numbers are the last it sent, not live ones.
    r.el.classList.toggle("stale", w.stale);
    r.el.title = w.stale ? `${w.host} is not answering: these numbers are not live` : "";
    setText(r.host, w.host ?? "local");
    r.sel.checked = selected.has(w.id);
    setBadge(r.badge, w.state);
    setText(r.pool, w.pool);
    setText(r.pid, w.pid != null ? String(w.pid) : (w.container ?? "—"));
    setText(r.cpuT, w.cpu_percent != null ? w.cpu_percent.toFixed(1) + " %" : "—");
    r.cpuB.style.width = Math.min(100, w.cpu_percent ?? 0) + "%";
    const lim = w.memory_limit_bytes;
    // "31.4 / 80.0 MiB" when both are in MiB; each with its own unit otherwise.
    const memText =
      w.memory_bytes == null
        ? "—"
        : !lim
          ? bytes(w.memory_bytes)
          : bytes(w.memory_bytes).endsWith(" MiB") && bytes(lim).endsWith(" MiB")
            ? `${bytes(w.memory_bytes).slice(0, -4)} / ${bytes(lim)}`
            : `${bytes(w.memory_bytes)} / ${bytes(lim)}`;
    setText(r.memT, memText);
    const frac = lim && w.memory_bytes != null ? w.memory_bytes / lim : (w.memory_percent ?? 0) / 100;
    r.memB.style.width = Math.min(100, frac * 100) + "%";
    r.memB.className = frac >= 1 ? "over" : frac >= 0.75 ? "hot" : "";
    const memBar = r.memB.parentElement;
    if (memBar)
      memBar.title = lim
        ? `${(frac * 100).toFixed(0)} % of the recycle limit ${bytes(lim)}`
        : "no memory recycle limit";
    setText(r.uptime, duration(w.uptime_secs));
    setText(r.requests, int(w.requests));
    setText(r.restarts, String(w.restarts));
    const le = w.last_event;
    r.last.title = le ? `${le.state} at ${new Date(le.at).toLocaleTimeString()}: ${le.cause}` : "";
    setText(
      r.last,
      w.recycling
        ? `recycling (${w.recycling})`
        : w.held
          ? w.held
          : le
            ? `${le.state.toLowerCase()} ${ago(le.at)} — ${le.cause}`
            : "—",
    );
  }

  function paint() {
    const top = body.scrollTop;
    const hgt = body.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((top + hgt) / ROW) + OVERSCAN);
    const need = last - first;
    while (pool.length < need) pool.push(makeRow());
    for (let j = 0; j < pool.length; j++) {
      const r = pool[j];
      if (j < need) {
        r.el.style.display = "";
        fill(r, rows[first + j], first + j);
      } else if (r.el.style.display !== "none") {
        r.el.style.display = "none";
        r.wid = "";
      }
    }
    compareBtn.disabled = selected.size < 1;
    recycleBtn.disabled = selected.size < 1;
    setText(compareBtn, selected.size ? `Compare ${selected.size}` : "Compare");
    setText(recycleBtn, selected.size ? `Recycle ${selected.size}…` : "Recycle…");
  }

  function update() {
    // Pools for the filter.
    const pools = [...new Set(store.workers.map((w) => w.pool))].sort();
    if (poolSel.options.length !== pools.length + 1) {
      poolSel.replaceChildren(
        h("option", { value: "" }, "All pools"),
        ...pools.map((p) => h("option", { value: p }, p)),
      );
      poolSel.value = poolF;
    }
    const hosts = [...new Set(store.workers.map((w) => w.host ?? "local"))].sort();
    if (hostSel.options.length !== hosts.length + 1) {
      hostSel.replaceChildren(
        h("option", { value: "" }, "All hosts"),
        ...hosts.map((x) => h("option", { value: x }, x)),
      );
      hostSel.value = hostF;
      hostSel.style.display = hosts.length > 1 || hostF ? "" : "none";
    }
    if (store.version !== lastVersion) {
      lastVersion = store.version;
      const t = text.trim().toLowerCase();
      rows = store.workers.filter(
        (w) =>
          (!hostF || (w.host ?? "local") === hostF) &&
          (!poolF || w.pool === poolF) &&
          (!stateF || w.state === stateF) &&
          (!t ||
            w.id.toLowerCase().includes(t) ||
            w.pool.toLowerCase().includes(t) ||
            (w.host ?? "local").toLowerCase().includes(t) ||
            String(w.pid ?? "").includes(t) ||
            w.state.toLowerCase().includes(t)),
      );
      const k = sortKey;
      rows.sort((a, b) => {
        const va = sortValue(a, k),
          vb = sortValue(b, k);
        const c = typeof va === "string" ? collator.compare(va, vb as string) : (va as number) - (vb as number);
        return (c || collator.compare(a.id, b.id)) * sortDir;
      });
      spacer.style.height = rows.length * ROW + "px";
      if (cursor >= rows.length) cursor = Math.max(0, rows.length - 1);
      headCells.forEach((c, i) => {
        const col = COLS[i];
        if (col.key === "sel") return;
        c.classList.toggle("sorted", col.key === sortKey);
        setText(c, col.label + (col.key === sortKey ? (sortDir > 0 ? " ▲" : " ▼") : ""));
      });
      const shown =
        rows.length === store.workers.length
          ? `${rows.length} workers`
          : `${rows.length} of ${store.workers.length} workers`;
      setText(countEl, shown + (hostF ? ` on ${hostF}` : "") + (poolF ? ` in pool ${poolF}` : ""));
      setText(
        foot,
        store.loaded
          ? `${shown} · sorted by ${COLS.find((c) => c.key === sortKey)?.label.toLowerCase()} · live`
          : "Connecting…",
      );
    }
    paint();
  }

  function moveTo(i: number) {
    cursor = Math.max(0, Math.min(rows.length - 1, i));
    const y = cursor * ROW;
    if (y < body.scrollTop) body.scrollTop = y;
    else if (y + ROW > body.scrollTop + body.clientHeight) body.scrollTop = y + ROW - body.clientHeight;
    paint();
  }

  function onKey(e: KeyboardEvent): boolean {
    if (e.key === "/") {
      filter.focus();
      filter.select();
      return true;
    }
    if (e.key === "ArrowDown" || e.key === "j") {
      moveTo(cursor + 1);
      return true;
    }
    if (e.key === "ArrowUp" || e.key === "k") {
      moveTo(cursor - 1);
      return true;
    }
    if (e.key === "PageDown") {
      moveTo(cursor + Math.floor(body.clientHeight / ROW));
      return true;
    }
    if (e.key === "PageUp") {
      moveTo(cursor - Math.floor(body.clientHeight / ROW));
      return true;
    }
    if (e.key === "Home") {
      moveTo(0);
      return true;
    }
    if (e.key === "End") {
      moveTo(rows.length - 1);
      return true;
    }
    const w = rows[cursor];
    if (!w) return false;
    if (e.key === "Enter") {
      ctx.navigate("/workers/" + encodeURIComponent(w.id));
      return true;
    }
    if (e.key === "x" || e.key === " ") {
      selected.has(w.id) ? selected.delete(w.id) : selected.add(w.id);
      paint();
      return true;
    }
    if (e.key === "r") {
      void recycleWorkers(ctx, [w], err);
      return true;
    }
    return false;
  }

  requestAnimationFrame(() => body.focus({ preventScroll: true }));
  return { el, update, onKey };
}
