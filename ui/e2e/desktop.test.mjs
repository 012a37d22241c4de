// Desktop end-to-end: the built `tend-desktop` (embedded demo, temp data dir) driven by tauri-driver and
// Debian's WebKitWebDriver through plain WebDriver HTTP calls. Run under a display and a session bus:
//   xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- node --test e2e/desktop.test.mjs
// (`make desktop-test` does that). Needs `tauri-driver` (cargo install tauri-driver --locked) and
// WebKitWebDriver (webkit2gtk-driver) on PATH. Saves screenshots of the screen to
// ui/e2e/screenshots/desktop*.png (the worker page also to docs/screenshot-desktop.png with
// TEND_SHOT_DOCS=1).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, execFileSync } from "node:child_process";
import {
  mkdtempSync,
  mkdirSync,
  existsSync,
  copyFileSync,
  rmSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, webDriver } from "./webdriver.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const app = process.env.TEND_DESKTOP_BIN ?? join(root, "target/debug/tend-desktop");
const shots = join(here, "screenshots");

let driver, base, session, dataDir, appEnv, dunst, dunstLog;

/** WebDriver calls to tauri-driver (set once it listens). */
let wd;

const s = (path) => `/session/${session}${path}`;
const exec = (script, args = []) => wd("POST", s("/execute/sync"), { script, args });
const execAsync = (script, args = []) => wd("POST", s("/execute/async"), { script, args });
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll `f` until it returns something truthy; fail with `what` after `ms`. */
async function until(what, f, ms = 30_000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await f();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await pause(250);
  }
}

/** Call a Tauri command from the page, as the UI does. */
const invoke = (cmd, args = {}) =>
  execAsync(
    "const done = arguments[arguments.length - 1]; window.__TAURI_INTERNALS__.invoke(arguments[0], arguments[1]).then((v) => done({ ok: v }), (e) => done({ err: e }));",
    [cmd, args],
  );

before(async () => {
  assert.ok(existsSync(app), `${app} is not built: cargo build -p tend-desktop`);
  dataDir = mkdtempSync(join(tmpdir(), "tend-desktop-e2e-"));
  const port = await freePort();
  const nativePort = await freePort();
  base = `http://127.0.0.1:${port}`;
  wd = webDriver(base);
  appEnv = {
    ...process.env,
    TEND_DATA_DIR: join(dataDir, "data"),
    TEND_SAVE_DIR: dataDir,
    XDG_CONFIG_HOME: join(dataDir, "config"),
    WEBKIT_DISABLE_COMPOSITING_MODE: "1",
  };
  // A Secret Service keyring of this test's own (its files in the temp dir), unlocked: the tokens of
  // agents added from the Hosts screen go there.
  const keyring = join(dataDir, "keyring");
  mkdirSync(join(keyring, "run"), { recursive: true, mode: 0o700 });
  mkdirSync(join(keyring, "share", "keyrings"), { recursive: true });
  appEnv.XDG_DATA_HOME = join(keyring, "share");
  appEnv.XDG_RUNTIME_DIR = join(keyring, "run");
  const unlocked = spawnSync(
    "sh",
    [
      "-c",
      "printf 'pw\\n' | gnome-keyring-daemon --unlock >/dev/null 2>&1; gnome-keyring-daemon --start --components=secrets >/dev/null 2>&1",
    ],
    { env: appEnv },
  );
  assert.equal(unlocked.status, 0, "gnome-keyring-daemon (apt: gnome-keyring)");
  // A notification daemon on the session bus, printing what it shows (for the notification click).
  dunstLog = join(dataDir, "dunst.log");
  dunst = spawn("sh", ["-c", `exec dunst -print > '${dunstLog}' 2>/dev/null`], { env: appEnv, stdio: "ignore" });
  await until("dunst on the session bus", () => {
    const r = spawnSync("dbus-send", [
      "--session",
      "--print-reply",
      "--dest=org.freedesktop.DBus",
      "/org/freedesktop/DBus",
      "org.freedesktop.DBus.NameHasOwner",
      "string:org.freedesktop.Notifications",
    ]);
    return String(r.stdout).includes("boolean true");
  });
  driver = spawn("tauri-driver", ["--port", String(port), "--native-port", String(nativePort)], {
    env: appEnv,
    stdio: ["ignore", "inherit", "inherit"],
  });
  driver.on("error", (e) => {
    throw new Error(`cannot start tauri-driver (cargo install tauri-driver --locked): ${e.message}`);
  });
  await until("tauri-driver to listen", async () => (await fetch(base + "/status")).ok, 20_000);
  const caps = {
    capabilities: { alwaysMatch: { "tauri:options": { application: app }, "wdio:enforceWebDriverClassic": true } },
  };
  const created = await wd("POST", "/session", caps);
  session = created.sessionId;
});

/** The pid's parent, from /proc. */
const parentOf = (pid) => Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")[1]);
const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

after(async () => {
  // Quit the app as a user would (SIGTERM = the close button): it drains its workers. Ending the
  // WebDriver session alone kills it outright and would leave the demo's workers behind.
  const workers = session ? ((await invoke("workers").catch(() => ({}))).ok ?? []) : [];
  const pids = workers.map((w) => w.pid).filter((p) => p && alive(p));
  if (pids.length) {
    process.kill(parentOf(pids[0]), "SIGTERM");
    await until("the app to drain its workers", async () => pids.every((p) => !alive(p)), 20_000).catch((e) =>
      console.error(e.message),
    );
  }
  if (session) await wd("DELETE", s("")).catch(() => {});
  driver?.kill("SIGTERM");
  dunst?.kill("SIGTERM");
  await pause(500);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test("the window opens on the console, with the desktop transport", async () => {
  await until("the top bar", () => exec("return !!document.querySelector('header.topbar')"));
  assert.equal(await exec("return document.title.startsWith('Tend')"), true);
  assert.equal(await exec("return '__TAURI_INTERNALS__' in window"), true);
});

test("worker rows appear with live states", async () => {
  await exec("document.querySelector('nav.side a[href=\"/workers\"]').click()");
  const rows = await until("three demo worker rows", async () => {
    const ids = await exec(
      "return [...document.querySelectorAll('[data-worker]')].map((r) => r.getAttribute('data-worker'))",
    );
    return ids.filter((x) => /^demo-\d$/.test(x)).length >= 3 ? ids : null;
  });
  assert.deepEqual([...new Set(rows)].sort().slice(0, 3), ["demo-0", "demo-1", "demo-2"]);
  await until("a READY worker", () =>
    exec("return [...document.querySelectorAll('[data-worker]')].some((r) => /READY|WORKING/.test(r.textContent))"),
  );
  mkdirSync(shots, { recursive: true });
  await pause(1500); // let the sparklines and counts of the first seconds fill in
  execFileSync("import", ["-window", "root", join(shots, "desktop.png")]);
});

test("a click on a notification about a worker opens that worker's page", async () => {
  // The demo's leaky demo-2: its alert fires, then it is recycled for memory; both notify.
  await until(
    "a notification about demo-2",
    () => /summary: '[^']*demo-2/.test(existsSync(dunstLog) ? readFileSync(dunstLog, "utf8") : ""),
    60_000,
  );
  assert.notEqual(await exec("return location.pathname"), "/workers/demo-2");
  const clicked = spawnSync("dunstctl", ["action", "0"], { env: appEnv });
  assert.equal(clicked.status, 0, String(clicked.stderr));
  await until("demo-2's page", async () => (await exec("return location.pathname")) === "/workers/demo-2");
  await until("its charts", () => exec("return !!document.querySelector('[data-chart=memory]')"));
  // Back to the table, where the next test starts.
  await exec("document.querySelector('nav.side a[href=\"/workers\"]').click()");
  await until("the workers table", () => exec("return !!document.querySelector('[data-worker=\"demo-0\"] a')"));
});

test("a recycle click replaces the worker's process and logs a manual recycle", async () => {
  const before = await invoke("worker", { id: "demo-0" });
  assert.ok(before.ok, JSON.stringify(before.err));
  const pid = before.ok.pid;
  await exec("document.querySelector('[data-worker=\"demo-0\"] a').click()");
  await until("the worker page", () => exec("return !!document.querySelector('button[data-action=\"recycle\"]')"));
  await exec("document.querySelector('button[data-action=\"recycle\"]').click()");
  await until("the confirmation", () => exec("return !!document.querySelector('dialog[open]')"));
  await exec("document.querySelector('dialog[open] button.primary').click()");
  const after = await until(
    "a new pid for demo-0",
    async () => {
      const w = (await invoke("worker", { id: "demo-0" })).ok;
      return w?.pid && w.pid !== pid ? w : null;
    },
    45_000,
  );
  assert.notEqual(after.pid, pid);
  const events = (await invoke("worker_events", { id: "demo-0" })).ok;
  assert.ok(
    events.some((e) => e.type === "recycled" && e.reason === "manual"),
    "a manual recycle event",
  );
});

test("CSV export writes the history store's file where the save dialog points (TEND_SAVE_DIR)", async () => {
  const to = Date.now();
  const saved = await until(
    "an export with data rows",
    async () => {
      const r = await invoke("export_csv", {
        query: { kind: "samples", pool: "demo", from: to - 600_000, to: Date.now() },
        name: "e2e.csv",
      });
      assert.equal(r.err, undefined, JSON.stringify(r.err));
      return r.ok && r.ok.bytes > 200 ? r.ok : null;
    },
    20_000,
  );
  assert.equal(saved.path, join(dataDir, "e2e.csv"));
  const lines = readFileSync(saved.path, "utf8").trim().split("\n");
  assert.match(lines[0], /^time,worker,pool,incarnation,pid,state,/);
  assert.match(lines[1], /^\d{4}-\d\d-\d\dT[\d:.]+Z,demo-\d,demo,/);
});

test("a second launch hands over to the running app and starts no engine", async () => {
  const second = spawnSync(app, [], { env: appEnv, timeout: 30_000, encoding: "utf8" });
  assert.equal(second.status, 0, `second instance: ${second.error ?? ""} ${second.stderr}`);
  const ws = (await invoke("workers")).ok;
  assert.deepEqual(ws.map((w) => w.id).sort(), ["demo-0", "demo-1", "demo-2"]);
  assert.ok(!/running the demo pool/.test(second.stderr), "the second launch started an engine");
});

test("commands answer errors as {code, message} and settings report the data directory", async () => {
  const missing = await invoke("worker", { id: "nope" });
  assert.equal(missing.err?.code, "not_found");
  const settings = (await invoke("settings")).ok;
  assert.equal(settings.data_dir, join(dataDir, "data"));
  assert.equal(settings.notifications.enabled, true);
  await exec("history.pushState(null, '', '/settings'); dispatchEvent(new PopStateEvent('popstate'))");
  const budget = await until("the budget on the Settings screen", () =>
    exec("return document.querySelector('[data-testid=\"budget\"]')?.textContent"),
  );
  assert.match(budget, /at most 3 per rule and 10 in all per 10 min/);
  assert.match(
    await exec("return document.querySelector('[data-testid=\"data-dir\"]').textContent"),
    /tend-desktop-e2e-/,
  );
  execFileSync("import", ["-window", "root", join(shots, "desktop-settings.png")]);
});

test("a hidden window renders nothing and is caught up in one render when shown", async () => {
  await exec("history.pushState(null, '', '/'); dispatchEvent(new PopStateEvent('popstate'))");
  const renders = () => exec("return window.__tendRenders");
  const first = await renders();
  await until("the Overview to render live updates", async () => (await renders()) >= first + 2);
  // Hide it as the tray's "Hide to tray" does.
  assert.deepEqual(await invoke("plugin:window|hide", { label: "main" }), { ok: null });
  await until("the page to know it is hidden", () => exec("return document.visibilityState === 'hidden'"), 10_000);
  const hidden = await renders();
  await pause(4000); // four updates of the live feed, were it running
  assert.equal(await renders(), hidden, "no render while the window is hidden");
  assert.deepEqual(await invoke("plugin:window|show", { label: "main" }), { ok: null });
  await until("the page to know it is shown", () => exec("return document.visibilityState === 'visible'"), 10_000);
  await until("a catch-up render", async () => (await renders()) > hidden, 5_000);
  assert.ok((await renders()) <= hidden + 2, "caught up in one step, not a replay of what was missed");
});

test("a worker's page shows its live charts (screenshot)", async () => {
  await exec("history.pushState(null, '', '/workers/demo-2'); dispatchEvent(new PopStateEvent('popstate'))");
  await until(
    "memory chart points",
    () => exec("return Number(document.querySelector('.uplot')?.parentElement?.getAttribute('data-points') ?? 0) > 8"),
    30_000,
  );
  if (process.env.TEND_SHOT_DOCS) {
    // For the README: wait for the leaky worker's first recycle, so the chart shows the sawtooth.
    await until(
      "demo-2 recycled for memory",
      async () =>
        ((await invoke("worker_events", { id: "demo-2" })).ok ?? []).some(
          (e) => e.type === "recycled" && e.reason === "memory",
        ),
      60_000,
    );
    await pause(4000);
  }
  const shot = join(shots, "desktop-worker.png");
  execFileSync("import", ["-window", "root", shot]);
  if (process.env.TEND_SHOT_DOCS) copyFileSync(shot, join(root, "docs/screenshot-desktop.png"));
});

test("an agent added from the Hosts screen shows its workers; its token goes to the keyring, else to an owner-only file", async () => {
  // An agent: `tend serve` on 127.0.0.2 with a token and a pool of two sleepers.
  const tend = join(root, "target/debug/tend");
  const agentDir = join(dataDir, "agent");
  mkdirSync(agentDir, { recursive: true });
  const token = "desk-agent-token-4f2a9c";
  writeFileSync(
    join(agentDir, "agent.toml"),
    '[[pool]]\nname = "api"\ncommand = ["sleep", "300"]\nsize = 2\nreadiness = { start_secs = 0.2 }\nstop_grace = "1s"\n',
  );
  const agent = spawn(tend, ["serve", "--config", join(agentDir, "agent.toml"), "--listen", "127.0.0.2:0"], {
    env: { ...process.env, TEND_TOKEN: token, TEND_DATA_DIR: join(agentDir, "data"), TEND_LOG: "warn" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  try {
    let err = "";
    agent.stderr.on("data", (b) => {
      err += b.toString();
    });
    const url = await until("the agent's address", () => err.match(/tend: listening on (http:\/\/[\d.:]+)\n/)?.[1]);
    await exec("history.pushState(null, '', '/hosts'); dispatchEvent(new PopStateEvent('popstate'))");
    await until("the add form", () => exec("return !!document.querySelector('[data-testid=add-host]')"));
    // The Hosts screen's form, a host's row and its cells.
    const addHost = (name, hostToken) =>
      exec(
        `const f = document.querySelector('[data-testid=add-host]');
         f.elements.name.value = arguments[0]; f.elements.url.value = arguments[1];
         f.elements.token.value = arguments[2]; f.requestSubmit();`,
        [name, url, hostToken],
      );
    const cell = (name, testid) => `tr[data-host=${name}] [data-testid=${testid}]`;
    const answering = (name) =>
      until(
        `${name} answering`,
        () => exec(`return document.querySelector('${cell(name, "host-status")}')?.textContent === 'ok'`),
        20_000,
      );
    const tokenSource = (name) => exec(`return document.querySelector('${cell(name, "token-source")}').textContent`);
    const removeHost = async (name) => {
      const row = `tr[data-host=${name}]`;
      await exec(`[...document.querySelectorAll('${row} button')].find((b) => b.textContent === 'Remove').click()`);
      await until(`${name} removed`, () => exec(`return !document.querySelector('${row}')`));
    };
    await addHost("gpu-1", token);
    await answering("gpu-1");
    // The token went to the keyring, and nowhere on disk.
    assert.equal(await tokenSource("gpu-1"), "keyring (Secret Service)");
    const lookup = (host) =>
      spawnSync("secret-tool", ["lookup", "application", "tend", "tend-host", host], { env: appEnv, encoding: "utf8" });
    assert.equal(lookup("gpu-1").stdout.trim(), token);
    const file = join(dataDir, "config", "dev.tend.desktop", "hosts", "gpu-1.token");
    assert.equal(existsSync(file), false);
    // Its workers, with their host, in the Workers table.
    await exec("document.querySelector('nav.side a[href=\"/workers\"]').click()");
    await until("the agent's workers in the table", () =>
      exec(
        "return ['api-0@gpu-1', 'api-1@gpu-1'].every((id) => !!document.querySelector('[data-worker=\"' + id + '\"]'))",
      ),
    );
    // A name taken already is refused with the reason.
    await exec("history.pushState(null, '', '/hosts'); dispatchEvent(new PopStateEvent('popstate'))");
    await until("the add form", () => exec("return !!document.querySelector('[data-testid=add-host]')"));
    await addHost("gpu-1", "");
    await until("the refusal", () =>
      exec("return /is watched already/.test(document.querySelector('[data-testid=add-host-error]').textContent)"),
    );
    // Removed: gone from the list and from the keyring.
    await removeHost("gpu-1");
    assert.notEqual(lookup("gpu-1").status, 0, "the keyring item is deleted");
    // Without an open keyring (its daemon gone; one that D-Bus starts again finds the collection
    // locked), the token goes to a file only its owner may read.
    spawnSync("pkill", ["-f", "gnome-keyring-daemon"]);
    await addHost("gpu-2", token);
    await answering("gpu-2");
    const file2 = join(dataDir, "config", "dev.tend.desktop", "hosts", "gpu-2.token");
    assert.equal(await tokenSource("gpu-2"), `file ${file2} (mode 0600)`);
    assert.equal(statSync(file2).mode & 0o777, 0o600);
    assert.equal(readFileSync(file2, "utf8").trim(), token);
    await removeHost("gpu-2");
    assert.equal(existsSync(file2), false);
  } finally {
    agent.kill("SIGTERM");
  }
});
