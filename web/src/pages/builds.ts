// Template builds: the team's list (newest first, "Load more" paging, refreshed every 2 s while
// one is queued or running) with the "New build" form, and one build's page: its facts, its
// steps, its log followed live over SSE (`/v1/builds/{id}/logs?follow=true`: `log`, `status`
// and a final `end`), Cancel while it is in flight, and once it ends its error or its template.

import { api, ApiError, getPage, seg, type Build } from "../api";
import { canManage, type Page } from "../app";
import { busy, describe, errorBox, h, mount, time } from "../dom";
import { followStream, type StreamState } from "../events";
import { memory } from "../format";
import { newBuildForm } from "./build/form";
import { logView } from "./build/log";
import { IN_FLIGHT, buildStatus, duration, inFlight, reason, stepMeta, stepsDone, templateType } from "./build/view";
import { pageLimit } from "./admin/common";

const POLL_MS = 2000;
const PAGE_SIZE = 50;
/** The API's largest page: a refresh re-reads at most this many of the shown rows. */
const MAX_PAGE = 200;

function buildRow(b: Build): HTMLElement {
  return h(
    "tr",
    { "data-id": b.id, "data-status": b.status },
    h("th", { scope: "row" }, h("a", { href: `/builds/${seg(b.id)}` }, b.name), b.scope === "platform" ? h("span", { class: "badge" }, "platform") : null),
    h("td", null, buildStatus(b.status)),
    h("td", null, b.from),
    h("td", { class: "steps-done" }, stepsDone(b)),
    h("td", null, templateType(b)),
    h("td", null, time(b.created_at)),
    h("td", null, duration(b)),
  );
}

export const buildsPage: Page = {
  title: "Builds",
  async render(root, { app, query, live }) {
    const errors = errorBox();
    const tbody = h("tbody");
    const table = h(
      "table",
      { id: "builds", hidden: true },
      h("caption", { class: "sr-only" }, "Template builds"),
      h("thead", null, h("tr", null, ["Template", "Status", "From", "Steps", "Type", "Created", "Duration"].map((c) => h("th", { scope: "col" }, c)))),
      tbody,
    );
    const empty = h("p", { class: "muted", id: "builds-empty", hidden: true }, "No builds yet. Start one with the form above, or with ", h("code", null, "POST /v1/builds"), ".");
    const more = h("button", { type: "button", class: "secondary load-more", hidden: true }, "Load more");
    const limit = pageLimit(query, PAGE_SIZE);
    let next: string | null = null;
    let timer: number | undefined;
    // Bumped by every full read: a late answer to an earlier one is dropped.
    let generation = 0;

    /** Shows `items` (the first rows of the list), keeping keyboard focus on the same build. */
    function show(items: Build[], append: boolean) {
      const focused = document.activeElement?.closest("tr")?.getAttribute("data-id");
      const rows = items.map(buildRow);
      if (append) rows.forEach((r) => tbody.appendChild(r));
      else mount(tbody, rows);
      if (focused && tbody.contains(document.activeElement) === false) {
        tbody.querySelector<HTMLElement>(`tr[data-id="${CSS.escape(focused)}"] a`)?.focus({ preventScroll: true });
      }
      const any = tbody.childElementCount > 0;
      table.hidden = !any;
      empty.hidden = any;
    }

    /** Reads the list again as far as it is shown (at least one page), then watches it. */
    async function refresh() {
      window.clearTimeout(timer);
      const gen = ++generation;
      const shown = Math.min(MAX_PAGE, Math.max(limit, tbody.childElementCount));
      const page = await getPage<Build>("/v1/builds", null, shown);
      if (!live() || gen !== generation) return;
      errors.clear();
      show(page.items, false);
      next = page.next;
      more.hidden = next === null;
      watch();
    }
    function watch() {
      window.clearTimeout(timer);
      const rows = Array.from(tbody.querySelectorAll<HTMLElement>("tr[data-status]"));
      if (!rows.some((r) => IN_FLIGHT.has(r.dataset.status ?? ""))) return;
      timer = window.setTimeout(() => {
        if (live()) refresh().catch((err) => live() && (errors.show(err), watch()));
      }, POLL_MS);
    }
    busy(
      more,
      async () => {
        const gen = generation;
        const page = await getPage<Build>("/v1/builds", next, limit);
        if (!live() || gen !== generation) return;
        show(page.items, true);
        next = page.next;
        more.hidden = next === null;
        watch();
      },
      (err) => errors.show(err),
    );

    mount(
      root,
      h("h1", { tabindex: "-1" }, "Builds"),
      h("p", { class: "lede" }, "Templates built from a recipe: each runs in a capsule, step by step, and is saved as a template of the team."),
      canManage(app) ? newBuildForm(app) : h("p", { class: "muted", id: "builds-members-note" }, "Only the team's owners and admins can start builds."),
      h("h2", null, "Recent builds"),
      errors,
      h("div", { class: "table-wrap" }, table),
      empty,
      h("div", { class: "pager" }, more),
    );
    await refresh().catch((err) => errors.show(err));
  },
};

export const buildPage: Page = {
  title: "Build",
  async render(root, { params, live, app }) {
    const id = params.id;
    // A build that is not the team's (or not there) gets the error alone.
    let build = await api.get<Build>(`/v1/builds/${seg(id)}`);
    if (!live()) return;

    const errors = errorBox();
    const heading = h("h1", { tabindex: "-1" }, build.name);
    const facts = h("dl", { class: "facts", id: "build-facts" });
    const steps = h("ol", { class: "build-steps", id: "build-steps" });
    const outcome = h("div", { id: "build-outcome" });
    const actions = h("div", { class: "actions" });
    const streamState = h("p", { class: "muted small-text", id: "build-stream-state", role: "status" });
    const log = logView();

    const cancel = h("button", { type: "button", class: "danger", id: "build-cancel" }, "Cancel build");
    busy(
      cancel,
      async () => {
        if (!confirm(`Cancel the build of “${build.name}”? The step in flight is stopped and nothing is saved.`)) return;
        const fresh = await api.post<Build>(`/v1/builds/${seg(id)}/cancel`);
        errors.clear();
        app.notify("success", `Build of ${fresh.name} ${fresh.status === "cancelled" ? "cancelled" : "is being cancelled"}.`);
        update(fresh);
      },
      (err) => errors.show(err),
    );

    function update(b: Build) {
      build = b;
      mount(
        facts,
        [
          ["Status", buildStatus(b.status, "build-status")],
          ["Build", h("code", null, b.id)],
          ["From", b.from],
          ["Template", b.template_id ? [h("code", null, b.template_id), " ", templateType(b)] : templateType(b)],
          ["Scope", b.scope],
          ["Resources", `${b.vcpus} vCPU${b.vcpus === 1 ? "" : "s"}, ${memory(b.memory_mb)}`],
          ["Steps", stepsDone(b)],
          ["Created", time(b.created_at)],
          ["Started", time(b.started_at)],
          ["Duration", duration(b)],
        ].map(([k, v]) => [h("dt", null, k as string), h("dd", { id: k === "Duration" ? "build-duration" : null }, v as Node | string | Node[])]),
      );
      mount(
        steps,
        b.steps.map((s) => {
          const current = s.status === "running";
          return h(
            "li",
            { class: current ? "step current" : "step", "data-index": s.index, "data-status": s.status, "aria-current": current ? "step" : null },
            h("span", { class: "step-what" }, h("strong", null, s.instruction), s.args ? [" ", h("code", null, s.args)] : null),
            " ",
            buildStatus(s.status),
            " ",
            h("span", { class: "muted small-text step-meta" }, stepMeta(s)),
          );
        }),
      );
      cancel.hidden = !inFlight(b);
      if (inFlight(b)) mount(outcome);
      else if (b.status === "succeeded") {
        mount(
          outcome,
          h(
            "div",
            { class: "callout", id: "build-template" },
            h("strong", null, `Template ${b.name} saved`),
            ` as a ${b.template_type === "snapshot" ? "snapshot (memory kept: its START process is running when a capsule starts)" : "base image"}. `,
            h("a", { href: b.template_type ? `/snapshots?type=${b.template_type}` : "/snapshots" }, "See it under Snapshots"),
            ", or start a capsule from it on the ",
            h("a", { href: "/capsules" }, "Capsules"),
            " page.",
          ),
        );
      } else {
        const failed = b.status === "failed";
        mount(
          outcome,
          h(
            "div",
            { class: failed ? "error-box" : "callout muted-callout", id: "build-error" },
            h("strong", null, failed ? "The build failed" : "The build was cancelled"),
            `${reason(b) ? `: ${reason(b)}` : ""}. No template was saved.`,
          ),
        );
      }
    }

    mount(
      root,
      h("p", { class: "crumbs" }, h("a", { href: "/builds" }, "← Builds")),
      heading,
      errors,
      h("section", { class: "card", "aria-labelledby": "build-details-h" }, h("h2", { id: "build-details-h" }, "Details"), facts, outcome, actions),
      h("section", { class: "card", "aria-labelledby": "build-steps-h" }, h("h2", { id: "build-steps-h" }, "Steps"), steps),
      h(
        "section",
        { class: "card", "aria-labelledby": "build-log-h" },
        h("div", { class: "panel-head" }, h("h2", { id: "build-log-h" }, "Log"), streamState),
        log.el,
      ),
      h(
        "details",
        { class: "card" },
        h("summary", null, "Recipe"),
        h("pre", { class: "output", id: "build-recipe-text", tabindex: "0" }, build.recipe),
      ),
    );
    mount(actions, cancel);
    update(build);
    // The running time goes on between status changes.
    const ticker = window.setInterval(() => {
      if (!live()) window.clearInterval(ticker);
      else if (inFlight(build)) {
        const dd = facts.querySelector("#build-duration");
        if (dd) mount(dd, duration(build));
      }
    }, 1000);

    // The whole log from the start, then live; a reconnect resumes after the last entry seen.
    let ended = false;
    followStream(
      () => `/v1/builds/${seg(id)}/logs?follow=true${log.lastSeq() ? `&after=${log.lastSeq()}` : ""}`,
      live,
      (name, data) => {
        try {
          if (name === "log") log.append(JSON.parse(data));
          else if (name === "status" || name === "end") {
            if (name === "end") ended = true;
            update(JSON.parse(data) as Build);
          }
        } catch {
          // Not JSON: nothing to show.
        }
      },
      (s: StreamState) => {
        if (!live()) return;
        if (s.kind === "open") mount(streamState, inFlight(build) ? "Following the build live." : "");
        else if (s.kind === "connecting") mount(streamState, "Connecting…");
        else if (s.kind === "ended") mount(streamState, "");
        else {
          const { message } = describe(s.error);
          const refused = s.error instanceof ApiError && [401, 403, 404].includes(s.error.status);
          mount(streamState, h("span", { class: "bad" }, `Log stream: ${message}`), refused ? "." : ". Retrying.");
        }
      },
      () => ended,
    );
  },
};
