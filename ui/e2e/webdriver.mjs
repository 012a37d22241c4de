// What the desktop E2E test and the desktop benchmark share: a free loopback port, and plain WebDriver
// HTTP calls (no client library) to tauri-driver.
import net from "node:net";

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
    s.on("error", rej);
  });
}

/** `wd(method, path, body)` against the WebDriver server at `base`: the answer's `value`, or a throw. */
export function webDriver(base) {
  return async (method, path, body) => {
    const res = await fetch(base + path, {
      method,
      headers: body ? { "content-type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json.value ?? json)}`);
    return json.value;
  };
}
