// Settings, read-only for now: where the config and the data are, retention, notifications.
import { h, replace } from "../dom";
import { duration } from "../format";
import type { Ctx, View } from "./view";

export function settings(ctx: Ctx): View {
  const { store } = ctx;
  const body = h("div.panel.settings");
  const el = h("div.view", h("h1", "Settings", h("span.sub", "read from the running Tend; edit the config file to change them")), body);
  let key = "";

  function update() {
    const hl = store.health;
    if (!hl) return;
    // Fields a newer server adds (data directory, retention) are shown when present.
    const extra = hl as unknown as Record<string, unknown>;
    const k = JSON.stringify({ ...hl, uptime_secs: 0, tend: null, by_state: null, workers: 0 });
    if (k === key) return;
    key = k;
    const fmt = (v: unknown) => v == null ? h("span.faint", "not reported by this server") : typeof v === "object" ? h("code", JSON.stringify(v)) : h("code", String(v));
    replace(body, h("dl",
      h("dt", "Config file"), h("dd", hl.config ? h("code", hl.config) : h("span", "none — running the embedded demo pool. Write ", h("code", "tend.toml"), " and start ", h("code", "tend serve --config tend.toml"), ".")),
      h("dt", "Version"), h("dd", hl.version),
      h("dt", "Running for"), h("dd", duration(hl.uptime_secs)),
      h("dt", "Status"), h("dd", hl.status, Object.keys(hl.degraded).length ? ` — ${Object.entries(hl.degraded).map(([s, d]) => `${s}: ${d}`).join("; ")}` : ""),
      h("dt", "Data directory"), h("dd", fmt(extra.data_dir)),
      h("dt", "Retention"), h("dd", fmt(extra.retention)),
      h("dt", "Notification budget"), h("dd", h("span.muted", "Desktop notifications (per-rule and overall caps, quiet hours, digest) come with the desktop app; the browser console shows alerts only.")),
      h("dt", "Severities that notify"), h("dd", h("span.muted", "critical and warning (desktop app)")),
      h("dt", "API"), h("dd", h("code", location.origin + "/api/v1"), " · ", h("a", { href: "/api/v1/health" }, "health"))));
  }

  return { el, update };
}
