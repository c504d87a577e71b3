// /admin/builds: every team's template builds, newest first, with the team, a status filter
// in the URL (`?status=`) and "Load more" paging. A build opens on its page only for its own
// team (the build pages are team-scoped), so other teams' builds show their id instead.

import { type Build } from "../../api";
import type { Page } from "../../app";
import { errorBox, h, mount, time } from "../../dom";
import { buildStatus, duration, reason, stepsDone, templateType } from "../build/view";
import { adminOnly, adminTabs, head, pageLimit, pagedTable } from "./common";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"];

export const adminBuildsPage: Page = {
  title: "Builds · Administration",
  async render(root, { app, query, live }) {
    if (!adminOnly(app, root, "Builds")) return;
    const errors = errorBox();
    const tbody = h("tbody");
    const table = h(
      "table",
      { id: "admin-builds", hidden: true },
      h("caption", { class: "sr-only" }, "Builds"),
      head(["Template", "Team", "Status", "From", "Steps", "Type", "Created", "Duration"]),
      tbody,
    );
    const empty = h("p", { class: "muted", hidden: true }, query.get("status") ? "No builds in this status." : "No builds.");
    const status = query.get("status") ?? "";
    const filter = h(
      "select",
      { id: "admin-builds-status", "aria-label": "Status" },
      h("option", { value: "" }, "Every status"),
      STATUSES.map((s) => h("option", { value: s, selected: s === status }, s)),
    );
    filter.addEventListener("change", () => app.navigate(filter.value ? `/admin/builds?status=${filter.value}` : "/admin/builds", { replace: true }));

    function row(b: Build): HTMLElement {
      const own = b.team_id === app.teamId;
      return h(
        "tr",
        { "data-id": b.id, "data-status": b.status },
        h(
          "th",
          { scope: "row" },
          own ? h("a", { href: `/builds/${encodeURIComponent(b.id)}` }, b.name) : b.name,
          b.scope === "platform" ? h("span", { class: "badge" }, "platform") : null,
          h("div", null, h("code", { class: "small-text" }, b.id)),
        ),
        h("td", null, h("code", null, b.team_id)),
        h("td", null, buildStatus(b.status), reason(b) ? h("div", { class: "bad small-text" }, reason(b)) : null),
        h("td", null, b.from),
        h("td", null, stepsDone(b)),
        h("td", null, templateType(b)),
        h("td", null, time(b.created_at)),
        h("td", null, duration(b)),
      );
    }

    const path = () => (STATUSES.includes(status) ? `/v1/admin/builds?status=${status}` : "/v1/admin/builds");
    const list = pagedTable<Build>({ path, row, table, tbody, empty, errors, live, limit: pageLimit(query) });
    mount(
      root,
      h("h1", { tabindex: "-1" }, "Builds"),
      adminTabs("/admin/builds"),
      h("div", { class: "toolbar" }, filter),
      errors,
      h("div", { class: "table-wrap" }, table),
      empty,
      list.more,
    );
    await list.reload();
  },
};
