// The processes envd started in a capsule (`GET /v1/capsules/{id}/processes`), with a signal
// to end one (`DELETE .../processes/{pid}?signal=`).

import { api, seg, type ProcessInfo } from "../../api";
import type { App } from "../../app";
import { busy, errorBox, h, mount } from "../../dom";

export function processesPanel(app: App, capsuleId: string, live: () => boolean) {
  const errors = errorBox();
  const tbody = h("tbody");
  const table = h(
    "table",
    { id: "processes", hidden: true },
    h("caption", { class: "sr-only" }, "Processes"),
    h("thead", null, h("tr", null, ["PID", "Tag", "Command", ""].map((c) => h("th", { scope: "col" }, c)))),
    tbody,
  );
  const empty = h("p", { class: "muted", id: "processes-empty", hidden: true }, "No processes started through the API are running.");
  const refresh = h("button", { type: "button", id: "processes-refresh", class: "secondary small" }, "Refresh");
  const el = h("div", null, h("div", { class: "actions" }, refresh), errors, table, empty);
  let running = false;

  async function load() {
    if (!running) {
      table.hidden = true;
      empty.hidden = true;
      return;
    }
    const res = await api.get<{ processes: ProcessInfo[] }>(`/v1/capsules/${seg(capsuleId)}/processes`);
    if (!live()) return;
    errors.clear();
    const list = [...(res?.processes ?? [])].sort((a, b) => a.pid - b.pid);
    table.hidden = list.length === 0;
    empty.hidden = list.length > 0;
    mount(
      tbody,
      list.map((p) => {
        const buttons = (["SIGTERM", "SIGKILL"] as const).map((signal) => {
          const label = signal === "SIGKILL" ? "Kill" : "Terminate";
          const b = h("button", { type: "button", class: `${signal === "SIGKILL" ? "danger" : "secondary"} small`, "aria-label": `${label} ${p.pid}`, title: `Send ${signal}` }, label);
          busy(
            b,
            async () => {
              await api.del(`/v1/capsules/${seg(capsuleId)}/processes/${p.pid}?signal=${signal}`);
              app.notify("success", `Sent ${signal} to ${p.pid}.`);
              // The process may take a moment to go.
              await new Promise((r) => setTimeout(r, 300));
              await load();
            },
            (err) => errors.show(err),
          );
          return b;
        });
        return h(
          "tr",
          { "data-pid": p.pid },
          h("th", { scope: "row" }, String(p.pid)),
          h("td", null, h("code", null, p.tag)),
          h("td", null, h("code", null, [p.cmd, ...(p.args ?? [])].join(" "))),
          h("td", { class: "actions" }, buttons),
        );
      }),
    );
  }
  busy(refresh, () => load(), (err) => errors.show(err));
  return {
    el,
    reload: () => load().catch((err) => live() && errors.show(err)),
    setRunning(now: boolean) {
      const was = running;
      running = now;
      refresh.disabled = !now;
      if (now !== was) void load().catch((err) => live() && errors.show(err));
    },
  };
}
