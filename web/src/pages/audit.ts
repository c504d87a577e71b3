// The audit log of the current team (`GET /v1/audit-logs`): who did what to which resource,
// newest first. Filters (resource type, action) live in the URL; "Older" fetches the next page
// with the `before`/`before_id` cursor and appends it. Plain members see team-scope rows,
// owners and admins every row of the team.

import { api, type AuditLog, type AuditPage } from "../api";
import { canManage, currentTeam, type Page } from "../app";
import { busy, errorBox, field, h, mount, onSubmit, str, time } from "../dom";

const PAGE_SIZE = 50;

/** Rows per page: the URL's `limit` (1-200, as the API allows), else 50. */
function pageSize(query: URLSearchParams): number {
  const n = Number(query.get("limit"));
  return Number.isInteger(n) && n >= 1 && n <= 200 ? n : PAGE_SIZE;
}

/** Resource types the control plane writes (events `resource.type`). */
const RESOURCE_TYPES = ["sandbox", "snapshot", "host"];
/** Actions it writes: lifecycle outcomes and host management. */
const ACTIONS = [
  "capsule.create",
  "capsule.pause",
  "capsule.resume",
  "capsule.destroy",
  "template.snapshot.create",
  "template.snapshot.delete",
  "host.create",
  "host.token",
  "host.delete",
  "host.up",
  "host.down",
];

function details(row: AuditLog): Node | null {
  const parts: Node[] = [];
  for (const [k, v] of Object.entries(row.metadata ?? {})) parts.push(h("li", null, h("span", { class: "muted" }, `${k}: `), String(v)));
  if (row.error) parts.push(h("li", { class: "bad" }, row.error));
  return parts.length ? h("ul", { class: "plain caps" }, parts) : null;
}

export const auditPage: Page = {
  title: "Audit log",
  async render(root, { app, query, live }) {
    const errors = errorBox();
    const tbody = h("tbody");
    const table = h(
      "table",
      { id: "audit-logs", hidden: true },
      h("caption", { class: "sr-only" }, "Audit log"),
      h("thead", null, h("tr", null, ["Time", "Actor", "Action", "Resource", "Outcome", "Details"].map((c) => h("th", { scope: "col" }, c)))),
      tbody,
    );
    const filtered = query.has("resource_type") || query.has("action");
    const empty = h("p", { class: "muted", id: "audit-empty", hidden: true }, filtered ? "No audit entries match these filters." : "No audit entries yet.");
    const older = h("button", { type: "button", class: "secondary", id: "audit-older", hidden: true }, "Older");

    const typeSelect = h(
      "select",
      { id: "audit-resource-type", name: "resource_type" },
      h("option", { value: "" }, "Any"),
      RESOURCE_TYPES.map((t) => h("option", { value: t, selected: query.get("resource_type") === t }, t)),
    );
    const actionInput = h("input", {
      id: "audit-action",
      name: "action",
      list: "audit-actions",
      value: query.get("action") ?? "",
      placeholder: "any, e.g. capsule.create",
      autocomplete: "off",
    });
    const filterErrors = errorBox();
    const form = h(
      "form",
      { id: "audit-filter-form", class: "inline-form" },
      field("Resource type", typeSelect),
      field("Action", actionInput),
      h("datalist", { id: "audit-actions" }, ACTIONS.map((a) => h("option", { value: a }))),
      h("button", { type: "submit" }, "Filter"),
      filtered ? h("a", { href: "/audit", class: "clear-filters" }, "Clear filters") : null,
    );
    onSubmit(form, filterErrors, async (data) => {
      const q = new URLSearchParams();
      const type = str(data, "resource_type");
      const action = str(data, "action").trim();
      if (type) q.set("resource_type", type);
      if (action) q.set("action", action);
      const limit = query.get("limit");
      if (limit) q.set("limit", limit);
      app.navigate(q.toString() ? `/audit?${q}` : "/audit");
    });

    let cursor: { before: string; before_id: string } | null = null;
    async function loadPage(append: boolean) {
      const q = new URLSearchParams({ limit: String(pageSize(query)) });
      for (const k of ["resource_type", "action"]) {
        const v = query.get(k);
        if (v) q.set(k, v);
      }
      if (append && cursor) {
        q.set("before", cursor.before);
        q.set("before_id", cursor.before_id);
      }
      const page = await api.get<AuditPage>(`/v1/audit-logs?${q}`);
      if (!live()) return;
      const rows = page.audit_logs.map((r) =>
        h(
          "tr",
          { "data-id": r.id },
          h("td", null, time(r.created_at)),
          h("td", null, r.actor.name || r.actor.id || "—", h("div", { class: "muted small-text" }, r.actor.type)),
          h("td", null, h("code", null, r.action), r.scope === "admin" ? h("span", { class: "badge" }, "admin") : null),
          h("td", null, r.resource.type, " ", r.resource.id ? h("code", null, r.resource.id) : null),
          h("td", null, r.outcome ? h("span", { class: `status status-${r.outcome === "success" ? "running" : "error"}` }, r.outcome) : h("span", { class: "muted" }, "—")),
          h("td", null, details(r)),
        ),
      );
      if (append) rows.forEach((r) => tbody.appendChild(r));
      else mount(tbody, rows);
      cursor = page.next_before && page.next_before_id ? { before: page.next_before, before_id: page.next_before_id } : null;
      older.hidden = cursor === null;
      const any = tbody.childElementCount > 0;
      table.hidden = !any;
      empty.hidden = any;
    }
    busy(older, () => loadPage(true), (err) => errors.show(err));

    mount(
      root,
      h("h1", { tabindex: "-1" }, "Audit log"),
      h(
        "p",
        { class: "lede" },
        "What happened in ",
        h("strong", null, currentTeam(app)?.name ?? "this team"),
        ", newest first. ",
        canManage(app) ? "As an owner or admin you see every entry of the team." : "Members see the team's entries; host management is shown to owners and admins.",
      ),
      h("section", { class: "card", "aria-labelledby": "audit-filter-h" }, h("h2", { id: "audit-filter-h" }, "Filters"), filterErrors, form),
      errors,
      table,
      empty,
      h("div", { class: "pager" }, older),
    );
    await loadPage(false);
  },
};
