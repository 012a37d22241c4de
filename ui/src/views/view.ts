import type { Store } from "../store";
import type { Transport } from "../transport/transport";

/** A screen: built once when navigated to, `update()`d once per animation frame while data changes. */
export interface View {
  el: HTMLElement;
  update(): void;
  destroy?(): void;
  /** Keyboard shortcuts of the screen; return true when handled. */
  onKey?(e: KeyboardEvent): boolean;
}

export interface Ctx {
  store: Store;
  transport: Transport;
  navigate(path: string): void;
  query: URLSearchParams;
}
