// Recycle and Stop, each behind a confirmation that names the worker and says what will happen. The
// server's reason for a refusal is shown next to the action that failed.
import { confirmAction } from "../components/confirm";
import { ApiError } from "../types";
import type { WorkerDto } from "../types";
import type { Ctx } from "./view";

function reason(e: unknown): string {
  if (e instanceof ApiError) return `${e.message} (${e.code})`;
  return e instanceof Error ? e.message : String(e);
}

function who(w: WorkerDto): string {
  return w.pid != null ? `${w.id} (pid ${w.pid})` : w.id;
}

export async function recycleWorkers(ctx: Ctx, ws: WorkerDto[], errEl: HTMLElement): Promise<boolean> {
  if (!ws.length) return false;
  const one = ws.length === 1;
  const ok = await confirmAction({
    title: one ? `Recycle ${ws[0].id}?` : `Recycle ${ws.length} workers?`,
    body: one
      ? `Tend will start a replacement, then drain this one: ${who(ws[0])} stops after the new process is READY.`
      : `For each of ${ws.map((w) => w.id).join(", ")}: start a replacement, then drain this one (within the pool's max_unavailable).`,
    confirm: one ? `Recycle ${ws[0].id}` : `Recycle ${ws.length} workers`,
  });
  if (!ok) return false;
  errEl.textContent = "";
  const failures: string[] = [];
  for (const w of ws) {
    try {
      await ctx.transport.recycle(w.id);
    } catch (e) {
      failures.push(`${w.id}: ${reason(e)}`);
    }
  }
  errEl.textContent = failures.join("; ");
  return failures.length === 0;
}

export async function stopWorker(ctx: Ctx, w: WorkerDto, errEl: HTMLElement): Promise<boolean> {
  const ok = await confirmAction({
    title: `Stop ${w.id}?`,
    body: `Tend will drain ${who(w)} and not replace it. The pool runs one worker short until it is recycled or Tend restarts.`,
    confirm: `Stop ${w.id}`,
    danger: true,
  });
  if (!ok) return false;
  errEl.textContent = "";
  try {
    await ctx.transport.stop(w.id);
    return true;
  } catch (e) {
    errEl.textContent = reason(e);
    return false;
  }
}

export { reason as errorReason };
