// /admin/users: every account, searchable by email; disable or enable it and grant or revoke
// platform admin (409 `last_admin` when no active platform admin would be left).

import { api, seg, type AdminUser } from "../../api";
import type { Page } from "../../app";
import { busy, errorBox, field, h, mount, onSubmit, str, time } from "../../dom";
import { adminOnly, adminTabs, head, pageLimit, pagedTable, replaceRow } from "./common";

export const adminUsersPage: Page = {
  title: "Users · Administration",
  async render(root, { app, query, live }) {
    if (!adminOnly(app, root, "Users")) return;
    const errors = errorBox();
    const email = query.get("email") ?? "";
    const tbody = h("tbody");
    const table = h(
      "table",
      { id: "admin-users", hidden: true },
      h("caption", { class: "sr-only" }, "Users"),
      head(["User", "Email", "State", "Teams", "Created", ""]),
      tbody,
    );
    const empty = h("p", { class: "muted", hidden: true }, email ? `No user's email contains “${email}”.` : "No users.");

    function row(u: AdminUser): HTMLElement {
      const tr = h("tr", { "data-id": u.id });
      const isMe = u.id === app.me?.id;
      const update = async (change: Partial<Pick<AdminUser, "disabled" | "is_admin">>, done: string, control: "disabled" | "admin") => {
        const updated = await api.patch<AdminUser>(`/v1/admin/users/${seg(u.id)}`, change);
        errors.clear();
        app.notify("success", done);
        replaceRow(tbody, tr, u.id, row(updated ?? { ...u, ...change }), `[data-action="${control}"]`);
        if (isMe) await app.refresh();
      };
      const disable = h(
        "button",
        { type: "button", class: u.disabled ? "secondary small" : "danger small", "data-action": "disabled", "aria-label": `${u.disabled ? "Enable" : "Disable"} ${u.email}` },
        u.disabled ? "Enable" : "Disable",
      );
      busy(
        disable,
        async () => {
          if (!u.disabled && !confirm(`Disable ${u.email}? They are signed out and cannot sign in until enabled.`)) return;
          await update({ disabled: !u.disabled }, u.disabled ? `${u.email} can sign in again.` : `${u.email} is disabled.`, "disabled");
        },
        (err) => errors.show(err),
      );
      const admin = h(
        "button",
        { type: "button", class: "secondary small", "data-action": "admin", "aria-label": `${u.is_admin ? "Revoke admin from" : "Grant admin to"} ${u.email}` },
        u.is_admin ? "Revoke admin" : "Grant admin",
      );
      busy(
        admin,
        async () => {
          if (u.is_admin && !confirm(`Revoke platform admin from ${u.email}?`)) return;
          await update({ is_admin: !u.is_admin }, u.is_admin ? `${u.email} is no longer a platform admin.` : `${u.email} is now a platform admin.`, "admin");
        },
        (err) => errors.show(err),
      );
      const states = [
        u.is_admin ? h("span", { class: "badge" }, "platform admin") : null,
        u.disabled ? h("span", { class: "status status-error" }, "disabled") : null,
        !u.is_active ? h("span", { class: "status status-pending" }, "not activated") : null,
        !u.disabled && u.is_active ? h("span", { class: "status status-running" }, "active") : null,
      ];
      mount(
        tr,
        h("th", { scope: "row" }, u.name, isMe ? h("span", { class: "badge" }, "you") : null),
        h("td", null, u.email),
        h("td", null, states),
        h("td", null, u.team_count),
        h("td", null, time(u.created_at)),
        h("td", { class: "actions" }, disable, admin),
      );
      return tr;
    }

    const list = pagedTable<AdminUser>({
      path: () => (email ? `/v1/admin/users?email=${encodeURIComponent(email)}` : "/v1/admin/users"),
      row,
      table,
      tbody,
      empty,
      errors,
      live,
      limit: pageLimit(query),
    });

    const searchErrors = errorBox();
    const search = h(
      "form",
      { id: "user-search-form", class: "inline-form", role: "search" },
      field("Email contains", h("input", { id: "user-email", name: "email", value: email, autocomplete: "off" })),
      h("button", { type: "submit" }, "Search"),
      email ? h("a", { href: "/admin/users" }, "Show all") : null,
    );
    onSubmit(search, searchErrors, async (data) => {
      const q = str(data, "email").trim();
      app.navigate(q ? `/admin/users?email=${encodeURIComponent(q)}` : "/admin/users");
    });

    mount(root, h("h1", { tabindex: "-1" }, "Users"), adminTabs("/admin/users"), searchErrors, search, errors, table, empty, list.more);
    await list.reload();
  },
};
