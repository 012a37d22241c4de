// A confirmation that names the worker and says what will happen. Resolves true on confirm.
import { h } from "../dom";

export function confirmAction(opts: {
  title: string;
  body: string;
  confirm: string;
  danger?: boolean;
}): Promise<boolean> {
  return new Promise((resolve) => {
    const ok = h(
      "button.primary",
      { type: "submit", value: "ok", class: opts.danger ? "danger solid" : "" },
      opts.confirm,
    );
    const dlg = h(
      "dialog",
      { "aria-label": opts.title },
      h(
        "form",
        { method: "dialog" },
        h("h3", opts.title),
        h("p", opts.body),
        h("div.row", h("button", { type: "submit", value: "cancel" }, "Cancel"), ok),
      ),
    );
    document.body.appendChild(dlg);
    dlg.addEventListener("close", () => {
      resolve(dlg.returnValue === "ok");
      dlg.remove();
    });
    dlg.showModal();
    ok.focus();
  });
}
