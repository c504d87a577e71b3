// The REST client: same-origin fetch with the session cookie, the double-submit CSRF header on
// every state-changing request, and errors turned into ApiError from the
// `{"error":{"code","message"}}` envelope (API.md, Conventions).

/** Cookie the control plane sets next to the HttpOnly session cookie; readable on purpose. */
export const CSRF_COOKIE = "wrenn_csrf";
/** Header that must echo the CSRF cookie on non-GET/HEAD/OPTIONS requests. */
export const CSRF_HEADER = "X-CSRF-Token";

/** A failed request, with the server's machine-readable code and human message. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** Reads one cookie visible to scripts. */
export function readCookie(name: string): string | null {
  for (const part of document.cookie.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return null;
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * True when a request failed for want of a valid session (expired, revoked, logged out
 * elsewhere), as opposed to a 401 about the request itself such as `wrong_password`.
 */
export function sessionEnded(err: unknown): boolean {
  return err instanceof ApiError && err.status === 401 && err.code === "unauthorized";
}

/** Listeners told when a request fails because the session ended. */
const unauthorizedListeners = new Set<() => void>();
export function onUnauthorized(listener: () => void): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export async function errorFrom(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = res.statusText || `request failed with status ${res.status}`;
  try {
    const body = (await res.json()) as { error?: { code?: unknown; message?: unknown } };
    if (body && typeof body.error === "object" && body.error) {
      if (typeof body.error.code === "string") code = body.error.code;
      if (typeof body.error.message === "string") message = body.error.message;
    }
  } catch {
    // Not JSON (a proxy's error page, say): keep the status-derived code.
  }
  return new ApiError(res.status, code, message);
}

/**
 * Sends one request. `body` is sent as JSON when given. Resolves with the parsed JSON body, or
 * `undefined` for 204 and empty bodies.
 */
export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  return (await exchange<T>(method, path, body)).body;
}

/**
 * Sends one request with the session cookie and, unless it is safe, the CSRF header; resolves
 * with a successful response, throws ApiError for any other.
 */
async function send(method: string, path: string, headers: Record<string, string>, body?: BodyInit): Promise<Response> {
  if (!SAFE_METHODS.has(method)) {
    const csrf = readCookie(CSRF_COOKIE);
    if (csrf) headers[CSRF_HEADER] = csrf;
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, credentials: "same-origin", body });
  } catch {
    throw new ApiError(0, "network_error", "The server could not be reached. Check your connection.");
  }
  if (!res.ok) {
    const err = await errorFrom(res);
    if (sessionEnded(err)) unauthorizedListeners.forEach((l) => l());
    throw err;
  }
  return res;
}

/** POSTs a multipart form (file uploads); resolves once the server accepted it. */
export async function postForm(path: string, form: FormData): Promise<void> {
  await send("POST", path, { Accept: "application/json" }, form);
}

/** POSTs a JSON body and resolves with the binary answer (file downloads). */
export async function postForBlob(path: string, body: unknown): Promise<Blob> {
  const res = await send("POST", path, { "Content-Type": "application/json" }, JSON.stringify(body));
  return res.blob();
}

/** Like `request`, with the response headers (for paging headers such as `X-Next-Cursor`). */
async function exchange<T>(method: string, path: string, body?: unknown): Promise<{ body: T; headers: Headers }> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await send(method, path, headers, body === undefined ? undefined : JSON.stringify(body));
  if (res.status === 204) return { body: undefined as T, headers: res.headers };
  const text = await res.text();
  if (!text) return { body: undefined as T, headers: res.headers };
  try {
    return { body: JSON.parse(text) as T, headers: res.headers };
  } catch {
    throw new ApiError(res.status, "invalid_response", "The server sent a response that is not JSON.");
  }
}

export const api = {
  get: <T>(path: string) => request<T>("GET", path),
  post: <T>(path: string, body?: unknown) => request<T>("POST", path, body ?? {}),
  patch: <T>(path: string, body: unknown) => request<T>("PATCH", path, body),
  put: <T>(path: string, body: unknown) => request<T>("PUT", path, body),
  del: <T = void>(path: string, body?: unknown) => request<T>("DELETE", path, body),
};

/** Header of a paged list's response naming the cursor of the next page (absent on the last). */
export const NEXT_CURSOR_HEADER = "X-Next-Cursor";

/** One page of a cursor-paged list (bare array body, `X-Next-Cursor` header). */
export interface ListPage<T> {
  items: T[];
  /** Pass back as `cursor` for the next page; null on the last page. */
  next: string | null;
}

/** GETs one page of a paged list; `cursor` and `limit` are added to the path's query. */
export async function getPage<T>(path: string, cursor: string | null, limit = 50): Promise<ListPage<T>> {
  const url = new URL(path, location.origin);
  url.searchParams.set("limit", String(limit));
  if (cursor) url.searchParams.set("cursor", cursor);
  const { body, headers } = await exchange<unknown>("GET", url.pathname + url.search);
  return { items: Array.isArray(body) ? (body as T[]) : [], next: headers.get(NEXT_CURSOR_HEADER) || null };
}

/**
 * Every item of a paged list, following `X-Next-Cursor` for up to `maxPages` pages of 200;
 * `complete` is false when it stopped early. The older lists (capsules, snapshots, keys,
 * teams, sessions, hosts, channels) answer 100 rows without `limit`: read them through this.
 */
export async function allPages<T>(path: string, maxPages = 20): Promise<{ items: T[]; complete: boolean }> {
  const items: T[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < maxPages; i++) {
    const page: ListPage<T> = await getPage<T>(path, cursor, 200);
    items.push(...page.items);
    if (!page.next) return { items, complete: true };
    cursor = page.next;
  }
  return { items, complete: false };
}

/** Every item of a paged list (see `allPages`). */
export async function getAll<T>(path: string): Promise<T[]> {
  return (await allPages<T>(path)).items;
}

/** Lists come either bare or wrapped (`{"capsules":[...]}`); accept both. */
export function listOf<T>(value: unknown, key: string): T[] {
  if (Array.isArray(value)) return value as T[];
  if (value && typeof value === "object") {
    const inner = (value as Record<string, unknown>)[key];
    if (Array.isArray(inner)) return inner as T[];
  }
  return [];
}

/** Path segment encoding for ids and names taken from responses or forms. */
export const seg = (s: string) => encodeURIComponent(s);

// ---- Wire shapes (API.md) -------------------------------------------------------------------

export interface Profile {
  id: string;
  name: string;
  email: string;
  has_password: boolean;
  providers: string[];
  is_admin: boolean;
  auth?: { type: "session" | "api_key"; team_id: string; role?: string; key_id?: string };
}

export interface SessionStarted {
  user: Profile;
  team_id: string;
  csrf_token: string;
  expires_at: string;
}

export interface Team {
  id: string;
  name: string;
  is_byoc: boolean;
  /** The port proxy resumes a paused capsule instead of answering 409. */
  auto_resume?: boolean;
  created_at: string;
  role?: string;
}

export interface Member {
  id: string;
  name: string;
  email: string;
  role: string;
  joined_at: string;
}

export interface ApiKey {
  id: string;
  team_id: string;
  name: string;
  key_prefix: string;
  created_by: string | null;
  created_at: string;
  last_used: string | null;
}

export interface CreatedApiKey extends ApiKey {
  key: string;
}

export interface SessionInfo {
  id: string;
  team_id: string;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
  user_agent: string | null;
  ip: string | null;
  current: boolean;
}

// Wire types generated from the control plane's OpenAPI document (src/generated/api.ts).
import type {
  AdminCapsule,
  AdminTemplate,
  Build,
  BuildFile,
  BuildStatus,
  Capsule,
  CapsuleStatus,
  CreateBuild,
  ExecResult,
  FileEntry,
  AuditLog,
  AuditPage,
  Host,
  HostDeletePreview,
  HostLoad,
  HostStatus,
  HostToken,
  LogEntry,
  MetricPoint,
  Metrics as CapsuleMetrics,
  ProcessInfo,
  Provider,
  Stats as TeamStats,
  StepState,
  StepStatus,
  Template,
  Usage as TeamUsage,
} from "./generated/api";
export type { AdminCapsule, AdminTemplate, AuditLog, AuditPage, Build, BuildFile, BuildStatus, Capsule, CapsuleMetrics, CapsuleStatus, CreateBuild, ExecResult, FileEntry, Host, HostDeletePreview, HostLoad, HostStatus, HostToken, LogEntry, MetricPoint, ProcessInfo, Provider, StepState, StepStatus, TeamStats, Template, TeamUsage };

export interface Channel {
  id: string;
  team_id: string;
  name: string;
  provider: Provider;
  /** Subscribed event types; success and error outcomes both arrive. */
  events: string[];
  /** Non-secret settings only: `url_host`, `chat_id`, `api_url`, `homeserver_url`, `room_id`, `formatter`. */
  config: Record<string, string | undefined>;
  enabled: boolean;
  created_by: string | null;
  created_at: string;
  updated_at: string;
}

export interface CreatedChannel extends Channel {
  /** Webhook channels only, and only in the response that creates (or rotates) it. */
  signing_secret?: string;
}

export interface ChannelTestResult {
  delivered: boolean;
  http_status: number | null;
  error: string;
  latency_ms: number;
}

export interface Delivery {
  id: number;
  event_id: string;
  event: string;
  attempt: number;
  delivery_id: string;
  /** `delivered`, `failed` (a retry follows) or `dropped` (the last attempt failed). */
  status: "delivered" | "failed" | "dropped";
  http_status: number | null;
  error: string;
  latency_ms: number;
  created_at: string;
}

/** Host capabilities as the agent reports them (runtime probe); every field may be absent. */
export interface HostCapabilities {
  runtime?: string;
  runtime_version?: string;
  platform?: string;
  platforms?: string[];
  network_mode?: string;
  network_modes?: string[];
  checkpoint_network_modes?: string[];
  pause_keeps_memory?: boolean;
  snapshots?: boolean;
  hardware_virtualization?: boolean;
  kernel_version?: string;
  transport?: string;
  notes?: Record<string, string>;
  [key: string]: unknown;
}

// Hosts (`Host`, `HostLoad`, `HostToken`, `HostDeletePreview`) and the audit log (`AuditLog`,
// `AuditPage`) are generated: see the import of ./generated/api below.

/** A lifecycle event as carried by the SSE streams and the notification channels. */
export interface LiveEvent {
  event: string;
  outcome?: "success" | "error";
  timestamp: string;
  team_id: string;
  actor: { type: string; id: string; name: string };
  resource: { id: string; type: string };
  metadata?: Record<string, string>;
  error?: string;
}

// ---- Platform administration (/v1/admin/*, platform admins only) ----------------------------

export interface AdminTeam {
  id: string;
  name: string;
  is_byoc: boolean;
  created_at: string;
  deleted_at: string | null;
  member_count: number;
  running_capsules: number;
  paused_capsules: number;
  vcpus_in_use: number;
  memory_mb_in_use: number;
  host_count: number;
}

export interface AdminUser {
  id: string;
  email: string;
  name: string;
  is_active: boolean;
  is_admin: boolean;
  disabled: boolean;
  created_at: string;
  team_count: number;
}



