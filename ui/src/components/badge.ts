// State colours, the same everywhere: badge, timeline, stacked bars. A badge always carries the word.
import { h } from "../dom";
import type { Severity, State } from "../types";

export function stateVar(s: State): string {
  return `var(--s-${s.toLowerCase()})`;
}

/** The resolved colour of a state, for canvases (which cannot read CSS variables). */
export function stateColor(s: State): string {
  return getComputedStyle(document.documentElement).getPropertyValue(`--s-${s.toLowerCase()}`).trim() || "#888";
}

export function badge(s: State): HTMLSpanElement {
  const el = h("span.badge");
  setBadge(el, s);
  return el;
}

export function setBadge(el: HTMLElement, s: State) {
  if (el.dataset.state === s) return;
  el.dataset.state = s;
  el.textContent = s;
  el.style.color = stateVar(s);
  el.style.borderColor = `color-mix(in srgb, ${stateVar(s)} 45%, transparent)`;
  el.style.background = `color-mix(in srgb, ${stateVar(s)} 10%, transparent)`;
}

export function severity(s: Severity): HTMLSpanElement {
  return h(`span.sev.${s}`, s);
}
