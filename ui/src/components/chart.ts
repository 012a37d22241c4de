// Time charts on uPlot. The caller owns the data arrays and appends to them; `update()` hands the same
// arrays to uPlot (no copy, no rebuild of the series). Horizontal lines (recycle limit, rule thresholds)
// are drawn in a hook, and charts with the same `sync` key share one time cursor.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Line {
  value: number;
  label: string;
  color: string;
  dash?: number[];
}
export interface SeriesSpec {
  label: string;
  color: string;
  fill?: boolean;
}

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export class TimeChart {
  readonly el: HTMLDivElement;
  private u: uPlot | null = null;
  private data: uPlot.AlignedData = [[]];
  private ro: ResizeObserver;
  private range: [number, number] | null = null;

  constructor(
    private opts: {
      height: number;
      unit: string;
      series: SeriesSpec[];
      lines?: () => Line[];
      sync?: string;
      yMin?: number;
      /** Draw across missing points (Compare aligns workers sampled at slightly different instants). */
      spanGaps?: boolean;
      /** Extra head-room: the y axis always reaches at least this (e.g. the recycle limit). */
      yAtLeast?: () => number | null;
    },
  ) {
    this.el = document.createElement("div");
    this.ro = new ResizeObserver(() => this.fit());
    this.ro.observe(this.el);
  }

  private make(width: number) {
    const grid = cssVar("--line") || "#ddd";
    const text = cssVar("--muted") || "#666";
    const axis = {
      stroke: text,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
      font: "11px system-ui",
    };
    const unit = this.opts.unit;
    const o: uPlot.Options = {
      width,
      height: this.opts.height,
      legend: { show: false },
      cursor: {
        sync: this.opts.sync ? { key: this.opts.sync } : undefined,
        drag: { x: false, y: false },
        points: { size: 6 },
      },
      scales: {
        x: { time: true, range: () => (this.range ? this.range : [0, 1]) as uPlot.Range.MinMax },
        y: {
          range: (_u, lo, hi) => {
            const floor = this.opts.yAtLeast?.() ?? 0;
            const top = Math.max(hi || 0, floor, 1) * 1.12;
            return [this.opts.yMin ?? Math.min(0, lo || 0), top];
          },
        },
      },
      axes: [
        { ...axis, space: 80, values: (_u, vals, _a, _b, incr) => vals.map((v) => fmtTime(v, incr)) },
        { ...axis, size: 60, values: (_u, vals) => vals.map((v) => fmtAxis(v) + (unit === "%" ? " %" : " " + unit)) },
      ],
      series: [
        {},
        ...this.opts.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 1.5,
          fill: s.fill ? s.color + "1f" : undefined,
          spanGaps: this.opts.spanGaps ?? false,
          points: { show: false },
        })),
      ],
      hooks: {
        draw: [(u) => this.drawLines(u)],
        setCursor: [(u) => this.onCursor?.(u.cursor.idx ?? null)],
      },
    };
    this.u = new uPlot(o, this.data, this.el);
  }

  onCursor: ((idx: number | null) => void) | null = null;

  private drawLines(u: uPlot) {
    const lines = this.opts.lines?.() ?? [];
    const ctx = u.ctx;
    for (const l of lines) {
      const y = Math.round(u.valToPos(l.value, "y", true)) + 0.5;
      if (!Number.isFinite(y)) continue;
      ctx.save();
      ctx.strokeStyle = l.color;
      ctx.lineWidth = 1.25 * devicePixelRatio;
      ctx.setLineDash((l.dash ?? [6, 4]).map((d) => d * devicePixelRatio));
      ctx.beginPath();
      ctx.moveTo(u.bbox.left, y);
      ctx.lineTo(u.bbox.left + u.bbox.width, y);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.font = `${11 * devicePixelRatio}px system-ui`;
      ctx.textAlign = "right";
      const tx = u.bbox.left + u.bbox.width - 4 * devicePixelRatio,
        ty = y - 4 * devicePixelRatio;
      const tw = ctx.measureText(l.label).width;
      ctx.fillStyle = cssVar("--panel") || "#fff";
      ctx.globalAlpha = 0.85;
      ctx.fillRect(
        tx - tw - 3 * devicePixelRatio,
        ty - 11 * devicePixelRatio,
        tw + 6 * devicePixelRatio,
        14 * devicePixelRatio,
      );
      ctx.globalAlpha = 1;
      ctx.fillStyle = l.color;
      ctx.fillText(l.label, tx, ty);
      ctx.restore();
    }
  }

  private fit() {
    const w = Math.floor(this.el.clientWidth);
    if (w <= 0) return;
    if (!this.u) this.make(w);
    else if (Math.abs(this.u.width - w) > 1) this.u.setSize({ width: w, height: this.opts.height });
  }

  /** Show these arrays over [from, to] (seconds). The arrays may be the same ones, grown. */
  update(data: uPlot.AlignedData, from: number, to: number) {
    this.data = data;
    this.range = [from, to];
    // For tests and tools: how many points, and the newest value of the first series.
    const ys = data[1] as (number | null)[] | undefined;
    this.el.dataset.points = String(data[0].length);
    if (ys?.length) this.el.dataset.last = String(ys[ys.length - 1] ?? "");
    if (!this.u) this.fit();
    this.u?.setData(data, true);
  }

  /** The plot area in CSS pixels, relative to this chart's element (to align a timeline under it). */
  plotBox(): { left: number; width: number } | null {
    if (!this.u) return null;
    const dpr = devicePixelRatio || 1;
    return { left: this.u.bbox.left / dpr, width: this.u.bbox.width / dpr };
  }

  destroy() {
    this.ro.disconnect();
    this.u?.destroy();
  }
}

const pad = (n: number) => String(n).padStart(2, "0");
/** Time ticks in 24 h local time; the date only when ticks are a day or more apart. */
function fmtTime(sec: number, incr: number): string {
  const d = new Date(sec * 1000);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (incr >= 86400) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  if (incr >= 3600) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
  return incr < 60 ? `${hm}:${pad(d.getSeconds())}` : hm;
}

function fmtAxis(v: number): string {
  if (Math.abs(v) >= 1000) return (v / 1000).toFixed(1) + "k";
  if (Math.abs(v) >= 10 || v === 0) return v.toFixed(0);
  return v.toFixed(1);
}

/** A stable palette for Compare (state colours are reserved for states). */
export const PALETTE = [
  "#2563eb",
  "#e11d48",
  "#059669",
  "#d97706",
  "#7c3aed",
  "#0891b2",
  "#be185d",
  "#65a30d",
  "#475569",
  "#ea580c",
];
