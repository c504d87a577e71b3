// Charts of one capsule's CPU, memory and disk over the ranges the API keeps
// (`GET /v1/capsules/{id}/metrics?range=`).

import { api, seg, type CapsuleMetrics, type MetricPoint } from "../../api";
import { chart, clockTime } from "../../charts";
import { errorBox, h, mount } from "../../dom";
import { size } from "../../format";

export const RANGES = ["5m", "10m", "1h", "2h", "6h", "24h"] as const;
const REFRESH_MS = 10_000;

export function metricsPanel(capsuleId: string, live: () => boolean) {
  const errors = errorBox();
  const select = h("select", { id: "metrics-range", "aria-label": "Time range" }, RANGES.map((r) => h("option", { value: r }, r)));
  const charts = h("div", { id: "metrics-charts", class: "charts" });
  const empty = h("p", { class: "muted", id: "metrics-empty", hidden: true }, "No samples in this range yet: the host samples every few seconds while the capsule runs.");
  const el = h("div", null, h("div", { class: "actions" }, h("label", { for: "metrics-range" }, "Range "), select), errors, empty, charts);

  let timer: number | undefined;
  let generation = 0;
  async function load() {
    window.clearTimeout(timer);
    const mine = ++generation;
    try {
      const m = await api.get<CapsuleMetrics>(`/v1/capsules/${seg(capsuleId)}/metrics?range=${encodeURIComponent(select.value)}`);
      if (!live() || mine !== generation) return;
      errors.clear();
      const points = m?.points ?? [];
      empty.hidden = points.length > 0;
      const times = points.map((p) => p.timestamp_unix);
      const series = (id: string, title: string, value: (p: MetricPoint) => number, label: (v: number) => string, floor: number) =>
        chart({ id, title, times, values: points.map(value), label, time: clockTime, floor });
      mount(
        charts,
        series("cpu", "CPU", (p) => p.cpu_pct, (v) => `${v.toFixed(v < 10 ? 1 : 0)}%`, 1),
        series("memory", "Memory", (p) => p.mem_bytes, size, 1024 * 1024),
        series("disk", "Disk", (p) => p.disk_bytes, size, 1024 * 1024),
      );
    } catch (err) {
      if (live() && mine === generation) errors.show(err);
    }
    if (live()) timer = window.setTimeout(() => void load(), REFRESH_MS);
  }
  select.addEventListener("change", () => void load());
  void load();
  return { el };
}
