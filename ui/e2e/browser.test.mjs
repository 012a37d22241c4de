// Browser end-to-end tests: a real `tend serve` running the embedded demo on 127.0.0.1:<free port>, serving
// the built UI, driven by Debian's Chromium through playwright-core. Run by `make ui-test` (which builds
// tend and the UI first) or `npm run test:e2e` in ui/. Screenshots of every screen go to e2e/screenshots/.
//
// The demo: three workers; demo-2 leaks ~3 MiB/s, its "memory-high" alert fires above 60 MiB and the
// recycle policy replaces it at 80 MiB, about every 20 s.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, until } from "./chromium.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const ui = resolve(here, "..");
const TEND = process.env.TEND_BIN ?? resolve(ui, "../target/debug/tend");
const SHOTS = join(here, "screenshots");
mkdirSync(SHOTS, { recursive: true });

let tend, base, browser, page;
// Its own data directory: the history store must not mix in other runs' workers.
const dataDir = mkdtempSync(join(tmpdir(), "tend-ui-e2e-"));
const stderr = [];

async function api(path, init) {
  const res = await fetch(base + "/api/v1" + path, init);
  return res.json();
}

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, name + ".png") });
}

before(async () => {
  tend = spawn(TEND, ["serve", "--listen", "127.0.0.1:0"], {
    env: { ...process.env, TEND_UI_DIR: join(ui, "dist"), TEND_DATA_DIR: dataDir, TEND_LOG: "warn" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  base = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("tend did not start listening:\n" + stderr.join(""))), 30_000);
    tend.stderr.on("data", (b) => {
      stderr.push(b.toString());
      // The whole text so far: the line can arrive in more than one chunk (stderr is unbuffered).
      const m = stderr.join("").match(/tend: listening on (http:\/\/[\d.:]+)\n/);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    tend.on("exit", (c) => fail(new Error(`tend exited (${c}):\n${stderr.join("")}`)));
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  page = await context.newPage();
  page.on("pageerror", (e) => {
    throw e;
  });
});

after(async () => {
  await browser?.close();
  if (tend && tend.exitCode == null) {
    tend.kill("SIGTERM");
    await new Promise((r) => {
      tend.on("exit", r);
      setTimeout(r, 10_000);
    });
  }
  rmSync(dataDir, { recursive: true, force: true });
});

test("the UI is served at / with client routes falling back to index.html", async () => {
  for (const path of ["/", "/workers", "/workers/demo-0", "/settings"]) {
    const res = await fetch(base + path);
    assert.equal(res.status, 200, path);
    assert.match(await res.text(), /<div id="app">/, path);
  }
  assert.equal((await fetch(base + "/api/v1/nope")).status, 404);
  assert.equal((await fetch(base + "/assets/missing.js")).status, 404);
});

test("overview shows the demo pool and the empty-state note", async () => {
  await page.goto(base + "/");
  await page.waitForSelector('.card[data-pool="demo"]');
  await page.getByText("No config given — running the demo pool").waitFor();
  await page.waitForTimeout(1500);
  await shot("overview");
});

test("the workers table lists the workers with live-changing states", async () => {
  await page.goto(base + "/workers");
  await until("three worker rows", async () => (await page.locator(".vt-row[data-worker]:visible").count()) === 3);
  const ids = await page
    .locator(".vt-row[data-worker]:visible")
    .evaluateAll((rs) => rs.map((r) => r.dataset.worker).sort());
  assert.deepEqual(ids, ["demo-0", "demo-1", "demo-2"]);
  // Watch the rows without reloading: demo-2 is recycled (new pid) and states change.
  const read = () =>
    page.locator(".vt-row[data-worker]:visible").evaluateAll((rs) =>
      rs.map((r) => ({
        id: r.dataset.worker,
        state: r.querySelector(".badge")?.textContent,
        pid: r.querySelector("[data-col=pid]")?.textContent,
      })),
    );
  const first = (await read()).find((r) => r.id === "demo-2");
  const states = new Set();
  await until(
    "demo-2's pid to change in the table and two different states",
    async () => {
      const rows = await read();
      for (const r of rows) states.add(r.state);
      const now = rows.find((r) => r.id === "demo-2");
      return now.pid !== first.pid && states.size >= 2 ? { pid: now.pid, states: [...states] } : null;
    },
    60_000,
  );
  // Keyboard: j moves the cursor, Enter opens the worker.
  await page.locator(".vt-body").focus();
  await page.keyboard.press("j");
  await page.keyboard.press("k");
  await shot("workers");
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/workers\/demo-0$/);
});

test("the leaky worker's memory chart rises and its recycle appears in the timeline", async () => {
  await page.goto(base + "/workers/demo-2");
  const mem = page.locator('[data-chart="memory"]');
  await until("memory chart points", async () => Number(await mem.getAttribute("data-points")) > 3);
  let prev = Number(await mem.getAttribute("data-last"));
  let rises = 0;
  await until(
    "the memory chart to rise three times in a row",
    async () => {
      await page.waitForTimeout(1000);
      const v = Number(await mem.getAttribute("data-last"));
      rises = v > prev + 0.5 ? rises + 1 : 0;
      prev = v;
      return rises >= 3;
    },
    60_000,
    0,
  );
  await page.locator('.tl-mark.recycle[data-reason="memory"]').first().waitFor({ timeout: 45_000 });
  await until(
    "an incarnation's lane in the timeline",
    async () => (await page.locator(".tl-seg[data-state=WORKING]").count()) > 0,
  );
  await shot("worker");
  const [png] = await Promise.all([page.waitForEvent("download"), page.click('button[data-action="png"]')]);
  assert.match(png.suggestedFilename(), /^tend-demo-2-.*\.png$/);
  assert.deepEqual(
    [...readFileSync(await png.path()).subarray(1, 4)].map((b) => String.fromCharCode(b)).join(""),
    "PNG",
  );
});

test("Recycle with confirmation changes the worker's pid and logs a manual recycle", async () => {
  await page.goto(base + "/workers/demo-0");
  const pidEl = page.locator("[data-pid]");
  await until("demo-0's pid", async () => /^\d+$/.test((await pidEl.textContent()) ?? ""));
  const oldPid = await pidEl.textContent();
  await page.click('button[data-action="recycle"]');
  const dialog = page.locator("dialog[open]");
  await dialog.waitFor();
  const text = await dialog.textContent();
  assert.match(text, /demo-0/);
  assert.match(text, /start a replacement, then drain this one/);
  await shot("recycle-confirm");
  await dialog.getByRole("button", { name: "Recycle demo-0" }).click();
  await until("demo-0's pid to change", async () => {
    const p = await pidEl.textContent();
    return /^\d+$/.test(p ?? "") && p !== oldPid;
  });
  await page.goto(base + "/recycles");
  const row = page.locator("tr", { hasText: "demo-0" }).filter({ hasText: "manual" });
  await row.first().waitFor({ timeout: 30_000 });
  assert.match(await row.first().textContent(), new RegExp(`${oldPid} → \\d+`));
  await shot("recycles");
});

test("CSV export downloads a file with the expected header", async () => {
  await page.goto(base + "/export");
  await page.waitForSelector('button[data-action="export"]');
  await page.waitForTimeout(1500);
  const [download] = await Promise.all([page.waitForEvent("download"), page.click('button[data-action="export"]')]);
  const file = await download.path();
  const lines = readFileSync(file, "utf8").trim().split("\n");
  assert.match(lines[0], /^time,worker,pool,incarnation,pid,state,/);
  assert.match(lines[0], /cpu_percent/);
  assert.match(lines[0], /memory_bytes/);
  assert.ok(lines.length > 1, "the export has data rows");
  assert.match(lines[1], /^\d{4}-\d\d-\d\dT[\d:.]+Z,demo-\d,demo,/);
  await page.getByText(/Saved tend-samples-/).waitFor();
  await shot("export");
});

test("an alert can be acknowledged and silenced", async () => {
  await page.goto(base + "/alerts");
  const row = page.locator('tr[data-alert="memory-high:demo-2"]');
  await row.waitFor({ timeout: 45_000 });
  await row.locator("button[data-ack]").click();
  await until(
    "the alert acknowledged on the server",
    async () => (await api("/alerts")).find((a) => a.rule === "memory-high" && a.subject === "demo-2")?.acknowledged,
    5_000,
  );
  await row.locator("select[data-silence]").selectOption("15");
  const silenced = await until(
    "the alert silenced on the server",
    async () => (await api("/alerts")).find((a) => a.rule === "memory-high" && a.subject === "demo-2")?.silenced_until,
    5_000,
  );
  assert.ok(silenced > Date.now() + 14 * 60_000 && silenced < Date.now() + 16 * 60_000, `silenced until ${silenced}`);
  await row.getByText(/silenced until/).waitFor();
  await shot("alerts");
});

test("compare and settings render", async () => {
  await page.goto(base + "/compare?workers=demo-0,demo-1,demo-2");
  await until(
    "compare chart points",
    async () => Number(await page.locator(".uplot").first().locator("..").getAttribute("data-points")) > 2,
  );
  await shot("compare");
  await page.goto(base + "/settings");
  await page.getByText("none — running the embedded demo pool").waitFor();
  await page
    .locator('[data-testid="budget"]')
    .getByText(/at most 3 per rule/)
    .waitFor();
  assert.equal((await api("/settings")).notifications.per_rule, 3);
  // The demo has no attach pool: health reports no discovery, and Settings says so.
  assert.equal((await api("/health")).discovery, null);
  await page.locator('[data-testid="discovery"]').getByText("no attach pool").waitFor();
  await shot("settings");
});

test("a hundred screen changes leave the JS heap where it was", async () => {
  await page.goto(base + "/");
  await page.locator(".card").first().waitFor();
  const cdp = await page.context().newCDPSession(page);
  const heap = async () => {
    await cdp.send("HeapProfiler.collectGarbage");
    return (await cdp.send("Runtime.getHeapUsage")).usedSize;
  };
  const screens = ["/", "/workers", "/workers/demo-1", "/compare?workers=demo-0,demo-1", "/alerts", "/recycles"];
  const visit = async (path) => {
    await page.evaluate((p) => {
      history.pushState(null, "", p);
      dispatchEvent(new PopStateEvent("popstate"));
    }, path);
    await page.waitForTimeout(60);
  };
  // Five rounds first, so what is loaded once and kept (code, charts' fonts, the history answers) is in.
  for (let i = 0; i < 5 * screens.length; i++) await visit(screens[i % screens.length]);
  const before = await heap();
  for (let i = 0; i < 100; i++) await visit(screens[i % screens.length]);
  await visit("/");
  const after = await heap();
  // The model keeps growing a little on its own (a second of samples per screen); a view that outlived
  // its screen would keep its DOM and charts: hundreds of KiB each.
  assert.ok(after < before * 1.2 + 512 * 1024, `JS heap ${before} → ${after} bytes after 100 screen changes`);
});
