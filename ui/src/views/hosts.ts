// Hosts: the agents this Tend watches as a hub (`[[remote]]`), each with its status, what went wrong,
// its last answer, version, workers by state and round trip. Asked again every 2 s while in view
// (never while the window is hidden).
import { h, replace } from "../dom";
import { ago } from "../format";
import { badge } from "../components/badge";
import type { HostDto, HostStatus, State } from "../types";
import { STATES } from "../types";
import type { Ctx, View } from "./view";

const STATUS_TEXT: Record<HostStatus, string> = {
  connecting: "connecting",
  ok: "ok",
  unreachable: "unreachable",
  unauthorized: "token refused",
  tls_error: "TLS error",
  degraded: "degraded",
};

export function hostsView(ctx: Ctx): View {
  const { transport, store } = ctx;
  let hosts: HostDto[] | null = null;
  let error = "";
  let key = "";
  const info = h("span.sub");
  const body = h("div");
  const el = h("div.view", h("h1", "Hosts", info), addForm(), body);

  /** Desktop only: a form that adds an agent; the list is redrawn with what the app answers. */
  function addForm(): HTMLElement | null {
    const add = transport.addHost?.bind(transport);
    if (!add) return null;
    const field = (name: string, placeholder: string, type = "text") =>
      h("input", { name, placeholder, type, "aria-label": placeholder, style: { width: "170px" } });
    const name = field("name", "name (gpu-1)");
    const url = field("url", "https://10.1.2.3:7878");
    const token = field("token", "token", "password");
    const ca = field("ca", "CA file (optional)");
    const err = h("span.err", { "data-testid": "add-host-error" });
    const button = h("button", { type: "submit" }, "Add host");
    const form = h("form.toolbar", { "data-testid": "add-host" }, name, url, token, ca, button, err);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      button.disabled = true;
      err.textContent = "";
      try {
        hosts = await add({
          name: name.value.trim(),
          url: url.value.trim(),
          token: token.value,
          ca: ca.value.trim() || null,
        });
        token.value = "";
        key = "";
        update();
      } catch (x) {
        err.textContent = String((x as Error).message ?? x);
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  let live = true;
  async function load() {
    try {
      hosts = await transport.hosts();
      error = "";
    } catch (e) {
      error = String((e as Error).message ?? e);
    }
    update();
    // Asked again while the screen is shown (and not while the window is hidden).
    if (live) store.later(() => live && void load(), 2000);
  }
  void load();

  function update() {
    const k = JSON.stringify([hosts, error, Math.floor(Date.now() / 10000)]);
    if (k === key) return;
    key = k;
    if (error) {
      replace(body, h("div.banner.error", `Cannot list the hosts: ${error}`));
      return;
    }
    if (!hosts) {
      replace(body, h("div.empty", "Loading…"));
      return;
    }
    info.textContent = hosts.length
      ? `${hosts.filter((x) => x.status === "ok").length} of ${hosts.length} answering`
      : "";
    if (!hosts.length) {
      replace(
        body,
        h(
          "div.empty",
          transport.addHost
            ? "This app watches its own host only. Add an agent (another `tend serve`) with the form above, or with [[remote]] sections in its config: name, url, token_file, ca."
            : "This Tend watches its own host only. Add agents (other `tend serve`s) with [[remote]] sections in its config: name, url, token_file, ca.",
        ),
      );
      return;
    }
    const rows = hosts.map((x) =>
      h(
        "tr",
        { "data-host": x.name },
        h(
          "td",
          h(
            "a",
            {
              href: `/workers?host=${encodeURIComponent(x.name)}`,
              onclick: (e: MouseEvent) => {
                e.preventDefault();
                ctx.navigate(`/workers?host=${encodeURIComponent(x.name)}`);
              },
            },
            x.name,
          ),
        ),
        h("td", h(`span.host-status.${x.status}`, { "data-testid": "host-status" }, STATUS_TEXT[x.status])),
        h("td.muted", x.url),
        h("td", x.workers ? stateCounts(x.by_state) : h("span.muted", "—")),
        h("td.muted", x.last_contact ? ago(x.last_contact) : "never"),
        h(
          "td",
          x.version ?? "—",
          x.version_skew
            ? h(
                "span.warn",
                { title: "another minor version than this hub: fields it lacks are shown as absent" },
                " ⚠ version differs",
              )
            : null,
        ),
        h("td.num", x.rtt_ms != null ? `${x.rtt_ms.toFixed(0)} ms` : "—"),
        h("td.muted", { "data-testid": "token-source" }, x.token_source ?? "no token"),
        h("td.muted", x.detail ?? ""),
        h(
          "td",
          x.added_here && transport.removeHost
            ? h(
                "button.small",
                {
                  onclick: async () => {
                    hosts = (await transport.removeHost?.(x.name)) ?? hosts;
                    key = "";
                    update();
                  },
                },
                "Remove",
              )
            : "",
        ),
      ),
    );
    replace(
      body,
      h(
        "div.tablewrap",
        h(
          "table.grid",
          h(
            "thead",
            h(
              "tr",
              ...[
                "Host",
                "Status",
                "URL",
                "Workers",
                "Last answer",
                "Version",
                "Round trip",
                "Token",
                "Detail",
                "",
              ].map((c) => h("th", c)),
            ),
          ),
          h("tbody", ...rows),
        ),
      ),
    );
  }

  return {
    el,
    update,
    destroy: () => {
      live = false;
    },
  };
}

function stateCounts(by: Partial<Record<State, number>>): HTMLElement {
  const parts = STATES.filter((s) => by[s]).map((s) => h("span", badge(s), ` ${by[s]} `));
  return h("span", ...parts);
}
