// Browser end-to-end test of a hub: an agent (`tend serve` with a token and a pool of two demo-workers)
// on 127.0.0.2, and a hub (`tend serve` with one `[[remote]]`) on 127.0.0.1 whose console shows the
// agent on the Hosts screen, its workers with their host in the Workers table, a remote worker's page
// with its live charts, and recycles it with a click. Run by `make ui-test`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { CHROMIUM, CHROMIUM_ARGS, until } from "./chromium.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const ui = resolve(here, "..");
const TEND = process.env.TEND_BIN ?? resolve(ui, "../target/debug/tend");
const TOKEN = "agent-token-5e0c2a9f7d";
const SHOTS = join(here, "screenshots");
mkdirSync(SHOTS, { recursive: true });

const dir = mkdtempSync(join(tmpdir(), "tend-hub-e2e-"));
const procs = [];
let hub, browser, page;

/** `tend serve` with `args` and `env`; resolves to its base URL once it listens. */
function serve(args, env) {
  const p = spawn(TEND, ["serve", ...args], {
    env: { ...process.env, TEND_UI_DIR: join(ui, "dist"), TEND_LOG: "warn", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  procs.push(p);
  const err = [];
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("tend did not start listening:\n" + err.join(""))), 30_000);
    p.stderr.on("data", (b) => {
      err.push(b.toString());
      const m = err.join("").match(/tend: listening on (https?:\/\/[\d.:]+)\n/);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    p.on("exit", (c) => fail(new Error(`tend exited (${c}):\n${err.join("")}`)));
  });
}

before(async () => {
  const agentToml = join(dir, "agent.toml");
  writeFileSync(
    agentToml,
    `[[pool]]
name = "api"
command = ["$TEND_EXE", "demo-worker", "--slot", "$TEND_SLOT", "--cpu", "5", "--base-mb", "20", "--requests-per-sec", "2"]
size = 2
profile = "intensive"
stop_grace = "1s"
`,
  );
  const agent = await serve(["--config", agentToml, "--listen", "127.0.0.2:0"], {
    TEND_TOKEN: TOKEN,
    TEND_DATA_DIR: join(dir, "agent-data"),
  });
  const tokenFile = join(dir, "gpu-1.token");
  writeFileSync(tokenFile, TOKEN + "\n");
  chmodSync(tokenFile, 0o600);
  const hubToml = join(dir, "hub.toml");
  writeFileSync(hubToml, `[[remote]]\nname = "gpu-1"\nurl = "${agent}"\ntoken_file = "${tokenFile}"\n`);
  hub = await serve(["--config", hubToml, "--listen", "127.0.0.1:0"], { TEND_DATA_DIR: join(dir, "hub-data") });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  page.on("pageerror", (e) => {
    throw e;
  });
});

after(async () => {
  await browser?.close();
  for (const p of procs.reverse()) {
    if (p.exitCode != null) continue;
    p.kill("SIGTERM");
    await new Promise((r) => {
      p.on("exit", r);
      setTimeout(r, 10_000);
    });
  }
  rmSync(dir, { recursive: true, force: true });
});

test("the Hosts screen shows the agent answering, with its workers by state", async () => {
  await page.goto(hub + "/hosts");
  const row = page.locator('tr[data-host="gpu-1"]');
  await until("gpu-1 ok", async () => (await row.locator('[data-testid="host-status"]').textContent()) === "ok");
  await until("two READY workers", async () => /READY 2/.test(await row.textContent()));
  assert.match(await row.textContent(), /127\.0\.0\.2/);
  await page.screenshot({ path: join(SHOTS, "hub-hosts.png") });
});

test("the Overview has a badge per host with its pools' workers by state", async () => {
  await page.goto(hub + "/");
  const badge = page.locator('.host[data-host="gpu-1"]');
  await until("gpu-1's badge with its pool", async () =>
    /^gpu-1 ok · api: \d (READY|WORKING)/.test((await badge.textContent()) ?? ""),
  );
  // And the agent's pool has its card, tagged with its host.
  const card = page.locator('.card[data-pool="api@gpu-1"]');
  await until("the agent's pool card", async () => /api\s*gpu-1/.test((await card.textContent()) ?? ""));
  await until("its workers live", async () => /2 of 2 workers live/.test((await card.textContent()) ?? ""));
  await page.screenshot({ path: join(SHOTS, "hub-overview.png") });
});

test("the Workers table has a Host column and filters by host", async () => {
  await page.goto(hub + "/workers?host=gpu-1");
  await until("two remote rows", async () => (await page.locator(".vt-row[data-worker]:visible").count()) === 2);
  const rows = await page
    .locator(".vt-row[data-worker]:visible")
    .evaluateAll((rs) => rs.map((r) => [r.dataset.worker, r.querySelector("[data-col=host]")?.textContent]).sort());
  assert.deepEqual(rows, [
    ["api-0@gpu-1", "gpu-1"],
    ["api-1@gpu-1", "gpu-1"],
  ]);
  assert.equal(await page.locator('select[aria-label="Host"]').inputValue(), "gpu-1");
  await page.screenshot({ path: join(SHOTS, "hub-workers.png") });
});

test("a remote worker's page draws its charts and a click recycles it on its agent", async () => {
  await page.goto(hub + "/workers/" + encodeURIComponent("api-0@gpu-1"));
  const mem = page.locator('[data-chart="memory"]');
  await until("memory chart points", async () => Number(await mem.getAttribute("data-points")) > 3);
  await page.screenshot({ path: join(SHOTS, "hub-worker.png") });
  const pidEl = page.locator("[data-pid]");
  await until("api-0's pid", async () => /^\d+$/.test((await pidEl.textContent()) ?? ""));
  const oldPid = await pidEl.textContent();
  await page.click('button[data-action="recycle"]');
  const dialog = page.locator("dialog[open]");
  await dialog.waitFor();
  await dialog.getByRole("button", { name: "Recycle api-0@gpu-1" }).click();
  await until("the pid to change", async () => {
    const p = await pidEl.textContent();
    return /^\d+$/.test(p ?? "") && p !== oldPid;
  });
  // The hub's own trail: who asked, and where it went.
  const events = await (await fetch(hub + "/api/v1/workers/" + encodeURIComponent("api-0@gpu-1") + "/events")).json();
  assert.ok(
    events.some((e) => e.type === "recycled" && e.reason === "manual" && e.worker === "api-0@gpu-1"),
    JSON.stringify(events),
  );
});
