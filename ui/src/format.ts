// Numbers for people: always with a unit, fixed decimals so columns do not jiggle.
const MiB = 1024 * 1024;

export function bytes(b: number | null | undefined): string {
  if (b == null) return "—";
  if (b >= 1024 * MiB) return (b / 1024 / MiB).toFixed(2) + " GiB";
  if (b >= 100 * MiB) return (b / MiB).toFixed(0) + " MiB";
  return (b / MiB).toFixed(1) + " MiB";
}

export function pct(p: number | null | undefined, digits = 1): string {
  return p == null ? "—" : p.toFixed(digits) + " %";
}

export function duration(secs: number | null | undefined): string {
  if (secs == null || !Number.isFinite(secs)) return "—";
  const s = Math.max(0, Math.floor(secs));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function ago(ms: number | null | undefined, now = Date.now()): string {
  if (ms == null) return "—";
  const s = (now - ms) / 1000;
  if (s < 1) return "now";
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

const two = (n: number) => String(n).padStart(2, "0");

export function clock(ms: number): string {
  const d = new Date(ms);
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

export function dateTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${clock(ms)}`;
}

export function int(n: number | null | undefined): string {
  return n == null ? "—" : Math.round(n).toLocaleString("en-US");
}

/** A rule's reading or threshold in the rule's unit (the alert's `unit` field); plain numbers as they come. */
export function ruleValue(unit: string | null | undefined, v: number | null | undefined): string {
  if (v == null) return "—";
  if (unit === "B") return bytes(v);
  if (unit) return v.toFixed(1) + " " + unit;
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

/** A file size: B, KiB, MiB. */
export function fileSize(b: number): string {
  if (b < 1024) return `${b} B`;
  if (b < MiB) return (b / 1024).toFixed(1) + " KiB";
  return (b / MiB).toFixed(1) + " MiB";
}
