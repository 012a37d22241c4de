// Settings, read-only for now: where the config and the data are, retention, the notification budget
// and what the notifier did. The desktop app reports all of it (`settings` command); against `tend
// serve` the fields it does not report say so.
import { h, replace } from "../dom";
import { duration } from "../format";
import { SEVERITIES } from "../types";
import type { SettingsDto } from "../types";
import type { Ctx, View } from "./view";

/** A configured span in its own unit: 600 → "10 min", 86400 → "24 h", 2592000 → "30 d". */
function span(secs: number): string {
  if (secs >= 2 * 86400 && secs % 86400 === 0) return `${secs / 86400} d`;
  if (secs >= 3600 && secs % 3600 === 0) return `${secs / 3600} h`;
  if (secs >= 60 && secs % 60 === 0) return `${secs / 60} min`;
  return `${secs} s`;
}

export function settings(ctx: Ctx): View {
  const { store, transport } = ctx;
  const body = h("div.panel.settings");
  const el = h(
    "div.view",
    h("h1", "Settings", h("span.sub", "read from the running Tend; edit the config file to change them")),
    body,
  );
  let key = "";
  let s: SettingsDto | null = null;
  // Nothing is drawn until the first settings answer (or failure) is in: before it, "not reported"
  // would be a claim about the server that is not yet known.
  let asked = false;
  let alive = true;

  async function poll() {
    if (!alive) return;
    try {
      s = await transport.settings();
    } catch {
      /* the frame's banner says when Tend is unreachable */
    }
    asked = true;
    update();
    if (s && alive) store.later(() => void poll(), 2000);
  }

  function update() {
    const hl = store.health;
    if (!hl || !asked) return;
    const k = JSON.stringify({ ...hl, uptime_secs: 0, tend: null, by_state: null, workers: 0 }) + JSON.stringify(s);
    if (k === key) return;
    key = k;
    const none = (what: string) => h("span.faint", what);
    const code = (v: string) => h("code", v);
    const n = s?.notifications;
    const r = s?.retention;
    const desktop = transport.kind === "desktop";
    const start = desktop ? "tend-desktop --config tend.toml" : "tend serve --config tend.toml";
    replace(
      body,
      h(
        "dl",
        h("dt", "Config file"),
        h(
          "dd",
          hl.config
            ? code(hl.config)
            : h(
                "span",
                "none — running the embedded demo pool. Write ",
                code("tend.toml"),
                " and start ",
                code(start),
                ".",
              ),
        ),
        h("dt", "Version"),
        h("dd", hl.version),
        h("dt", "Running for"),
        h("dd", duration(hl.uptime_secs)),
        h("dt", "Status"),
        h(
          "dd",
          hl.status,
          Object.keys(hl.degraded).length
            ? ` — ${Object.entries(hl.degraded)
                .map(([src, d]) => `${src}: ${d}`)
                .join("; ")}`
            : "",
        ),
        desktop ? null : h("dt", "API transport"),
        desktop
          ? null
          : h(
              "dd",
              { "data-testid": "transport" },
              hl.transport.tls
                ? "HTTPS (TLS)"
                : hl.transport.insecure_http
                  ? "plain HTTP on a network address"
                  : "plain HTTP on loopback",
              hl.transport.tokens ? " · bearer tokens required" : " · no token",
            ),
        h("dt", "Process discovery"),
        h(
          "dd",
          { "data-testid": "discovery" },
          hl.discovery
            ? hl.discovery.mode === "events"
              ? `the kernel's process events, and a full scan every ${span(hl.discovery.every_secs)}`
              : [
                  `a scan of the process table every ${span(hl.discovery.every_secs)} `,
                  none(`(${hl.discovery.detail})`),
                ]
            : none("no attach pool"),
        ),
        h("dt", "Data directory"),
        h(
          "dd",
          { "data-testid": "data-dir" },
          s ? (s.data_dir ? code(s.data_dir) : none("none — history is off")) : none("not reported by this server"),
        ),
        h("dt", "Retention"),
        h(
          "dd",
          r
            ? `raw samples ${span(r.raw_secs)} · 1-minute rollups ${span(r.minute_secs)} · 1-hour rollups ${span(r.hour_secs)}${r.max_size_mb ? ` · at most ${r.max_size_mb} MB` : ""}`
            : none("not reported by this server"),
        ),
        h("dt", "Notification budget"),
        h(
          "dd",
          { "data-testid": "budget" },
          n
            ? n.enabled
              ? `at most ${n.per_rule} per rule and ${n.overall} in all per ${span(n.window_secs)}${n.digest ? ", then one digest" : ", the rest dropped"}`
              : "desktop notifications are off ([notifications] enabled = false)"
            : none(
                "Desktop notifications (per-rule and overall caps, quiet hours, digest) come with the desktop app; the browser console shows alerts only.",
              ),
        ),
        h("dt", "Quiet hours"),
        h(
          "dd",
          n
            ? n.quiet_hours
              ? `${n.quiet_hours[0]} – ${n.quiet_hours[1]} (local time; held for the digest)`
              : "none"
            : none("desktop app only"),
        ),
        h("dt", "Severities that notify"),
        h(
          "dd",
          n
            ? ([...SEVERITIES]
                .reverse()
                .filter((x) => !n.record_only.includes(x))
                .join(", ") || "none") + (n.record_only.length ? ` · record only: ${n.record_only.join(", ")}` : "")
            : none("critical and warning (desktop app)"),
        ),
        h("dt", "Notifications so far"),
        h(
          "dd",
          { "data-testid": "notify-status" },
          n?.status
            ? `${n.status.sent} sent · ${n.status.held} held for digests · ${n.status.digests} digests · ${n.status.not_notified} recorded only${n.status.paused ? " · paused from the tray" : ""}${n.status.last_error ? ` · degraded: ${n.status.last_error}` : ""}`
            : none(desktop ? "notifications are off" : "none: `tend serve` shows no desktop notifications"),
        ),
        desktop ? null : h("dt", "API"),
        desktop
          ? null
          : h("dd", code(location.origin + "/api/v1"), " · ", h("a", { href: "/api/v1/health" }, "health")),
      ),
    );
  }

  void poll();
  return {
    el,
    update,
    destroy: () => {
      alive = false;
    },
  };
}
