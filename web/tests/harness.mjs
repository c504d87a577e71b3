// Test harness: a real wrenn-cp (built from this checkout) on a fresh PostgreSQL database and a
// throw-away redis-server, both on their own ports, with the mail sink in a temp directory, and
// Debian's Chromium driven by playwright-core. Everything started here is stopped and removed by
// `stop()`.

import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const WEB_ROOT = path.resolve(here, "..");
export const REPO_ROOT = path.resolve(WEB_ROOT, "..");
export const DIST = path.join(WEB_ROOT, "dist");

/** Launch flags that work for Debian's Chromium on these machines (ENVIRONMENT.md). */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function chromiumPath() {
  const candidates = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"].filter(Boolean);
  return candidates.find((p) => existsSync(p)) ?? null;
}

export function wrennCpPath() {
  if (process.env.WRENN_CP_BIN) return process.env.WRENN_CP_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? "/var/tmp/wrenn-target";
  return path.join(target, "debug", "wrenn-cp");
}

export function wrennAgentPath() {
  if (process.env.WRENN_AGENT_BIN) return process.env.WRENN_AGENT_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? "/var/tmp/wrenn-target";
  return path.join(target, "debug", "wrenn-agent");
}

/** The base images the agent boots (`scripts/images-ensure.sh` makes them). */
export function imagesDir() {
  return process.env.WRENN_TEST_IMAGES ?? path.join(process.env.WRENN_DIR ?? "/var/lib/wrenn", "images");
}

/** Why this machine cannot run gVisor capsules for a browser test, or null. */
export function missingCapsulePrerequisite() {
  if (process.getuid?.() !== 0) return "gVisor capsules need root";
  if (spawnSync("runsc", ["--version"]).status !== 0) return "runsc is not installed";
  if (!existsSync(wrennAgentPath())) return `wrenn-agent is not built at ${wrennAgentPath()} (cargo build -p wrenn-agent, or set WRENN_AGENT_BIN)`;
  const busybox = path.join(imagesDir(), "teams/0000000000000000000000000/0000000000000000000000005/rootfs");
  if (!existsSync(busybox)) return `the minimal-busybox image is missing at ${busybox} (bash scripts/images-ensure.sh)`;
  return null;
}

/** What is missing to run the browser tests, or null. */
export function missingPrerequisite() {
  if (!chromiumPath()) return "Chromium is not installed (apt-get install chromium, or set CHROMIUM_PATH)";
  if (!existsSync(wrennCpPath())) return `wrenn-cp is not built at ${wrennCpPath()} (cargo build -p wrenn-core, or set WRENN_CP_BIN)`;
  if (!existsSync(path.join(DIST, "index.html"))) return "the dashboard is not built (npm run build in web/)";
  if (spawnSync("redis-server", ["--version"]).status !== 0) return "redis-server is not installed";
  if (spawnSync("psql", ["--version"]).status !== 0) return "psql is not installed";
  return null;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, check, timeoutMs, child) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`${what}: process exited with ${child.exitCode}`);
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await sleep(100);
  }
  throw new Error(`${what} did not become ready in ${timeoutMs} ms${last ? `: ${last.message}` : ""}`);
}

function redisPing(port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.setTimeout(1000);
    sock.on("connect", () => sock.write("PING\r\n"));
    sock.on("data", (d) => {
      sock.destroy();
      resolve(d.toString().startsWith("+PONG"));
    });
    sock.on("error", () => resolve(false));
    sock.on("timeout", () => {
      sock.destroy();
      resolve(false);
    });
  });
}

function psql(url, sql) {
  const r = spawnSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-qtAc", sql], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr || r.stdout}`);
  return r.stdout.trim();
}

/** `postgres://…/postgres` with the database replaced. */
function withDatabase(url, db) {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

const children = new Set();
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
});

async function stopChild(child, signal = "SIGTERM") {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill(signal);
  const timedOut = await Promise.race([exited.then(() => false), sleep(5000).then(() => true)]);
  if (timedOut) {
    child.kill("SIGKILL");
    await exited;
  }
  children.delete(child);
}

/** Removes what a stopped agent left in `dir`'s runsc root (capsules a failed test did not destroy). */
function removeAgentLeftovers(dir) {
  const root = `--root=${path.join(dir, "runsc")}`;
  const list = spawnSync("runsc", [root, "list", "--quiet"], { encoding: "utf8" });
  for (const id of (list.stdout ?? "").split("\n").filter(Boolean)) {
    spawnSync("runsc", [root, "kill", id, "KILL"]);
    spawnSync("runsc", [root, "delete", "--force", id]);
  }
  // The envd socket directories are bind mounts.
  const sandboxes = path.join(dir, "sandboxes");
  if (existsSync(sandboxes)) for (const id of readdirSync(sandboxes)) spawnSync("umount", ["-l", path.join(sandboxes, id, "run")]);
}

/**
 * Starts PostgreSQL database, Redis, wrenn-cp. Returns `{ baseUrl, mailDir, redisPort, stop(), log() }`
 * (`redisPort`: the throw-away redis-server, e.g. to publish onto the `wrenn:events` stream).
 * With `{ agent: true }` it also registers a real wrenn-agent (gVisor, `--network=none`) with a
 * token from `wrenn-cp dev-host-token`, as `make dev` does, and waits until it reports in;
 * `agentLog()` reads its log.
 */
export async function startStack({ agent = false } = {}) {
  const tmp = mkdtempSync(path.join(tmpdir(), "wrenn-web-test-"));
  const mailDir = path.join(tmp, "mail");
  const state = { tmp, children: [], dbName: null, adminUrl: null, agentDir: null };

  const stop = async () => {
    for (const c of state.children.reverse()) await stopChild(c);
    if (state.agentDir) removeAgentLeftovers(state.agentDir);
    if (state.dbName) {
      try {
        psql(state.adminUrl, `DROP DATABASE IF EXISTS "${state.dbName}" WITH (FORCE)`);
      } catch (err) {
        console.error(`# could not drop test database ${state.dbName}: ${err.message}`);
      }
    }
    rmSync(tmp, { recursive: true, force: true });
  };

  try {
    // PostgreSQL: a fresh, uniquely named database on the machine's server.
    state.adminUrl =
      process.env.WRENN_TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? "postgres://postgres:postgres@127.0.0.1:5432/postgres";
    state.adminUrl = withDatabase(state.adminUrl, "postgres");
    state.dbName = `wrenn_web_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
    psql(state.adminUrl, `CREATE DATABASE "${state.dbName}"`);

    // Redis: a throw-away server on a free port, no persistence.
    const redisPort = await freePort();
    const redisLog = openSync(path.join(tmp, "redis.log"), "a");
    const redis = spawn(
      "redis-server",
      ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp],
      { stdio: ["ignore", redisLog, redisLog] },
    );
    children.add(redis);
    state.children.push(redis);
    await waitFor("redis-server", () => redisPing(redisPort), 10_000, redis);

    // The control plane.
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const cpLogPath = path.join(tmp, "wrenn-cp.log");
    const cpLog = openSync(cpLogPath, "a");
    const cpEnv = {
        PATH: process.env.PATH,
        HOME: process.env.HOME ?? tmp,
        RUST_LOG: "info,sqlx=warn",
        DATABASE_URL: withDatabase(state.adminUrl, state.dbName),
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        WRENN_CP_LISTEN_ADDR: `127.0.0.1:${port}`,
        WRENN_PUBLIC_URL: baseUrl,
        WRENN_DOMAIN: "localhost",
        JWT_SECRET: randomBytes(32).toString("hex"),
        WRENN_ENCRYPTION_KEY: randomBytes(32).toString("hex"),
        WRENN_MAIL_DIR: mailDir,
        WRENN_WEB_DIR: DIST,
        WRENN_INSECURE_TEST_PASSWORD_HASHING: "true",
        // Channel tests deliver to receivers on 127.0.0.1 and wait for retries.
        WRENN_CHANNELS_ALLOW_INTERNAL: "true",
        WRENN_CHANNELS_RETRY_DELAYS: "0.2,0.4",
        // Plaintext loopback agents (the agent option below).
        ...(agent ? { WRENN_DEV_MODE: "1", WRENN_DEFAULT_TEMPLATE: "minimal-busybox" } : {}),
    };
    const cp = spawn(wrennCpPath(), [], { cwd: tmp, stdio: ["ignore", cpLog, cpLog], env: cpEnv });
    children.add(cp);
    state.children.push(cp);
    const log = () => (existsSync(cpLogPath) ? readFileSync(cpLogPath, "utf8") : "");
    try {
      await waitFor(
        "wrenn-cp",
        async () => (await fetch(`${baseUrl}/health`)).ok,
        60_000,
        cp,
      );
    } catch (err) {
      throw new Error(`${err.message}\n--- wrenn-cp log ---\n${log().slice(-4000)}`);
    }
    const shell = await fetch(`${baseUrl}/`);
    if (!(shell.headers.get("content-type") ?? "").startsWith("text/html")) {
      throw new Error(`${wrennCpPath()} does not serve the dashboard at / (${shell.status}): a build without core/src/http/dashboard.rs?`);
    }
    const databaseUrl = withDatabase(state.adminUrl, state.dbName);
    let agentLog = () => "";
    if (agent) {
      const token = spawnSync(wrennCpPath(), ["dev-host-token"], { cwd: tmp, env: cpEnv, encoding: "utf8" });
      const registration = (token.stdout ?? "").match(/^whr_[0-9a-f]+$/m)?.[0];
      if (!registration) throw new Error(`wrenn-cp dev-host-token gave no token: ${token.stdout}${token.stderr}`);
      state.agentDir = path.join(tmp, "agent");
      const agentLogPath = path.join(tmp, "wrenn-agent.log");
      const agentOut = openSync(agentLogPath, "a");
      const agentPort = await freePort();
      const child = spawn(
        wrennAgentPath(),
        ["--register", registration, "--address", `127.0.0.1:${agentPort}`, "--cp-url", baseUrl, "--wrenn-dir", state.agentDir,
          "--images-dir", imagesDir(), "--network", "none", "--warm-pool", "none", "--heartbeat-secs", "2", "--metrics-listen", `127.0.0.1:${await freePort()}`],
        { cwd: tmp, stdio: ["ignore", agentOut, agentOut], env: { PATH: process.env.PATH, HOME: process.env.HOME ?? tmp, RUST_LOG: "info" } },
      );
      children.add(child);
      state.children.push(child);
      agentLog = () => (existsSync(agentLogPath) ? readFileSync(agentLogPath, "utf8") : "");
      try {
        await waitFor("the agent reporting in", () => psql(databaseUrl, "SELECT count(*) FROM hosts WHERE status = 'online' AND last_heartbeat_at IS NOT NULL") !== "0", 90_000, child);
      } catch (err) {
        throw new Error(`${err.message}\n--- wrenn-agent log ---\n${agentLog().slice(-4000)}`);
      }
    }
    return { baseUrl, mailDir, redisPort, databaseUrl, sql: (query) => psql(databaseUrl, query), log, agentLog, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Waits for a mail to `to` in the sink directory and returns its text. */
export async function waitForMail(mailDir, to, { subject, timeoutMs = 10_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(mailDir)) {
      for (const name of readdirSync(mailDir).sort().reverse()) {
        const text = readFileSync(path.join(mailDir, name), "utf8");
        if (!text.includes(`To: ${to}\n`)) continue;
        if (subject && !text.includes(`Subject: ${subject}`)) continue;
        return text;
      }
    }
    await sleep(100);
  }
  throw new Error(`no mail to ${to} in ${mailDir} after ${timeoutMs} ms`);
}

/** The UUID behind a wire id (`prefix_` + 25 base36 digits, API.md), for SQL in tests. */
export function wireUuid(wire) {
  const digits = wire.slice(wire.indexOf("_") + 1);
  let n = 0n;
  for (const c of digits) n = n * 36n + BigInt(parseInt(c, 36));
  const hex = n.toString(16).padStart(32, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * A signed-in user as seen from node: the session's cookies, and `api(method, path, body)`
 * sending them with the CSRF header (API.md, Conventions). `cookies` is in the shape
 * playwright's `context.addCookies` takes, to sign a browser in as this user.
 */
export function sessionClient(baseUrl, setCookies) {
  const jar = new Map();
  const take = (headers) => {
    for (const line of headers.getSetCookie?.() ?? []) {
      const [pair] = line.split(";");
      const eq = pair.indexOf("=");
      const value = pair.slice(eq + 1).trim();
      if (value === "" || /max-age=0/i.test(line)) jar.delete(pair.slice(0, eq).trim());
      else jar.set(pair.slice(0, eq).trim(), value);
    }
  };
  take(setCookies);
  const client = {
    get cookieHeader() {
      return [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
    },
    get cookies() {
      return [...jar].map(([name, value]) => ({
        name,
        value,
        url: baseUrl,
        httpOnly: name !== "wrenn_csrf",
        sameSite: "Strict",
      }));
    },
    async api(method, path, body) {
      const headers = { Accept: "application/json", Cookie: client.cookieHeader };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (!["GET", "HEAD"].includes(method)) headers["X-CSRF-Token"] = jar.get("wrenn_csrf") ?? "";
      const res = await fetch(`${baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      take(res.headers);
      const text = await res.text();
      let json = null;
      try {
        json = text ? JSON.parse(text) : null;
      } catch {
        json = null;
      }
      return { status: res.status, body: json, headers: res.headers };
    },
  };
  return client;
}

/** Signs up and activates a user through the API and the mail sink; resolves to its session. */
export async function createUser(stack, { name, email, password }) {
  const signup = await fetch(`${stack.baseUrl}/v1/auth/signup`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name, email, password }),
  });
  if (signup.status !== 201) throw new Error(`signup of ${email}: ${signup.status} ${await signup.text()}`);
  const mail = await waitForMail(stack.mailDir, email, { subject: "Activate" });
  const token = mail.match(/\/activate\?token=(\S+)/)?.[1];
  if (!token) throw new Error(`no activation token in mail:\n${mail}`);
  const activate = await fetch(`${stack.baseUrl}/v1/auth/activate`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: decodeURIComponent(token) }),
  });
  if (!activate.ok) throw new Error(`activation of ${email}: ${activate.status} ${await activate.text()}`);
  return sessionClient(stack.baseUrl, activate.headers);
}

/** Logs in through the API: `{status, body, session}` (session only on success). */
export async function login(stack, email, password) {
  const res = await fetch(`${stack.baseUrl}/v1/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  const body = await res.json().catch(() => null);
  return { status: res.status, body, session: res.ok ? sessionClient(stack.baseUrl, res.headers) : null };
}

/** Makes a user platform admin in the database (the first activated user already is). */
export function makePlatformAdmin(stack, userWireId) {
  stack.sql(`UPDATE users SET is_admin = TRUE WHERE id = '${wireUuid(userWireId)}'`);
}

/** Launches Chromium with a fresh profile; `close()` also removes the profile. */
export async function launchBrowser() {
  const { chromium } = await import("playwright-core");
  const profile = mkdtempSync(path.join(tmpdir(), "wrenn-web-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: CHROMIUM_ARGS,
  });
  context.setDefaultTimeout(15_000);
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
