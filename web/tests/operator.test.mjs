// End-to-end: the operator pages (Hosts, Audit log, Admin) in Debian's Chromium against a real
// wrenn-cp. Users are signed up and activated through the API and the mail sink; the browser is
// signed in as one or another by handing it that user's session cookies. The first user
// activated is the platform admin (API.md).
//
// Tests of the admin lists need /v1/admin/{teams,users,templates,capsules}; against a wrenn-cp
// without them they are skipped with a message saying so.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import { createUser, launchBrowser, login, missingPrerequisite, startStack, wireUuid } from "./harness.mjs";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const missing = missingPrerequisite() ?? (spawnSync("redis-cli", ["--version"]).status !== 0 ? "redis-cli is not installed" : null);
if (missing) console.log(`# skipping the operator browser tests: ${missing}`);


describe("operator pages in Chromium against wrenn-cp", { skip: missing ?? false, timeout: 240_000 }, () => {
  let stack;
  let browser;
  let page;
  const tag = Date.now().toString(36);
  const password = "correct horse battery";
  const people = {
    grace: { name: "Grace Hopper", email: `grace-${tag}@example.com` },
    bob: { name: "Bob Member", email: `bob-${tag}@example.com` },
    carol: { name: "Carol Disabled", email: `carol-${tag}@example.com` },
    dave: { name: "Dave Promoted", email: `dave-${tag}@example.com` },
  };
  /** Sessions from node, by person. */
  const s = {};
  /** Wire ids learnt on the way. */
  const ids = {};

  const url = (p) => `${stack.baseUrl}${p}`;

  /** Signs the browser in as `who` (that user's session cookies, nothing else). */
  async function signInAs(who) {
    await browser.context.clearCookies();
    await browser.context.addCookies(s[who].cookies);
  }

  async function goto(path, heading) {
    await page.goto(url(path));
    await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
  }

  const hostRow = (id) => page.locator(`#hosts tbody tr[data-id="${id}"]`);
  /** The success notice saying exactly `text` (not one of an earlier step that merely contains it). */
  const success = (text) => page.locator(".notice-success").getByText(text, { exact: true });

  /**
   * Clicks a team's BYOC box on /admin/teams and waits for the PATCH it sends (asserting it asks
   * for the flipped state): the page answers it by replacing the row, or by ticking the box back
   * when refused, so the box's state is only meaningful after the answer.
   */
  async function toggleByoc(teamId, label) {
    const box = page.locator(`#admin-teams tbody tr[data-id="${teamId}"]`).getByLabel(label);
    const was = await box.isChecked();
    const answered = page.waitForResponse((r) => r.request().method() === "PATCH" && new URL(r.url()).pathname === `/v1/admin/teams/${teamId}`);
    await box.click();
    const res = await answered;
    assert.deepEqual(res.request().postDataJSON(), { is_byoc: !was });
    return { box, status: res.status() };
  }

  /** Inserts a capsule row on a host, as the scheduler would have recorded it. */
  function insertCapsule(teamId, hostId, status = "running") {
    const uuid = [randomBytes(4), randomBytes(2), randomBytes(2), randomBytes(2), randomBytes(6)].map((b) => b.toString("hex")).join("-");
    stack.sql(
      `INSERT INTO capsules (id, team_id, host_id, template_id, template_name, status, vcpus, memory_mb, access_token)
       VALUES ('${uuid}', '${wireUuid(teamId)}', '${wireUuid(hostId)}', '00000000-0000-0000-0000-000000000000', 'minimal-ubuntu', '${status}', 1, 512, 'test')`,
    );
    // The wire id: sb_ + 25 base36 digits of the UUID.
    return `sb_${BigInt(`0x${uuid.replace(/-/g, "")}`).toString(36).padStart(25, "0")}`;
  }

  function publishLive(event) {
    const r = spawnSync("redis-cli", ["-h", "127.0.0.1", "-p", String(stack.redisPort), "PUBLISH", "wrenn:events:live", JSON.stringify(event)], { encoding: "utf8" });
    assert.equal(r.status, 0, `redis-cli PUBLISH failed: ${r.stderr}`);
    return Number(r.stdout.trim());
  }

  async function axe(path, ready) {
    await page.goto(url(path));
    await ready();
    await page.evaluate(axeSource);
    const violations = await page.evaluate(async () => {
      const result = await globalThis.axe.run(document, { resultTypes: ["violations"] });
      return result.violations
        .filter((v) => v.impact === "serious" || v.impact === "critical")
        .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
    });
    assert.deepEqual(violations, [], `${path}:\n${violations.join("\n")}`);
  }

  before(async () => {
    stack = await startStack();
    // Grace first: the first activated user is the platform admin.
    for (const who of ["grace", "bob", "carol", "dave"]) {
      s[who] = await createUser(stack, { ...people[who], password });
      const me = await s[who].api("GET", "/v1/me");
      assert.equal(me.status, 200);
      ids[who] = me.body.id;
      ids[`${who}Team`] = me.body.auth.team_id;
      assert.equal(me.body.is_admin, who === "grace", `${who} is_admin`);
    }
    // The admin list routes answer the platform admin (the pages below depend on them).
    assert.equal((await s.grace.api("GET", "/v1/admin/teams")).status, 200);
    browser = await launchBrowser();
    page = browser.context.pages()[0] ?? (await browser.context.newPage());
    page.on("dialog", (d) => d.accept());
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it("adds a regular host: the one-time token and the agent command with it, then the host pending in the list", async () => {
    await signInAs("grace");
    await goto("/capsules", "Capsules");
    await page.getByRole("link", { name: "Hosts" }).click();
    await page.waitForURL(/\/hosts$/);
    await page.getByRole("heading", { name: "Hosts", level: 1 }).waitFor();
    await page.locator("#hosts-empty").waitFor();
    assert.match(await page.locator("#hosts-empty").innerText(), /No hosts yet/);

    await page.getByLabel("Type").selectOption("regular");
    assert.equal(await page.getByLabel("For team").isVisible(), false, "no team for a regular host");
    await page.getByLabel("Provider").fill("testcloud");
    await page.getByLabel("Availability zone").fill("zone-a");
    await page.getByRole("button", { name: "Add host" }).click();
    const token = (await page.locator("#host-token").innerText()).trim();
    assert.ok(token.length >= 16, `a registration token: ${token}`);
    const command = (await page.locator("#host-command").innerText()).trim();
    assert.equal(command, `wrenn-agent --cp-url ${stack.baseUrl} --register ${token} --address <ip:port>`);
    await page.getByRole("button", { name: "Copy command" }).waitFor();

    const listed = await s.grace.api("GET", "/v1/hosts");
    assert.equal(listed.status, 200);
    assert.equal(listed.body.length, 1);
    const host = listed.body[0];
    ids.regular = host.id;
    assert.equal(host.status, "pending");
    assert.equal(host.type, "regular");
    assert.equal(host.provider, "testcloud");
    const row = hostRow(host.id);
    await row.waitFor();
    assert.match(await row.innerText(), /pending/);
    assert.match(await row.innerText(), /testcloud · zone-a/);
    assert.match(await row.innerText(), /regular/);
    assert.equal(await row.getByRole("button", { name: `New token for ${host.id}` }).count(), 1, "pending hosts get new tokens");

    // The token shown is the real one: an agent registers with it, once.
    const register = (t) =>
      fetch(url("/v1/hosts/register"), {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          token: t,
          arch: "x86_64",
          cpu_cores: 8,
          memory_mb: 16384,
          disk_gb: 200,
          address: "127.0.0.1:59123",
          agent_version: "9.9.9-test",
          capabilities: {
            runtime: "gvisor",
            runtime_version: "release-test",
            platform: "systrap",
            network_modes: ["sandbox", "none"],
            network_mode: "sandbox",
            snapshots: true,
            hardware_virtualization: false,
          },
        }),
      });
    assert.equal((await register(token)).status, 200);
    assert.equal((await register(token)).status, 401, "the token is spent");

    await page.getByRole("button", { name: "Refresh" }).click();
    await row.locator(".status-online").waitFor();
    const text = await row.innerText();
    assert.match(text, /127\.0\.0\.1:59123/);
    assert.match(text, /8 vCPU · 16 GiB · 200 GB disk · x86_64/);
    assert.match(text, /gvisor release-test/);
    assert.match(text, /sandbox, none \(default sandbox\)/);
    assert.match(text, /agent 9\.9\.9-test/);
    assert.equal(await row.getByRole("button", { name: `New token for ${host.id}` }).count(), 0, "registered hosts get no new token");
    // The capsule count comes from the host's delete preview, loaded after the row.
    await page.waitForFunction((id) => document.querySelector(`#hosts tr[data-id="${id}"] .capsule-count`)?.textContent === "0", host.id);
    await page.getByRole("button", { name: "I have saved it" }).click();
    assert.equal(await page.locator("#host-token").count(), 0, "the token is gone once dismissed");
  });

  it("adds and removes tags, showing the API's refusal of a bad one", async () => {
    const row = hostRow(ids.regular);
    await row.getByLabel(`New tag for ${ids.regular}`).fill("gpu");
    await row.getByRole("button", { name: `Add tag to ${ids.regular}` }).click();
    await hostRow(ids.regular).locator("li.tag", { hasText: "gpu" }).waitFor();
    await hostRow(ids.regular).getByLabel(`New tag for ${ids.regular}`).fill("zone:eu-1");
    await hostRow(ids.regular).getByRole("button", { name: `Add tag to ${ids.regular}` }).click();
    await hostRow(ids.regular).locator("li.tag", { hasText: "zone:eu-1" }).waitFor();
    assert.deepEqual((await s.grace.api("GET", `/v1/hosts/${ids.regular}/tags`)).body.sort(), ["gpu", "zone:eu-1"]);

    await hostRow(ids.regular).getByLabel(`New tag for ${ids.regular}`).fill("-bad tag");
    await hostRow(ids.regular).getByRole("button", { name: `Add tag to ${ids.regular}` }).click();
    const alert = hostRow(ids.regular).locator("[role=alert]:visible");
    await alert.waitFor();
    assert.match(await alert.innerText(), /invalid tag/);
    assert.match(await alert.innerText(), /invalid_request/);

    await hostRow(ids.regular).getByRole("button", { name: `Remove tag gpu from ${ids.regular}` }).click();
    await hostRow(ids.regular).locator("li.tag", { hasText: "gpu" }).waitFor({ state: "detached" });
    assert.deepEqual((await s.grace.api("GET", `/v1/hosts/${ids.regular}/tags`)).body, ["zone:eu-1"]);
  });

  it("adds a BYOC host for a team and issues a new token for it while pending", async () => {
    await page.getByLabel("Type").selectOption("byoc");
    const team = page.getByLabel("For team");
    assert.equal(await team.isVisible(), true);
    assert.equal(await team.inputValue(), ids.graceTeam, "the session's team is preselected");
    await page.getByRole("button", { name: "Add host" }).click();
    await page.locator("#host-token").waitFor();
    const first = (await page.locator("#host-token").innerText()).trim();
    const hosts = (await s.grace.api("GET", "/v1/hosts")).body;
    const byoc = hosts.find((h) => h.type === "byoc");
    assert.ok(byoc, JSON.stringify(hosts));
    ids.byoc = byoc.id;
    assert.equal(byoc.team_id, ids.graceTeam);
    const row = hostRow(byoc.id);
    await row.waitFor();
    assert.match(await row.innerText(), /BYOC · Grace Hopper's Team/);

    await row.getByRole("button", { name: `New token for ${byoc.id}` }).click();
    await page.locator("#host-token-panel", { hasText: "New registration token" }).waitFor();
    const second = (await page.locator("#host-token").innerText()).trim();
    assert.notEqual(second, first);
    assert.match(await page.locator("#host-command").innerText(), new RegExp(`--register ${second} `));
    await page.getByRole("button", { name: "I have saved it" }).click();
    assert.equal(await page.locator("#host-token").count(), 0, "the token is gone once dismissed");
  });

  it("deletes a host after a preview of the capsules it would lose, forcing when it has some", async () => {
    // A host with nothing on it: the preview says so and deleting is plain.
    await page.getByLabel("Type").selectOption("regular");
    await page.getByRole("button", { name: "Add host" }).click();
    await page.locator("#host-token").waitFor();
    const spare = (await s.grace.api("GET", "/v1/hosts")).body.find((h) => ![ids.regular, ids.byoc].includes(h.id));
    await hostRow(spare.id).getByRole("button", { name: `Delete ${spare.id}` }).click();
    await page.locator("#delete-panel").getByRole("heading", { name: `Delete ${spare.id}` }).waitFor();
    assert.match(await page.locator("#delete-capsules").innerText(), /No capsules are on this host/);
    await page.locator("#confirm-delete", { hasText: "Delete host" }).click();
    await hostRow(spare.id).waitFor({ state: "detached" });
    await success(`Host ${spare.id} deleted.`).waitFor();
    assert.equal((await s.grace.api("GET", `/v1/hosts/${spare.id}`)).status, 404);

    // The BYOC host with a capsule on it: listed in the preview, deleted only by force.
    const capsule = insertCapsule(ids.graceTeam, ids.byoc);
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.waitForFunction((id) => document.querySelector(`#hosts tr[data-id="${id}"] .capsule-count`)?.textContent === "1", ids.byoc);
    const plain = await s.grace.api("DELETE", `/v1/hosts/${ids.byoc}`);
    assert.equal(plain.status, 409);
    assert.equal(plain.body.error.code, "host_has_sandboxes");
    await hostRow(ids.byoc).getByRole("button", { name: `Delete ${ids.byoc}` }).click();
    await page.locator("#delete-capsules li", { hasText: capsule }).waitFor();
    await page.locator("#confirm-delete", { hasText: "Force delete and destroy 1 capsule" }).click();
    await hostRow(ids.byoc).waitFor({ state: "detached" });
    assert.equal((await s.grace.api("GET", `/v1/hosts/${ids.byoc}`)).status, 404);
    assert.equal(stack.sql(`SELECT status FROM capsules WHERE id = '${wireUuid(capsule)}'`), "stopped");
    ids.destroyedCapsule = capsule;
  });

  it("a plain member of a non-BYOC team sees no Hosts or Admin nav, and both pages refuse", async () => {
    const created = await s.grace.api("POST", "/v1/teams", { name: "Plain Team" });
    assert.equal(created.status, 201);
    ids.plainTeam = created.body.id;
    assert.equal((await s.grace.api("POST", `/v1/teams/${ids.plainTeam}/members`, { email: people.bob.email })).status, 201);
    assert.equal((await s.bob.api("POST", "/v1/auth/switch-team", { team_id: ids.plainTeam })).status, 200);

    await signInAs("bob");
    await goto("/capsules", "Capsules");
    assert.match(await page.locator("#team-switcher option:checked").innerText(), /Plain Team \(member\)/);
    const nav = page.getByRole("navigation", { name: "Main" });
    await nav.getByRole("link", { name: "Audit log" }).waitFor();
    assert.equal(await nav.getByRole("link", { name: "Hosts" }).count(), 0);
    assert.equal(await nav.getByRole("link", { name: "Admin" }).count(), 0);

    await goto("/hosts", "Hosts");
    assert.match(await page.locator("#not-allowed").innerText(), /Not allowed/);
    assert.equal(await page.locator("#create-host-form").count(), 0);
    await goto("/admin", "Administration");
    assert.match(await page.locator("#not-allowed").innerText(), /Platform admins only/);
    await goto("/admin/users", "Users");
    assert.match(await page.locator("#not-allowed").innerText(), /Platform admins only/);
    // The API agrees.
    assert.deepEqual((await s.bob.api("GET", "/v1/hosts")).body, []);
    assert.equal((await s.bob.api("GET", "/v1/admin/events/stream")).status, 403);
  });

  it("the audit log shows earlier actions, filters them, and pages to older rows", async () => {
    await signInAs("grace");
    await goto("/audit", "Audit log");
    const rows = page.locator("#audit-logs tbody tr");
    await rows.first().waitFor();
    const all = await page.locator("#audit-logs tbody").innerText();
    for (const action of ["host.create", "host.token", "host.delete", "capsule.destroy"]) assert.match(all, new RegExp(action.replace(".", "\\.")));
    assert.match(all, new RegExp(ids.byoc));
    assert.match(all, new RegExp(ids.destroyedCapsule));
    assert.match(all, /orphaned/, "metadata is shown");
    assert.match(all, new RegExp(people.grace.email), "the actor is shown");
    const api = (await s.grace.api("GET", "/v1/audit-logs")).body.audit_logs;
    assert.equal(await rows.count(), api.length);

    await page.getByLabel("Resource type").selectOption("host");
    await page.getByLabel("Action").fill("host.token");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/\/audit\?resource_type=host&action=host\.token$/);
    await page.locator("#audit-logs tbody tr").first().waitFor();
    const filtered = await page.locator("#audit-logs tbody tr").allInnerTexts();
    assert.equal(filtered.length, api.filter((r) => r.action === "host.token").length);
    for (const r of filtered) assert.match(r, /host\.token/);

    await page.getByLabel("Action").fill("template.snapshot.delete");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.locator("#audit-empty").waitFor();
    assert.match(await page.locator("#audit-empty").innerText(), /No audit entries match/);
    await page.getByRole("link", { name: "Clear filters" }).click();
    await page.waitForURL(/\/audit$/);
    await page.locator("#audit-logs tbody tr").first().waitFor();

    // Two rows a page: "Older" appends the next page until there is none.
    await goto("/audit?limit=2", "Audit log");
    await page.waitForFunction(() => document.querySelectorAll("#audit-logs tbody tr").length === 2);
    const older = page.getByRole("button", { name: "Older" });
    // The server names a next page whenever a page is full, so the last "Older" may add nothing.
    for (let i = 0; i < 100 && (await older.isVisible()); i++) {
      const shown = await rows.count();
      await older.click();
      await page.waitForFunction(
        (n) => document.querySelectorAll("#audit-logs tbody tr").length > n || document.getElementById("audit-older")?.hidden === true,
        shown,
      );
    }
    await page.waitForFunction(() => document.getElementById("audit-older")?.hidden === true);
    const paged = await page.locator("#audit-logs tbody tr").evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
    assert.deepEqual(paged, api.map((r) => r.id), "the pages together are the whole log, newest first, no repeats");

    // A plain member sees team-scope rows only: the host actions are for owners and admins.
    const member = (await s.bob.api("GET", "/v1/audit-logs")).body.audit_logs;
    await signInAs("bob");
    await goto("/audit", "Audit log");
    if (member.length === 0) await page.locator("#audit-empty").waitFor();
    else await page.locator("#audit-logs tbody tr").first().waitFor();
    assert.doesNotMatch(await page.locator("main").innerText(), /host\.create/);
  });

  it("the admin overview streams every team's events live", async () => {
    await signInAs("grace");
    await goto("/admin", "Administration");
    await page.locator("#events-state", { hasText: "Live" }).waitFor();
    await page.locator("#admin-events-empty").waitFor();
    // "Live" shows once the stream answered, so the server already forwards to this page.
    const event = {
      event: "capsule.pause",
      outcome: "success",
      timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
      team_id: ids.bobTeam,
      actor: { type: "system", id: "", name: "system" },
      resource: { id: "sb_0000000000000000000000abc", type: "sandbox" },
      metadata: { reason: "ttl_expired" },
      error: "",
    };
    assert.ok(publishLive(event) >= 1, "wrenn-cp subscribes to the live channel");
    const row = page.locator("#admin-events tbody tr", { hasText: "capsule.pause" });
    await row.waitFor();
    const text = await row.innerText();
    assert.match(text, /sb_0000000000000000000000abc/);
    assert.match(text, new RegExp(ids.bobTeam), "another team's event reaches the admin stream");
    assert.match(text, /success/);
  });

  it("the admin overview counts hosts, teams, users and capsules", async (t) => {
    await goto("/admin", "Administration");
    // Each count has its own request: wait for all of them, not just the first to answer.
    await page.waitForFunction(() =>
      ["hosts", "teams", "users", "capsules"].every((id) => {
        const text = document.querySelector(`#stat-${id}`)?.textContent;
        return text && !text.includes("…");
      }),
    );
    assert.match(await page.locator("#stat-users").innerText(), /^4\b/);
    const teams = (await s.grace.api("GET", "/v1/admin/teams?limit=200")).body;
    assert.match(await page.locator("#stat-teams").innerText(), new RegExp(`^${teams.length}\\b`));
    const hosts = (await s.grace.api("GET", "/v1/hosts")).body;
    assert.match(await page.locator("#stat-hosts").innerText(), new RegExp(`^${hosts.length}\\b`));
    assert.match(await page.locator("#stat-capsules").innerText(), /running/);
  });

  it("admin users: lists the seeded users, pages, disables and re-enables a login, grants admin", async (t) => {
    await page.getByRole("navigation", { name: "Administration" }).getByRole("link", { name: "Users" }).click();
    await page.waitForURL(/\/admin\/users$/);
    const table = page.locator("#admin-users tbody");
    for (const p of Object.values(people)) await table.locator("tr", { hasText: p.email }).waitFor();
    assert.match(await table.locator("tr", { hasText: people.grace.email }).innerText(), /platform admin/);

    // Paging: two a page, "Load more" until all four are shown.
    await goto("/admin/users?limit=2", "Users");
    await page.waitForFunction(() => document.querySelectorAll("#admin-users tbody tr").length === 2);
    await page.getByRole("button", { name: "Load more" }).click();
    await page.waitForFunction(() => document.querySelectorAll("#admin-users tbody tr").length === 4);
    if (await page.getByRole("button", { name: "Load more" }).isVisible()) {
      await page.getByRole("button", { name: "Load more" }).click();
      await page.waitForFunction(() => document.querySelectorAll("#admin-users tbody tr").length === 4);
    }
    await page.getByRole("button", { name: "Load more" }).waitFor({ state: "hidden" });

    // Search by email substring.
    await page.getByLabel("Email contains").fill(`carol-${tag}`);
    await page.getByRole("button", { name: "Search" }).click();
    await page.waitForURL(/email=carol/);
    await page.waitForFunction(() => document.querySelectorAll("#admin-users tbody tr").length === 1);

    // Disabling makes the login fail with the disabled message; enabling lets it in again.
    await page.getByRole("button", { name: `Disable ${people.carol.email}` }).click();
    await page.getByRole("button", { name: `Enable ${people.carol.email}` }).waitFor();
    assert.match(await table.locator("tr", { hasText: people.carol.email }).innerText(), /disabled/);
    const refused = await login(stack, people.carol.email, password);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, "account_disabled");
    assert.match(refused.body.error.message, /disabled/i);
    await page.getByRole("button", { name: `Enable ${people.carol.email}` }).click();
    await page.getByRole("button", { name: `Disable ${people.carol.email}` }).waitFor();
    assert.equal((await login(stack, people.carol.email, password)).status, 200);

    // Granting admin shows Dave the Admin nav.
    await goto(`/admin/users?email=${encodeURIComponent(`dave-${tag}`)}`, "Users");
    await page.getByRole("button", { name: `Grant admin to ${people.dave.email}` }).click();
    await page.getByRole("button", { name: `Revoke admin from ${people.dave.email}` }).waitFor();
    assert.equal((await s.dave.api("GET", "/v1/me")).body.is_admin, true);
    await signInAs("dave");
    await goto("/capsules", "Capsules");
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Admin" }).click();
    await page.getByRole("heading", { name: "Administration", level: 1 }).waitFor();
    assert.equal(await page.locator("#not-allowed").count(), 0);

    // Dave revokes his own admin; then Grace cannot revoke hers (the last platform admin).
    await goto(`/admin/users?email=${encodeURIComponent(`dave-${tag}`)}`, "Users");
    await page.getByRole("button", { name: `Revoke admin from ${people.dave.email}` }).click();
    await page.getByRole("button", { name: `Grant admin to ${people.dave.email}` }).waitFor();
    await signInAs("grace");
    await goto(`/admin/users?email=${encodeURIComponent(`grace-${tag}`)}`, "Users");
    await page.getByRole("button", { name: `Revoke admin from ${people.grace.email}` }).click();
    const alert = page.locator("main > .error-box:visible");
    await alert.waitFor();
    assert.match(await alert.innerText(), /last_admin/);
    assert.equal((await s.grace.api("GET", "/v1/me")).body.is_admin, true);
  });

  it("admin teams: lists teams with members, toggles BYOC, refuses turning it off with BYOC hosts, deletes", async (t) => {
    await goto("/admin/teams", "Teams");
    const table = page.locator("#admin-teams tbody");
    for (const p of Object.values(people)) await table.locator("tr", { hasText: `${p.name}'s Team` }).waitFor();
    const plain = table.locator(`tr[data-id="${ids.plainTeam}"]`);
    assert.match(await plain.innerText(), /Plain Team/);
    assert.match((await plain.locator("td").first().innerText()).trim(), /^2$/, "Grace and Bob");

    // BYOC on for Carol's team, and off again.
    const carol = table.locator(`tr[data-id="${ids.carolTeam}"]`);
    assert.equal(await carol.getByLabel(`BYOC for ${people.carol.name}'s Team`).isChecked(), false);
    const on = await toggleByoc(ids.carolTeam, `BYOC for ${people.carol.name}'s Team`);
    assert.equal(on.status, 200);
    await success(`${people.carol.name}'s Team is now a BYOC team.`).waitFor();
    assert.equal(await on.box.isChecked(), true);
    const stored = (await s.grace.api("GET", "/v1/admin/teams?limit=200")).body.find((x) => x.id === ids.carolTeam);
    assert.equal(stored.is_byoc, true);

    // Carol, owner of a BYOC team now, gets the Hosts page for her team's own hosts.
    s.carol = (await login(stack, people.carol.email, password)).session;
    await signInAs("carol");
    await goto("/capsules", "Capsules");
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Hosts" }).click();
    await page.getByRole("heading", { name: "Hosts", level: 1 }).waitFor();
    assert.match(await page.locator(".lede").innerText(), new RegExp(`hosts of ${people.carol.name}'s Team`));
    assert.deepEqual(await page.getByLabel("Type").locator("option").evaluateAll((os) => os.map((o) => o.value)), ["byoc"]);
    await page.getByRole("button", { name: "Add host" }).click();
    await page.locator("#host-token").waitFor();
    const mine = (await s.carol.api("GET", "/v1/hosts")).body;
    assert.equal(mine.length, 1);
    assert.equal(mine[0].team_id, ids.carolTeam);
    await hostRow(mine[0].id).waitFor();
    assert.equal(await page.locator("#hosts tbody tr").count(), 1, "only her team's host");
    // Delete it again so the team may leave BYOC.
    await hostRow(mine[0].id).getByRole("button", { name: `Delete ${mine[0].id}` }).click();
    await page.locator("#confirm-delete", { hasText: "Delete host" }).click();
    await hostRow(mine[0].id).waitFor({ state: "detached" });
    await signInAs("grace");
    await goto("/admin/teams", "Teams");
    const off = await toggleByoc(ids.carolTeam, `BYOC for ${people.carol.name}'s Team`);
    assert.equal(off.status, 200);
    await success(`${people.carol.name}'s Team is no longer a BYOC team.`).waitFor();
    assert.equal(await off.box.isChecked(), false);

    // A team with a BYOC host keeps BYOC: the refusal is shown and the box stays ticked.
    await s.grace.api("POST", "/v1/hosts", { type: "byoc", team_id: ids.plainTeam });
    await goto("/admin/teams", "Teams");
    assert.equal(await table.locator(`tr[data-id="${ids.plainTeam}"]`).getByLabel("BYOC for Plain Team").isChecked(), true);
    const refused = await toggleByoc(ids.plainTeam, "BYOC for Plain Team");
    assert.equal(refused.status, 409);
    const alert = page.locator("main > .error-box:visible");
    await alert.waitFor();
    assert.match(await alert.innerText(), /team_has_byoc_hosts/);
    assert.equal(await refused.box.isChecked(), true);
    assert.equal(await refused.box.isEnabled(), true, "the box can be used again");

    // Delete Carol's team: gone from the list, shown again with the deleted ones.
    await table.locator(`tr[data-id="${ids.carolTeam}"]`).getByRole("button", { name: `Delete team ${people.carol.name}'s Team` }).click();
    await table.locator(`tr[data-id="${ids.carolTeam}"]`).waitFor({ state: "detached" });
    await page.getByLabel("Show deleted teams").check();
    await page.waitForURL(/include_deleted=true/);
    await table.locator(`tr[data-id="${ids.carolTeam}"]`, { hasText: "deleted" }).waitFor();
  });

  it("admin templates and capsules: reserved templates cannot be deleted; capsules show team and host", async (t) => {
    await goto("/admin/templates", "Templates");
    const row = page.locator("#admin-templates tbody tr", { hasText: "minimal-ubuntu" });
    await row.waitFor();
    assert.match(await row.innerText(), /reserved/);
    assert.equal(await row.getByRole("button").count(), 0);

    // A team's snapshot template can be deleted.
    const tplId = "11111111-2222-3333-4444-555555555555";
    stack.sql(
      `INSERT INTO templates (id, team_id, name, type, base_template_id) VALUES ('${tplId}', '${wireUuid(ids.graceTeam)}', 'snap-${tag}', 'snapshot', '00000000-0000-0000-0000-000000000000')`,
    );
    await goto("/admin/templates", "Templates");
    const snap = page.locator("#admin-templates tbody tr", { hasText: `snap-${tag}` });
    await snap.waitFor();
    assert.match(await snap.innerText(), /Grace Hopper's Team/);
    // Deleting asks every online host to drop its copy: the registered host here has no agent
    // behind its address, so the delete is refused (503) and the template stays listed.
    await snap.getByRole("button", { name: `Delete template snap-${tag}` }).click();
    await page.locator("main [role=alert]", { hasText: "no_hosts_available" }).waitFor();
    assert.equal(await snap.count(), 1);
    // With no host online, the delete goes through.
    const regular = wireUuid(ids.regular);
    stack.sql(`UPDATE hosts SET status = 'pending' WHERE id = '${regular}'`);
    try {
      await snap.getByRole("button", { name: `Delete template snap-${tag}` }).click();
      await snap.waitFor({ state: "detached" });
    } finally {
      stack.sql(`UPDATE hosts SET status = 'online' WHERE id = '${regular}'`);
    }

    // A running capsule of Bob's team on the registered host.
    const capsule = insertCapsule(ids.bobTeam, ids.regular);
    await goto("/admin/capsules", "Capsules");
    const crow = page.locator(`#admin-capsules tbody tr[data-id="${capsule}"]`);
    await crow.waitFor();
    const text = await crow.innerText();
    assert.match(text, /running/);
    assert.match(text, /Bob Member's Team/);
    assert.match(text, new RegExp(ids.regular));
    assert.match(text, /127\.0\.0\.1:59123/);
    await page.getByLabel("Status").selectOption("stopped");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/status=stopped/);
    await page.locator(`#admin-capsules tbody tr[data-id="${ids.destroyedCapsule}"]`).waitFor();
    assert.equal(await page.locator(`#admin-capsules tbody tr[data-id="${capsule}"]`).count(), 0);
  });

  it("has no serious accessibility violations (axe-core) on the operator pages", async () => {
    await signInAs("grace");
    await axe("/hosts", () => page.locator("#hosts tbody tr").first().waitFor());
    await axe("/audit", () => page.locator("#audit-logs tbody tr").first().waitFor());
    await axe("/admin", () => page.locator("#events-state", { hasText: "Live" }).waitFor());
    await axe("/admin/teams", () => page.locator("#admin-teams tbody tr").first().waitFor());
    await axe("/admin/users", () => page.locator("#admin-users tbody tr").first().waitFor());
    await axe("/admin/templates", () => page.locator("#admin-templates tbody tr").first().waitFor());
    await axe("/admin/capsules", () => page.getByRole("heading", { name: "Capsules", level: 1 }).waitFor());
    await page.emulateMedia({ colorScheme: "dark" });
    await axe("/hosts", () => page.locator("#hosts tbody tr").first().waitFor());
    await page.emulateMedia({ colorScheme: "light" });
    await signInAs("bob");
    await axe("/hosts", () => page.locator("#not-allowed").waitFor());
  });
});
