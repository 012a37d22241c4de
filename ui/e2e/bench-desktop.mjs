// Desktop cost benchmark: the release `tend-desktop` driven by tauri-driver (WebDriver), and for
// comparison the web console of a release `tend serve` in Debian's chromium (playwright-core, a real
// window), on the same screens. For each case it waits for the warm-up, then over the window it reads
// each process's CPU (Δ utime+stime from /proc) and PSS (smaps_rollup) — the app's processes only: the
// workers it watches are excluded — and, from the page, renders per second and the bytes of data the
// UI received per second (JSON characters). Cases: the embedded demo (3 workers) on Overview, Workers
// and a worker's page, visible and hidden; 500 attached `sleep` processes on Workers and Overview.
// Run under a display and a session bus (`make bench` does):
//   xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- node e2e/bench-desktop.mjs --write ../docs/PERFORMANCE.md
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, loadavg, cpus } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, webDriver } from "./webdriver.mjs";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const args = process.argv.slice(2);
const out = args.includes("--write") ? args[args.indexOf("--write") + 1] : null;
const APP = process.env.TEND_DESKTOP_BIN ?? join(root, "target/release/tend-desktop");
const TEND = process.env.TEND_BIN ?? join(root, "target/release/tend");
const WARMUP_S = Number(process.env.BENCH_WARMUP ?? 20);
const MEASURE_S = Number(process.env.BENCH_SECONDS ?? 30);
const MANY = Number(process.env.BENCH_WORKERS ?? 500);
const TCK = 100; // USER_HZ on Linux
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

for (const b of [APP, TEND])
  if (!existsSync(b)) throw new Error(`${b} is not built: cargo build --release -p tend -p tend-desktop`);

// ---- /proc --------------------------------------------------------------------------------------
const statOf = (pid) => readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
const cpuSecs = (pid) => {
  const r = statOf(pid);
  return (Number(r[11]) + Number(r[12])) / TCK;
};
const pssMiB = (pid) => Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))[1]) / 1024;
const commOf = (pid) => readFileSync(`/proc/${pid}/comm`, "utf8").trim();
const cmdOf = (pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
function children() {
  const by = new Map();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ppid = Number(statOf(d)[1]);
      if (!by.has(ppid)) by.set(ppid, []);
      by.get(ppid).push(Number(d));
    } catch {
      /* gone */
    }
  }
  return by;
}
/** `pid` and its descendants, except the workers (demo workers, sleepers) and session buses. */
function appTree(pid) {
  const by = children();
  const all = [];
  const walk = (p) => {
    try {
      const c = commOf(p);
      const cmd = cmdOf(p);
      if (c === "sleep" || c.startsWith("dbus") || cmd.includes("demo-worker")) return;
      // The page's process: WebKit's web process, or a chromium renderer.
      const page = c.startsWith("WebKitWebProc") || cmd.includes("--type=renderer");
      all.push({ pid: p, name: cmd.includes("--type=") ? `${c} ${/--type=([\w-]+)/.exec(cmd)[1]}` : c, page });
    } catch {
      return;
    }
    for (const k of by.get(p) ?? []) walk(k);
  };
  walk(pid);
  return all;
}
/** CPU % of one core per process over `secs`, and PSS at the end. */
async function measure(pid, secs) {
  const procs = appTree(pid);
  const before = new Map(procs.map((p) => [p.pid, cpuSecs(p.pid)]));
  const t0 = performance.now();
  await pause(secs * 1000);
  const dt = (performance.now() - t0) / 1000;
  const rows = [];
  for (const p of procs) {
    try {
      rows.push({
        name: p.name,
        page: p.page,
        cpu: (100 * (cpuSecs(p.pid) - before.get(p.pid))) / dt,
        pss: pssMiB(p.pid),
      });
    } catch {
      /* ended during the window */
    }
  }
  return { rows, dt };
}

// ---- workers to watch -----------------------------------------------------------------------------
const work = mkdtempSync(join(tmpdir(), "tend-bench-desktop-"));
const SLEEP_ARG = "100777";
let sleepers = [];
function startSleepers(n) {
  sleepers = Array.from({ length: n }, () => spawn("sleep", [SLEEP_ARG], { stdio: "ignore" }));
}
const manyConfig = join(work, "many.toml");
writeFileSync(
  manyConfig,
  `[[pool]]\nname = "sleepers"\nsource = "attach"\ncmdline = "^sleep ${SLEEP_ARG}$"\nprofile = "standard"\n`,
);

// ---- the desktop app through tauri-driver ------------------------------------------------------
async function desktop(config) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const dir = mkdtempSync(join(work, "app-"));
  const env = { ...process.env, TEND_DATA_DIR: join(dir, "data"), XDG_CONFIG_HOME: join(dir, "config") };
  delete env.WEBKIT_DISABLE_COMPOSITING_MODE; // as a user starts it: the app chooses
  if (config) env.TEND_CONFIG = config;
  const driver = spawn("tauri-driver", ["--port", String(port), "--native-port", String(await freePort())], {
    env,
    stdio: "ignore",
  });
  const wd = webDriver(base);
  for (let i = 0; ; i++) {
    if (
      await fetch(base + "/status").then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    if (i > 100) throw new Error("tauri-driver did not start");
    await pause(200);
  }
  const caps = { alwaysMatch: { "tauri:options": { application: APP }, "wdio:enforceWebDriverClassic": true } };
  const { sessionId } = await wd("POST", "/session", { capabilities: caps });
  const exec = (script, a = []) => wd("POST", `/session/${sessionId}/execute/sync`, { script, args: a });
  const invoke = (cmd, a = {}) =>
    wd("POST", `/session/${sessionId}/execute/async`, {
      script:
        "const done = arguments[arguments.length - 1]; window.__TAURI_INTERNALS__.invoke(arguments[0], arguments[1]).then(done, (e) => done({ err: e }));",
      args: [cmd, a],
    });
  // The app: the process running APP among the driver's descendants.
  let app = 0;
  for (let i = 0; !app && i < 100; i++) {
    const by = children();
    const stack = [driver.pid];
    while (stack.length) {
      const p = stack.pop();
      try {
        if (readFileSync(`/proc/${p}/cmdline`, "utf8").startsWith(APP)) app = p;
      } catch {
        /* gone */
      }
      stack.push(...(by.get(p) ?? []));
    }
    if (!app) await pause(100);
  }
  return {
    app,
    exec,
    invoke,
    async goto(path) {
      await exec("history.pushState(null, '', arguments[0]); dispatchEvent(new PopStateEvent('popstate'))", [path]);
    },
    async close() {
      // SIGTERM quits like the close button: the demo's workers are drained.
      process.kill(app, "SIGTERM");
      for (let i = 0; i < 100 && existsSync(`/proc/${app}`); i++) await pause(100);
      await wd("DELETE", `/session/${sessionId}`).catch(() => {});
      driver.kill("SIGTERM");
    },
  };
}

/** Renders and bytes per second over the window, from the page's counters. */
async function pageCounters(page, body) {
  await page.exec("window.__tendBytes = 0");
  const r0 = await page.exec("return window.__tendRenders ?? 0");
  const m = await body();
  const [r1, bytes] = await page.exec("return [window.__tendRenders ?? 0, window.__tendBytes ?? 0]");
  return { ...m, renders: (r1 - r0) / m.dt, bytes: bytes / m.dt };
}

const results = [];
function record(kind, fleet, screen, m) {
  const cpu = m.rows.reduce((a, r) => a + r.cpu, 0);
  const pss = m.rows.reduce((a, r) => a + r.pss, 0);
  const uiCpu = m.rows.filter((r) => r.page).reduce((a, r) => a + r.cpu, 0);
  results.push({
    kind,
    fleet,
    screen,
    cpu,
    pss,
    uiCpu,
    renders: m.renders,
    bytes: m.bytes,
    rows: m.rows,
  });
  const procs = m.rows.map((r) => `${r.name} ${r.cpu.toFixed(2)}%/${r.pss.toFixed(0)}M`).join(", ");
  console.log(
    `${kind} · ${fleet} · ${screen}: ${cpu.toFixed(2)} % · ${pss.toFixed(0)} MiB PSS · ${m.renders?.toFixed(2)} renders/s · ${Math.round(m.bytes ?? 0)} B/s  [${procs}]`,
  );
}

async function desktopCases(fleet, config, screens, alsoHidden) {
  const d = await desktop(config);
  try {
    for (const [path, name] of screens) {
      await d.goto(path);
      await pause(WARMUP_S * 1000);
      record("desktop", fleet, name, await pageCounters(d, () => measure(d.app, MEASURE_S)));
    }
    if (alsoHidden) {
      await d.goto("/");
      await d.invoke("plugin:window|hide", { label: "main" });
      await pause(WARMUP_S * 1000);
      record("desktop", fleet, "Overview, hidden", await pageCounters(d, () => measure(d.app, MEASURE_S)));
      await d.invoke("plugin:window|show", { label: "main" });
    }
  } finally {
    await d.close();
  }
}

// ---- the web console in chromium --------------------------------------------------------------
async function browserCases(fleet, config, screens) {
  const port = await freePort();
  const dir = mkdtempSync(join(work, "serve-"));
  const a = ["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", join(dir, "data")];
  if (config) a.push("--config", config);
  const serve = spawn(TEND, a, { stdio: "ignore" });
  const base = `http://127.0.0.1:${port}`;
  for (
    let i = 0;
    !(await fetch(base + "/api/v1/health").then(
      (r) => r.ok,
      () => false,
    ));
    i++
  ) {
    if (i > 100) throw new Error("tend serve did not start");
    await pause(200);
  }
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: false,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--window-size=1280,800",
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  const exec = (script) => page.evaluate(`(() => { ${script} })()`);
  // The browser's main process (no --type=): its renderers, GPU and utility processes are its children.
  const mains = execFileSync("pgrep", ["-x", "chromium"]).toString().trim().split("\n").map(Number);
  const chromiumPid = Math.max(...mains.filter((p) => !cmdOf(p).includes("--type=")));
  try {
    await page.goto(base + "/");
    for (const [path, name] of screens) {
      await page.evaluate((p) => {
        history.pushState(null, "", p);
        dispatchEvent(new PopStateEvent("popstate"));
      }, path);
      await pause(WARMUP_S * 1000);
      const m = await pageCounters({ exec }, () => measure(chromiumPid, MEASURE_S));
      record("browser", fleet, name, m);
    }
  } finally {
    await browser.close();
    serve.kill("SIGTERM");
    await new Promise((r) => serve.once("exit", r));
  }
}

// ---- run --------------------------------------------------------------------------------------
const loadBefore = loadavg()[0];
const DEMO_SCREENS = [
  ["/", "Overview"],
  ["/workers", "Workers"],
  ["/workers/demo-1", "a worker's page"],
];
const MANY_SCREENS = [
  ["/workers", "Workers"],
  ["/", "Overview"],
];
// BENCH_ONLY=desktop or browser runs one side (e.g. the browser against an older UI: TEND_UI_DIR).
const only = process.env.BENCH_ONLY;
try {
  if (only !== "browser") await desktopCases("demo (3)", null, DEMO_SCREENS, true);
  if (only !== "desktop") await browserCases("demo (3)", null, DEMO_SCREENS);
  startSleepers(MANY);
  if (only !== "browser") await desktopCases(`${MANY} attached`, manyConfig, MANY_SCREENS, true);
  if (only !== "desktop") await browserCases(`${MANY} attached`, manyConfig, MANY_SCREENS);
} finally {
  for (const s of sleepers) s.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
}

// ---- report -----------------------------------------------------------------------------------
const f = (x, d = 1) => (x == null || Number.isNaN(x) ? "—" : x.toFixed(d));
const lines = [
  `${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model.trim()}, load average ${loadBefore.toFixed(1)} → ${loadavg()[0].toFixed(1)}.`,
  `Release builds; ${WARMUP_S} s of warm-up per case, then ${MEASURE_S} s measured. CPU is % of one core, Δ(utime+stime) from /proc of`,
  "each process of the app (the workers it watches excluded), summed; memory is PSS (shared pages counted once).",
  "",
  "| app | workers | screen | CPU, whole app | of which the page | PSS | renders/s | data in, B/s |",
  "|---|---|---|---:|---:|---:|---:|---:|",
  ...results.map(
    (r) =>
      `| ${r.kind} | ${r.fleet} | ${r.screen} | ${f(r.cpu, 2)} % | ${f(r.uiCpu, 2)} % | ${f(r.pss, 0)} MiB | ${f(r.renders, 2)} | ${Math.round(r.bytes ?? 0)} |`,
  ),
  "",
  "Per process:",
  "",
  ...results.map(
    (r) =>
      `- ${r.kind}, ${r.fleet}, ${r.screen}: ${r.rows.map((p) => `${p.name} ${f(p.cpu, 2)} % / ${f(p.pss, 0)} MiB`).join(" · ")}`,
  ),
];
const table = lines.join("\n");
console.log("\n" + table);
if (out) {
  const BEGIN = "<!-- tend-bench-desktop:begin (generated by `make bench`; edits inside are overwritten) -->";
  const END = "<!-- tend-bench-desktop:end -->";
  const doc = readFileSync(out, "utf8");
  const i = doc.indexOf(BEGIN),
    j = doc.indexOf(END);
  if (i < 0 || j < 0) throw new Error(`${out} has no ${BEGIN} … ${END} markers`);
  writeFileSync(out, doc.slice(0, i + BEGIN.length) + "\n" + table + "\n" + doc.slice(j));
}
