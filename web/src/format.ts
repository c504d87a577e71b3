// Shared renderings of sizes and statuses, used by several pages.

import { h } from "./dom";

/** Bytes in binary units (`12.5 MiB`); a dash when unknown. */
export function size(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Memory given in MiB: whole GiB when it divides evenly. */
export function memory(mb: number) {
  return mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024} GiB` : `${mb} MiB`;
}

/** A status pill (`.status-<status>` colours it), with the reason in words when given. */
export function statusBadge(status: string, reason?: string) {
  const badge = h("span", { class: `status status-${status}` }, status);
  return reason ? [badge, " ", h("small", { class: "muted" }, reason.replace(/_/g, " "))] : badge;
}
