// Capsules: the team's list with status and actions (pause, resume, snapshot, destroy), the
// create form, and one capsule's page: details, a terminal, files, processes, metrics and a
// "run a command" box (POST /exec). Both follow the team's event stream for live state and poll
// only while it is down.

import { api, getAll, seg, type Capsule, type ExecResult, type Template } from "../api";
import type { App, Page } from "../app";
import { busy, errorBox, field, h, mount, onSubmit, str, time } from "../dom";
import { UNSETTLED } from "../generated/statuses";
import { followEvents, type StreamState } from "../events";
import { memory, statusBadge } from "../format";
import { filesPanel } from "./capsule/files";
import { metricsPanel } from "./capsule/metrics";
import { processesPanel } from "./capsule/processes";
import { terminalPanel } from "./capsule/terminal";

/** States in which the capsule is changing by itself (from the control plane's own enum): the
 * list refreshes while any is shown. */
const TRANSITIONAL = UNSETTLED;
const POLL_MS = 3000;
/** Events of a burst (a create is several) are taken in with one reload. */
const DEBOUNCE_MS = 150;

/**
 * Calls `reload` when the team's event stream says a capsule (all of them, or `only`) changed.
 * Returns whether the stream is open: while it is not, callers poll.
 */
function followCapsules(live: () => boolean, reload: () => void, only?: string): () => boolean {
  let open = false;
  let timer: number | undefined;
  followEvents(
    "/v1/events/stream",
    live,
    (e) => {
      if (!e.event.startsWith("capsule.") || (only && e.resource?.id !== only)) return;
      window.clearTimeout(timer);
      timer = window.setTimeout(() => live() && reload(), DEBOUNCE_MS);
    },
    (state: StreamState) => {
      const was = open;
      open = state.kind === "open";
      // Whatever happened while the stream was down is read once it is back.
      if (open && !was) reload();
    },
  );
  return () => open;
}

/** Buttons for what the capsule's state allows; `done` runs after a successful action. */
function actionButtons(app: App, c: Capsule, report: (err: unknown) => void, done: (gone: boolean) => Promise<void>) {
  const buttons: HTMLButtonElement[] = [];
  const add = (label: string, cls: string, action: () => Promise<boolean | void>) => {
    const b = h("button", { type: "button", class: `${cls} small`, "aria-label": `${label} ${c.id}` }, label);
    busy(b, async () => void (await done((await action()) === true)), report);
    buttons.push(b);
  };
  if (c.status === "running") {
    add("Pause", "secondary", async () => {
      await api.post<Capsule>(`/v1/capsules/${seg(c.id)}/pause`);
      app.notify("success", `${c.id} paused.`);
    });
  }
  if (c.status === "paused") {
    add("Resume", "secondary", async () => {
      await api.post<Capsule>(`/v1/capsules/${seg(c.id)}/resume`);
      app.notify("success", `${c.id} resumed.`);
    });
  }
  if (c.status === "running" || c.status === "paused") {
    add("Snapshot", "secondary", async () => {
      const name = prompt("Snapshot template name (leave empty for a generated one):", "");
      if (name === null) return;
      const tpl = await api.post<Template>("/v1/snapshots", name.trim() ? { sandbox_id: c.id, name: name.trim() } : { sandbox_id: c.id });
      app.notify("success", `Snapshot ${tpl?.name ?? ""} created; the capsule stays paused.`);
    });
  }
  if (c.status !== "stopped") {
    add("Destroy", "danger", async () => {
      if (!confirm(`Destroy ${c.id}? Its files and processes are lost.`)) return;
      await api.del(`/v1/capsules/${seg(c.id)}`);
      app.notify("success", `${c.id} destroyed.`);
      return true;
    });
  }
  return buttons;
}

/** Template names for the create form; an unreachable list leaves a free-text field. */
async function templateNames(): Promise<string[] | null> {
  try {
    return (await getAll<Template>("/v1/snapshots")).map((t) => t.name);
  } catch {
    return null;
  }
}

export const capsulesPage: Page = {
  title: "Capsules",
  async render(root, { app, live }) {
    const errors = errorBox();
    const tbody = h("tbody");
    const table = h(
      "table",
      { id: "capsules", hidden: true },
      h("caption", { class: "sr-only" }, "Capsules"),
      h("thead", null, h("tr", null, ["Capsule", "Status", "Template", "vCPUs", "Memory", "Created", ""].map((c) => h("th", { scope: "col" }, c)))),
      tbody,
    );
    const empty = h("p", { class: "muted", hidden: true }, "No live capsules. Create one above, or with the API.");

    const templateInput = h("input", { id: "capsule-template", name: "template", list: "template-names", placeholder: "default template", autocomplete: "off" });
    const templateList = h("datalist", { id: "template-names" });
    const form = h(
      "form",
      { id: "create-capsule-form", class: "grid-form" },
      field("Template", templateInput, "Empty means the server's default."),
      templateList,
      field("vCPUs", h("input", { id: "capsule-vcpus", name: "vcpus", type: "number", min: 1, max: 64, value: 1, required: true })),
      field("Memory (MiB)", h("input", { id: "capsule-memory", name: "memory_mb", type: "number", min: 128, step: 128, value: 512, required: true })),
      field("Idle timeout (s)", h("input", { id: "capsule-timeout", name: "timeout_sec", type: "number", min: 0, value: 0, required: true }), "0 never auto-pauses."),
      h("div", { class: "form-actions" }, h("button", { type: "submit" }, "Create capsule")),
    );
    const createErrors = errorBox();
    onSubmit(form, createErrors, async (data) => {
      const body: Record<string, unknown> = {
        vcpus: Number(str(data, "vcpus")),
        memory_mb: Number(str(data, "memory_mb")),
        timeout_sec: Number(str(data, "timeout_sec")),
      };
      const template = str(data, "template").trim();
      if (template) body.template = template;
      const created = await api.post<Capsule>("/v1/capsules", body);
      app.notify("success", `Capsule ${created.id} is ${created.status}.`);
      await load();
    });

    let timer: number | undefined;
    async function load() {
      clearTimeout(timer);
      const capsules = await getAll<Capsule>("/v1/capsules");
      if (!live()) return;
      errors.clear();
      table.hidden = capsules.length === 0;
      empty.hidden = capsules.length > 0;
      mount(
        tbody,
        capsules.map((c) =>
          h(
            "tr",
            { "data-id": c.id },
            h("th", { scope: "row" }, h("a", { href: `/capsules/${seg(c.id)}` }, h("code", null, c.id))),
            h("td", null, statusBadge(c.status, c.reason)),
            h("td", null, c.template),
            h("td", null, c.vcpus),
            h("td", null, memory(c.memory_mb)),
            h("td", null, time(c.created_at)),
            h("td", { class: "actions" }, actionButtons(app, c, (err) => errors.show(err), () => load())),
          ),
        ),
      );
      if (!streaming() && capsules.some((c) => TRANSITIONAL.has(c.status))) schedule();
    }
    function schedule() {
      timer = window.setTimeout(() => {
        if (live()) load().catch((err) => live() && errors.show(err));
      }, POLL_MS);
    }

    mount(
      root,
      h("h1", { tabindex: "-1" }, "Capsules"),
      h("section", { class: "card", "aria-labelledby": "new-capsule-h" }, h("h2", { id: "new-capsule-h" }, "New capsule"), createErrors, form),
      errors,
      table,
      empty,
    );
    const streaming = followCapsules(live, () => void load().catch((err) => live() && errors.show(err)));
    void templateNames().then((names) => {
      if (names && live()) mount(templateList, names.map((n) => h("option", { value: n })));
    });
    await load().catch((err) => errors.show(err));
  },
};

function decode(text: string, encoding: string): string {
  if (encoding !== "base64") return text;
  try {
    const bytes = Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  } catch {
    return text;
  }
}

export const capsulePage: Page = {
  title: "Capsule",
  async render(root, { app, params, query, live }) {
    const id = params.id;
    const errors = errorBox();
    const facts = h("dl", { class: "facts", id: "capsule-facts" });
    const actions = h("div", { class: "actions" });
    const heading = h("h1", { tabindex: "-1" }, h("code", null, id));

    let timer: number | undefined;
    async function load(known?: Capsule) {
      clearTimeout(timer);
      const c = known ?? (await api.get<Capsule>(`/v1/capsules/${seg(id)}`));
      if (!live()) return;
      const meta = c.metadata ?? {};
      mount(
        facts,
        [
          ["Status", statusBadge(c.status, c.reason)],
          ["Template", c.template],
          ["vCPUs", String(c.vcpus)],
          ["Memory", memory(c.memory_mb)],
          ["Idle timeout", c.timeout_sec > 0 ? `${c.timeout_sec} s` : "none"],
          ["Created", time(c.created_at)],
          ["Started", time(c.started_at)],
          ["Last active", time(c.last_active_at)],
          ["Runtime", [meta.runtime, meta.runtime_version].filter(Boolean).join(" ") || "—"],
          ["envd", meta.envd_version ?? "—"],
        ].map(([k, v]) => [h("dt", null, k as string), h("dd", null, v as Node | string | Node[])]),
      );
      mount(
        actions,
        actionButtons(app, c, (err) => errors.show(err), async (gone) => {
          if (gone) app.navigate("/capsules");
          else await load();
        }),
      );
      const running = c.status === "running";
      runButton.disabled = !running;
      runHint.hidden = running;
      terminal.setRunning(running);
      files.setRunning(running);
      processes.setRunning(running);
      if (!streaming() && TRANSITIONAL.has(c.status)) {
        timer = window.setTimeout(() => live() && load().catch((err) => errors.show(err)), POLL_MS);
      }
    }
    // A capsule that is not the team's (or not there) gets the error alone, no empty panels.
    const first = await api.get<Capsule>(`/v1/capsules/${seg(id)}`);
    if (!live()) return;
    const terminal = terminalPanel(id, live);
    const files = filesPanel(app, id, live, query.get("path") || "/");
    const processes = processesPanel(app, id, live);
    const metrics = metricsPanel(id, live);

    // Run a command
    const execErrors = errorBox();
    const runButton = h("button", { type: "submit" }, "Run");
    const runHint = h("p", { class: "muted", hidden: true }, "Commands run only while the capsule is running.");
    const output = h("div", { id: "exec-output", "aria-live": "polite" });
    const execForm = h(
      "form",
      { id: "exec-form", class: "grid-form" },
      field("Command", h("input", { id: "exec-cmd", name: "cmd", required: true, placeholder: "uname -a; ls /", autocomplete: "off", spellcheck: false }), "Runs with /bin/sh -c."),
      field("Timeout (s)", h("input", { id: "exec-timeout", name: "timeout_sec", type: "number", min: 1, max: 3600, value: 30 })),
      h("div", { class: "form-actions" }, runButton),
    );
    onSubmit(execForm, execErrors, async (data) => {
      const line = str(data, "cmd");
      const result = await api.post<ExecResult>(`/v1/capsules/${seg(id)}/exec`, {
        cmd: "/bin/sh",
        args: ["-c", line],
        timeout_sec: Number(str(data, "timeout_sec")) || 30,
      });
      void processes.reload();
      const stdout = decode(result.stdout, result.encoding);
      const stderr = decode(result.stderr, result.encoding);
      mount(
        output,
        h(
          "p",
          { class: "exec-summary" },
          "Exit code ",
          h("strong", { id: "exec-exit", class: result.exit_code === 0 ? "ok" : "bad" }, String(result.exit_code)),
          ` in ${result.duration_ms} ms`,
          result.encoding === "base64" ? " (output was not UTF-8; shown decoded)" : null,
        ),
        h("h3", null, "stdout"),
        h("pre", { id: "exec-stdout", class: "output", tabindex: "0" }, stdout || h("span", { class: "muted" }, "(empty)")),
        h("h3", null, "stderr"),
        h("pre", { id: "exec-stderr", class: "output stderr", tabindex: "0" }, stderr || h("span", { class: "muted" }, "(empty)")),
      );
    });

    mount(
      root,
      h("p", { class: "crumbs" }, h("a", { href: "/capsules" }, "← Capsules")),
      heading,
      errors,
      h("section", { class: "card", "aria-labelledby": "details-h" }, h("h2", { id: "details-h" }, "Details"), facts, actions),
      h("section", { class: "card", "aria-labelledby": "terminal-h" }, h("h2", { id: "terminal-h" }, "Terminal"), terminal.el),
      h("section", { class: "card", "aria-labelledby": "files-h" }, h("h2", { id: "files-h" }, "Files"), files.el),
      h("section", { class: "card", "aria-labelledby": "exec-h" }, h("h2", { id: "exec-h" }, "Run a command"), runHint, execErrors, execForm, output),
      h("section", { class: "card", "aria-labelledby": "processes-h" }, h("h2", { id: "processes-h" }, "Processes"), processes.el),
      h("section", { class: "card", "aria-labelledby": "metrics-h" }, h("h2", { id: "metrics-h" }, "Metrics"), metrics.el),
    );
    const streaming = followCapsules(live, () => void load().catch((err) => live() && errors.show(err)), id);
    await load(first);
  },
};
