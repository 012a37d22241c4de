// Sparklines on a canvas: a few hundred points, redrawn only when their data changed.
export class Sparkline {
  readonly el: HTMLCanvasElement;
  private drawnLen = -1;
  private drawnLast = NaN;

  constructor(
    private color: string,
    private max?: () => number | null,
  ) {
    this.el = document.createElement("canvas");
  }

  draw(t: number[], v: (number | null)[], windowSec: number) {
    const n = t.length;
    const lastV = n ? (v[n - 1] ?? NaN) : NaN;
    if (n === this.drawnLen && (lastV === this.drawnLast || (Number.isNaN(lastV) && Number.isNaN(this.drawnLast))))
      return;
    this.drawnLen = n;
    this.drawnLast = lastV;
    const c = this.el;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 160,
      hgt = c.clientHeight || 36;
    if (c.width !== Math.round(w * dpr)) c.width = Math.round(w * dpr);
    if (c.height !== Math.round(hgt * dpr)) c.height = Math.round(hgt * dpr);
    const g = c.getContext("2d");
    if (!g) return;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    if (n < 2) {
      g.fillStyle = this.color;
      g.globalAlpha = 0.5;
      g.font = "11px system-ui";
      g.fillText("collecting…", 2, hgt / 2 + 4);
      g.globalAlpha = 1;
      return;
    }
    const t1 = t[n - 1];
    // Until 15 minutes of data exist, the line spans what there is (at least a minute).
    windowSec = Math.max(60, Math.min(windowSec, t1 - t[0]));
    const t0 = t1 - windowSec;
    let hi = this.max?.() ?? 0;
    for (let i = 0; i < n; i++) if (t[i] >= t0 && v[i] != null && (v[i] as number) > hi) hi = v[i] as number;
    if (hi <= 0) hi = 1;
    const x = (ts: number) => ((ts - t0) / windowSec) * (w - 2) + 1;
    const y = (val: number) => hgt - 2 - (val / hi) * (hgt - 5);
    g.beginPath();
    let started = false;
    let firstX = 0,
      lastX = 0;
    for (let i = 0; i < n; i++) {
      if (t[i] < t0 || v[i] == null) continue;
      const px = x(t[i]),
        py = y(v[i] as number);
      if (!started) {
        g.moveTo(px, py);
        started = true;
        firstX = px;
      } else g.lineTo(px, py);
      lastX = px;
    }
    g.strokeStyle = this.color;
    g.lineWidth = 1.25;
    g.stroke();
    g.lineTo(lastX, hgt);
    g.lineTo(firstX, hgt);
    g.closePath();
    g.globalAlpha = 0.12;
    g.fillStyle = this.color;
    g.fill();
    g.globalAlpha = 1;
  }
}
