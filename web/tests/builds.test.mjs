// End-to-end: the template build pages in Debian's Chromium against a real wrenn-cp and a real
// wrenn-agent running the builds in gVisor capsules (minimal-busybox): a recipe refused with its
// line, a build submitted through the page (with a file for COPY under an edited path) followed
// live to its template, a slow build cancelled from its page after a reload re-read its log,
// the list refreshing while a build runs, the admin tab, cross-team refusals, axe-core and no
// console errors.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import { createUser, launchBrowser, missingCapsulePrerequisite, missingPrerequisite, startStack } from "./harness.mjs";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * The recipes end with START, so the page follows the snapshot path (a trial restore included);
 * flattened base templates are covered by core/tests/builds.rs.
 */
const START = "START sleep 86400";

const missing = missingPrerequisite() ?? missingCapsulePrerequisite();
if (missing) console.log(`# skipping the build pages browser tests: ${missing}`);

describe("template build pages in Chromium against wrenn-cp and a gVisor agent", { skip: missing ?? false, timeout: 240_000 }, () => {
  let stack;
  let browser;
  let page;
  /** The team's owner (the first user: also the platform admin). */
  let me;
  /** Builds made on the way, by name. */
  const ids = {};
  /** Console errors of the page, less the refusals the tests provoke on purpose. */
  const consoleErrors = [];
  const url = (p) => `${stack.baseUrl}${p}`;
  const status = () => page.locator("#build-status");
  const logText = () => page.locator("#build-log").innerText();

  /** Waits until the build log shows text matching `re`. */
  async function logShows(re, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    let text = "";
    while (Date.now() < deadline) {
      text = await logText().catch(() => "");
      if (re.test(text)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the build log never showed ${re}; it shows:\n${text}`);
  }

  /** Fills and submits the New build form; resolves to the response of `POST /v1/builds`. */
  async function submitBuild(name, recipe) {
    await page.locator("#build-name").fill(name);
    await page.locator("#build-recipe").fill(recipe);
    const answered = page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === "/v1/builds");
    await page.getByRole("button", { name: "Start build" }).click();
    return answered;
  }

  async function openBuilds() {
    await page.goto(url("/builds"));
    await page.getByRole("heading", { name: "Builds", level: 1 }).waitFor();
  }

  before(async () => {
    stack = await startStack({ agent: true });
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
    page.on("dialog", (d) => void d.accept());
    me = await createUser(stack, { name: "Ada", email: `ada-${Date.now().toString(36)}@example.com`, password: "correct horse battery" });
    await browser.context.addCookies(me.cookies);
  });

  after(async () => {
    await browser?.close();
    if (stack) {
      if (process.exitCode) console.error(`--- wrenn-cp log ---\n${stack.log().slice(-3000)}\n--- wrenn-agent log ---\n${stack.agentLog().slice(-3000)}`);
      await stack.stop();
    }
  });

  it("refuses a recipe with an unknown instruction, naming its line, and lists no build", async () => {
    await openBuilds();
    await page.locator("#builds-empty").waitFor();
    const res = await submitBuild("bad-tpl", "FROM minimal-busybox\nFETCH x");
    assert.equal(res.status(), 400);
    const error = page.locator("#new-build-form").locator("xpath=..").locator(".error-box");
    await error.getByText("line 2: unknown instruction 'FETCH'").waitFor();
    assert.match(await error.innerText(), /invalid_recipe/);
    assert.equal(new URL(page.url()).pathname, "/builds");
    assert.equal(await page.locator("#builds-empty").isVisible(), true);
    assert.deepEqual((await me.api("GET", "/v1/builds")).body, []);
    // Chromium reports the refused request itself; that one was asked for.
    const refused = consoleErrors.findIndex((e) => /status of 400/.test(e));
    if (refused >= 0) consoleErrors.splice(refused, 1);
  });

  it("builds a template from the page (a file for COPY under an edited path), following its log live to the template", async () => {
    await openBuilds();
    await page.locator("#build-files-input").setInputFiles({ name: "hello.txt", mimeType: "text/plain", buffer: Buffer.from("greeting from a file\n") });
    await page.getByLabel("Path of hello.txt").fill("greeting.txt");
    const res = await submitBuild("page-tpl", `FROM minimal-busybox\nCOPY greeting.txt /tmp/greeting.txt\nRUN echo built-$((6*7)); cat /tmp/greeting.txt; echo warned >&2\nRUN sleep 1\n${START}`);
    assert.equal(res.status(), 202);
    ids.page = (await res.json()).id;
    await page.waitForURL(`**/builds/${ids.page}`);
    await page.getByRole("heading", { name: "page-tpl", level: 1 }).waitFor();
    // The page opened while the build was in flight: what follows arrives without a reload.
    assert.match(await status().innerText(), /^(queued|running)$/);
    assert.equal(await page.locator("#build-cancel").isVisible(), true);

    await logShows(/^built-42$/m);
    await logShows(/^greeting from a file$/m);
    await status().filter({ hasText: "succeeded" }).waitFor({ timeout: 60_000 });
    const steps = page.locator("#build-steps li");
    assert.deepEqual(await steps.evaluateAll((lis) => lis.map((li) => `${li.querySelector("strong").textContent}:${li.dataset.status}`)), [
      "FROM:succeeded",
      "COPY:succeeded",
      "RUN:succeeded",
      "RUN:succeeded",
      "START:succeeded",
      "SAVE:succeeded",
    ]);
    assert.equal(await page.locator("#build-steps li.current").count(), 0);
    // The build's own lines are set apart from the commands' output.
    assert.match(await page.locator("#build-log .log-system").first().innerText(), /^Step 1\/6: FROM minimal-busybox$/m);
    assert.equal(await page.locator("#build-log .log-system, #build-log .log-stderr", { hasText: "built-42" }).count(), 0);
    assert.equal(await page.locator("#build-log .log-stderr").innerText(), "warned\n");
    assert.equal(await page.locator("#build-cancel").isVisible(), false);
    await page.locator("#build-template", { hasText: "Template page-tpl saved" }).waitFor();

    // The template is the team's, on the API and on the Snapshots page (linked from here).
    const snapshots = (await me.api("GET", "/v1/snapshots")).body;
    const listed = (Array.isArray(snapshots) ? snapshots : snapshots.templates).find((t) => t.name === "page-tpl");
    assert.ok(listed, JSON.stringify(snapshots));
    await page.getByRole("link", { name: "See it under Snapshots" }).click();
    await page.locator('#templates tr[data-name="page-tpl"]').waitFor();
  });

  it("refreshes the list while a build is in flight", async () => {
    const queued = await me.api("POST", "/v1/builds", { name: "api-tpl", recipe: `FROM minimal-busybox\nRUN sleep 2\n${START}` });
    assert.equal(queued.status, 202, JSON.stringify(queued.body));
    ids.api = queued.body.id;
    await openBuilds();
    const row = page.locator(`#builds tr[data-id="${ids.api}"]`);
    assert.match(await row.getAttribute("data-status"), /^(queued|running)$/);
    await page.locator(`#builds tr[data-id="${ids.api}"][data-status="succeeded"]`).waitFor({ timeout: 60_000 });
    assert.match(await row.locator(".steps-done").innerText(), /^4\/4$/);
    const pageRow = page.locator(`#builds tr[data-id="${ids.page}"]`);
    assert.match(await pageRow.innerText(), /page-tpl\s+succeeded\s+minimal-busybox\s+6\/6\s+snapshot/);
    // The same recipe again is answered with that build (reused), unless asked to rebuild.
    const again = await submitBuild("api-tpl", `FROM minimal-busybox\nRUN sleep 2\n${START}`);
    assert.equal(again.status(), 200);
    await page.waitForURL(`**/builds/${ids.api}`);
    await page.locator(".notice-info", { hasText: "its template was reused" }).waitFor();
  });

  it("cancels a slow build from its page, after a reload re-read its log from the start", async () => {
    await openBuilds();
    const res = await submitBuild("slow-tpl", "FROM minimal-busybox\nRUN echo before-sleep\nRUN sleep 600");
    assert.equal(res.status(), 202);
    ids.slow = (await res.json()).id;
    await page.waitForURL(`**/builds/${ids.slow}`);
    // The running step is the highlighted one.
    const sleeping = page.locator('#build-steps li.current[data-index="2"][aria-current="step"]');
    await sleeping.waitFor({ timeout: 60_000 });
    await logShows(/^before-sleep$/m);
    await page.reload();
    await page.getByRole("heading", { name: "slow-tpl", level: 1 }).waitFor();
    await logShows(/Step 1\/4: FROM minimal-busybox[\s\S]*^before-sleep$/m);
    await sleeping.waitFor();

    await page.getByRole("button", { name: "Cancel build" }).click();
    await status().filter({ hasText: "cancelled" }).waitFor({ timeout: 30_000 });
    await page.locator("#build-cancel").waitFor({ state: "hidden" });
    await page.locator("#build-error", { hasText: "cancelled" }).waitFor();
    const gone = await me.api("GET", `/v1/builds/${ids.slow}`);
    assert.equal(gone.body.status, "cancelled");
    assert.equal(gone.body.template_id ?? null, null);
  });

  it("lists every team's builds on the admin tab", async () => {
    await page.goto(url("/admin/builds"));
    await page.getByRole("heading", { name: "Builds", level: 1 }).waitFor();
    const tab = page.getByRole("navigation", { name: "Administration" }).getByRole("link", { name: "Builds" });
    assert.equal(await tab.getAttribute("aria-current"), "page");
    const rows = page.locator("#admin-builds tbody tr");
    await rows.first().waitFor();
    assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.id)), [ids.slow, ids.api, ids.page]);
    const teamId = (await me.api("GET", "/v1/me")).body.auth.team_id;
    assert.ok(teamId.startsWith("tm_"), teamId);
    assert.match(await rows.first().innerText(), new RegExp(teamId));
    await page.locator("#admin-builds-status").selectOption("cancelled");
    await page.waitForFunction(() => document.querySelectorAll("#admin-builds tbody tr").length === 1);
  });

  it("has no serious accessibility violations (axe-core) and no console errors", async () => {
    const audit = async (path, ready) => {
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
    };
    await audit("/builds", () => page.locator("#builds tbody tr").first().waitFor());
    await audit(`/builds/${ids.page}`, () => page.locator("#build-template").waitFor());
    await audit(`/builds/${ids.slow}`, () => page.locator("#build-error").waitFor());
    await audit("/admin/builds", () => page.locator("#admin-builds tbody tr").first().waitFor());
    assert.deepEqual(consoleErrors, []);
  });

  it("never shows one team's builds to another team", async () => {
    const eve = await createUser(stack, { name: "Eve", email: `eve-${Date.now().toString(36)}@example.com`, password: "correct horse battery" });
    assert.equal((await eve.api("GET", `/v1/builds/${ids.page}`)).status, 404);
    assert.equal((await eve.api("GET", `/v1/builds/${ids.page}/logs`)).status, 404);
    assert.equal((await eve.api("POST", `/v1/builds/${ids.api}/cancel`)).status, 404);
    assert.deepEqual((await eve.api("GET", "/v1/builds")).body, []);
    await browser.context.clearCookies();
    await browser.context.addCookies(eve.cookies);
    await openBuilds();
    await page.locator("#builds-empty").waitFor();
    assert.equal(await page.locator("#builds tbody tr").count(), 0);
    await page.goto(url(`/builds/${ids.page}`));
    await page.locator(".error-box", { hasText: /not found/i }).first().waitFor();
    assert.equal(await page.locator("#build-log, #build-steps").count(), 0);
    await browser.context.clearCookies();
    await browser.context.addCookies(me.cookies);
  });
});
