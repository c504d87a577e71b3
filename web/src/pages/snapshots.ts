// Templates visible to the team: platform base images and the team's snapshot templates
// (created from a capsule on the capsules page); snapshots can be deleted here.

import { api, getAll, seg, type Template } from "../api";
import type { Page } from "../app";
import { busy, errorBox, h, mount, time } from "../dom";
import { size } from "../format";

export const snapshotsPage: Page = {
  title: "Snapshots",
  async render(root, { app, query, live }) {
    const errors = errorBox();
    const tbody = h("tbody");
    const filter = h(
      "select",
      { id: "template-type", "aria-label": "Show" },
      [
        ["", "All templates"],
        ["snapshot", "Snapshots"],
        ["base", "Base images"],
      ].map(([v, label]) => h("option", { value: v, selected: (query.get("type") ?? "") === v }, label)),
    );
    filter.addEventListener("change", () => {
      app.navigate(filter.value ? `/snapshots?type=${filter.value}` : "/snapshots", { replace: true });
    });
    const empty = h("p", { class: "muted", hidden: true }, "No templates. Snapshot a running or paused capsule from its row on the Capsules page.");
    const table = h(
      "table",
      { id: "templates", hidden: true },
      h("thead", null, h("tr", null, ["Name", "Type", "vCPUs", "Memory", "Size", "Created", ""].map((c) => h("th", { scope: "col" }, c)))),
      tbody,
    );

    async function load() {
      const type = query.get("type");
      const path = type === "base" || type === "snapshot" ? `/v1/snapshots?type=${type}` : "/v1/snapshots";
      const templates = await getAll<Template>(path);
      if (!live()) return;
      table.hidden = templates.length === 0;
      empty.hidden = templates.length > 0;
      mount(
        tbody,
        templates.map((t) => {
          let action: Node | null = null;
          if (!t.platform && t.type === "snapshot") {
            const del = h("button", { type: "button", class: "danger small", "aria-label": `Delete ${t.name}` }, "Delete");
            busy(
              del,
              async () => {
                if (!confirm(`Delete the snapshot “${t.name}” from every host?`)) return;
                await api.del(`/v1/snapshots/${seg(t.name)}`);
                app.notify("success", `Snapshot ${t.name} deleted.`);
                await load();
              },
              (err) => errors.show(err),
            );
            action = del;
          }
          return h(
            "tr",
            { "data-name": t.name },
            h("th", { scope: "row" }, t.name),
            h("td", null, t.type, t.platform ? h("span", { class: "badge" }, "platform") : null),
            h("td", null, t.vcpus ?? "—"),
            h("td", null, t.memory_mb ? `${t.memory_mb} MiB` : "—"),
            h("td", null, size(t.size_bytes)),
            h("td", null, time(t.created_at)),
            h("td", { class: "actions" }, action),
          );
        }),
      );
    }

    mount(root, h("h1", { tabindex: "-1" }, "Snapshots and templates"), h("div", { class: "toolbar" }, filter), errors, table, empty);
    await load();
  },
};
