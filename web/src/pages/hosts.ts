// Hosts: the machines capsules run on (API.md, Hosts). Platform admins see and add every host
// (regular or BYOC for any team); owners and admins of a BYOC team see and add their team's
// hosts. Adding a host shows its one-time registration token and the agent command that uses
// it; pending hosts get new tokens; tags are added and removed in place; deleting shows the
// capsules that would be lost and offers to force it.

import { api, ApiError, getAll, seg, type Host, type HostCapabilities, type HostDeletePreview, type HostToken } from "../api";
import { canManageHosts, currentTeam, isPlatformAdmin, type App, type Page } from "../app";
import { busy, copyButton, errorBox, field, h, mount, notAllowed, onSubmit, str, time } from "../dom";
import { memory, statusBadge } from "../format";

/** The agent's own flags (agent/src/config.rs): `--cp-url` (or `WRENN_CP_URL`), `--register`
 * (or `WRENN_REGISTRATION_TOKEN`) and `--address` (or `WRENN_AGENT_ADDRESS`). */
export function agentCommand(cpUrl: string, token: string): string {
  return `wrenn-agent --cp-url ${cpUrl} --register ${token} --address <ip:port>`;
}

function yesNo(v: unknown): string {
  return v === true ? "yes" : v === false ? "no" : "—";
}

/** What the agent reported about its runtime, as short lines. */
function capabilityList(c: HostCapabilities | null): Node {
  if (!c || Object.keys(c).length === 0) return h("span", { class: "muted" }, "not reported yet");
  const lines: string[] = [];
  const runtime = [c.runtime, c.runtime_version].filter(Boolean).join(" ");
  if (runtime || c.platform) lines.push([runtime, c.platform ? `(${c.platform})` : ""].filter(Boolean).join(" "));
  if (c.network_modes?.length) lines.push(`network: ${c.network_modes.join(", ")}${c.network_mode ? ` (default ${c.network_mode})` : ""}`);
  else if (c.network_mode) lines.push(`network: ${c.network_mode}`);
  if (c.snapshots !== undefined) lines.push(`snapshots: ${yesNo(c.snapshots)}`);
  if (c.pause_keeps_memory !== undefined) lines.push(`pause keeps memory: ${yesNo(c.pause_keeps_memory)}`);
  if (c.hardware_virtualization !== undefined) lines.push(`hardware virtualisation: ${yesNo(c.hardware_virtualization)}`);
  if (c.kernel_version) lines.push(`kernel ${c.kernel_version}`);
  for (const [k, v] of Object.entries(c.notes ?? {})) lines.push(`${k}: ${v}`);
  if (lines.length === 0) return h("span", { class: "muted" }, "not reported yet");
  return h("ul", { class: "plain caps" }, lines.map((l) => h("li", null, l)));
}

function capacity(host: Host): Node {
  if (host.cpu_cores == null && host.memory_mb == null) return h("span", { class: "muted" }, "unknown until registered");
  const parts = [
    host.cpu_cores != null ? `${host.cpu_cores} vCPU` : null,
    host.memory_mb != null ? memory(host.memory_mb) : null,
    host.disk_gb != null ? `${host.disk_gb} GB disk` : null,
    host.arch,
  ].filter(Boolean);
  return document.createTextNode(parts.join(" · "));
}

/** What the agent last reported: CPU, memory and disk in use, capsules by state, warm pools. */
function loadCell(host: Host): Node {
  const l = host.load;
  if (!l) return h("span", { class: "muted" }, "not reported yet");
  const used = (total: number, available: number) => `${memory(Math.max(0, total - available))} of ${memory(total)}`;
  return h(
    "ul",
    { class: "plain caps host-load" },
    h("li", null, `CPU ${l.cpu_pct.toFixed(0)}% · load ${l.load_avg_1m.toFixed(2)}`),
    h("li", null, `memory ${used(l.mem_total_mb, l.mem_available_mb)}`),
    h("li", null, `disk ${used(l.disk_total_mb, l.disk_available_mb)}`),
    h("li", null, `${l.capsules_running} running · ${l.capsules_paused} paused`),
    // Warm pools: capsules booted ahead of demand, reserved capacity whether booted or not.
    l.pool_vcpus > 0
      ? h("li", null, `warm pool ${l.pool_ready} ready · reserves ${l.pool_vcpus} vCPU, ${memory(l.pool_memory_mb)}`)
      : null,
    h("li", { class: "muted small-text" }, "as of ", time(l.sampled_at)),
  );
}

function teamLabel(app: App, teamId: string | null): string {
  if (!teamId) return "";
  return app.teams.find((t) => t.id === teamId)?.name ?? teamId;
}

export const hostsPage: Page = {
  title: "Hosts",
  async render(root, { app, live }) {
    if (!canManageHosts(app)) {
      mount(
        root,
        notAllowed(
          "Hosts",
          "Not allowed: hosts are managed by platform admins, and by owners and admins of a bring-your-own-compute (BYOC) team.",
        ),
      );
      return;
    }
    root.classList.add("wide");
    const admin = isPlatformAdmin(app);
    const team = currentTeam(app);
    const errors = errorBox();
    const reveal = h("div", { id: "host-token-panel", "aria-live": "polite" });
    const deletePanel = h("section", { id: "delete-panel", class: "card", "aria-labelledby": "delete-h", hidden: true });
    const tbody = h("tbody");
    const table = h(
      "table",
      { id: "hosts", hidden: true },
      h("caption", { class: "sr-only" }, "Hosts"),
      h(
        "thead",
        null,
        h("tr", null, ["Host", "Status", "Address", "Capacity", "Load", "Capabilities", "Capsules", "Tags", ""].map((c) => h("th", { scope: "col" }, c))),
      ),
      tbody,
    );
    const empty = h("p", { class: "muted", id: "hosts-empty", hidden: true }, "No hosts yet. Add one: its agent registers with the one-time token shown here.");

    // ---- Add a host ----
    const createErrors = errorBox();
    const typeSelect = h(
      "select",
      { id: "host-type", name: "type" },
      admin ? h("option", { value: "regular" }, "Regular (platform-wide)") : null,
      h("option", { value: "byoc" }, "BYOC (one team's own machine)"),
    );
    const teamSelect = h(
      "select",
      { id: "host-team", name: "team_id" },
      (admin ? app.teams : team ? [team] : []).map((t) => h("option", { value: t.id, selected: t.id === app.teamId }, t.name)),
    );
    const teamField = field("For team", teamSelect, admin ? "Its first BYOC host makes the team a BYOC team." : undefined);
    const syncTeam = () => (teamField.hidden = typeSelect.value !== "byoc");
    typeSelect.addEventListener("change", syncTeam);
    syncTeam();
    const form = h(
      "form",
      { id: "create-host-form", class: "grid-form" },
      field("Type", typeSelect),
      teamField,
      field("Provider", h("input", { id: "host-provider", name: "provider", maxlength: 100, placeholder: "optional, e.g. hetzner" })),
      field("Availability zone", h("input", { id: "host-zone", name: "availability_zone", maxlength: 100, placeholder: "optional, e.g. fsn1" })),
      h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Add host")),
    );
    onSubmit(form, createErrors, async (data) => {
      const body: Record<string, unknown> = { type: str(data, "type") };
      if (body.type === "byoc") body.team_id = str(data, "team_id") || app.teamId;
      const provider = str(data, "provider").trim();
      const zone = str(data, "availability_zone").trim();
      if (provider) body.provider = provider;
      if (zone) body.availability_zone = zone;
      const created = await api.post<HostToken>("/v1/hosts", body);
      form.reset();
      syncTeam();
      showToken(created, "added");
      // A team given its first BYOC host is now a BYOC team: reload teams for the nav.
      if (body.type === "byoc") await app.refresh();
      await load();
    });

    function showToken(t: HostToken, what: "added" | "renewed") {
      const cpUrl = location.origin;
      const tokenEl = h("code", { id: "host-token", class: "secret" }, t.registration_token);
      const command = agentCommand(cpUrl, t.registration_token);
      const commandEl = h("code", { id: "host-command", class: "secret" }, command);
      const done = h("button", { type: "button" }, "I have saved it");
      done.addEventListener("click", () => reveal.replaceChildren());
      mount(
        reveal,
        h(
          "div",
          { class: "callout", role: "status" },
          h(
            "p",
            null,
            h("strong", null, what === "added" ? `Host ${t.host.id} added.` : `New registration token for ${t.host.id}.`),
            " The token registers one agent, once, within an hour; it will not be shown again.",
          ),
          h("div", { class: "secret-row" }, tokenEl, copyButton(t.registration_token, tokenEl, "Copy token")),
          h("p", null, "On the new machine, run:"),
          h("div", { class: "secret-row" }, commandEl, copyButton(command, commandEl, "Copy command")),
          h(
            "p",
            { class: "hint" },
            "Replace ",
            h("code", null, "<ip:port>"),
            " with the address this control plane reaches the agent at (it also listens there unless ",
            h("code", null, "--listen"),
            " is given). ",
            h("code", null, "WRENN_CP_URL"),
            ", ",
            h("code", null, "WRENN_REGISTRATION_TOKEN"),
            " and ",
            h("code", null, "WRENN_AGENT_ADDRESS"),
            " may stand for the flags. The agent saves its credentials in ",
            h("code", null, "$WRENN_DIR/host-token"),
            "; later starts need only ",
            h("code", null, "--address"),
            ".",
          ),
          done,
        ),
      );
    }

    // ---- Deleting, with the preview ----
    async function openDelete(host: Host) {
      const preview = await api.get<HostDeletePreview>(`/v1/hosts/${seg(host.id)}/delete-preview`);
      if (!live()) return;
      const panelErrors = errorBox();
      const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
      cancel.addEventListener("click", () => {
        deletePanel.hidden = true;
        deletePanel.replaceChildren();
      });
      const count = preview.sandbox_count;
      const confirmButton = h(
        "button",
        { type: "button", class: "danger", id: "confirm-delete" },
        count > 0 ? `Force delete and destroy ${count} capsule${count === 1 ? "" : "s"}` : "Delete host",
      );
      busy(
        confirmButton,
        async () => {
          if (count > 0 && !confirm(`Destroy ${count} capsule(s) and delete ${host.id}? This cannot be undone.`)) return;
          try {
            await api.del(`/v1/hosts/${seg(host.id)}${count > 0 ? "?force=true" : ""}`);
          } catch (err) {
            // Capsules landed on it since the preview: show the new preview with its force option.
            if (err instanceof ApiError && err.code === "host_has_sandboxes") {
              await openDelete(host);
              deletePanel.querySelector<HTMLElement>("[role=alert]")?.replaceWith(errorFrom(err));
              return;
            }
            throw err;
          }
          deletePanel.hidden = true;
          deletePanel.replaceChildren();
          app.notify("success", `Host ${host.id} deleted.`);
          await load();
        },
        (err) => panelErrors.show(err),
      );
      mount(
        deletePanel,
        h("h2", { id: "delete-h", tabindex: "-1" }, `Delete ${host.id}`),
        panelErrors,
        count > 0
          ? [
              h("p", null, `These ${count} capsule${count === 1 ? "" : "s"} on the host would be destroyed:`),
              h("ul", { id: "delete-capsules" }, preview.sandbox_ids.map((id) => h("li", null, h("code", null, id)))),
            ]
          : h("p", { id: "delete-capsules" }, "No capsules are on this host: nothing is lost."),
        h("div", { class: "actions" }, confirmButton, cancel),
      );
      deletePanel.hidden = false;
      deletePanel.querySelector<HTMLElement>("h2")?.focus();
    }

    function errorFrom(err: unknown): HTMLElement {
      const box = errorBox();
      box.show(err);
      return box;
    }

    // ---- Tags ----
    function tagsCell(host: Host): HTMLElement {
      const cellErrors = errorBox();
      const list = h(
        "ul",
        { class: "plain tags" },
        host.tags.map((tag) => {
          const remove = h("button", { type: "button", class: "link", "aria-label": `Remove tag ${tag} from ${host.id}`, title: "Remove tag" }, "×");
          busy(
            remove,
            async () => {
              await api.del(`/v1/hosts/${seg(host.id)}/tags/${seg(tag)}`);
              await load();
            },
            (err) => cellErrors.show(err),
          );
          return h("li", { class: "tag" }, h("span", null, tag), remove);
        }),
      );
      const inputId = `tag-${host.id}`;
      const add = h(
        "form",
        { class: "tag-form" },
        h("label", { for: inputId, class: "sr-only" }, `New tag for ${host.id}`),
        h("input", { id: inputId, name: "tag", required: true, maxlength: 63, placeholder: "tag", size: 8 }),
        h("button", { type: "submit", class: "secondary small", "aria-label": `Add tag to ${host.id}` }, "Add"),
      );
      onSubmit(add, cellErrors, async (data) => {
        await api.post<string[]>(`/v1/hosts/${seg(host.id)}/tags`, { tag: str(data, "tag").trim() });
        await load();
      });
      return h("td", null, list, add, cellErrors);
    }

    // ---- The list ----
    function capsuleCount(host: Host): HTMLElement {
      const cell = h("td", { class: "capsule-count" }, h("span", { class: "muted" }, "…"));
      api
        .get<HostDeletePreview>(`/v1/hosts/${seg(host.id)}/delete-preview`)
        .then((p) => mount(cell, String(p.sandbox_count)))
        .catch((err) => mount(cell, h("span", { class: "muted", title: err instanceof Error ? err.message : String(err) }, "?")));
      return cell;
    }

    function row(host: Host) {
      const actions: HTMLElement[] = [];
      if (host.status === "pending") {
        const renew = h("button", { type: "button", class: "secondary small", "aria-label": `New token for ${host.id}` }, "New token");
        busy(
          renew,
          async () => {
            showToken(await api.post<HostToken>(`/v1/hosts/${seg(host.id)}/token`), "renewed");
          },
          (err) => errors.show(err),
        );
        actions.push(renew);
      }
      const del = h("button", { type: "button", class: "danger small", "aria-label": `Delete ${host.id}` }, "Delete");
      busy(del, () => openDelete(host), (err) => errors.show(err));
      actions.push(del);
      const where = [host.provider, host.availability_zone].filter(Boolean).join(" · ");
      return h(
        "tr",
        { "data-id": host.id },
        h(
          "th",
          { scope: "row" },
          h("code", { class: "host-id" }, host.id),
          h("div", { class: "host-type" }, host.type === "byoc" ? `BYOC · ${teamLabel(app, host.team_id ?? null)}` : "regular"),
          where ? h("div", { class: "muted small-text" }, where) : null,
        ),
        h(
          "td",
          null,
          statusBadge(host.status),
          host.last_heartbeat_at ? h("div", { class: "muted small-text" }, "heartbeat ", time(host.last_heartbeat_at)) : null,
        ),
        h(
          "td",
          null,
          host.address ? h("code", null, host.address) : h("span", { class: "muted" }, "—"),
          host.transport ? h("div", { class: "muted small-text" }, host.transport) : null,
        ),
        h("td", null, capacity(host), host.agent_version ? h("div", { class: "muted small-text" }, `agent ${host.agent_version}`) : null),
        h("td", null, loadCell(host)),
        h("td", null, capabilityList(host.capabilities)),
        capsuleCount(host),
        tagsCell(host),
        h("td", { class: "actions stacked" }, actions),
      );
    }

    async function load() {
      const hosts = await getAll<Host>("/v1/hosts");
      if (!live()) return;
      errors.clear();
      table.hidden = hosts.length === 0;
      empty.hidden = hosts.length > 0;
      mount(tbody, hosts.map(row));
    }

    const refresh = h("button", { type: "button", class: "secondary", id: "refresh-hosts" }, "Refresh");
    busy(refresh, load, (err) => errors.show(err));

    mount(
      root,
      h("h1", { tabindex: "-1" }, "Hosts"),
      h(
        "p",
        { class: "lede" },
        admin
          ? "As a platform admin you see every host: regular hosts serve all teams, BYOC hosts only their own team."
          : ["The bring-your-own-compute hosts of ", h("strong", null, team?.name ?? ""), ": capsules of this team run only on them."],
      ),
      h("section", { class: "card", "aria-labelledby": "add-host-h" }, h("h2", { id: "add-host-h" }, "Add a host"), createErrors, form),
      reveal,
      errors,
      h("div", { class: "toolbar" }, refresh),
      deletePanel,
      // Wide on small screens: the region scrolls sideways and can be scrolled by keyboard.
      h("div", { class: "table-wrap", role: "region", "aria-label": "Hosts table", tabindex: 0 }, table),
      empty,
    );
    await load();
  },
};
