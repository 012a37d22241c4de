// The lifecycle timeline: one lane per incarnation, a band coloured by state over time, and markers for
// recycles and alerts. Hover tells what, why and the value.
import { h, clear } from "../dom";
import { clock } from "../format";
import type { Event, IncarnationDto } from "../types";
import { STATES } from "../types";
import { stateVar } from "./badge";

let tip: HTMLDivElement | null = null;
function showTip(e: MouseEvent, text: string) {
  if (!tip) {
    tip = h("div.tip");
    document.body.appendChild(tip);
  }
  tip.textContent = text;
  tip.style.display = "block";
  tip.style.whiteSpace = "pre-line";
  tip.style.left = Math.min(e.clientX + 12, innerWidth - 370) + "px";
  tip.style.top = e.clientY + 14 + "px";
}
function hideTip() {
  if (tip) tip.style.display = "none";
}

function hoverable<T extends HTMLElement>(el: T, text: string): T {
  el.addEventListener("mousemove", (e) => showTip(e, text));
  el.addEventListener("mouseleave", hideTip);
  el.dataset.tip = text;
  return el;
}

export class Timeline {
  readonly el = h("div");
  private lanes = h("div.timeline");
  private legend = h("div.tl-legend");

  constructor() {
    this.el.append(this.lanes, this.legend);
    this.legend.append(
      ...STATES.map((s) => h("span.count", h("span.dot", { style: { background: stateVar(s) } }), s.toLowerCase())),
      h(
        "span.count",
        h("span.dot", { style: { background: "var(--text)", borderRadius: "1px", transform: "rotate(45deg)" } }),
        "recycle",
      ),
      h(
        "span.count",
        h("span.dot", { style: { background: "var(--warn)", borderRadius: "1px", transform: "rotate(45deg)" } }),
        "alert",
      ),
    );
  }

  /** Line the lanes up with a chart's plot area above them. */
  align(box: { left: number; width: number } | null) {
    if (!box) return;
    this.lanes.style.marginLeft = this.legend.style.marginLeft = box.left + "px";
    this.lanes.style.width = box.width + "px";
  }

  /** Draw [from, to] (ms) from the incarnations' transitions and the worker's events. */
  render(incs: IncarnationDto[], events: Event[], from: number, to: number) {
    const span = Math.max(1, to - from);
    const pos = (t: number) => Math.min(100, Math.max(0, ((t - from) / span) * 100));
    clear(this.lanes);
    const visible = incs.filter((inc) => {
      const last = inc.transitions[inc.transitions.length - 1];
      const end = inc.state === "CLEANED" && last ? last.at : to;
      return end >= from;
    });
    // Incarnations that overlap (a replacement starting while the old one drains) go on separate lanes;
    // the others share one, so the band reads left to right.
    const laneEnds: number[] = [];
    const laneEls: HTMLElement[] = [];
    for (const inc of visible) {
      const tr = inc.transitions;
      if (!tr.length) continue;
      const start = tr[0].at;
      const last = tr[tr.length - 1];
      const end = inc.state === "CLEANED" ? last.at : to;
      let li = laneEnds.findIndex((e) => e <= start);
      if (li < 0) {
        li = laneEnds.length;
        laneEnds.push(end);
        laneEls.push(h("div.tl-lane", { "data-lane": li }));
      } else laneEnds[li] = end;
      const lane = laneEls[li];
      for (let i = 0; i < tr.length; i++) {
        const a = tr[i].at,
          b = i + 1 < tr.length ? tr[i + 1].at : to;
        if (b < from || tr[i].to === "CLEANED") continue;
        const left = pos(a),
          right = pos(b);
        const seg = h("div.tl-seg", {
          "data-state": tr[i].to,
          "data-incarnation": inc.incarnation,
          style: { left: left + "%", width: Math.max(0.25, right - left) + "%", background: stateVar(tr[i].to) },
        });
        const pid = inc.process ? `pid ${inc.process.pid}` : "no process";
        lane.appendChild(
          hoverable(
            seg,
            `${tr[i].to} · incarnation ${inc.incarnation} (${pid})\nfrom ${clock(a)}${i + 1 < tr.length ? " to " + clock(b) : ""}\n${tr[i].cause}`,
          ),
        );
      }
    }
    for (const l of laneEls) this.lanes.appendChild(l);
    const markers = h("div.tl-lane", { style: { background: "transparent", height: "16px" } });
    for (const e of events) {
      if (e.at < from) continue;
      if (e.type === "recycled" || e.type === "recycle_failed") {
        const what = e.type === "recycled" ? "recycled" : "recycle failed";
        const detail = "detail" in e ? e.detail : e.error;
        const m = h("div.tl-mark.recycle", {
          "data-kind": e.type,
          "data-reason": e.reason,
          style: { left: pos(e.at) + "%" },
        });
        markers.appendChild(hoverable(m, `${what} (${e.reason}) at ${clock(e.at)}\n${detail}`));
      }
    }
    this.lanes.appendChild(markers);
    this.lanes.appendChild(
      h("div.tl-axis", h("span", clock(from)), h("span", clock(from + span / 2)), h("span", clock(to))),
    );
  }

  /** Alert markers come from alert events, which name the subject, not the worker field. */
  static alertEvents(all: Event[], worker: string): Event[] {
    return all.filter((e) => e.type === "alert_changed" && e.alert.subject === worker && e.alert.state === "firing");
  }

  renderAlerts(alertEvents: Event[], from: number, to: number) {
    const span = Math.max(1, to - from);
    const row = this.lanes.lastElementChild?.previousElementSibling;
    if (!row) return;
    for (const e of alertEvents) {
      if (e.type !== "alert_changed" || e.at < from) continue;
      const a = e.alert;
      const m = h("div.tl-mark.alert", { "data-kind": "alert", style: { left: ((e.at - from) / span) * 100 + "%" } });
      row.appendChild(hoverable(m, `alert ${a.rule} firing at ${clock(e.at)}\n${a.message}`));
    }
  }
}
