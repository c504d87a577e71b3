// /admin: the platform at a glance (hosts, teams, users, capsules) and its events as they
// happen, from `GET /v1/admin/events/stream` (every team's lifecycle events and capsule state
// changes).

import { getAll, type AdminTeam, type AdminUser, type Host, type LiveEvent } from "../../api";
import type { Page } from "../../app";
import { describe, h, mount, time } from "../../dom";
import { followEvents } from "../../events";
import { adminOnly, adminTabs, allPages } from "./common";

const MAX_EVENTS = 50;

function stat(id: string, label: string): { el: HTMLElement; set(value: string, detail?: string): void; fail(err: unknown): void } {
  const value = h("dd", { id: `stat-${id}`, class: "stat-value" }, h("span", { class: "muted" }, "…"));
  const el = h("div", { class: "stat card" }, h("dt", null, label), value);
  return {
    el,
    set(v, detail) {
      mount(value, v, detail ? h("small", { class: "muted" }, ` ${detail}`) : null);
    },
    fail(err) {
      const { code, message } = describe(err);
      mount(value, h("span", { class: "bad", role: "alert" }, message, code ? [" ", h("code", { class: "error-code" }, code)] : null));
    },
  };
}

export const adminOverviewPage: Page = {
  title: "Administration",
  async render(root, { app, live }) {
    if (!adminOnly(app, root, "Administration")) return;
    const hosts = stat("hosts", "Hosts");
    const teams = stat("teams", "Teams");
    const users = stat("users", "Users");
    const capsules = stat("capsules", "Capsules");

    const streamState = h("p", { id: "events-state", class: "muted", role: "status" }, "Connecting…");
    const tbody = h("tbody");
    const table = h(
      "table",
      { id: "admin-events", hidden: true },
      h("caption", { class: "sr-only" }, "Recent events"),
      h("thead", null, h("tr", null, ["Time", "Event", "Outcome", "Team", "Actor", "Resource"].map((c) => h("th", { scope: "col" }, c)))),
      tbody,
    );
    const noEvents = h("p", { class: "muted", id: "admin-events-empty" }, "No events since this page opened.");

    mount(
      root,
      h("h1", { tabindex: "-1" }, "Administration"),
      adminTabs("/admin"),
      h("dl", { class: "stats" }, hosts.el, teams.el, users.el, capsules.el),
      h(
        "section",
        { class: "card", "aria-labelledby": "events-h" },
        h("h2", { id: "events-h" }, "Recent events"),
        streamState,
        table,
        noEvents,
      ),
    );

    followEvents(
      "/v1/admin/events/stream",
      live,
      (e: LiveEvent) => {
        const state = e.metadata?.to ? `${e.metadata.from ?? "?"} → ${e.metadata.to}` : null;
        tbody.prepend(
          h(
            "tr",
            null,
            h("td", null, time(e.timestamp)),
            h("td", null, h("code", null, e.event), state ? h("div", { class: "muted small-text" }, state) : null),
            h("td", null, e.outcome ?? h("span", { class: "muted" }, "—"), e.error ? h("div", { class: "bad small-text" }, e.error) : null),
            h("td", null, h("code", null, e.team_id)),
            h("td", null, e.actor?.name || e.actor?.type || "—"),
            h("td", null, e.resource?.type ?? "", " ", e.resource?.id ? h("code", null, e.resource.id) : null),
          ),
        );
        while (tbody.childElementCount > MAX_EVENTS) tbody.lastElementChild?.remove();
        table.hidden = false;
        noEvents.hidden = true;
      },
      (s) => {
        if (s.kind === "open") mount(streamState, "Live: new events appear at the top.");
        else if (s.kind === "connecting") mount(streamState, "Connecting…");
        else if (s.kind === "error") {
          const { code, message } = describe(s.error);
          mount(streamState, h("span", { class: "bad" }, `Event stream: ${message}`, code ? [" ", h("code", { class: "error-code" }, code)] : null), ". Retrying.");
        }
      },
    );

    const counts: Promise<void>[] = [
      getAll<Host>("/v1/hosts").then((list) => {
        hosts.set(String(list.length), `(${list.filter((x) => x.status === "online").length} online)`);
      }, hosts.fail),
      allPages<AdminTeam>("/v1/admin/teams").then(({ items, complete }) => {
        teams.set(`${items.length}${complete ? "" : "+"}`, `(${items.filter((t) => t.is_byoc).length} BYOC)`);
        const running = items.reduce((n, t) => n + (t.running_capsules ?? 0), 0);
        const paused = items.reduce((n, t) => n + (t.paused_capsules ?? 0), 0);
        capsules.set(String(running + paused), `(${running} running, ${paused} paused)`);
      }, (err) => {
        teams.fail(err);
        capsules.fail(err);
      }),
      allPages<AdminUser>("/v1/admin/users").then(({ items, complete }) => {
        users.set(`${items.length}${complete ? "" : "+"}`, `(${items.filter((u) => u.is_admin).length} admins)`);
      }, users.fail),
    ];
    await Promise.all(counts);
  },
};
