// End-to-end: the built dashboard served by a real wrenn-cp, driven in Debian's Chromium.
// Sign up in the browser, activate from the mailed link, create an API key (plaintext shown
// once), log out, log in again, and check every mutation carries the CSRF header.
//
// Run from web/: `npm test` (after `npm run build` and `cargo build -p wrenn-core`), or
// `bash scripts/web.sh test` from the repository root, which does all of it.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import { createUser, launchBrowser, login, missingPrerequisite, startStack, waitForMail } from "./harness.mjs";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const missing = missingPrerequisite();
if (missing) console.log(`# skipping the dashboard browser tests: ${missing}`);

describe("dashboard in Chromium against wrenn-cp", { skip: missing ?? false, timeout: 120_000 }, () => {
  let stack;
  let browser;
  let page;
  /** Every state-changing API request the page sent: method, path, X-CSRF-Token. */
  const mutations = [];
  const user = {
    name: "Ada Lovelace",
    email: `ada-${Date.now().toString(36)}@example.com`,
    password: "correct horse battery",
  };
  let apiKey;

  const url = (p) => `${stack.baseUrl}${p}`;
  const csrfCookie = async () => (await browser.context.cookies(stack.baseUrl)).find((c) => c.name === "wrenn_csrf")?.value;
  /** The success notice saying exactly `text` (not one of an earlier step that merely contains it). */
  const success = (text) => page.locator(".notice-success").getByText(text, { exact: true });

  before(async () => {
    stack = await startStack();
    browser = await launchBrowser();
    page = browser.context.pages()[0] ?? (await browser.context.newPage());
    page.on("dialog", (d) => d.accept());
    page.on("request", (req) => {
      const u = new URL(req.url());
      if (u.pathname.startsWith("/v1/") && !["GET", "HEAD", "OPTIONS"].includes(req.method())) {
        mutations.push({ method: req.method(), path: u.pathname, csrf: req.headers()["x-csrf-token"] ?? null });
      }
    });
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it("serves the dashboard without shadowing the API", async () => {
    const health = await fetch(url("/health"));
    assert.equal(health.status, 200);
    assert.equal((await health.json()).status, "ok");
    const spec = await fetch(url("/openapi.json"));
    assert.equal(spec.status, 200);
    assert.ok((await spec.json()).paths["/v1/auth/signup"], "OpenAPI lists the API");
    const unknown = await fetch(url("/v1/no-such-thing"));
    assert.equal(unknown.status, 404);
    assert.equal((await unknown.json()).error.code, "not_found");

    const shell = await fetch(url("/capsules/sb_whatever"));
    assert.equal(shell.status, 200);
    assert.equal(shell.headers.get("cache-control"), "no-cache");
    const html = await shell.text();
    const asset = html.match(/src="(\/assets\/[^"]+\.js)"/)?.[1];
    assert.ok(asset, `index.html references a hashed script: ${html}`);
    const js = await fetch(url(asset));
    assert.equal(js.status, 200);
    assert.equal(js.headers.get("cache-control"), "public, max-age=31536000, immutable");
  });

  it("signs up in the browser and lands signed in from the activation mail", async () => {
    await page.goto(url("/"));
    await page.waitForURL(/\/login$/);
    await page.getByRole("link", { name: "Create an account" }).click();
    await page.waitForURL(/\/signup$/);
    await page.getByLabel("Name").fill(user.name);
    await page.getByLabel("Email").fill(user.email);
    await page.getByLabel("Password").fill(user.password);
    await page.getByRole("button", { name: "Create account" }).click();
    await page.locator("#signup-done").waitFor();
    assert.match(await page.locator("#signup-done").innerText(), /activation link/i);

    // A second signup with the same address shows the API's error, code and all.
    await page.goto(url("/signup"));
    await page.getByLabel("Name").fill(user.name);
    await page.getByLabel("Email").fill(user.email);
    await page.getByLabel("Password").fill(user.password);
    await page.getByRole("button", { name: "Create account" }).click();
    const alert = page.locator("#signup-form [role=alert]");
    await alert.waitFor();
    assert.match(await alert.innerText(), /signup_cooldown/);

    const mail = await waitForMail(stack.mailDir, user.email, { subject: "Activate" });
    const link = mail.match(/https?:\/\/\S+\/activate\?token=\S+/)?.[0];
    assert.ok(link, `activation link in mail:\n${mail}`);
    assert.ok(link.startsWith(`${stack.baseUrl}/activate?token=`), link);

    await page.goto(link);
    await page.waitForURL(/\/capsules$/);
    await page.getByRole("heading", { name: "Capsules", level: 1 }).waitFor();
    assert.equal(await page.locator(".topbar .who").innerText(), user.name);
    const team = await page.locator("#team-switcher option:checked").innerText();
    assert.match(team, new RegExp(`${user.name}'s Team`));
    assert.ok(await csrfCookie(), "the session's CSRF cookie is readable");

    // The one-time link is spent.
    await page.goto(link);
    await page.locator(".auth-card [role=alert]").waitFor();
    assert.match(await page.locator(".auth-card [role=alert]").innerText(), /invalid_token|already_activated/);
  });

  it("creates an API key and shows the plaintext only once", async () => {
    await page.goto(url("/capsules"));
    await page.getByRole("link", { name: "API keys" }).click();
    await page.waitForURL(/\/api-keys$/);
    await page.getByLabel("Key name").fill("browser-test");
    await page.getByRole("button", { name: "Create key" }).click();
    const shown = page.locator("#new-key-value");
    await shown.waitFor();
    apiKey = (await shown.innerText()).trim();
    assert.match(apiKey, /^wrn_[0-9a-f]{32}$/);
    const row = page.locator("#api-keys tbody tr", { hasText: "browser-test" });
    await row.waitFor();
    assert.match(await row.innerText(), new RegExp(apiKey.slice(0, 10)));
    assert.ok(!(await row.innerText()).includes(apiKey), "the table shows only the prefix");

    // The key really works, and the API never hands the plaintext out again.
    const listed = await fetch(url("/v1/api-keys"), { headers: { "X-API-Key": apiKey } });
    assert.equal(listed.status, 200);
    const body = await listed.text();
    assert.match(body, /browser-test/);
    assert.ok(!body.includes(apiKey));

    await page.reload();
    await page.locator("#api-keys tbody tr", { hasText: "browser-test" }).waitFor();
    assert.equal(await page.locator("#new-key-value").count(), 0);
    assert.ok(!(await page.content()).includes(apiKey), "plaintext gone after reload");
  });

  it("sends the CSRF header on every mutation, which the server requires", async () => {
    const cookie = await csrfCookie();
    assert.ok(mutations.length >= 3, `mutations seen: ${JSON.stringify(mutations)}`);
    const sessionMutations = mutations.filter((m) => !["/v1/auth/signup", "/v1/auth/activate", "/v1/auth/login"].includes(m.path));
    assert.ok(sessionMutations.some((m) => m.path === "/v1/api-keys" && m.method === "POST"));
    for (const m of sessionMutations) assert.equal(m.csrf, cookie, `${m.method} ${m.path} carried the CSRF token`);

    // Without the header the same request is refused: the header is what made it succeed.
    const refused = await page.evaluate(async () => {
      const res = await fetch("/v1/api-keys", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name: "no-csrf" }),
      });
      return { status: res.status, body: await res.json() };
    });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, "csrf_failed");
  });

  it("logs out, shows a failed login's error, and logs in again", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await page.waitForURL(/\/login$/);
    assert.equal(await page.locator("#logout").count(), 0);

    // A signed-out visit to a page goes through login and comes back.
    await page.goto(url("/settings"));
    await page.waitForURL(/\/login\?next=%2Fsettings$/);

    await page.getByLabel("Email").fill(user.email);
    await page.getByLabel("Password").fill("not the password");
    await page.getByRole("button", { name: "Log in" }).click();
    const alert = page.locator("#login-form [role=alert]");
    await alert.waitFor();
    assert.match(await alert.innerText(), /invalid email or password/);
    assert.match(await alert.innerText(), /invalid_credentials/);

    await page.getByLabel("Password").fill(user.password);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.waitForURL(/\/settings$/);
    await page.getByRole("heading", { name: "Account", level: 1 }).waitFor();
    assert.equal(await page.locator("#my-email").innerText(), user.email);
  });

  it("a mutation in the new session succeeds with its CSRF token", async () => {
    const before = mutations.length;
    await page.getByLabel("Display name").fill("Ada King");
    await page.getByRole("button", { name: "Save" }).click();
    await success("Your name is now “Ada King”.").waitFor();
    assert.equal(await page.locator(".topbar .who").innerText(), "Ada King");
    const patch = mutations.slice(before).find((m) => m.method === "PATCH" && m.path === "/v1/me");
    assert.ok(patch, "the rename was sent");
    assert.equal(patch.csrf, await csrfCookie());

    const me = await fetch(url("/v1/me"), { headers: { "X-API-Key": apiKey } });
    assert.equal((await me.json()).name, "Ada King");

    // The sessions list shows this session; the older one ended at logout.
    const rows = page.locator("#sessions tbody tr");
    await rows.first().waitFor();
    assert.equal(await page.locator("#sessions .badge", { hasText: "this session" }).count(), 1);
  });

  it("lists the team's members and the capsules page reflects the API", async () => {
    await page.getByRole("link", { name: "Team" }).click();
    await page.waitForURL(/\/team$/);
    const owner = page.locator("#members tbody tr", { hasText: user.email });
    await owner.waitFor();
    assert.match(await owner.innerText(), /owner/);

    // The auto-resume setting round-trips through PATCH /v1/teams/{id}.
    const toggle = page.getByLabel(/Resume a paused capsule/);
    assert.equal(await toggle.isChecked(), false);
    await toggle.check();
    await success("Paused capsules now resume on proxied traffic.").waitFor();
    const teamId = await page.locator("#team-switcher option:checked").getAttribute("value");
    const stored = await (await fetch(url(`/v1/teams/${teamId}`), { headers: { "X-API-Key": apiKey } })).json();
    assert.equal(stored.team.auto_resume, true);
    await toggle.uncheck();
    await success("Proxied traffic to a paused capsule is refused again.").waitFor();

    const api = await fetch(url("/v1/capsules"), { headers: { "X-API-Key": apiKey } });
    await page.getByRole("link", { name: "Capsules" }).click();
    await page.waitForURL(/\/capsules$/);
    if (api.status === 404) {
      // This server has no capsule routes yet: the page must say so, not fail silently.
      const alert = page.locator("main > .error-box:visible");
      await alert.waitFor();
      assert.match(await alert.innerText(), /not_found/);
    } else {
      assert.equal(api.status, 200);
      const body = await api.json();
      const list = Array.isArray(body) ? body : body.capsules;
      if (list.length === 0) await page.getByText("No live capsules").waitFor();
      else await page.locator("#capsules tbody tr").first().waitFor();
    }

    // Creating a capsule on this stack (no agent registered) must fail visibly with the API's
    // code: 404 without capsule routes, else 503 no_hosts_available (or 404 template_not_found
    // where the default template is not registered).
    await page.getByLabel("Memory (MiB)").fill("256");
    await page.getByRole("button", { name: "Create capsule" }).click();
    const createAlert = page.locator("#create-capsule-form").locator("xpath=..").locator("[role=alert]");
    await createAlert.waitFor();
    const expected = api.status === 404 ? /not_found/ : /no_hosts_available|template_not_found/;
    assert.match(await createAlert.innerText(), expected);
  });

  it("creates and switches teams; the rotated session keeps working", async () => {
    const oldCsrf = await csrfCookie();
    await page.getByRole("link", { name: "Team" }).click();
    await page.waitForURL(/\/team$/);
    await page.getByLabel("New team name").fill("Analytical Engines");
    await page.getByRole("button", { name: "Create team" }).click();
    await page.getByRole("heading", { name: "Analytical Engines", level: 1 }).waitFor();
    assert.match(await page.locator("#team-switcher option:checked").innerText(), /Analytical Engines \(owner\)/);
    const newCsrf = await csrfCookie();
    assert.ok(newCsrf && newCsrf !== oldCsrf, "switching teams rotates the session and its CSRF token");

    // A mutation in the new team uses the new token, and lands in the new team.
    await page.getByRole("link", { name: "API keys" }).click();
    await page.waitForURL(/\/api-keys$/);
    assert.match(await page.locator(".lede").innerText(), /Analytical Engines/);
    await page.getByLabel("Key name").fill("second-team-key");
    await page.getByRole("button", { name: "Create key" }).click();
    await page.locator("#new-key-value").waitFor();
    await page.locator("#api-keys tbody tr", { hasText: "second-team-key" }).waitFor();
    assert.equal(await page.locator("#api-keys tbody tr").count(), 1, "only the new team's key is listed");
    assert.equal(mutations.at(-1).csrf, newCsrf);

    // Back to the first team through the switcher.
    const first = await page.locator("#team-switcher option", { hasText: "Ada Lovelace's Team" }).getAttribute("value");
    await page.locator("#team-switcher").selectOption(first);
    await success("Switched to Ada Lovelace's Team.").waitFor();
    await page.locator("#api-keys tbody tr", { hasText: "browser-test" }).waitFor();
  });

  it("changes the password and carries on in a fresh session", async () => {
    await page.getByRole("link", { name: "Account" }).click();
    await page.waitForURL(/\/settings$/);
    await page.getByLabel("Current password").fill("wrong password");
    await page.getByLabel("New password").fill("an even better one");
    await page.getByRole("button", { name: "Change password" }).click();
    const alert = page.locator("section[aria-labelledby=password-h] [role=alert]");
    await alert.waitFor();
    assert.match(await alert.innerText(), /wrong_password/);

    const before = await csrfCookie();
    await page.getByLabel("Current password").fill(user.password);
    await page.getByLabel("New password").fill("an even better one");
    await page.getByRole("button", { name: "Change password" }).click();
    await success("Password changed. Other sessions were signed out.").waitFor();
    const after = await csrfCookie();
    assert.ok(after && after !== before, "a fresh session replaced the revoked ones");
    await page.getByLabel("Display name").fill("Ada Lovelace");
    await page.getByRole("button", { name: "Save" }).click();
    await success("Your name is now “Ada Lovelace”.").waitFor();
    assert.equal(mutations.at(-1).csrf, after);

    const login = await fetch(url("/v1/auth/login"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: user.email, password: "an even better one" }),
    });
    assert.equal(login.status, 200, "the new password works");
  });

  it("has no serious accessibility violations (axe-core) on its pages", async () => {
    const audit = async (path, ready) => {
      await page.goto(url(path));
      await ready();
      // Evaluated through the DevTools protocol, so the page's CSP does not apply.
      await page.evaluate(axeSource);
      const violations = await page.evaluate(async () => {
        const result = await globalThis.axe.run(document, { resultTypes: ["violations"] });
        return result.violations
          .filter((v) => v.impact === "serious" || v.impact === "critical")
          .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
      });
      assert.deepEqual(violations, [], `${path}:\n${violations.join("\n")}`);
    };
    await audit("/capsules", () => page.getByRole("heading", { name: "Capsules", level: 1 }).waitFor());
    await audit("/api-keys", () => page.locator("#api-keys tbody tr").first().waitFor());
    await audit("/team", () => page.locator("#members tbody tr").first().waitFor());
    await audit("/settings", () => page.locator("#sessions tbody tr").first().waitFor());
    await audit("/snapshots", () => page.getByRole("heading", { level: 1 }).waitFor());
    await page.getByRole("button", { name: "Log out" }).click();
    await page.waitForURL(/\/login$/);
    await audit("/login", () => page.locator("#login-form").waitFor());
    await audit("/signup", () => page.locator("#signup-form").waitFor());
    // The dark palette too, with an error on screen.
    await page.emulateMedia({ colorScheme: "dark" });
    await audit("/login?error=oauth_denied", () => page.locator("#login-form [role=alert]").waitFor());
    await page.emulateMedia({ colorScheme: "light" });
  });

  it("resets a forgotten password through the mailed link", async () => {
    await page.goto(url("/login"));
    await page.getByRole("link", { name: "Forgot your password?" }).click();
    await page.waitForURL(/\/forgot-password$/);
    await page.getByLabel("Email").fill(user.email);
    await page.getByRole("button", { name: "Send reset link" }).click();
    await page.getByText("a reset link is on its way").waitFor();

    const mail = await waitForMail(stack.mailDir, user.email, { subject: "Reset your Wrenn password" });
    const link = mail.match(/https?:\/\/\S+\/reset-password\?token=\S+/)?.[0];
    assert.ok(link?.startsWith(`${stack.baseUrl}/reset-password?token=`), `reset link in mail:\n${mail}`);
    await page.goto(link);
    await page.getByLabel("New password", { exact: true }).fill("reset and renewed");
    await page.getByLabel("Repeat new password").fill("reset and renewed");
    await page.getByRole("button", { name: "Set password" }).click();
    await page.waitForURL(/\/login$/);
    await page.locator(".notice", { hasText: "Your password was changed" }).waitFor();

    await page.getByLabel("Email").fill(user.email);
    await page.getByLabel("Password").fill("reset and renewed");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.waitForURL(/\/capsules$/);
    assert.equal(await page.locator(".topbar .who").innerText(), "Ada Lovelace");
  });

  it("deletes an account only with its email typed, then signs out; the login is gone", async () => {
    const leaver = { name: "Lee Ving", email: `lee-${Date.now().toString(36)}@example.com`, password: "correct horse battery" };
    const session = await createUser(stack, leaver);
    await browser.context.clearCookies();
    await browser.context.addCookies(session.cookies);
    await page.goto(url("/settings"));
    await page.getByRole("heading", { name: "Delete account" }).waitFor();

    await page.getByLabel("Type your email to confirm").fill(`not-${leaver.email}`);
    await page.getByRole("button", { name: "Delete my account" }).click();
    await page.locator("#delete-account-form").locator("..").locator(".error-box", { hasText: "confirmation_mismatch" }).waitFor();
    assert.equal((await login(stack, leaver.email, leaver.password)).status, 200, "a refused delete changed nothing");

    await page.getByLabel("Type your email to confirm").fill(leaver.email.toUpperCase());
    await page.getByRole("button", { name: "Delete my account" }).click();
    await page.waitForURL(/\/login$/);
    await page.locator(".notice", { hasText: "Your account was deleted." }).waitFor();
    assert.equal((await login(stack, leaver.email, leaver.password)).status, 401);
    assert.equal((await session.api("GET", "/v1/me")).status, 401, "the deleted account's session still works");
  });
});
