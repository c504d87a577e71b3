// What every page gets: the signed-in user, their teams, navigation and notifications.

import type { Profile, Team } from "./api";

export type NoticeKind = "success" | "error" | "info";

export interface App {
  /** The signed-in user, or null on public pages before login. */
  me: Profile | null;
  /** Teams the user belongs to, with their role. */
  teams: Team[];
  /** The team the session acts in. */
  teamId: string | null;
  /** Client-side navigation (history API). */
  navigate(path: string, opts?: { replace?: boolean }): void;
  /** A message in the page-wide notice area; errors accept anything thrown. */
  notify(kind: NoticeKind, message: unknown): void;
  /** Reloads the profile and teams (after login, rename, team switch...). */
  refresh(): Promise<boolean>;
  /** Forgets the session locally and goes to the login page. */
  signedOut(message?: string): void;
}

export interface RouteContext {
  app: App;
  /** Query string of the current URL. */
  query: URLSearchParams;
  /** Named path parameters (`/capsules/:id` → `{id}`). */
  params: Record<string, string>;
  /** False once the user navigated elsewhere: late async results must not render. */
  live(): boolean;
}

export interface Page {
  title: string;
  /** Public pages render without a session (login, signup, activation, password reset). */
  public?: boolean;
  render(root: HTMLElement, ctx: RouteContext): void | Promise<void>;
}

/** The current team object, if known. */
export function currentTeam(app: App): Team | undefined {
  return app.teams.find((t) => t.id === app.teamId);
}

/** Owners and admins manage members and team settings. */
export function canManage(app: App): boolean {
  const role = currentTeam(app)?.role ?? app.me?.auth?.role;
  return role === "owner" || role === "admin";
}

/** Platform admins run the platform: every host, the admin pages. */
export function isPlatformAdmin(app: App): boolean {
  return app.me?.is_admin === true;
}

/** Hosts are managed by platform admins and by owners/admins of a BYOC team (for that team). */
export function canManageHosts(app: App): boolean {
  return isPlatformAdmin(app) || (currentTeam(app)?.is_byoc === true && canManage(app));
}
