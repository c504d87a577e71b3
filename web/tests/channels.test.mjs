// End-to-end: the Channels page in Debian's Chromium against a real wrenn-cp. A real HTTP
// receiver on 127.0.0.1 records what the control plane sends. Create a signed webhook channel
// (signing secret shown once), send a Slack-type test message, publish real events onto the
// control plane's `wrenn:events` stream and check the signed delivery, the retries of a failing
// receiver, enable/disable, the Recent deliveries table, and delete.
//
// Run from web/: `npm test` (after `npm run build` and `cargo build -p wrenn-core`), or
// `bash scripts/web.sh test` from the repository root, which does all of it.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import { launchBrowser, missingPrerequisite, startStack, waitForMail } from "./harness.mjs";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const missing = missingPrerequisite() ?? (spawnSync("redis-cli", ["--version"]).status !== 0 ? "redis-cli is not installed" : null);
if (missing) console.log(`# skipping the channels browser tests: ${missing}`);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * An HTTP receiver on 127.0.0.1 that records every request (headers and raw body). Paths under
 * `/fail` answer 500, everything else 200.
 */
async function startReceiver() {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      requests.push({ method: req.method, path: req.url, headers: req.headers, body, at: Date.now() });
      const fail = req.url.startsWith("/fail");
      res.writeHead(fail ? 500 : 200, { "Content-Type": "text/plain" });
      res.end(fail ? "receiver says no" : "ok");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    /** Requests matching `pred`, once at least `count` of them arrived. */
    async waitFor(pred, { count = 1, timeoutMs = 15_000, what = "a request" } = {}) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hits = requests.filter(pred);
        if (hits.length >= count) return hits;
        if (Date.now() > deadline) {
          const seen = requests.map((r) => `${r.method} ${r.path} ${r.body.slice(0, 200)}`).join("\n");
          throw new Error(`the receiver did not get ${what} (${hits.length}/${count}) in ${timeoutMs} ms; it got:\n${seen}`);
        }
        await sleep(50);
      }
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

const parse = (r) => {
  try {
    return JSON.parse(r.body);
  } catch {
    return null;
  }
};

describe("channels page in Chromium against wrenn-cp", { skip: missing ?? false, timeout: 180_000 }, () => {
  let stack;
  let browser;
  let page;
  let receiver;
  let teamId;
  let signingSecret;
  const user = {
    name: "Grace Hopper",
    email: `grace-${Date.now().toString(36)}@example.com`,
    password: "correct horse battery",
  };

  const url = (p) => `${stack.baseUrl}${p}`;
  /** A GET of the API in the page's session. */
  const apiGet = (path) =>
    page.evaluate(async (p) => {
      const res = await fetch(p, { headers: { Accept: "application/json" } });
      return { status: res.status, body: await res.json().catch(() => null) };
    }, path);
  const channelRow = (name) => page.locator("#channels tbody tr", { hasText: name });

  /** Publishes one event onto the control plane's stream, as wrenn-cp itself does. */
  function publish(event, resourceId) {
    const payload = JSON.stringify({
      event,
      outcome: "success",
      timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
      team_id: teamId,
      actor: { type: "system", id: "", name: "system" },
      resource: { id: resourceId, type: "sandbox" },
      metadata: {},
      error: "",
    });
    const r = spawnSync("redis-cli", ["-h", "127.0.0.1", "-p", String(stack.redisPort), "XADD", "wrenn:events", "*", "payload", payload], {
      encoding: "utf8",
    });
    assert.equal(r.status, 0, `redis-cli XADD failed: ${r.stderr}`);
    assert.match(r.stdout.trim(), /^\d+-\d+$/, `XADD answers the entry id: ${r.stdout}${r.stderr}`);
    return payload;
  }

  const forResource = (id) => (r) => parse(r)?.resource?.id === id;

  /** The headers of a webhook delivery, and its signature under `secret`. */
  function assertSigned(got, secret) {
    assert.equal(got.method, "POST");
    assert.match(got.headers["content-type"], /^application\/json/);
    assert.match(got.headers["x-wrenn-delivery"] ?? "", /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
    const timestamp = got.headers["x-wrenn-timestamp"];
    assert.match(timestamp ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.ok(Math.abs(Date.parse(timestamp) - Date.now()) < 60_000, `a current timestamp: ${timestamp}`);
    const expected = `sha256=${createHmac("sha256", secret).update(`${timestamp}.${got.body}`).digest("hex")}`;
    assert.equal(got.headers["x-wrenn-signature"], expected, "X-WRENN-SIGNATURE is HMAC-SHA256(secret, timestamp.body)");
  }

  /** Opens a channel's Recent deliveries and refreshes until `selector` shows up in the table. */
  async function deliveriesUntil(name, selector, timeoutMs = 15_000) {
    await channelRow(name).getByRole("button", { name: `Deliveries of ${name}` }).click();
    await page.getByRole("heading", { name: `Recent deliveries: ${name}` }).waitFor();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if ((await page.locator(selector).count()) > 0) return;
      if (Date.now() > deadline) throw new Error(`no ${selector} in Recent deliveries of ${name}:\n${await page.locator("#deliveries-panel").innerText()}`);
      await page.locator("#deliveries-panel").getByRole("button", { name: "Refresh" }).click();
      await sleep(250);
    }
  }

  before(async () => {
    stack = await startStack();
    receiver = await startReceiver();
    browser = await launchBrowser();
    page = browser.context.pages()[0] ?? (await browser.context.newPage());
    page.on("dialog", (d) => d.accept());
  });

  after(async () => {
    await browser?.close();
    await receiver?.close();
    await stack?.stop();
  });

  it("signs up; the Channels page shows its empty and error states", async () => {
    await page.goto(url("/signup"));
    await page.getByLabel("Name").fill(user.name);
    await page.getByLabel("Email").fill(user.email);
    await page.getByLabel("Password").fill(user.password);
    await page.getByRole("button", { name: "Create account" }).click();
    await page.locator("#signup-done").waitFor();
    const mail = await waitForMail(stack.mailDir, user.email, { subject: "Activate" });
    const link = mail.match(/https?:\/\/\S+\/activate\?token=\S+/)?.[0];
    assert.ok(link, `activation link in mail:\n${mail}`);
    await page.goto(link);
    await page.waitForURL(/\/capsules$/);

    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Channels" }).click();
    await page.waitForURL(/\/channels$/);
    await page.getByRole("heading", { name: "Channels", level: 1 }).waitFor();
    await page.locator("#channels-empty").waitFor();
    assert.match(await page.locator("#channels-empty").innerText(), /No channels yet/);
    assert.equal(await page.locator("#channels").isHidden(), true);

    // The error state, with the API's code and a way to try again. The failure is injected in the
    // browser (this server has no honest way to fail the list); the retry goes to wrenn-cp.
    const listUrl = (u) => new URL(u).pathname === "/v1/channels";
    await page.route(listUrl, (route) =>
      route.fulfill({
        status: 503,
        contentType: "application/json",
        body: JSON.stringify({ error: { code: "service_unavailable", message: "the database is unavailable" } }),
      }),
    );
    await page.reload();
    const listAlert = page.locator("section[aria-labelledby=channels-h] [role=alert]");
    await listAlert.waitFor();
    assert.match(await listAlert.innerText(), /the database is unavailable/);
    assert.match(await listAlert.innerText(), /service_unavailable/);
    assert.equal(await page.locator("#channels-empty").isHidden(), true);
    await page.unroute(listUrl);
    await page.getByRole("button", { name: "Try again" }).click();
    await page.locator("#channels-empty").waitFor();
    assert.equal(await listAlert.isHidden(), true);

    const teams = await apiGet("/v1/teams");
    assert.equal(teams.status, 200);
    const list = Array.isArray(teams.body) ? teams.body : teams.body.teams;
    assert.equal(list.length, 1);
    teamId = list[0].id;
    assert.match(teamId, /^tm_/);
  });

  it("shows the settings of each provider and refuses what the API refuses", async () => {
    const provider = page.getByLabel("Provider");
    // Each provider brings its own labelled settings; secrets are password inputs.
    await provider.selectOption("telegram");
    await page.getByRole("group", { name: "Telegram settings" }).waitFor();
    assert.equal(await page.getByLabel("Bot token").getAttribute("type"), "password");
    await page.getByLabel("Chat ID").waitFor();
    await page.getByLabel("Bot API URL (optional)").waitFor();
    await provider.selectOption("matrix");
    assert.equal(await page.getByLabel("Access token").getAttribute("type"), "password");
    await page.getByLabel("Homeserver URL").waitFor();
    await page.getByLabel("Room ID").waitFor();
    assert.equal(await page.getByLabel("Bot token").count(), 0);
    await provider.selectOption("slack");
    assert.equal(await page.getByLabel("Slack webhook URL").getAttribute("type"), "password");
    await page.getByLabel("Formatter (optional)").waitFor();
    await provider.selectOption("webhook");
    assert.equal(await page.getByLabel("Receiver URL").getAttribute("type"), "url");
    assert.equal(await page.getByLabel("Formatter (optional)").count(), 0);

    // No event picked: the page says so before asking the API.
    await page.getByLabel("Channel name").fill("nothing picked");
    await page.getByLabel("Receiver URL").fill(`${receiver.url}/never`);
    await page.getByRole("button", { name: "Create channel" }).click();
    const alert = page.locator("#create-channel-form").locator("xpath=..").locator("[role=alert]");
    await alert.waitFor();
    assert.match(await alert.innerText(), /at least one event/);

    // A malformed bot token: the API's message and code.
    await provider.selectOption("telegram");
    await page.getByLabel("Bot token").fill("not-a-token");
    await page.getByLabel("Chat ID").fill("42");
    await page.getByLabel(/capsule\.destroy/).check();
    await page.getByRole("button", { name: "Create channel" }).click();
    await alert.filter({ hasText: "invalid_config" }).waitFor();
    assert.match(await alert.innerText(), /bot_token/);
    assert.equal((await apiGet("/v1/channels")).body.length, 0, "nothing was created");
    assert.equal(receiver.requests.length, 0);
  });

  it("creates a webhook channel and shows its signing secret only once", async () => {
    await page.reload();
    await page.getByRole("heading", { name: "Channels", level: 1 }).waitFor();
    await page.getByLabel("Channel name").fill("ops webhook");
    await page.getByLabel("Provider").selectOption("webhook");
    await page.getByLabel("Receiver URL").fill(`${receiver.url}/hook`);
    await page.getByLabel(/capsule\.create/).check();
    await page.getByLabel(/capsule\.pause/).check();
    await page.getByRole("button", { name: "Create channel" }).click();

    const shown = page.locator("#signing-secret-value");
    await shown.waitFor();
    signingSecret = (await shown.innerText()).trim();
    assert.match(signingSecret, /^whsec_[0-9a-f]{64}$/);
    assert.match(await page.locator("#new-channel").innerText(), /you will not see it again/);
    await page.locator("#new-channel").getByRole("button", { name: "Copy" }).waitFor();

    const row = channelRow("ops webhook");
    await row.waitFor();
    const text = await row.innerText();
    assert.match(text, /Webhook/);
    assert.match(text, /127\.0\.0\.1/);
    assert.match(text, /capsule\.create, capsule\.pause/);
    assert.equal(await row.getByRole("switch", { name: "Enabled: ops webhook" }).isChecked(), true);
    // The form is ready for the next channel.
    assert.equal(await page.getByLabel("Channel name").inputValue(), "");
    assert.equal(await page.getByLabel(/capsule\.create/).isChecked(), false);

    // Gone after a reload, and never in the API's answers.
    await page.reload();
    await channelRow("ops webhook").waitFor();
    assert.equal(await page.locator("#signing-secret-value").count(), 0);
    assert.ok(!(await page.locator("body").innerText()).includes(signingSecret), "the secret is not shown again");
    const listed = await apiGet("/v1/channels");
    assert.equal(listed.status, 200);
    assert.equal(listed.body.length, 1);
    assert.ok(!JSON.stringify(listed.body).includes(signingSecret));
    assert.ok(!JSON.stringify(listed.body).includes("/hook"), "the URL is a secret too; only its host is returned");
    assert.deepEqual(listed.body[0].events, ["capsule.create", "capsule.pause"]);
  });

  it("sends a test message with the form's values, Slack-type and failing", async () => {
    await page.getByLabel("Provider").selectOption("slack");
    await page.getByLabel("Slack webhook URL").fill(`${receiver.url}/slack-test`);
    await page.getByRole("button", { name: "Send test" }).click();
    const result = page.locator("#channel-test-result");
    await result.filter({ hasText: "Test delivered" }).waitFor();
    assert.match(await result.innerText(), /HTTP 200/);

    const [sent] = await receiver.waitFor((r) => r.path === "/slack-test", { what: "the Slack test message" });
    assert.equal(sent.method, "POST");
    assert.match(sent.headers["content-type"], /^application\/json/);
    const body = JSON.parse(sent.body);
    assert.equal(typeof body.text, "string");
    assert.ok(body.text.length > 0, `a Slack message text: ${sent.body}`);
    assert.match(body.text, /channel\.test/);

    // A receiver answering 500: shown as failed with its status.
    await page.getByLabel("Provider").selectOption("webhook");
    await page.getByLabel("Receiver URL").fill(`${receiver.url}/fail-test`);
    await page.getByRole("button", { name: "Send test" }).click();
    await result.filter({ hasText: "Test failed" }).waitFor();
    assert.match(await result.innerText(), /HTTP 500/);
    await receiver.waitFor((r) => r.path === "/fail-test");

    // A test stores nothing.
    assert.equal((await apiGet("/v1/channels")).body.length, 1);
    assert.equal(await page.locator("#channels tbody tr").count(), 1);
  });

  it("delivers published events signed, retries a failing receiver, and lists the attempts", async () => {
    // A second channel whose receiver always fails: two retries, then dropped.
    await page.getByLabel("Channel name").fill("flaky receiver");
    await page.getByLabel("Provider").selectOption("webhook");
    await page.getByLabel("Receiver URL").fill(`${receiver.url}/fail-hook`);
    await page.getByLabel(/capsule\.create/).check();
    await page.getByRole("button", { name: "Create channel" }).click();
    await channelRow("flaky receiver").waitFor();
    await page.locator("#signing-secret-value").waitFor();

    const run = randomBytes(4).toString("hex");
    const destroyed = `sb_destroy${run}`;
    const created = `sb_create${run}`;
    const paused = `sb_pause${run}`;
    publish("capsule.destroy", destroyed); // nobody subscribes to it
    const createdPayload = publish("capsule.create", created);
    const pausedPayload = publish("capsule.pause", paused);

    const hook = (r) => r.path === "/hook";
    const [gotCreate] = await receiver.waitFor((r) => hook(r) && forResource(created)(r), { what: "capsule.create" });
    const [gotPause] = await receiver.waitFor((r) => hook(r) && forResource(paused)(r), { what: "capsule.pause" });
    for (const [got, published] of [
      [gotCreate, createdPayload],
      [gotPause, pausedPayload],
    ]) {
      assert.deepEqual(JSON.parse(got.body), JSON.parse(published), "the payload as published");
      assertSigned(got, signingSecret);
    }
    assert.notEqual(gotCreate.headers["x-wrenn-delivery"], gotPause.headers["x-wrenn-delivery"]);
    assert.equal(receiver.requests.filter(forResource(destroyed)).length, 0, "an unsubscribed event is not delivered");
    assert.equal(receiver.requests.filter((r) => hook(r) && forResource(created)(r)).length, 1, "delivered once");

    // The failing receiver: the first attempt and two retries, each signed with its own secret.
    const attempts = await receiver.waitFor((r) => r.path === "/fail-hook" && forResource(created)(r), {
      count: 3,
      what: "three attempts at the failing receiver",
    });
    assert.equal(new Set(attempts.map((a) => a.headers["x-wrenn-delivery"])).size, 3, "a new X-Wrenn-Delivery per attempt");
    assert.notEqual(attempts[0].headers["x-wrenn-signature"], undefined);
    assert.ok(!receiver.requests.some((r) => r.path === "/fail-hook" && forResource(paused)(r)), "not subscribed to capsule.pause");

    // Recent deliveries in the page.
    await deliveriesUntil("ops webhook", "#deliveries tbody tr[data-status=delivered]:has-text('capsule.pause')");
    const rows = page.locator("#deliveries tbody tr");
    assert.equal(await rows.count(), 2);
    const delivered = page.locator("#deliveries tbody tr[data-status=delivered]", { hasText: "capsule.create" });
    const cells = await delivered.locator("td").allInnerTexts();
    assert.equal(cells.length, 7);
    assert.equal(cells[1], "capsule.create");
    assert.equal(cells[2], "1", "attempt");
    assert.equal(cells[3], "delivered");
    assert.equal(cells[4], "200", "HTTP status");
    assert.match(cells[5], /^\d+ ms$/);
    assert.equal(cells[6], "—", "no error");
    assert.equal(await page.getByRole("columnheader", { name: "HTTP status" }).count(), 1);

    await deliveriesUntil("flaky receiver", "#deliveries tbody tr[data-status=dropped]");
    const flaky = await page.locator("#deliveries tbody tr").evaluateAll((trs) =>
      trs.map((tr) => [tr.dataset.status, ...Array.from(tr.cells).slice(1, 5).map((c) => c.innerText.trim())]),
    );
    assert.deepEqual(flaky, [
      ["dropped", "capsule.create", "3", "dropped", "500"],
      ["failed", "capsule.create", "2", "failed", "500"],
      ["failed", "capsule.create", "1", "failed", "500"],
    ]);
  });

  it("disables and enables a channel from its row", async () => {
    const toggle = channelRow("ops webhook").getByRole("switch", { name: "Enabled: ops webhook" });
    await toggle.uncheck();
    await page.locator(".notice-success", { hasText: "is disabled" }).waitFor();
    const stored = (await apiGet("/v1/channels")).body.find((c) => c.name === "ops webhook");
    assert.equal(stored.enabled, false);

    // While disabled nothing arrives: the failing channel, on the same event, shows the event
    // was handled.
    const run = randomBytes(4).toString("hex");
    const whileOff = `sb_off${run}`;
    publish("capsule.create", whileOff);
    await receiver.waitFor((r) => r.path === "/fail-hook" && forResource(whileOff)(r), { what: "the event at the other channel" });
    assert.equal(receiver.requests.filter((r) => r.path === "/hook" && forResource(whileOff)(r)).length, 0, "a disabled channel gets nothing");

    await page.reload();
    const again = channelRow("ops webhook").getByRole("switch", { name: "Enabled: ops webhook" });
    assert.equal(await again.isChecked(), false, "the state survives a reload");
    await again.check();
    await page.locator(".notice-success", { hasText: "is enabled" }).waitFor();
    const whileOn = `sb_on${run}`;
    publish("capsule.pause", whileOn);
    await receiver.waitFor((r) => r.path === "/hook" && forResource(whileOn)(r), { what: "the event after enabling" });
  });

  it("edits a channel: name, events, and new settings with a new signing secret", async () => {
    await page.goto(url("/channels"));
    await channelRow("ops webhook").getByRole("button", { name: "Edit ops webhook" }).click();
    const panel = page.locator("#edit-panel");
    await panel.getByRole("heading", { name: "Edit channel: ops webhook" }).waitFor();
    assert.equal(await panel.getByLabel(/capsule\.create/).isChecked(), true);
    assert.equal(await panel.getByLabel(/capsule\.pause/).isChecked(), true);
    assert.equal(await panel.getByLabel(/capsule\.resume/).isChecked(), false);
    await panel.getByLabel("Name", { exact: true }).fill("ops events");
    await panel.getByLabel(/capsule\.pause/).uncheck();
    await panel.getByLabel(/capsule\.resume/).check();
    await panel.getByRole("button", { name: "Save changes" }).click();
    await page.locator(".notice-success", { hasText: "“ops events” saved" }).waitFor();
    const row = channelRow("ops events");
    await row.waitFor();
    assert.match(await row.innerText(), /capsule\.create, capsule\.resume/);
    assert.equal(await panel.isHidden(), true);
    const stored = (await apiGet("/v1/channels")).body.find((c) => c.name === "ops events");
    assert.deepEqual(stored.events, ["capsule.create", "capsule.resume"]);

    // Secrets cannot be read back: the whole config is entered again, here with a new secret.
    await row.getByRole("button", { name: "Edit ops events" }).click();
    await panel.getByLabel("Receiver URL").fill(`${receiver.url}/hook2`);
    await panel.getByLabel(/Issue a new signing secret/).check();
    await panel.getByRole("button", { name: "Replace settings" }).click();
    const fresh = page.locator("#rotated-secret-value");
    await fresh.waitFor();
    const newSecret = (await fresh.innerText()).trim();
    assert.match(newSecret, /^whsec_[0-9a-f]{64}$/);
    assert.notEqual(newSecret, signingSecret);
    assert.match(await page.locator("#rotated-secret").innerText(), /you will not see it again/);

    const resumed = `sb_resume${randomBytes(4).toString("hex")}`;
    const payload = publish("capsule.resume", resumed);
    const [got] = await receiver.waitFor((r) => r.path === "/hook2" && forResource(resumed)(r), { what: "capsule.resume at the new URL" });
    assert.deepEqual(JSON.parse(got.body), JSON.parse(payload));
    assertSigned(got, newSecret);
    assert.equal(receiver.requests.filter((r) => r.path === "/hook" && forResource(resumed)(r)).length, 0, "not at the old URL");
    signingSecret = newSecret;
  });

  it("has no serious accessibility violations (axe-core) on the Channels page", async () => {
    const audit = async (label) => {
      await page.evaluate(axeSource);
      const violations = await page.evaluate(async () => {
        const result = await globalThis.axe.run(document, { resultTypes: ["violations"] });
        return result.violations
          .filter((v) => v.impact === "serious" || v.impact === "critical")
          .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
      });
      assert.deepEqual(violations, [], `${label}:\n${violations.join("\n")}`);
    };
    await page.goto(url("/channels"));
    const create = page.locator("#create-channel-form");
    await channelRow("ops events").waitFor();
    await deliveriesUntil("ops events", "#deliveries tbody tr[data-status=delivered]");
    await channelRow("ops events").getByRole("button", { name: "Edit ops events" }).click();
    await page.locator("#edit-panel").getByRole("heading", { name: "Edit channel: ops events" }).waitFor();
    // An error on screen, and the settings of a provider with several fields.
    await create.getByLabel("Channel name").fill("audit");
    await create.getByLabel("Receiver URL").fill(`${receiver.url}/never`);
    await create.getByRole("button", { name: "Create channel" }).click();
    await page.locator("#create-channel-form").locator("xpath=..").locator("[role=alert]", { hasText: "at least one event" }).waitFor();
    await create.getByLabel("Provider").selectOption("matrix");
    await audit("/channels, light");
    await page.emulateMedia({ colorScheme: "dark" });
    await create.getByLabel("Provider").selectOption("webhook");
    await create.getByLabel("Receiver URL").fill(`${receiver.url}/fail-audit`);
    await create.getByRole("button", { name: "Send test" }).click();
    await page.locator("#channel-test-result").filter({ hasText: "Test failed" }).waitFor();
    await audit("/channels, dark");
    await page.emulateMedia({ colorScheme: "light" });
  });

  it("deletes the channels in the page", async () => {
    await page.goto(url("/channels"));
    const ids = (await apiGet("/v1/channels")).body.map((c) => c.id);
    assert.equal(ids.length, 2);
    await deliveriesUntil("ops events", "#deliveries tbody tr");
    await channelRow("ops events").getByRole("button", { name: "Edit ops events" }).click();
    await page.locator("#edit-panel").getByRole("heading", { level: 2 }).waitFor();
    await channelRow("ops events").getByRole("button", { name: "Delete ops events" }).click();
    await page.locator(".notice-success", { hasText: "“ops events” deleted" }).waitFor();
    await channelRow("ops events").waitFor({ state: "detached" });
    assert.equal(await page.locator("#deliveries-panel").isHidden(), true, "its deliveries view closes with it");
    assert.equal(await page.locator("#edit-panel").isHidden(), true, "and so does its edit view");
    await channelRow("flaky receiver").getByRole("button", { name: "Delete flaky receiver" }).click();
    await page.locator("#channels-empty").waitFor();
    for (const id of ids) assert.equal((await apiGet(`/v1/channels/${id}`)).status, 404);

    // Events after the delete go nowhere.
    const gone = `sb_gone${randomBytes(4).toString("hex")}`;
    publish("capsule.create", gone);
    await sleep(1000);
    assert.equal(receiver.requests.filter(forResource(gone)).length, 0);
  });
});
