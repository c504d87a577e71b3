// /admin/capsules: capsules of every team with their team and host, filtered by status, team
// or host (the filters live in the URL).

import { type AdminCapsule } from "../../api";
import type { Page } from "../../app";
import { errorBox, field, h, mount, onSubmit, str, time } from "../../dom";
import { memory, statusBadge } from "../../format";
import { CAPSULE_STATUSES } from "../../generated/statuses";
import { adminOnly, adminTabs, head, pageLimit, pagedTable } from "./common";

const FILTERS = ["status", "team_id", "host_id"] as const;

export const adminCapsulesPage: Page = {
  title: "Capsules · Administration",
  async render(root, { app, query, live }) {
    if (!adminOnly(app, root, "Capsules")) return;
    const errors = errorBox();
    const tbody = h("tbody");
    const table = h(
      "table",
      { id: "admin-capsules", hidden: true },
      h("caption", { class: "sr-only" }, "Capsules"),
      head(["Capsule", "Status", "Team", "Host", "Template", "Resources", "Created"]),
      tbody,
    );
    const filtered = FILTERS.some((k) => query.get(k));
    const empty = h("p", { class: "muted", hidden: true }, filtered ? "No capsules match these filters." : "No capsules.");

    const row = (c: AdminCapsule) =>
      h(
        "tr",
        { "data-id": c.id },
        h("th", { scope: "row" }, h("code", null, c.id)),
        h("td", null, statusBadge(c.status, c.reason)),
        h("td", null, c.team_name ?? "", h("div", { class: "muted small-text" }, h("code", null, c.team_id))),
        h("td", null, c.host_id ? [h("code", null, c.host_id), c.host_address ? h("div", { class: "muted small-text" }, c.host_address) : null] : h("span", { class: "muted" }, "—")),
        h("td", null, c.template),
        h("td", null, `${c.vcpus} vCPU · ${memory(c.memory_mb)}`),
        h("td", null, time(c.created_at)),
      );

    const list = pagedTable<AdminCapsule>({
      path: () => {
        const q = new URLSearchParams();
        for (const k of FILTERS) {
          const v = query.get(k);
          if (v) q.set(k, v);
        }
        return q.toString() ? `/v1/admin/capsules?${q}` : "/v1/admin/capsules";
      },
      row,
      table,
      tbody,
      empty,
      errors,
      live,
      limit: pageLimit(query),
    });

    const filterErrors = errorBox();
    const form = h(
      "form",
      { id: "capsule-filter-form", class: "inline-form" },
      field(
        "Status",
        h(
          "select",
          { id: "filter-status", name: "status" },
          h("option", { value: "" }, "Any"),
          CAPSULE_STATUSES.map((s) => h("option", { value: s, selected: query.get("status") === s }, s)),
        ),
      ),
      field("Team id", h("input", { id: "filter-team", name: "team_id", value: query.get("team_id") ?? "", placeholder: "tm_…", autocomplete: "off" })),
      field("Host id", h("input", { id: "filter-host", name: "host_id", value: query.get("host_id") ?? "", placeholder: "host_…", autocomplete: "off" })),
      h("button", { type: "submit" }, "Filter"),
      filtered ? h("a", { href: "/admin/capsules" }, "Clear filters") : null,
    );
    onSubmit(form, filterErrors, async (data) => {
      const q = new URLSearchParams();
      for (const k of FILTERS) {
        const v = str(data, k).trim();
        if (v) q.set(k, v);
      }
      app.navigate(q.toString() ? `/admin/capsules?${q}` : "/admin/capsules");
    });

    mount(root, h("h1", { tabindex: "-1" }, "Capsules"), adminTabs("/admin/capsules"), filterErrors, form, errors, table, empty, list.more);
    await list.reload();
  },
};
