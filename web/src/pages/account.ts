// The account page (`/settings`, where the OAuth linking flow also lands): profile and rename,
// password change, linked providers, sessions (list, revoke, sign out everywhere), and deleting
// the account (typing its email to confirm, as `DELETE /v1/me` requires).

import { api, getAll, seg, type Profile, type SessionInfo, type Team } from "../api";
import type { Page } from "../app";
import { busy, errorBox, field, h, mount, onSubmit, str, time } from "../dom";

function section(title: string, id: string, ...body: (Node | null)[]) {
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...body);
}

export const accountPage: Page = {
  title: "Account",
  async render(root, { app, query, live }) {
    const me = app.me!;
    const connected = query.get("connected");
    if (connected) app.notify("success", `${connected} is now linked to your account.`);

    // Profile
    const profileErrors = errorBox();
    const profileForm = h(
      "form",
      { id: "rename-form", class: "inline-form" },
      field("Display name", h("input", { id: "display-name", name: "name", required: true, maxlength: 100, value: me.name, autocomplete: "name" })),
      h("button", { type: "submit" }, "Save"),
    );
    onSubmit(profileForm, profileErrors, async (data) => {
      const updated = await api.patch<Profile>("/v1/me", { name: str(data, "name").trim() });
      await app.refresh();
      app.notify("success", `Your name is now “${updated.name}”.`);
      const who = document.querySelector(".topbar .who");
      if (who) who.textContent = updated.name;
    });

    // Password
    const pwErrors = errorBox();
    const pwForm = h(
      "form",
      { id: "password-form" },
      me.has_password
        ? field("Current password", h("input", { id: "current_password", name: "current_password", type: "password", required: true, autocomplete: "current-password" }))
        : h("p", { class: "muted" }, "Your account has no password yet (you sign in with a provider)."),
      field("New password", h("input", { id: "new_password", name: "new_password", type: "password", required: true, minlength: 8, autocomplete: "new-password" }), "At least 8 characters. Every other session is signed out."),
      h("button", { type: "submit" }, "Change password"),
    );
    onSubmit(pwForm, pwErrors, async (data) => {
      await api.post("/v1/me/password", {
        current_password: str(data, "current_password"),
        new_password: str(data, "new_password"),
      });
      pwForm.reset();
      app.notify("success", "Password changed. Other sessions were signed out.");
      await loadSessions();
    });

    // Providers
    const providers = h(
      "ul",
      { class: "plain" },
      me.providers.length
        ? me.providers.map((p) => {
            const unlink = h("button", { type: "button", class: "secondary small" }, "Unlink");
            busy(
              unlink,
              async () => {
                await api.del(`/v1/me/providers/${seg(p)}`);
                await app.refresh();
                app.notify("success", `${p} unlinked.`);
                unlink.closest("li")?.remove();
              },
              (err) => app.notify("error", err),
            );
            return h("li", null, h("span", null, p), " ", unlink);
          })
        : h("li", { class: "muted" }, "No linked providers."),
    );
    const link = me.providers.includes("github")
      ? null
      : h("p", null, h("a", { href: "/v1/me/providers/github/connect" }, "Link a GitHub account"));

    // Sessions
    const sessionErrors = errorBox();
    const sessionsBody = h("tbody");
    const teamNames = new Map(app.teams.map((t: Team) => [t.id, t.name]));
    async function loadSessions() {
      const sessions = await getAll<SessionInfo>("/v1/me/sessions");
      if (!live()) return;
      mount(
        sessionsBody,
        sessions.map((s) => {
          const revoke = s.current
            ? h("span", { class: "badge" }, "this session")
            : h("button", { type: "button", class: "danger small" }, "Revoke");
          if (revoke instanceof HTMLButtonElement) {
            busy(
              revoke,
              async () => {
                await api.del(`/v1/me/sessions/${seg(s.id)}`);
                app.notify("success", "Session revoked.");
                await loadSessions();
              },
              (err) => sessionErrors.show(err),
            );
          }
          return h(
            "tr",
            { "data-id": s.id },
            h("td", null, s.user_agent ?? h("span", { class: "muted" }, "unknown client")),
            h("td", null, s.ip ?? "—"),
            h("td", null, teamNames.get(s.team_id) ?? s.team_id),
            h("td", null, time(s.last_seen_at)),
            h("td", null, time(s.expires_at)),
            h("td", { class: "actions" }, revoke),
          );
        }),
      );
    }
    const logoutAll = h("button", { type: "button", class: "danger" }, "Sign out everywhere");
    busy(
      logoutAll,
      async () => {
        if (!confirm("Sign out of every session, including this one?")) return;
        await api.post("/v1/auth/logout-all");
        app.signedOut("Every session was signed out.");
      },
      (err) => sessionErrors.show(err),
    );

    // Delete the account
    const deleteErrors = errorBox();
    const deleteForm = h(
      "form",
      { id: "delete-account-form" },
      h(
        "p",
        null,
        "Deleting your account signs you out everywhere. Teams you own alone are deleted with their capsules and API keys; ",
        "a team you own that has other members must be handed over or deleted first. The account is purged after 15 days.",
      ),
      field("Type your email to confirm", h("input", { id: "delete-confirmation", name: "confirmation", type: "email", required: true, autocomplete: "off", spellcheck: false })),
      h("button", { type: "submit", class: "danger" }, "Delete my account"),
    );
    onSubmit(deleteForm, deleteErrors, async (data) => {
      // The server compares it with the account's email (400 confirmation_mismatch).
      await api.del("/v1/me", { confirmation: str(data, "confirmation").trim() });
      app.signedOut("Your account was deleted.");
    });

    mount(
      root,
      h("h1", { tabindex: "-1" }, "Account"),
      section(
        "Profile",
        "profile-h",
        h("dl", { class: "facts" }, h("dt", null, "Email"), h("dd", { id: "my-email" }, me.email), h("dt", null, "User id"), h("dd", null, h("code", null, me.id)), me.is_admin ? [h("dt", null, "Role"), h("dd", null, "Platform admin")] : null),
        profileErrors,
        profileForm,
      ),
      section("Password", "password-h", pwErrors, pwForm),
      section("Sign-in providers", "providers-h", providers, link),
      section(
        "Sessions",
        "sessions-h",
        sessionErrors,
        h(
          "table",
          { id: "sessions" },
          h("thead", null, h("tr", null, ["Client", "IP", "Team", "Last seen", "Expires", ""].map((c) => h("th", { scope: "col" }, c)))),
          sessionsBody,
        ),
        logoutAll,
      ),
      h("section", { class: "card danger-zone", "aria-labelledby": "delete-account-h" }, h("h2", { id: "delete-account-h" }, "Delete account"), deleteErrors, deleteForm),
    );
    await loadSessions();
  },
};
