// /admin/teams: every team with its members, capsules and hosts; turn BYOC on or off
// (409 `team_has_byoc_hosts` while it has BYOC hosts) and delete (soft delete: its capsules
// are destroyed; 403 for the platform team).

import { api, seg, type AdminTeam } from "../../api";
import type { Page } from "../../app";
import { busy, errorBox, h, mount, time } from "../../dom";
import { memory } from "../../format";
import { adminOnly, adminTabs, head, pageLimit, pagedTable, replaceRow } from "./common";

export const adminTeamsPage: Page = {
  title: "Teams · Administration",
  async render(root, { app, query, live }) {
    if (!adminOnly(app, root, "Teams")) return;
    const errors = errorBox();
    const includeDeleted = query.get("include_deleted") === "true";
    const tbody = h("tbody");
    const table = h(
      "table",
      { id: "admin-teams", hidden: true },
      h("caption", { class: "sr-only" }, "Teams"),
      head(["Team", "Members", "Capsules", "In use", "Hosts", "BYOC", "Created", ""]),
      tbody,
    );
    const empty = h("p", { class: "muted", hidden: true }, "No teams.");

    function row(t: AdminTeam): HTMLElement {
      const deleted = t.deleted_at !== null;
      const tr = h("tr", { "data-id": t.id });
      const byoc = h("input", { type: "checkbox", id: `byoc-${t.id}`, checked: t.is_byoc, disabled: deleted }) as HTMLInputElement;
      byoc.addEventListener("change", async () => {
        const on = byoc.checked;
        byoc.disabled = true;
        try {
          const updated = await api.patch<AdminTeam>(`/v1/admin/teams/${seg(t.id)}`, { is_byoc: on });
          errors.clear();
          app.notify("success", on ? `${t.name} is now a BYOC team.` : `${t.name} is no longer a BYOC team.`);
          replaceRow(tbody, tr, t.id, row(updated ?? { ...t, is_byoc: on }), "input[type=checkbox]");
          if (t.id === app.teamId) await app.refresh();
        } catch (err) {
          // Refused (e.g. 409 team_has_byoc_hosts): the box shows the team's state again.
          byoc.checked = !on;
          errors.show(err);
        } finally {
          byoc.disabled = false;
        }
      });
      let action: Node | null = null;
      if (!deleted) {
        const del = h("button", { type: "button", class: "danger small", "aria-label": `Delete team ${t.name}` }, "Delete");
        busy(
          del,
          async () => {
            const live = t.running_capsules + t.paused_capsules;
            if (!confirm(`Delete the team “${t.name}”?${live ? ` Its ${live} capsule(s) are destroyed.` : ""} Its API keys and channels stop working.`)) return;
            await api.del(`/v1/admin/teams/${seg(t.id)}`);
            errors.clear();
            app.notify("success", `Team ${t.name} deleted.`);
            await list.reload();
          },
          (err) => errors.show(err),
        );
        action = del;
      }
      mount(
        tr,
        h("th", { scope: "row" }, t.name, deleted ? h("span", { class: "badge" }, "deleted") : null, h("div", { class: "muted small-text" }, h("code", null, t.id))),
        h("td", null, t.member_count),
        h("td", null, `${t.running_capsules} running, ${t.paused_capsules} paused`),
        h("td", null, `${t.vcpus_in_use} vCPU · ${memory(t.memory_mb_in_use)}`),
        h("td", null, t.host_count),
        h("td", { class: "toggle" }, h("label", { for: byoc.id, class: "check-inline" }, byoc, h("span", { class: "sr-only" }, `BYOC for ${t.name}`))),
        h("td", null, time(t.created_at), deleted ? h("div", { class: "muted small-text" }, "deleted ", time(t.deleted_at)) : null),
        h("td", { class: "actions" }, action),
      );
      return tr;
    }

    const list = pagedTable<AdminTeam>({
      path: () => `/v1/admin/teams?include_deleted=${includeDeleted}`,
      row,
      table,
      tbody,
      empty,
      errors,
      live,
      limit: pageLimit(query),
    });

    const showDeleted = h("input", { type: "checkbox", id: "include-deleted", checked: includeDeleted }) as HTMLInputElement;
    showDeleted.addEventListener("change", () => app.navigate(showDeleted.checked ? "/admin/teams?include_deleted=true" : "/admin/teams", { replace: true }));

    mount(
      root,
      h("h1", { tabindex: "-1" }, "Teams"),
      adminTabs("/admin/teams"),
      h("div", { class: "toolbar" }, h("label", { for: "include-deleted", class: "check-inline" }, showDeleted, " Show deleted teams")),
      errors,
      table,
      empty,
      list.more,
    );
    await list.reload();
  },
};
