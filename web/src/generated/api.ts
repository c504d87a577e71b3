// Generated from the control plane's OpenAPI document (core/src/http/docs.rs); do not
// edit. Regenerate with `WRENN_REGENERATE=1 cargo test -p wrenn-core --lib dashboard_api_types`.

/** A per-capsule access token for the port proxy. */
export interface AccessToken {
  expires_at: string;
  /** Header to send it in (`X-Wrenn-Access-Token`); or use the `wrenn_token` query parameter. */
  header: string;
  token: string;
}

export interface AddMember {
  /** Email of an existing, active user. */
  email: string;
}

/** `{"tag": "gpu"}` or `{"tags": ["gpu", "eu"]}`. */
export interface AddTags {
  /** One tag. */
  tag?: string | null;
  /** Several tags (with `tag`, 1 to 50 in all). */
  tags?: string[];
}

/** A capsule of any team, with where it runs. */
export type AdminCapsule = Capsule & {
  host_address?: string | null;
  /** `host_…`; null before placement. */
  host_id?: string | null;
  /** `tm_…` */
  team_id: string;
  team_name?: string | null;
};

/** A team with what it holds now. */
export interface AdminTeam {
  created_at: string;
  /** Set once the team is soft-deleted. */
  deleted_at?: string | null;
  /** The team's BYOC hosts (not deleted). */
  host_count: number;
  /** `tm_…` */
  id: string;
  /** BYOC teams' capsules land only on their own hosts. */
  is_byoc: boolean;
  member_count: number;
  memory_mb_in_use: number;
  name: string;
  paused_capsules: number;
  running_capsules: number;
  /** vCPUs and memory reserved by the team's live capsules. */
  vcpus_in_use: number;
}

/** A template of any team, or of the platform. */
export interface AdminTemplate {
  created_at: string;
  /** `tpl_…` */
  id: string;
  /** Capsules created from it that are not stopped. */
  live_capsules: number;
  memory_mb: number;
  name: string;
  /** Owned by the platform (visible to every team). */
  platform: boolean;
  /** A platform base template: it cannot be deleted. */
  reserved: boolean;
  size_bytes: number;
  /** `tm_…` of the owner (the platform team's id for platform templates). */
  team_id: string;
  team_name?: string | null;
  /** `base` or `snapshot`. */
  type: string;
  vcpus: number;
}

/** A user as the platform admin sees it. */
export interface AdminUser {
  created_at: string;
  /** Disabled by an admin: cannot log in, has no sessions. */
  disabled: boolean;
  email: string;
  /** `usr_…` */
  id: string;
  /** Email activation done. */
  is_active: boolean;
  is_admin: boolean;
  name: string;
  /** Teams it belongs to (not deleted). */
  team_count: number;
}

/** An API key (never its secret, except `key` once at creation). */
export interface ApiKeyView {
  created_at: string;
  /** `usr_` id of the creator (null once that user is purged). */
  created_by?: string | null;
  id: string;
  /** The first 10 characters of the key, e.g. `wrn_1a2b3c`. */
  key_prefix: string;
  last_used?: string | null;
  name: string;
  team_id: string;
}

/** Who acted. */
export interface AuditActor {
  id: string;
  name: string;
  /** `user`, `api_key` or `system`. */
  type: string;
}

/** One audit log row. */
export interface AuditLog {
  /** e.g. `capsule.create`, `host.delete`. */
  action: string;
  actor: AuditActor;
  /** RFC 3339 UTC with microseconds. */
  created_at: string;
  /** Empty unless the outcome is `error`. */
  error: string;
  /** `log_…` */
  id: string;
  /** String values (`reason`, …). */
  metadata: Record<string, unknown>;
  /** `success` or `error`; null for actions without an outcome. */
  outcome?: string | null;
  resource: AuditResource;
  /** `team` (every member sees it) or `admin` (owners, admins and platform admins). */
  scope: string;
  /** `tm_…`; null for platform-wide rows (regular hosts). */
  team_id?: string | null;
}

/** One page of the audit log (an object, unlike the bare-array listings: API.md keeps it). */
export interface AuditPage {
  audit_logs: AuditLog[];
  /** Pass as `before` / `before_id` for the next page; `null` on the last page. */
  next_before?: string | null;
  next_before_id?: string | null;
}

/** What was acted on. */
export interface AuditResource {
  id: string;
  /** `sandbox`, `snapshot`, `host`, … */
  type: string;
}

/** The credentials behind a request. */
export interface AuthInfo {
  /** The API key's id (API keys only). */
  key_id?: string | null;
  /** The session's role in `team_id` (sessions only). */
  role?: string | null;
  team_id: string;
  /** `session` or `api_key`. */
  type: string;
}

/** Background start. */
export interface BackgroundStarted {
  cmd: string;
  pid: number;
  sandbox_id: string;
  tag: string;
}

/** A template build. */
export interface Build {
  /** The capsule running the build (`sb_…`); destroyed once the build ends. */
  capsule_id?: string | null;
  created_at: string;
  /** Why the build failed or was cancelled; empty otherwise. */
  error: string;
  finished_at?: string | null;
  /** The template named by `FROM`. */
  from: string;
  /** `bld_…` */
  id: string;
  memory_mb: number;
  /** The template's name. */
  name: string;
  recipe: string;
  /** SHA-256 (hex) over the recipe, its files and the resources. */
  recipe_hash: string;
  /** True when this answer is an earlier identical build whose template was reused. */
  reused: boolean;
  /** `team` (the template belongs to the team) or `platform` (visible to every team). */
  scope: string;
  started_at?: string | null;
  status: BuildStatus;
  steps: StepState[];
  /** The team that asked for it (`tm_…`). */
  team_id: string;
  /** The template made (`tpl_…`), once the build has succeeded. */
  template_id?: string | null;
  /** `snapshot` (the recipe STARTs a process: memory kept) or `base` (a flattened rootfs). */
  template_type?: string | null;
  vcpus: number;
}

/** A file uploaded with a build. */
export interface BuildFile {
  /** The content, base64 (standard alphabet, padded). */
  content_base64: string;
  /** The name `COPY` uses: a relative path without `..`. */
  path: string;
}

/**
 * Where a build is. `queued` → `running` → one of the three final states; a queued build
 * can also be cancelled directly.
 */
export type BuildStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

/** A capsule. */
export interface Capsule {
  created_at: string;
  /** Disk size in MiB: what the capsule can write (a full disk is ENOSPC inside). */
  disk_mb: number;
  guest_ip: string;
  host_ip: string;
  /** `sb_` + 25 base36 digits. */
  id: string;
  last_active_at?: string | null;
  last_updated: string;
  memory_mb: number;
  metadata: CapsuleMetadata;
  /** Egress policy. */
  network: NetworkPolicy;
  /**
   * Why the capsule is in its status (error text, `ttl_expired`, ...); empty when nothing
   * to say.
   */
  reason?: string;
  started_at?: string | null;
  status: CapsuleStatus;
  /** Template name. */
  template: string;
  timeout_sec: number;
  vcpus: number;
}

/** Runtime details reported by the agent. */
export interface CapsuleMetadata {
  agent_version?: string;
  envd_version?: string;
  kernel_version?: string;
  runtime?: string;
  runtime_version?: string;
}

/** Where a capsule is in its life. */
export type CapsuleStatus = "pending" | "starting" | "running" | "pausing" | "paused" | "resuming" | "snapshotting" | "stopping" | "stopped" | "missing" | "error";

export interface ChangePassword {
  current_password: string;
  new_password: string;
}

/** A channel (never its secrets). */
export interface ChannelView {
  /** The provider's non-secret settings (`url_host`, `chat_id`, `room_id`, `formatter`, ...). */
  config: Record<string, unknown>;
  created_at: string;
  created_by?: string | null;
  enabled: boolean;
  /** Subscribed event types; success and error outcomes both arrive. */
  events: string[];
  id: string;
  name: string;
  provider: Provider;
  team_id: string;
  updated_at: string;
}

/**
 * A channel with its webhook signing secret: only in the response that creates it or
 * rotates it.
 */
export type ChannelWithSecret = ChannelView & {
  /** Webhook channels only: the HMAC-SHA256 key of `X-WRENN-SIGNATURE`. Shown once. */
  signing_secret?: string | null;
};

export interface ConfirmReset {
  new_password: string;
  token: string;
}

export interface CreateApiKey {
  /** 1–100 characters. */
  name: string;
}

/** `POST /v1/builds`. */
export interface CreateBuild {
  /** Files the recipe's `COPY` lines name (at most `WRENN_BUILD_MAX_FILES_BYTES` in all). */
  files?: BuildFile[];
  /**
   * Memory of the build's capsule (and the template), MiB; default the `FROM`
   * template's, at least 512.
   */
  memory_mb?: number | null;
  /**
   * The template's name (`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`). A template an earlier build
   * made under this name is replaced once the build succeeds.
   */
  name: string;
  /** Build again even when an identical earlier build's template exists. */
  rebuild?: boolean;
  /**
   * The recipe (`FROM`, `RUN`, `START`, `ENV`, `WORKDIR`, `USER`, `COPY`, `HEALTHCHECK`; see
   * `core/README.md`).
   */
  recipe: string;
  /** `team` (default) or `platform` (platform admins, session only). */
  scope?: string | null;
  /** vCPUs of the build's capsule (and the template); default the `FROM` template's. */
  vcpus?: number | null;
}

/** `POST /v1/capsules`. */
export interface CreateCapsule {
  /**
   * Disk size in MiB, 64 to 1048576; default the control plane's `WRENN_DEFAULT_DISK_MB`
   * (2048). Filling it gives the writer ENOSPC; the capsule lives on.
   */
  disk_mb?: number | null;
  /**
   * Environment variables every process of the capsule starts with (names
   * `[A-Za-z_][A-Za-z0-9_]*`, at most 256 of them and 64 KiB in all).
   */
  envs?: Record<string, string>;
  /** Default 512. */
  memory_mb?: number | null;
  network?: null | NetworkPolicy;
  /**
   * Template name; omitted → the configured default base template. `minimal` is an alias of
   * the default. Snapshot templates force their own vcpus and memory.
   */
  template?: string | null;
  /** Auto-pause after this many seconds without activity; 0 (default) disables. */
  timeout_sec?: number | null;
  /** Default 1. */
  vcpus?: number | null;
}

export interface CreateChannel {
  /**
   * Per provider: webhook, discord, slack, teams, googlechat `{url}`; telegram
   * `{bot_token, chat_id, api_url?}`; matrix `{homeserver_url, room_id, access_token}`;
   * chat providers also take `formatter`.
   */
  config: Record<string, unknown>;
  /** At least one of the subscribable event types. */
  events: string[];
  /** 1–100 characters. */
  name: string;
  /** `webhook`, `discord`, `slack`, `teams`, `googlechat`, `telegram` or `matrix`. */
  provider: string;
}

export interface CreateHost {
  /** Free text, at most 100 characters. */
  availability_zone?: string | null;
  /** Free text, at most 100 characters. */
  provider?: string | null;
  /** BYOC: the team (`tm_…`); default the session's team. Regular hosts take none. */
  team_id?: string | null;
  /** `regular` (platform admins) or `byoc` (owners/admins of a BYOC team). */
  type: string;
}

export interface CreateSnapshot {
  /** Default `template-` + 8 hex; must match `^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`. */
  name?: string | null;
  /** The capsule (`sb_…`), running or paused. */
  sandbox_id: string;
}

/** A created key: the only response that ever contains the plaintext `key`. */
export type CreatedApiKey = ApiKeyView & {
  key: string;
};

export interface DeleteMe {
  /** Must equal the account's email. */
  confirmation: string;
}

/** One delivery attempt. */
export interface DeliveryView {
  attempt: number;
  created_at: string;
  /** `X-Wrenn-Delivery` of this attempt. */
  delivery_id: string;
  error: string;
  event: string;
  /** The stream entry id of the event (the same for every attempt at it). */
  event_id: string;
  http_status?: number | null;
  id: number;
  latency_ms: number;
  /** `delivered`, `failed` (a retry follows) or `dropped` (the last attempt failed). */
  status: string;
}

export interface EntryResponse {
  entry: FileEntry;
}

export interface ErrorBody {
  /** snake_case machine-readable code. */
  code: string;
  /** Human-readable text (never internal detail). */
  message: string;
}

/** The error envelope every failure uses. */
export interface ErrorEnvelope {
  error: ErrorBody;
}

/** `POST /v1/capsules/{id}/exec`. */
export interface ExecRequest {
  args?: string[];
  background?: boolean;
  cmd: string;
  cwd?: string | null;
  envs?: Record<string, string>;
  /** Background only; default `proc-` + 8 hex digits. */
  tag?: string | null;
  /** Foreground only; default 30. */
  timeout_sec?: number | null;
  /** User to run as (default root). */
  user?: string | null;
}

/**
 * Foreground result. `encoding` is `utf-8`, or `base64` for both streams when either is not
 * valid UTF-8.
 */
export interface ExecResult {
  cmd: string;
  duration_ms: number;
  encoding: string;
  exit_code: number;
  sandbox_id: string;
  stderr: string;
  stdout: string;
}

/** An entry of a directory listing. */
export interface FileEntry {
  group: string;
  mode: number;
  /** Unix seconds. */
  modified_at: number;
  name: string;
  owner: string;
  path: string;
  /** e.g. `-rwxr-xr-x`. */
  permissions: string;
  size: number;
  symlink_target: string;
  /** `file`, `directory` or `symlink`. */
  type: string;
}

export interface FileList {
  entries: FileEntry[];
}

/** What the registry knows of one formatter directory. */
export interface FormatterStatus {
  /** Why it is not loaded (empty when loaded). */
  error: string;
  loaded_at?: string | null;
  /** The manifest's name (the directory name when the manifest could not be read). */
  name: string;
  /** Its directory. */
  path: string;
  providers: string[];
  /** `loaded` or `error`. */
  status: string;
  version: string;
  /** The WIT world version it was built against. */
  world: string;
}

export interface Health {
  /** `ok` when the database answers, `degraded` otherwise. */
  status: string;
  version: string;
}

/** `POST /v1/hosts/{id}/heartbeat`. */
export interface HeartbeatReply {
  cert_expires_at?: string | null;
  /** `host_…` */
  host_id: string;
  host_status?: null | HostStatus;
  /** Always `ok`. */
  status: string;
}

/** A host: `pending` until its agent registers with the one-time token. */
export interface Host {
  /** The agent's advertised `ip:port`; null before it registers. */
  address?: string | null;
  agent_version?: string | null;
  arch?: string | null;
  availability_zone?: string | null;
  /**
   * What the agent reported (runtime probe): `runtime`, `runtime_version`, `platforms`,
   * `network_modes`, `snapshots`, … every field may be absent.
   */
  capabilities: Record<string, unknown>;
  cert_expires_at?: string | null;
  cpu_cores?: number | null;
  created_at: string;
  disk_gb?: number | null;
  /** `host_…` */
  id: string;
  last_heartbeat_at?: string | null;
  load?: null | HostLoad;
  memory_mb?: number | null;
  provider?: string | null;
  registered_at?: string | null;
  status: HostStatus;
  tags: string[];
  /** `tm_…` of a BYOC host's team; null for regular hosts. */
  team_id?: string | null;
  /** `mtls`, or `insecure-dev` (development only). */
  transport: string;
  /** `regular` or `byoc`. */
  type: string;
}

/** An agent's credentials (register and refresh). */
export interface HostCredentials {
  /** The control plane's internal CA, PEM. */
  ca_cert_pem: string;
  cert_expires_at: string;
  /** The host's server certificate (SAN = its address) and key, PEM. */
  cert_pem: string;
  host: Host;
  key_pem: string;
  /** Rotated on every refresh, 60 days. */
  refresh_token: string;
  /** Host JWT (`X-Host-Token`), 7 days. */
  token: string;
}

/** What deleting a host would take with it. */
export interface HostDeletePreview {
  host: Host;
  sandbox_count: number;
  /** `sb_…` of the capsules still on the host (live, paused or missing). */
  sandbox_ids: string[];
}

/** 409 `host_has_sandboxes`: the error envelope with the capsules still on the host. */
export interface HostHasSandboxes {
  error: HostHasSandboxesBody;
}

export interface HostHasSandboxesBody {
  /** `host_has_sandboxes` */
  code: string;
  message: string;
  /** `sb_…` of the capsules still on the host. */
  sandbox_ids: string[];
}

/** A host's load as its agent last reported it. */
export interface HostLoad {
  capsules_paused: number;
  capsules_running: number;
  /** Busy share of all CPUs since the previous beat, 0–100. */
  cpu_pct: number;
  disk_available_mb: number;
  /** The filesystem of the agent's `WRENN_DIR`. */
  disk_total_mb: number;
  /** The 1-minute load average. */
  load_avg_1m: number;
  mem_available_mb: number;
  mem_total_mb: number;
  pool_memory_mb: number;
  /** Pooled capsules booted and waiting to be handed to a create. */
  pool_ready: number;
  /** What the host's warm pools hold at full size: capacity the scheduler counts as used. */
  pool_vcpus: number;
  /** Each warm pool of the host. */
  pools: HostPool[];
  /** When the control plane received it. */
  sampled_at: string;
}

/** One warm pool of a host: its capsules' template and resources, and how many are ready. */
export interface HostPool {
  disk_mb: number;
  memory_mb: number;
  ready: number;
  /** The template's team (`tm_...`; the platform's for a base image). */
  team_id: string;
  /** `tpl_...`. */
  template_id: string;
  vcpus: number;
}

/** Where a host is in its life (`hosts.status`). */
export type HostStatus = "pending" | "online" | "unreachable" | "deleted";

/** `POST /v1/hosts` and `POST /v1/hosts/{id}/token`: the token is shown only here. */
export interface HostToken {
  host: Host;
  /** One-time, valid 1 h: `wrenn-agent --register <token>`. */
  registration_token: string;
}

export interface ListRequest {
  /** How deep to descend (default 1: the directory's own entries). */
  depth?: number | null;
  path: string;
}

/** One log entry of a build. */
export interface LogEntry {
  data: string;
  /** Increases through the build's log; pass the last one seen as `after`. */
  seq: number;
  /** The step's index; `null` for messages about the build as a whole. */
  step?: number | null;
  /** `stdout`, `stderr` or `system` (the build's own messages). */
  stream: string;
  time: string;
}

export interface LoginRequest {
  email: string;
  password: string;
}

/** A member of a team. */
export interface MemberView {
  email: string;
  id: string;
  joined_at: string;
  name: string;
  role: string;
}

/** A message-only response. */
export interface Message {
  message: string;
}

/** A metric point as the API shows it. */
export interface MetricPoint {
  cpu_pct: number;
  disk_bytes: number;
  mem_bytes: number;
  timestamp_unix: number;
}

/** `GET /v1/capsules/{id}/metrics`. */
export interface Metrics {
  points: MetricPoint[];
  range: string;
  sandbox_id: string;
}

/** Egress mode of a capsule. */
export type NetworkMode = "allow_all" | "deny_all" | "allow_list";

/**
 * Egress policy of a capsule, enforced on its host (never inside the capsule). The
 * link-local range 169.254.0.0/16 (cloud metadata), the host's own addresses and other
 * capsules are unreachable whatever the mode. Body of `PATCH /v1/capsules/{id}/network`.
 */
export interface NetworkPolicy {
  /**
   * `allow_list` only: IPv4 CIDRs (`10.0.0.0/8`), addresses or host names; names are
   * resolved on the capsule's host when the policy is set.
   */
  allow?: string[];
  mode?: NetworkMode;
}

export interface PathRequest {
  path: string;
}

/** A process in the capsule. */
export interface ProcessInfo {
  args: string[];
  cmd: string;
  pid: number;
  tag: string;
}

/** `GET /v1/capsules/{id}/processes`. */
export interface ProcessList {
  processes: ProcessInfo[];
}

/** A user's profile. */
export interface Profile {
  auth?: null | AuthInfo;
  email: string;
  has_password: boolean;
  id: string;
  is_admin: boolean;
  name: string;
  /** Linked OAuth providers, e.g. `["github"]`. */
  providers: string[];
}

/** A notification provider. */
export type Provider = "webhook" | "discord" | "slack" | "teams" | "googlechat" | "telegram" | "matrix";

export interface ReplaceConfig {
  /** The whole new config, validated as on create. */
  config: Record<string, unknown>;
  /** Webhook channels: issue a new signing secret (returned once). Default false: keep it. */
  rotate_secret?: boolean;
}

export interface ResetRequest {
  email: string;
}

/**
 * `POST /v1/hosts/sandbox-events`: how many callbacks changed a capsule, and how many did
 * not apply (both final).
 */
export interface SandboxEventsApplied {
  applied: number;
  ignored: number;
}

/** A session was issued: cookies `wrenn_sid` and `wrenn_csrf` are set. */
export interface SessionStarted {
  /** Same value as the `wrenn_csrf` cookie; send it as `X-CSRF-Token`. */
  csrf_token: string;
  expires_at: string;
  /** The team the session acts in. */
  team_id: string;
  user: Profile;
}

/** One of your sessions. */
export interface SessionView {
  created_at: string;
  /** True for the session making this request. */
  current: boolean;
  expires_at: string;
  id: string;
  ip?: string | null;
  last_seen_at: string;
  team_id: string;
  user_agent?: string | null;
}

export interface SetRole {
  /** `admin` or `member` (ownership cannot be granted or taken here). */
  role: string;
}

export interface SignupRequest {
  email: string;
  /** At most 100 characters. */
  name: string;
  /** At least 8 characters. */
  password: string;
}

/** `GET /v1/capsules/stats`. */
export interface Stats {
  current: StatsCurrent;
  peaks: StatsPeaks;
  range: string;
  series: StatsSeries;
}

/** What a team holds right now. */
export interface StatsCurrent {
  memory_mb_reserved: number;
  running_count: number;
  sampled_at: string;
  vcpus_reserved: number;
}

/** Highest values over the range. */
export interface StatsPeaks {
  memory_mb_reserved: number;
  running_count: number;
  vcpus_reserved: number;
}

/** Time series over the range (at most [`MAX_POINTS`] buckets, each its maximum). */
export interface StatsSeries {
  /** RFC 3339 bucket start times. */
  labels: string[];
  memory_mb: number[];
  running: number[];
  vcpus: number[];
}

/**
 * One step of a build as stored and shown: the recipe's instructions in order (`FROM`
 * first, `HEALTHCHECK` last), then `SAVE`, which writes the template.
 */
export interface StepState {
  args: string;
  /** Exit code of a `RUN` or of the healthcheck's last try. */
  exit_code?: number | null;
  finished_at?: string | null;
  index: number;
  instruction: string;
  /** The recipe line (1-based); 0 for `SAVE`. */
  line: number;
  started_at?: string | null;
  status: StepStatus;
}

/** Where one step is. */
export type StepStatus = "pending" | "running" | "succeeded" | "failed" | "cancelled";

export interface SwitchTeamRequest {
  team_id: string;
}

/** A team and its members. */
export interface TeamDetail {
  members: MemberView[];
  team: TeamView;
}

export interface TeamName {
  name: string;
}

/** `PATCH /v1/teams/{id}`: a new name and/or settings; absent fields are kept. */
export interface TeamUpdate {
  /** Let the port proxy resume a paused capsule instead of answering 409. */
  auto_resume?: boolean | null;
  name?: string | null;
}

/** A team as seen by one of its members. */
export interface TeamView {
  /** Whether the port proxy resumes a paused capsule instead of answering 409. */
  auto_resume: boolean;
  created_at: string;
  id: string;
  is_byoc: boolean;
  name: string;
  /** The caller's role (owner, admin or member); absent for API keys. */
  role?: string | null;
}

/** A template (base or snapshot). */
export interface Template {
  created_at: string;
  /** `tpl_` + 25 base36 digits. */
  id: string;
  memory_mb: number;
  metadata: unknown;
  name: string;
  /** Owned by the platform (visible to every team, undeletable). */
  platform: boolean;
  size_bytes: number;
  /** `base` or `snapshot`. */
  type: string;
  vcpus: number;
}

export interface TestChannel {
  config: Record<string, unknown>;
  /** Display name used in the message (default "test"). */
  name?: string | null;
  provider: string;
}

/** The outcome of a test send. */
export interface TestResult {
  /** Whether the receiver answered 2xx. */
  delivered: boolean;
  /** Why the send failed (empty when delivered). */
  error: string;
  /** The receiver's HTTP status, when it answered. */
  http_status?: number | null;
  latency_ms: number;
}

export interface TokenRequest {
  token: string;
}

export interface UpdateChannel {
  enabled?: boolean | null;
  events?: string[] | null;
  name?: string | null;
}

export interface UpdateMe {
  /** New display name (1–100 characters). */
  name: string;
}

/** `GET /v1/capsules/usage`. */
export interface Usage {
  from: string;
  points: UsagePoint[];
  to: string;
}

/** One day of `GET /v1/capsules/usage`. */
export interface UsagePoint {
  cpu_minutes: number;
  /** `YYYY-MM-DD` (UTC). */
  date: string;
  ram_mb_minutes: number;
}

/** A user found by search. */
export interface UserSummary {
  email: string;
  id: string;
  name: string;
}

export interface UserUpdate {
  /**
   * Disable (the user's sessions end at once; login answers 403 `account_disabled`) or
   * enable again.
   */
  disabled?: boolean | null;
  /** Grant or revoke platform admin. */
  is_admin?: boolean | null;
}
