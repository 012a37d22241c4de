// Charts as SVG (vector, for reports): one panel per series stacked, a time axis, value grid lines with
// units, and the horizontal lines (recycle limit, rule thresholds). Built from the same arrays the live
// charts draw, as a string; nothing here touches the DOM.
import type { Line } from "./chart";

export interface SvgPanel {
  label: string;
  unit: string;
  color: string;
  values: (number | null)[];
  lines: Line[];
}

const esc = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] as string);
const num = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

/** `t` in seconds since the epoch, shared by every panel; `from`/`to` the visible range (seconds). */
export function chartsSvg(
  title: string,
  t: number[],
  panels: SvgPanel[],
  from: number,
  to: number,
  width = 960,
): string {
  const ph = 180,
    head = 34,
    gap = 26,
    left = 64,
    right = 16,
    axisH = 22;
  const height = head + panels.length * (ph + gap) + axisH;
  const W = width - left - right;
  const x = (s: number) => left + ((s - from) / Math.max(1e-9, to - from)) * W;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${left}" y="20" font-size="13" fill="#1c2330">${esc(title)}</text>`,
  ];
  panels.forEach((p, i) => {
    const top = head + i * (ph + gap);
    const vis = p.values.filter((v, k): v is number => v != null && t[k] >= from && t[k] <= to);
    const hi = Math.max(1, ...vis, ...p.lines.map((l) => l.value)) * 1.12;
    const y = (v: number) => top + ph - (v / hi) * ph;
    out.push(`<text x="${left}" y="${top - 6}" fill="#5d6878">${esc(p.label)} (${esc(p.unit)})</text>`);
    for (let g = 0; g <= 4; g++) {
      const v = (hi / 4) * g,
        yy = y(v).toFixed(1);
      out.push(
        `<line x1="${left}" x2="${left + W}" y1="${yy}" y2="${yy}" stroke="#e3e7ec"/>`,
        `<text x="${left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle" fill="#5d6878">${num(v)} ${esc(p.unit)}</text>`,
      );
    }
    // One path per run of points without gaps.
    let d = "",
      pen = false;
    p.values.forEach((v, k) => {
      if (v == null || t[k] < from || t[k] > to) {
        pen = false;
        return;
      }
      d += `${pen ? "L" : "M"}${x(t[k]).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    if (d) out.push(`<path d="${d}" fill="none" stroke="${p.color}" stroke-width="1.5"/>`);
    for (const l of p.lines) {
      const yy = y(l.value).toFixed(1);
      out.push(
        `<line x1="${left}" x2="${left + W}" y1="${yy}" y2="${yy}" stroke="${l.color}"${l.dash ? ` stroke-dasharray="${l.dash.join(" ")}"` : ""}/>`,
        `<text x="${left + W - 4}" y="${Number(yy) - 4}" text-anchor="end" fill="${l.color}">${esc(l.label)}</text>`,
      );
    }
  });
  const base = head + panels.length * (ph + gap) - gap + 14;
  for (let g = 0; g <= 5; g++) {
    const s = from + ((to - from) / 5) * g;
    out.push(
      `<text x="${x(s).toFixed(1)}" y="${base}" text-anchor="middle" fill="#5d6878">${esc(new Date(s * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }))}</text>`,
    );
  }
  out.push("</svg>");
  return out.join("\n");
}
