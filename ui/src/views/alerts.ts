// Alerts: pending, firing, flapping, resolved; acknowledge; silence for 15 min / 1 h / 4 h / custom.
import { h, replace } from "../dom";
import { ago, dateTime, ruleValue } from "../format";
import { severity } from "../components/badge";
import type { Alert, AlertState } from "../types";
import { errorReason } from "./actions";
import type { Ctx, View } from "./view";

type Filter = "open" | "active" | "all";
const ORDER: Record<AlertState, number> = { firing: 0, flapping: 1, pending: 2, resolved: 3, inactive: 4 };

export function alertsView(ctx: Ctx): View {
  const { store, transport } = ctx;
  let filter: Filter = (ctx.query.get("show") as Filter) ?? "open";
  let key = "";
  const seg = h("div.seg");
  const body = h("div");
  const el = h(
    "div.view",
    h("h1", "Alerts", h("span.sub", "rules over workers and pools")),
    h("div.toolbar", seg),
    body,
  );
  const errs = new Map<string, string>();

  const FILTERS: [Filter, string][] = [
    ["open", "Firing, pending, flapping, resolved"],
    ["active", "Firing and pending only"],
    ["all", "Every rule and subject"],
  ];
  for (const [f, l] of FILTERS)
    seg.appendChild(
      h(
        "button",
        {
          "data-filter": f,
          onclick: () => {
            filter = f;
            key = "";
            update();
          },
        },
        l,
      ),
    );

  async function act(a: Alert, f: () => Promise<void>) {
    const k = a.rule + "\u0000" + a.subject;
    errs.delete(k);
    try {
      await f();
      await store.refreshAlerts();
    } catch (e) {
      errs.set(k, errorReason(e));
    }
    key = "";
    update();
  }

  function silenceMenu(a: Alert): HTMLElement {
    const sel = h(
      "select",
      { "aria-label": `Silence ${a.rule} on ${a.subject}`, class: "small", "data-silence": a.subject },
      h("option", { value: "" }, a.silenced_until && a.silenced_until > Date.now() ? "Silenced…" : "Silence…"),
      h("option", { value: "15" }, "15 min"),
      h("option", { value: "60" }, "1 h"),
      h("option", { value: "240" }, "4 h"),
      h("option", { value: "custom" }, "Custom…"),
      a.silenced_until && a.silenced_until > Date.now() ? h("option", { value: "0" }, "Lift silence") : null,
    );
    sel.style.height = "24px";
    sel.addEventListener("change", () => {
      let v = sel.value;
      if (v === "custom") v = prompt(`Silence ${a.rule} on ${a.subject} for how many minutes?`, "30") ?? "";
      const minutes = Number(v);
      if (v !== "" && Number.isFinite(minutes)) void act(a, () => transport.silence(a.rule, a.subject, minutes));
      sel.value = "";
    });
    return sel;
  }

  function update() {
    for (const b of seg.querySelectorAll("button")) b.classList.toggle("on", b.dataset.filter === filter);
    const list = store.alerts
      .filter((a) =>
        filter === "all"
          ? true
          : filter === "open"
            ? a.state !== "inactive"
            : a.state === "pending" || a.state === "firing" || a.state === "flapping",
      )
      .sort((a, b) => ORDER[a.state] - ORDER[b.state] || b.since - a.since);
    const k = filter + JSON.stringify(list) + [...errs.values()].join() + Math.floor(Date.now() / 5000);
    if (k === key) return;
    key = k;
    if (!list.length) {
      replace(
        body,
        h(
          "div.panel.empty",
          filter === "all"
            ? "No alert rules configured."
            : `Nothing ${filter === "open" ? "has fired yet" : "pending or firing"}. Rules are watching ${store.alerts.length} worker and pool subjects.`,
        ),
      );
      return;
    }
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
              ...["Severity", "State", "Rule", "Worker or pool", "Value / threshold", "Since", "Message", ""].map((c) =>
                h("th", c),
              ),
            ),
          ),
          h(
            "tbody",
            ...list.map((a) => {
              const silenced = a.silenced_until != null && a.silenced_until > Date.now();
              const e = errs.get(a.rule + "\u0000" + a.subject);
              const isWorker = store.byId.has(a.subject);
              return h(
                "tr",
                { "data-alert": `${a.rule}:${a.subject}`, "data-state": a.state },
                h("td", severity(a.severity)),
                h(
                  "td",
                  h("b", a.state),
                  a.acknowledged || silenced
                    ? h(
                        "div.faint",
                        { style: { fontSize: "11px" } },
                        [
                          a.acknowledged ? "acknowledged" : "",
                          silenced ? `silenced until ${dateTime(a.silenced_until as number).slice(11, 16)}` : "",
                        ]
                          .filter(Boolean)
                          .join(" · "),
                      )
                    : null,
                ),
                h("td", a.rule),
                h(
                  "td",
                  isWorker
                    ? h(
                        "a",
                        {
                          href: "/workers/" + a.subject,
                          onclick: (ev: MouseEvent) => {
                            ev.preventDefault();
                            ctx.navigate("/workers/" + encodeURIComponent(a.subject));
                          },
                        },
                        a.subject,
                      )
                    : a.subject + " (pool)",
                ),
                h("td.num", `${ruleValue(a.unit, a.value)} / ${ruleValue(a.unit, a.threshold)}`),
                h("td", { title: dateTime(a.since) }, ago(a.since)),
                h("td.muted.ellipsis", { title: a.message, style: { maxWidth: "300px" } }, a.message),
                h(
                  "td",
                  { style: { textAlign: "right", width: "1%" } },
                  e ? h("span.err", e, " ") : null,
                  h(
                    "button.small",
                    {
                      disabled: a.acknowledged || a.state === "inactive",
                      "data-ack": a.subject,
                      onclick: () => act(a, () => transport.acknowledge(a.rule, a.subject)),
                    },
                    a.acknowledged ? "Acknowledged" : "Acknowledge",
                  ),
                  " ",
                  silenceMenu(a),
                ),
              );
            }),
          ),
        ),
      ),
    );
  }

  return { el, update };
}
