// End-to-end: one capsule's page in Debian's Chromium against a real wrenn-cp and a real
// wrenn-agent running a gVisor capsule (minimal-busybox): the terminal over the PTY WebSocket
// (typing, resize, re-attach after a reload and after a pause), the file browser (upload,
// download, mkdir, delete, checked from node through the API), processes with kill, metrics
// charts, live state from the event stream (a pause made from node shows without a reload), and
// the team's usage page while the capsule runs.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import { createUser, launchBrowser, missingCapsulePrerequisite, missingPrerequisite, startStack } from "./harness.mjs";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const missing = missingPrerequisite() ?? missingCapsulePrerequisite();
if (missing) console.log(`# skipping the capsule page browser tests: ${missing}`);

describe("a capsule's page in Chromium against wrenn-cp and a gVisor capsule", { skip: missing ?? false, timeout: 300_000 }, () => {
  let stack;
  let browser;
  let page;
  let me;
  let id;
  /** Console errors of the page (a CSP refusal of xterm's styles would show here). */
  const consoleErrors = [];
  const url = (p) => `${stack.baseUrl}${p}`;
  const terminalText = () => page.locator("#terminal .xterm-rows").innerText();

  /** Waits until the terminal shows text matching `re`; resolves to the match. */
  async function terminalShows(re, timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs;
    let text = "";
    while (Date.now() < deadline) {
      text = await terminalText().catch(() => "");
      const m = text.match(re);
      if (m) return m;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the terminal never showed ${re}; it shows:\n${text}`);
  }

  async function typeLine(line) {
    await page.locator("#terminal").click();
    await page.keyboard.type(line);
    await page.keyboard.press("Enter");
  }

  async function openCapsule() {
    await page.goto(url(`/capsules/${id}`));
    await page.getByRole("heading", { name: id, level: 1 }).waitFor();
  }

  const status = () => page.locator("#capsule-facts .status").first();

  before(async () => {
    stack = await startStack({ agent: true });
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
    page.on("dialog", (d) => void d.accept());
    me = await createUser(stack, { name: "Ada", email: `ada-${Date.now().toString(36)}@example.com`, password: "correct horse battery" });
    await browser.context.addCookies(me.cookies);
    const created = await me.api("POST", "/v1/capsules", { template: "minimal-busybox", memory_mb: 256 });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    id = created.body.id;
    assert.equal(created.body.status, "running");
  });

  after(async () => {
    if (id && me) await me.api("DELETE", `/v1/capsules/${id}`).catch(() => {});
    await browser?.close();
    if (stack) {
      if (process.exitCode) console.error(`--- wrenn-agent log ---\n${stack.agentLog().slice(-3000)}`);
      await stack.stop();
    }
  });

  it("opens a terminal, runs a command, follows a resize and re-attaches to the same shell after a reload", async () => {
    await openCapsule();
    await page.locator("#terminal-open").click();
    await page.locator("#terminal-state", { hasText: "Connected" }).waitFor();
    await typeLine("echo wrenn-$((6*7))");
    await terminalShows(/^wrenn-42\s*$/m);

    // The PTY has the terminal's size, and follows the window.
    await typeLine('echo "size=$(stty size)"');
    const [, rows1, cols1] = await terminalShows(/^size=(\d+)\s(\d+)\s*$/m);
    await page.setViewportSize({ width: 760, height: 900 });
    await typeLine("clear; echo \"size2=$(stty size)\"");
    const [, , cols2] = await terminalShows(/^size2=(\d+)\s(\d+)\s*$/m);
    assert.ok(Number(rows1) > 5, `rows ${rows1}`);
    assert.notEqual(cols2, cols1, `the PTY kept ${cols1} columns after the window narrowed`);

    // State kept in the shell proves the reload re-attached instead of starting a new one.
    await typeLine("MARK=kept-$((40+2)); echo set-$MARK");
    await terminalShows(/^set-kept-42\s*$/m);
    await page.reload();
    await page.getByRole("heading", { name: id, level: 1 }).waitFor();
    await page.locator("#terminal-state", { hasText: "Re-attached" }).waitFor();
    await typeLine("echo again-$MARK");
    await terminalShows(/^again-kept-42\s*$/m);
  });

  it("shows a pause made elsewhere without a reload, and re-attaches the shell after the resume", async () => {
    await openCapsule();
    await page.locator("#terminal-state", { hasText: "Re-attached" }).waitFor();
    await status().filter({ hasText: "running" }).waitFor();
    const paused = await me.api("POST", `/v1/capsules/${id}/pause`);
    assert.equal(paused.status, 200, JSON.stringify(paused.body));
    // From the event stream (the page polls only while the stream is down).
    await status().filter({ hasText: "paused" }).waitFor();
    assert.equal(await page.locator("#terminal-open").isDisabled(), true);
    assert.equal(await page.locator("#files-upload").isDisabled(), true);

    await page.getByRole("button", { name: `Resume ${id}` }).click();
    await status().filter({ hasText: "running" }).waitFor();
    await page.locator("#terminal-state", { hasText: "Re-attached" }).waitFor();
    await typeLine("echo after-resume-$MARK");
    await terminalShows(/^after-resume-kept-42\s*$/m);
  });

  it("ends the terminal session on request", async () => {
    await openCapsule();
    await page.locator("#terminal-state", { hasText: "Re-attached" }).waitFor();
    await page.locator("#terminal-end").click();
    await page.locator("#terminal-state", { hasText: "exited" }).waitFor();
    assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), `wrenn.pty.${id}`), null);
    // The next one is a fresh shell.
    await page.locator("#terminal-open").click();
    await page.locator("#terminal-state", { hasText: "Connected" }).waitFor();
    await typeLine("echo fresh-[$MARK]");
    await terminalShows(/^fresh-\[\]\s*$/m);
  });

  it("browses, uploads, downloads, makes and deletes files", async () => {
    await openCapsule();
    const files = page.locator("#files");
    await files.locator('a.dir[data-path="/tmp"]').click();
    await page.locator("#files-path strong", { hasText: "tmp" }).waitFor();

    // Upload (streamed) and read it back from node and through the page's download.
    const content = `hello from the browser ${Date.now()}\n`.repeat(1000);
    await page.locator("#files-upload-input").setInputFiles({ name: "note.txt", mimeType: "text/plain", buffer: Buffer.from(content) });
    await page.locator("#files-upload").click();
    await files.locator('tr[data-name="note.txt"]').waitFor();
    const read = await fetch(url(`/v1/capsules/${id}/files/read`), {
      method: "POST",
      headers: { "Content-Type": "application/json", Cookie: me.cookieHeader, "X-CSRF-Token": me.cookies.find((c) => c.name === "wrenn_csrf").value },
      body: JSON.stringify({ path: "/tmp/note.txt" }),
    });
    assert.equal(read.status, 200);
    assert.equal(await read.text(), content);
    const downloading = page.waitForEvent("download");
    await page.getByRole("button", { name: "Download note.txt" }).click();
    const download = await downloading;
    assert.equal(download.suggestedFilename(), "note.txt");
    assert.equal(readFileSync(await download.path(), "utf8"), content);

    // A directory: made, entered (empty), left, deleted.
    await page.locator("#files-mkdir-name").fill("made-here");
    await page.locator("#files-mkdir").click();
    await files.locator('a.dir[data-path="/tmp/made-here"]').click();
    await page.locator("#files-empty").waitFor({ state: "visible" });
    await page.locator("#files-up").click();
    await files.locator('tr[data-name="made-here"]').waitFor();
    await page.getByRole("button", { name: "Delete made-here" }).click();
    await files.locator('tr[data-name="made-here"]').waitFor({ state: "detached" });
    const listed = await me.api("POST", `/v1/capsules/${id}/files/list`, { path: "/tmp" });
    assert.deepEqual(listed.body.entries.map((e) => e.name).filter((n) => n === "made-here" || n === "note.txt"), ["note.txt"]);

    // A bad name is refused on the page, and nothing is made.
    await page.locator("#files-mkdir-name").fill("../escape");
    await page.locator("#files-mkdir").click();
    await page.locator(".error-box", { hasText: "one path element" }).waitFor();
  });

  it("lists processes and kills one", async () => {
    const started = await me.api("POST", `/v1/capsules/${id}/exec`, { cmd: "/bin/sleep", args: ["600"], background: true, tag: "long-sleep" });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    await openCapsule();
    const row = page.locator(`#processes tr[data-pid="${started.body.pid}"]`);
    await row.waitFor();
    assert.match(await row.innerText(), /long-sleep/);
    await page.getByRole("button", { name: `Kill ${started.body.pid}`, exact: true }).click();
    await row.waitFor({ state: "detached" });
    const left = await me.api("GET", `/v1/capsules/${id}/processes`);
    assert.ok(!left.body.processes.some((p) => p.pid === started.body.pid), JSON.stringify(left.body));
  });

  it("draws CPU, memory and disk charts from the capsule's samples", async () => {
    await openCapsule();
    for (const chart of ["cpu", "memory", "disk"]) await page.locator(`#chart-${chart}`).waitFor();
    // A sample arrives within a few seconds of running; the page refreshes every 10 s.
    await page.locator("#chart-memory polyline").waitFor({ timeout: 30_000 });
    const latest = await page.locator("#chart-memory-latest").innerText();
    assert.match(latest, /\d+(\.\d)? (KiB|MiB|GiB)/);
    await page.locator("#metrics-range").selectOption("1h");
    await page.locator("#chart-memory polyline").waitFor();
  });

  it("has no serious accessibility violations (axe-core) and no console errors", async () => {
    await openCapsule();
    // The tab's session from the earlier tests is re-attached without a click.
    await page.locator("#terminal-state", { hasText: "Re-attached" }).waitFor();
    await page.evaluate(axeSource);
    // xterm's own helper elements (an off-screen textarea and live region) are not ours to fix.
    const result = await page.evaluate(async () => await globalThis.axe.run(document, { exclude: [["#terminal"]], resultTypes: ["violations"] }));
    const serious = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    assert.deepEqual(serious.map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`), []);
    assert.deepEqual(consoleErrors, []);
  });

  it("never lets another team's session reach the capsule's terminal, files or processes", async () => {
    const other = await createUser(stack, { name: "Eve", email: `eve-${Date.now().toString(36)}@example.com`, password: "correct horse battery" });
    // A WebSocket handshake for the terminal, with Eve's cookies.
    const handshake = (cookie) =>
      new Promise((resolve, reject) => {
        const req = http.request(url(`/v1/capsules/${id}/pty`), {
          headers: { Cookie: cookie, Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": randomBytes(16).toString("base64") },
        });
        req.on("response", (res) => {
          res.resume();
          resolve(res.statusCode);
        });
        req.on("upgrade", (res, socket) => {
          socket.destroy();
          resolve(res.statusCode);
        });
        req.on("error", reject);
        req.end();
      });
    assert.equal(await handshake(other.cookieHeader), 404);
    assert.equal(await handshake(me.cookieHeader), 101, "the owner's own handshake is accepted");
    assert.equal((await other.api("POST", `/v1/capsules/${id}/files/list`, { path: "/" })).status, 404);
    assert.equal((await other.api("POST", `/v1/capsules/${id}/files/read`, { path: "/tmp/note.txt" })).status, 404);
    assert.equal((await other.api("GET", `/v1/capsules/${id}/processes`)).status, 404);
    assert.equal((await other.api("GET", `/v1/capsules/${id}/metrics?range=5m`)).status, 404);
    // Eve's browser gets the page's not-found answer, not the capsule.
    await browser.context.clearCookies();
    await browser.context.addCookies(other.cookies);
    await page.goto(url(`/capsules/${id}`));
    await page.locator(".error-box", { hasText: /not found/i }).first().waitFor();
    assert.equal(await page.locator("#terminal, #files, #processes").count(), 0);
    await browser.context.clearCookies();
    await browser.context.addCookies(me.cookies);
  });

  it("shows the team's usage: the running capsule now, and a bar per day", async () => {
    await page.goto(url("/usage"));
    await page.getByRole("heading", { name: "Usage", level: 1 }).waitFor();
    const nowFacts = page.locator("#usage-now");
    await nowFacts.locator("dd").first().waitFor();
    assert.match(await nowFacts.locator("dd").first().innerText(), /^1 \(peak [1-9]/);
    assert.match(await nowFacts.locator("dd").nth(2).innerText(), /^256 MiB/);
    for (const c of ["running", "vcpus", "memory", "cpu-minutes", "ram-minutes"]) await page.locator(`#chart-${c}`).waitFor();
    assert.equal(await page.locator("#chart-cpu-minutes rect").count(), 30);
    await page.locator("#usage-days").selectOption("7");
    await page.waitForFunction(() => document.querySelectorAll("#chart-cpu-minutes rect").length === 7);
    await page.locator("#stats-range").selectOption("5m");
    await page.locator("#chart-running").waitFor();
  });

  it("destroys the capsule from its page", async () => {
    await openCapsule();
    await page.getByRole("button", { name: `Destroy ${id}` }).click();
    await page.getByRole("heading", { name: "Capsules", level: 1 }).waitFor();
    const gone = await me.api("GET", `/v1/capsules/${id}`);
    assert.equal(gone.body.status, "stopped");
    id = null;
  });
});
