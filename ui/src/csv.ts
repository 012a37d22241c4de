// CSV written in the browser when the server has no export endpoint. Same rules as tend-store's export:
// RFC 4180 quoting, and a cell that starts like a formula (= + - @, tab, CR) gets a leading `'`.
export function cell(v: string | number | null | undefined): string {
  if (v == null) return "";
  let s = String(v);
  if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = "'" + s;
  if (/[",\n\r]/.test(s)) s = '"' + s.replace(/"/g, '""') + '"';
  return s;
}

export function csv(header: string[], rows: (string | number | null | undefined)[][]): string {
  const out = [header.map(cell).join(",")];
  for (const r of rows) out.push(r.map(cell).join(","));
  return out.join("\n") + "\n";
}

export function download(name: string, blob: Blob) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
