// The dashboard's entry: routing (history API), the signed-in shell with its team switcher, and
// the page-wide notice area. Pages live in pages/*.ts and talk to the REST API through api.ts.

import "./style.css";
import { api, ApiError, getAll, onUnauthorized, sessionEnded, type Profile, type SessionStarted, type Team } from "./api";
import { canManageHosts, isPlatformAdmin, type App, type NoticeKind, type Page, type RouteContext } from "./app";
import { describe, h, mount } from "./dom";
import { activatePage, forgotPage, loginPage, resetPage, signupPage } from "./pages/auth";
import { capsulePage, capsulesPage } from "./pages/capsules";
import { snapshotsPage } from "./pages/snapshots";
import { buildPage, buildsPage } from "./pages/builds";
import { apiKeysPage } from "./pages/keys";
import { channelsPage } from "./pages/channels";
import { teamPage } from "./pages/team";
import { accountPage } from "./pages/account";
import { hostsPage } from "./pages/hosts";
import { auditPage } from "./pages/audit";
import { usagePage } from "./pages/usage";
import { adminOverviewPage } from "./pages/admin/overview";
import { adminTeamsPage } from "./pages/admin/teams";
import { adminUsersPage } from "./pages/admin/users";
import { adminTemplatesPage } from "./pages/admin/templates";
import { adminCapsulesPage } from "./pages/admin/capsules";
import { adminBuildsPage } from "./pages/admin/builds";

interface Route {
  pattern: RegExp;
  keys: string[];
  page: Page;
}

function route(path: string, page: Page): Route {
  const keys: string[] = [];
  const source = path.replace(/:([a-z]+)/g, (_, k: string) => {
    keys.push(k);
    return "([^/]+)";
  });
  return { pattern: new RegExp(`^${source}/?$`), keys, page };
}

const routes: Route[] = [
  route("/login", loginPage),
  route("/signup", signupPage),
  route("/activate", activatePage),
  route("/forgot-password", forgotPage),
  route("/reset-password", resetPage),
  route("/dashboard", capsulesPage),
  route("/capsules", capsulesPage),
  route("/capsules/:id", capsulePage),
  route("/snapshots", snapshotsPage),
  route("/builds", buildsPage),
  route("/builds/:id", buildPage),
  route("/api-keys", apiKeysPage),
  route("/channels", channelsPage),
  route("/team", teamPage),
  route("/settings", accountPage),
  route("/hosts", hostsPage),
  route("/audit", auditPage),
  route("/usage", usagePage),
  route("/admin", adminOverviewPage),
  route("/admin/teams", adminTeamsPage),
  route("/admin/users", adminUsersPage),
  route("/admin/templates", adminTemplatesPage),
  route("/admin/capsules", adminCapsulesPage),
  route("/admin/builds", adminBuildsPage),
];

const notFoundPage: Page = {
  title: "Not found",
  public: true,
  render(root) {
    mount(
      root,
      h("h1", { tabindex: "-1" }, "Page not found"),
      h("p", null, "There is nothing at this address. ", h("a", { href: "/capsules" }, "Go to your capsules"), "."),
    );
  },
};

const appEl = document.getElementById("app")!;
let renderToken = 0;
let checkedSession = false;

const app: App = {
  me: null,
  teams: [],
  teamId: null,
  navigate(path, opts) {
    if (opts?.replace) history.replaceState(null, "", path);
    else history.pushState(null, "", path);
    void render();
  },
  notify,
  async refresh() {
    try {
      const me = await api.get<Profile>("/v1/me");
      app.me = me;
      app.teamId = me.auth?.team_id ?? null;
      app.teams = await getAll<Team>("/v1/teams");
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        app.me = null;
        app.teams = [];
        app.teamId = null;
        return false;
      }
      throw err;
    }
  },
  signedOut(message) {
    app.me = null;
    app.teams = [];
    app.teamId = null;
    app.navigate("/login", { replace: true });
    if (message) notify("info", message);
  },
};

// A 401 in the middle of a signed-in page means the session expired or was revoked elsewhere.
onUnauthorized(() => {
  if (app.me) app.signedOut("Your session ended. Please sign in again.");
});

// ---- Notices ---------------------------------------------------------------------------------

const notices = h("div", { class: "notices", "aria-live": "polite" });

function notify(kind: NoticeKind, message: unknown) {
  let text: string;
  let code: string | null = null;
  if (typeof message === "string") text = message;
  else ({ code, message: text } = describe(message));
  const close = h("button", { type: "button", class: "link", "aria-label": "Dismiss" }, "×");
  const item = h(
    "div",
    { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", null, text),
    code ? h("code", { class: "error-code" }, code) : null,
    close,
  );
  close.addEventListener("click", () => item.remove());
  // A confirmation tells how the latest action went: it replaces the ones before it rather than
  // piling up under them (a "Switched to …" from the last page says nothing about this one).
  // Errors stay until dismissed.
  if (kind !== "error") notices.querySelectorAll(".notice-success, .notice-info").forEach((n) => n.remove());
  notices.appendChild(item);
  if (kind !== "error") setTimeout(() => item.remove(), 6000);
}

// ---- Shell -----------------------------------------------------------------------------------

/** The main navigation; Hosts and Admin only for those who may use them. */
function navEntries(): [string, string][] {
  return [
    ["/capsules", "Capsules"],
    ["/snapshots", "Snapshots"],
    ["/builds", "Builds"],
    ["/api-keys", "API keys"],
    ["/channels", "Channels"],
    ["/team", "Team"],
    ["/usage", "Usage"],
    ["/audit", "Audit log"],
    ...(canManageHosts(app) ? ([["/hosts", "Hosts"]] as [string, string][]) : []),
    ...(isPlatformAdmin(app) ? ([["/admin", "Admin"]] as [string, string][]) : []),
    ["/settings", "Account"],
  ];
}

function teamSwitcher(): HTMLElement {
  const select = h("select", { id: "team-switcher", "aria-label": "Team" });
  for (const t of app.teams) {
    const opt = h("option", { value: t.id }, t.role ? `${t.name} (${t.role})` : t.name);
    if (t.id === app.teamId) opt.selected = true;
    select.appendChild(opt);
  }
  select.addEventListener("change", async () => {
    const previous = app.teamId;
    select.disabled = true;
    try {
      await api.post<SessionStarted>("/v1/auth/switch-team", { team_id: select.value });
      await app.refresh();
      const team = app.teams.find((t) => t.id === app.teamId);
      notify("success", `Switched to ${team?.name ?? "the team"}.`);
      void render();
    } catch (err) {
      if (previous) select.value = previous;
      notify("error", err);
    } finally {
      select.disabled = false;
    }
  });
  return h("div", { class: "team-switcher" }, h("label", { for: "team-switcher", class: "sr-only" }, "Team"), select);
}

function shell(path: string): HTMLElement {
  const logout = h("button", { type: "button", class: "secondary", id: "logout" }, "Log out");
  logout.addEventListener("click", async () => {
    logout.disabled = true;
    try {
      await api.post("/v1/auth/logout");
      app.signedOut("You are signed out.");
    } catch (err) {
      logout.disabled = false;
      if (err instanceof ApiError && err.status === 401) app.signedOut();
      else notify("error", err);
    }
  });
  const nav = h(
    "nav",
    { "aria-label": "Main" },
    h(
      "ul",
      null,
      navEntries().map(([href, label]) => {
        const current = path === href || path.startsWith(`${href}/`) || (href === "/capsules" && path === "/dashboard");
        return h("li", null, h("a", { href, "aria-current": current ? "page" : null }, label));
      }),
    ),
  );
  return h(
    "header",
    { class: "topbar" },
    h("a", { href: "/capsules", class: "brand" }, "Wrenn"),
    nav,
    h(
      "div",
      { class: "account" },
      teamSwitcher(),
      h("span", { class: "who", title: app.me?.email ?? "" }, app.me?.name ?? ""),
      logout,
    ),
  );
}

// ---- Routing ---------------------------------------------------------------------------------

function match(path: string): { page: Page; params: Record<string, string> } {
  for (const r of routes) {
    const m = r.pattern.exec(path);
    if (m) {
      const params: Record<string, string> = {};
      r.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1])));
      return { page: r.page, params };
    }
  }
  return { page: notFoundPage, params: {} };
}

async function render() {
  const token = ++renderToken;
  const path = location.pathname === "/" ? "" : location.pathname;
  if (!checkedSession) {
    checkedSession = true;
    try {
      await app.refresh();
    } catch (err) {
      notify("error", err);
    }
    if (token !== renderToken) return;
  }
  if (path === "") {
    app.navigate(app.me ? "/capsules" : "/login", { replace: true });
    return;
  }
  const { page, params } = match(path);
  if (!page.public && !app.me) {
    const next = location.pathname + location.search;
    app.navigate(`/login?next=${encodeURIComponent(next)}`, { replace: true });
    return;
  }
  document.title = `${page.title} · Wrenn`;
  const main = h("main", { id: "main", tabindex: "-1" });
  const signedIn = app.me !== null && (!page.public || page === notFoundPage);
  mount(appEl, signedIn ? shell(path) : h("header", { class: "topbar public" }, h("a", { href: "/", class: "brand" }, "Wrenn")), notices, main);
  appEl.className = signedIn ? "signed-in" : "public";
  appEl.removeAttribute("aria-busy");
  const ctx: RouteContext = {
    app,
    query: new URLSearchParams(location.search),
    params,
    live: () => token === renderToken,
  };
  try {
    await page.render(main, ctx);
  } catch (err) {
    if (!ctx.live()) return;
    if (sessionEnded(err)) return; // handled by onUnauthorized
    const { code, message } = describe(err);
    main.appendChild(h("div", { class: "error-box", role: "alert" }, h("strong", null, message), code ? [" ", h("code", { class: "error-code" }, code)] : null));
  }
  if (ctx.live()) main.querySelector<HTMLElement>("h1")?.focus({ preventScroll: true });
}

// Same-origin links navigate in place; API and docs paths load for real.
document.addEventListener("click", (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = (ev.target as Element | null)?.closest?.("a");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  if (/^\/(v1|docs|openapi\.json|health)(\/|$)/.test(url.pathname)) return;
  ev.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) app.navigate(url.pathname + url.search);
});
window.addEventListener("popstate", () => void render());

void render();
