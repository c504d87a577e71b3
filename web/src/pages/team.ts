// The current team: name, members (add by email, change role, remove), leave or delete, and
// creating a new team.

import { api, getAll, listOf, seg, type Member, type SessionStarted, type Team } from "../api";
import { canManage, currentTeam, type Page } from "../app";
import { busy, errorBox, field, h, mount, onSubmit, str, time } from "../dom";

export const teamPage: Page = {
  title: "Team",
  async render(root, { app, live }) {
    const team = currentTeam(app);
    if (!team) throw new Error("The session's team was not found. Pick a team in the switcher.");
    const manage = canManage(app);
    const errors = errorBox();
    const tbody = h("tbody");

    async function load() {
      const detail = await api.get<{ team: Team; members: Member[] } | Member[]>(`/v1/teams/${seg(team!.id)}`);
      const members = Array.isArray(detail) ? detail : listOf<Member>(detail.members, "members");
      if (!live()) return;
      mount(tbody, members.map(row));
    }

    function row(m: Member) {
      const isMe = m.id === app.me?.id;
      let roleCell: Node = document.createTextNode(m.role);
      let actions: Node | null = null;
      if (manage && m.role !== "owner") {
        const select = h(
          "select",
          { "aria-label": `Role of ${m.name}` },
          ["admin", "member"].map((r) => h("option", { value: r, selected: r === m.role }, r)),
        );
        select.addEventListener("change", async () => {
          select.disabled = true;
          try {
            await api.patch(`/v1/teams/${seg(team!.id)}/members/${seg(m.id)}`, { role: select.value });
            app.notify("success", `${m.name} is now ${select.value}.`);
          } catch (err) {
            select.value = m.role;
            errors.show(err);
          } finally {
            select.disabled = false;
          }
        });
        roleCell = select;
        if (!isMe) {
          const remove = h("button", { type: "button", class: "danger small" }, "Remove");
          busy(
            remove,
            async () => {
              if (!confirm(`Remove ${m.name} from ${team!.name}?`)) return;
              await api.del(`/v1/teams/${seg(team!.id)}/members/${seg(m.id)}`);
              app.notify("success", `${m.name} removed.`);
              await load();
            },
            (err) => errors.show(err),
          );
          actions = remove;
        }
      }
      return h(
        "tr",
        { "data-id": m.id },
        h("td", null, m.name, isMe ? h("span", { class: "badge" }, "you") : null),
        h("td", null, m.email),
        h("td", null, roleCell),
        h("td", null, time(m.joined_at)),
        h("td", { class: "actions" }, actions),
      );
    }

    // Add member (owners and admins)
    const addForm = manage
      ? h(
          "form",
          { id: "add-member-form", class: "inline-form" },
          field("Email of an existing user", h("input", { id: "member-email", name: "email", type: "email", required: true, list: "member-suggestions", autocomplete: "off" })),
          h("datalist", { id: "member-suggestions" }),
          h("button", { type: "submit" }, "Add member"),
        )
      : null;
    if (addForm) {
      const email = addForm.querySelector<HTMLInputElement>("#member-email")!;
      const suggestions = addForm.querySelector("datalist")!;
      let pending = 0;
      email.addEventListener("input", async () => {
        const q = email.value.trim();
        if (!q.includes("@")) return;
        const mine = ++pending;
        try {
          const users = listOf<{ email: string; name: string }>(await api.get<unknown>(`/v1/users/search?email=${encodeURIComponent(q)}`), "users");
          if (mine === pending) mount(suggestions, users.map((u) => h("option", { value: u.email }, u.name)));
        } catch {
          // Suggestions are a convenience; the submit reports real errors.
        }
      });
      onSubmit(addForm, errors, async (data) => {
        const added = await api.post<Member>(`/v1/teams/${seg(team.id)}/members`, { email: str(data, "email").trim() });
        addForm.reset();
        app.notify("success", `${added?.name ?? "The user"} joined ${team.name}.`);
        await load();
      });
    }

    // Rename
    const renameForm = manage
      ? h(
          "form",
          { id: "rename-team-form", class: "inline-form" },
          field("Team name", h("input", { id: "team-name", name: "name", required: true, maxlength: 100, value: team.name })),
          h("button", { type: "submit", class: "secondary" }, "Rename"),
        )
      : null;
    if (renameForm) {
      onSubmit(renameForm, errors, async (data) => {
        await api.patch(`/v1/teams/${seg(team.id)}`, { name: str(data, "name").trim() });
        await app.refresh();
        app.notify("success", "Team renamed.");
        app.navigate("/team", { replace: true });
      });
    }

    // Auto-resume through the port proxy
    const autoResume = manage
      ? (h("input", { id: "auto-resume", type: "checkbox", name: "auto_resume" }) as HTMLInputElement)
      : null;
    if (autoResume) {
      autoResume.checked = team.auto_resume === true;
      autoResume.addEventListener("change", async () => {
        const on = autoResume.checked;
        autoResume.disabled = true;
        try {
          await api.patch(`/v1/teams/${seg(team.id)}`, { auto_resume: on });
          await app.refresh();
          app.notify("success", on ? "Paused capsules now resume on proxied traffic." : "Proxied traffic to a paused capsule is refused again.");
        } catch (err) {
          autoResume.checked = !on;
          errors.show(err);
        } finally {
          autoResume.disabled = false;
        }
      });
    }
    const autoResumeField = autoResume
      ? h(
          "p",
          { class: "checkbox-field" },
          h("label", { for: "auto-resume" }, autoResume, " Resume a paused capsule when traffic reaches its ports (otherwise the port proxy answers 409)"),
        )
      : null;

    // Leave or delete
    const danger = h("div", { class: "danger-zone" });
    if (team.role === "owner") {
      const del = h("button", { type: "button", class: "danger" }, "Delete team");
      busy(
        del,
        async () => {
          if (!confirm(`Delete ${team.name}? Its capsules are destroyed and its API keys revoked.`)) return;
          await api.del(`/v1/teams/${seg(team.id)}`);
          await moveToAnotherTeam(team.id);
          app.notify("success", `${team.name} deleted.`);
        },
        (err) => errors.show(err),
      );
      danger.appendChild(del);
    } else {
      const leave = h("button", { type: "button", class: "danger" }, "Leave team");
      busy(
        leave,
        async () => {
          if (!confirm(`Leave ${team.name}?`)) return;
          await api.post(`/v1/teams/${seg(team.id)}/leave`);
          await moveToAnotherTeam(team.id);
          app.notify("success", `You left ${team.name}.`);
        },
        (err) => errors.show(err),
      );
      danger.appendChild(leave);
    }

    async function moveToAnotherTeam(gone: string) {
      const teams = (await getAll<Team>("/v1/teams")).filter((t) => t.id !== gone);
      if (teams.length > 0) await api.post<SessionStarted>("/v1/auth/switch-team", { team_id: teams[0].id });
      if (!(await app.refresh())) return;
      app.navigate("/team", { replace: true });
    }

    // New team
    const createErrors = errorBox();
    const createForm = h(
      "form",
      { id: "create-team-form", class: "inline-form" },
      field("New team name", h("input", { id: "new-team-name", name: "name", required: true, maxlength: 100 })),
      h("button", { type: "submit", class: "secondary" }, "Create team"),
    );
    onSubmit(createForm, createErrors, async (data) => {
      const created = await api.post<Team>("/v1/teams", { name: str(data, "name").trim() });
      await api.post<SessionStarted>("/v1/auth/switch-team", { team_id: created.id });
      await app.refresh();
      app.notify("success", `Created ${created.name}; you are now working in it.`);
      app.navigate("/team", { replace: true });
    });

    mount(
      root,
      h("h1", { tabindex: "-1" }, team.name),
      h("p", { class: "lede" }, "Your role: ", h("strong", null, team.role ?? "member"), team.is_byoc ? " · bring-your-own-compute team" : null),
      errors,
      h(
        "section",
        { class: "card", "aria-labelledby": "members-h" },
        h("h2", { id: "members-h" }, "Members"),
        addForm,
        h(
          "table",
          { id: "members" },
          h("thead", null, h("tr", null, ["Name", "Email", "Role", "Joined", ""].map((c) => h("th", { scope: "col" }, c)))),
          tbody,
        ),
      ),
      h("section", { class: "card", "aria-labelledby": "settings-h" }, h("h2", { id: "settings-h" }, "Settings"), renameForm, autoResumeField, danger),
      h("section", { class: "card", "aria-labelledby": "new-team-h" }, h("h2", { id: "new-team-h" }, "Another team"), createErrors, createForm),
    );
    await load();
  },
};
