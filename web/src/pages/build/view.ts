// How a build reads in the lists and on its page: its status pill, steps done, how long it took.

import type { Build, StepState } from "../../api";
import { h } from "../../dom";
import { statusBadge } from "../../format";

/** Builds in these states still change by themselves: pages showing one keep watching. */
export const IN_FLIGHT: ReadonlySet<string> = new Set(["queued", "running"]);

export const inFlight = (b: Build) => IN_FLIGHT.has(b.status);

/** The status pill; `.build-status` scopes the colours (a build's `failed` is final, red). */
export function buildStatus(status: string, id?: string): HTMLElement {
  const badge = statusBadge(status) as HTMLElement;
  badge.classList.add("build-status");
  if (id) badge.id = id;
  return badge;
}

/** `2/4`: succeeded steps of all steps. */
export function stepsDone(b: Build): string {
  return `${b.steps.filter((s) => s.status === "succeeded").length}/${b.steps.length}`;
}

/** `45 s`, `3 min 4 s`, `1 h 2 min`. */
export function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

type Timed = { started_at?: string | null; finished_at?: string | null };

/** How long a build or step ran (so far, while it runs); null before it starts. */
export function elapsed(t: Timed): string | null {
  if (!t.started_at) return null;
  const end = t.finished_at ? Date.parse(t.finished_at) : Date.now();
  return span(end - Date.parse(t.started_at));
}

/** `elapsed`, or a dash before it starts. */
export function duration(t: Timed): Node | string {
  return elapsed(t) ?? h("span", { class: "muted" }, "—");
}

/** The made template's type, or a dash. */
export function templateType(b: Build): Node | string {
  return b.template_type ?? h("span", { class: "muted" }, "—");
}

/** `exit 0 · 3 s · line 2`: what is known of a step besides its status. */
export function stepMeta(s: StepState): string {
  const parts: string[] = [];
  if (s.exit_code !== null && s.exit_code !== undefined) parts.push(`exit ${s.exit_code}`);
  const took = elapsed(s);
  if (took) parts.push(took);
  if (s.line) parts.push(`line ${s.line}`);
  return parts.join(" · ");
}

/** Why the build ended without a template, unless that says no more than its status. */
export function reason(b: Build): string {
  const why = b.error.trim().replace(/\.$/, "");
  return why.toLowerCase() === b.status ? "" : why;
}
