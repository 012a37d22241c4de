// Debian's Chromium for the browser tests: where it is, and the flags this machine needs (no sandbox as
// root, no GPU, and none of its own network traffic: the machine's network is closed).
export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Wait for `f()` to return a truthy value, polling; fail with `what` (and the value seen) at the deadline. */
export async function until(what, f, timeoutMs = 45_000, everyMs = 100) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    last = await f();
    if (last) return last;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}
