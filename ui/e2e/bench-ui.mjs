// UI benchmark: the real app over a fake transport of 500 synthetic workers whose metrics change every
// second and a few of whose states change every second (src/bench.ts), in Debian's chromium through
// playwright-core. For each screen it warms up, then records every animation frame's interval and the
// time each batched update took, and reports percentiles. `--write FILE` puts the table into FILE
// between markers (docs/PERFORMANCE.md, section "UI"). Target: no frame over 50 ms at steady state.
import { createServer } from "node:http";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { extname, join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { cpus, loadavg } from "node:os";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS } from "./chromium.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(here, "../dist");
const args = process.argv.slice(2);
const out = args.includes("--write") ? args[args.indexOf("--write") + 1] : null;
const loadBefore = loadavg()[0];
const WORKERS = Number(process.env.BENCH_WORKERS ?? 500);
const WARMUP_S = Number(process.env.BENCH_WARMUP ?? 5);
const MEASURE_S = Number(process.env.BENCH_SECONDS ?? 30);
const VIEWS = [
  ["/workers", "Workers table"],
  ["/", "Overview"],
  ["/compare?workers=api-0,api-1,batch-0,etl-0,render-0,mail-0,api-2,batch-1", "Compare (8 workers)"],
];
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml" };

if (!existsSync(join(dist, "bench.html"))) {
  console.error("ui/dist/bench.html is missing: run `make ui` (npm run build in ui/) first");
  process.exit(1);
}
// A static server for ui/dist on loopback, so the page loads as it would from tend serve.
const server = createServer((req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  const file = join(dist, path === "/" ? "bench.html" : path);
  if (!file.startsWith(dist) || !existsSync(file)) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
};
const rows = [];
for (const [view, label] of VIEWS) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(`${base}/bench.html?workers=${WORKERS}&view=${encodeURIComponent(view)}`);
  await page.waitForTimeout(WARMUP_S * 1000);
  const r = await page.evaluate(async (seconds) => {
    const work = window.__tendWork;
    work.length = 0;
    const frames = [];
    // Main-thread tasks over 50 ms (our code, GC, layout): tells a slow page from a busy machine.
    const longTasks = [];
    const po = new PerformanceObserver((l) => {
      for (const e of l.getEntries()) longTasks.push(e.duration);
    });
    po.observe({ type: "longtask", buffered: false });
    let last = performance.now();
    const end = last + seconds * 1000;
    await new Promise((done) => {
      const tick = (t) => {
        frames.push(t - last);
        last = t;
        if (t < end) requestAnimationFrame(tick);
        else done();
      };
      requestAnimationFrame(tick);
    });
    po.disconnect();
    return { frames, work: [...work], longTasks, rows: document.querySelectorAll(".vt-row").length };
  }, MEASURE_S);
  if (view === "/workers")
    await page.screenshot({ path: join(here, "screenshots", "bench-workers.png") }).catch(() => {});
  await page.close();
  const f = r.frames;
  rows.push({
    label,
    frames: f.length,
    p50: pct(f, 50),
    p99: pct(f, 99),
    max: Math.max(...f),
    over50: f.filter((x) => x > 50).length,
    longN: r.longTasks.length,
    longMax: r.longTasks.length ? Math.max(...r.longTasks) : 0,
    updates: r.work.length,
    w50: pct(r.work, 50),
    w99: pct(r.work, 99),
    wmax: Math.max(...r.work),
    dom: r.rows,
  });
}
await browser.close();
server.close();

const ms = (x) => (Number.isFinite(x) ? x.toFixed(1) : "—");
const table = [
  `| screen (${WORKERS} workers, 1 Hz) | frames | frame p50 | frame p99 | frame max | frames > 50 ms | main-thread tasks > 50 ms | updates | update p50 | update p99 | update max |`,
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ...rows.map(
    (r) =>
      `| ${r.label}${r.dom ? ` (${r.dom} row nodes)` : ""} | ${r.frames} | ${ms(r.p50)} ms | ${ms(r.p99)} ms | ${ms(r.max)} ms | ${r.over50} | ${r.longN}${r.longN ? ` (max ${ms(r.longMax)} ms)` : ""} | ${r.updates} | ${ms(r.w50)} ms | ${ms(r.w99)} ms | ${ms(r.wmax)} ms |`,
  ),
].join("\n");
const ok = rows.every((r) => r.over50 === 0);
const heading = WORKERS === 500 ? "## UI" : `#### The console with ${WORKERS} workers`;
const section = `${heading}

\`make bench-ui\`: the web UI in headless Chromium ${
  (await import("node:child_process"))
    .execSync(`${process.env.CHROMIUM ?? "/usr/bin/chromium"} --version 2>/dev/null || true`)
    .toString()
    .trim()
    .replace(/^Chromium /, "")
    .replace(/ built on.*/, "") || ""
} (1280×800, software
rendering) over a fake transport of ${WORKERS} synthetic workers in 5 pools: every second each worker's CPU,
memory, uptime and requests change and 5 workers change state (SSE-style events); the page polls as it does
against \`tend serve\`. After ${WARMUP_S} s of warm-up, ${MEASURE_S} s of \`requestAnimationFrame\` intervals ("frame")
and the time of each batched update of the screen ("update", model → DOM, once per frame with changes).
Machine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, load average ${loadBefore.toFixed(1)} before → ${loadavg()[0].toFixed(1)} after
(other work on the machine shows up as long frames). Target: no frame over 50 ms at steady state — ${ok ? "met" : "**not met**"}.

${table}

"update" is the model → DOM work of one batched update (our code); "main-thread tasks" are every task over
50 ms seen while measuring, wall time (garbage collection, style and layout, parsing, and any time the
renderer was descheduled on a busy machine all count). Long frames with short updates point at the
machine or the engine, not at the page's own work.

The Workers table is virtualized: whatever the worker count, only the rows in view (plus 8 above and below)
exist in the DOM, and an update rewrites only the text and bar widths that changed.
`;
console.log(section);
if (out) {
  // The default 500 workers have their block; another count (a hub's 5000) has one of its own.
  const tag = WORKERS === 500 ? "tend-bench-ui" : `tend-bench-ui-${WORKERS}`;
  const by = WORKERS === 500 ? "make bench-ui" : `BENCH_WORKERS=${WORKERS} make bench-ui`;
  const BEGIN = `<!-- ${tag}:begin (generated by \`${by}\`; edits inside are overwritten) -->`;
  const END = `<!-- ${tag}:end -->`;
  const old = existsSync(out) ? readFileSync(out, "utf8") : "# Tend performance\n";
  const block = `${BEGIN}\n${section}${END}`;
  const a = old.indexOf(BEGIN),
    b = old.indexOf(END);
  writeFileSync(
    out,
    a >= 0 && b > a ? old.slice(0, a) + block + old.slice(b + END.length) : old.trimEnd() + "\n\n" + block + "\n",
  );
  console.log(`written into ${out}`);
}
// A measurement, not a test: the exit code does not depend on the target.
process.exit(0);
