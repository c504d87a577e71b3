// /admin/templates: every team's templates and the platform's; non-reserved ones can be
// deleted (reserved platform base templates answer 403 `template_reserved`).

import { api, seg, type AdminTemplate } from "../../api";
import type { Page } from "../../app";
import { busy, errorBox, h, mount, time } from "../../dom";
import { memory, size } from "../../format";
import { adminOnly, adminTabs, head, pageLimit, pagedTable } from "./common";

export const adminTemplatesPage: Page = {
  title: "Templates · Administration",
  async render(root, { app, query, live }) {
    if (!adminOnly(app, root, "Templates")) return;
    const errors = errorBox();
    const tbody = h("tbody");
    const table = h(
      "table",
      { id: "admin-templates", hidden: true },
      h("caption", { class: "sr-only" }, "Templates"),
      head(["Name", "Type", "Team", "vCPUs", "Memory", "Size", "Created", ""]),
      tbody,
    );
    const empty = h("p", { class: "muted", hidden: true }, "No templates.");

    function row(t: AdminTemplate): HTMLElement {
      let action: Node = h("span", { class: "muted small-text" }, "reserved");
      if (!t.reserved) {
        const del = h("button", { type: "button", class: "danger small", "aria-label": `Delete template ${t.name}` }, "Delete");
        busy(
          del,
          async () => {
            if (!confirm(`Delete the template “${t.name}”${t.team_name ? ` of ${t.team_name}` : ""} from every host?`)) return;
            await api.del(`/v1/admin/templates/${seg(t.id)}`);
            errors.clear();
            app.notify("success", `Template ${t.name} deleted.`);
            await list.reload();
          },
          (err) => errors.show(err),
        );
        action = del;
      }
      return h(
        "tr",
        { "data-id": t.id, "data-name": t.name },
        h("th", { scope: "row" }, t.name, t.platform ? h("span", { class: "badge" }, "platform") : null),
        h("td", null, t.type),
        h("td", null, t.team_name ?? (t.team_id ? h("code", null, t.team_id) : h("span", { class: "muted" }, "—"))),
        h("td", null, t.vcpus ?? "—"),
        h("td", null, t.memory_mb ? memory(t.memory_mb) : "—"),
        h("td", null, size(t.size_bytes)),
        h("td", null, time(t.created_at)),
        h("td", { class: "actions" }, action),
      );
    }

    const list = pagedTable<AdminTemplate>({ path: () => "/v1/admin/templates", row, table, tbody, empty, errors, live, limit: pageLimit(query) });
    mount(root, h("h1", { tabindex: "-1" }, "Templates"), adminTabs("/admin/templates"), errors, table, empty, list.more);
    await list.reload();
  },
};
