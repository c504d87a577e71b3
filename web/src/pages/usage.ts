// The team's usage (`/usage`): what it holds now and its peaks, running capsules, vCPUs and
// memory over a range (`GET /v1/capsules/stats`), and vCPU-minutes and MiB-minutes per day
// (`GET /v1/capsules/usage`).

import { api, type TeamStats, type TeamUsage } from "../api";
import type { Page } from "../app";
import { chart, clockTime, dayTime } from "../charts";
import { errorBox, h, mount } from "../dom";
import { memory } from "../format";

const STATS_RANGES = ["5m", "1h", "6h", "24h", "30d"] as const;
const DAYS = [7, 30, 90] as const;
const REFRESH_MS = 30_000;

const count = (v: number) => String(Math.round(v));
const minutes = (v: number) => (v >= 10_000 ? `${(v / 1000).toFixed(1)}k` : v.toFixed(v < 10 ? 1 : 0));

function isoDay(d: Date) {
  return d.toISOString().slice(0, 10);
}

export const usagePage: Page = {
  title: "Usage",
  async render(root, { live }) {
    const statsErrors = errorBox();
    const usageErrors = errorBox();
    const rangeSelect = h("select", { id: "stats-range", "aria-label": "Time range" }, STATS_RANGES.map((r) => h("option", { value: r, selected: r === "1h" }, r)));
    const daysSelect = h("select", { id: "usage-days", "aria-label": "Days" }, DAYS.map((d) => h("option", { value: d, selected: d === 30 }, `last ${d} days`)));
    const now = h("dl", { class: "facts", id: "usage-now" });
    const statsCharts = h("div", { class: "charts", id: "stats-charts" });
    const usageCharts = h("div", { class: "charts", id: "usage-charts" });
    const totals = h("p", { id: "usage-totals", class: "muted" });

    let timer: number | undefined;
    let generation = 0;
    async function loadStats() {
      window.clearTimeout(timer);
      const mine = ++generation;
      try {
        const s = await api.get<TeamStats>(`/v1/capsules/stats?range=${encodeURIComponent(rangeSelect.value)}`);
        if (!live() || mine !== generation) return;
        statsErrors.clear();
        mount(
          now,
          [
            ["Running capsules", count(s.current.running_count), count(s.peaks.running_count)],
            ["vCPUs reserved", count(s.current.vcpus_reserved), count(s.peaks.vcpus_reserved)],
            ["Memory reserved", memory(s.current.memory_mb_reserved), memory(s.peaks.memory_mb_reserved)],
          ].map(([k, v, peak]) => [h("dt", null, k), h("dd", null, v, h("span", { class: "muted" }, ` (peak ${peak} in ${s.range})`))]),
        );
        const times = s.series.labels.map((l) => Math.floor(new Date(l).getTime() / 1000));
        const time = s.range === "30d" ? dayTime : clockTime;
        mount(
          statsCharts,
          chart({ id: "running", title: "Running capsules", times, values: s.series.running, label: count, time }),
          chart({ id: "vcpus", title: "vCPUs", times, values: s.series.vcpus, label: count, time }),
          chart({ id: "memory", title: "Memory", times, values: s.series.memory_mb, label: (v) => memory(Math.round(v)), time, floor: 512 }),
        );
      } catch (err) {
        if (live() && mine === generation) statsErrors.show(err);
      }
      if (live()) timer = window.setTimeout(() => void loadStats(), REFRESH_MS);
    }

    async function loadUsage() {
      const to = new Date();
      const from = new Date(to.getTime() - (Number(daysSelect.value) - 1) * 86_400_000);
      try {
        const u = await api.get<TeamUsage>(`/v1/capsules/usage?from=${isoDay(from)}&to=${isoDay(to)}`);
        if (!live()) return;
        usageErrors.clear();
        const times = u.points.map((p) => Math.floor(Date.parse(`${p.date}T00:00:00Z`) / 1000));
        const cpu = u.points.map((p) => p.cpu_minutes);
        const ram = u.points.map((p) => p.ram_mb_minutes);
        const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
        mount(totals, `${u.from} to ${u.to}: ${minutes(sum(cpu))} vCPU-minutes, ${minutes(sum(ram) / 1024)} GiB-minutes.`);
        mount(
          usageCharts,
          chart({ id: "cpu-minutes", title: "vCPU-minutes per day", times, values: cpu, label: minutes, time: dayTime, kind: "bars" }),
          chart({ id: "ram-minutes", title: "GiB-minutes per day", times, values: ram.map((v) => v / 1024), label: minutes, time: dayTime, kind: "bars" }),
        );
      } catch (err) {
        if (live()) usageErrors.show(err);
      }
    }

    rangeSelect.addEventListener("change", () => void loadStats());
    daysSelect.addEventListener("change", () => void loadUsage());
    mount(
      root,
      h("h1", { tabindex: "-1" }, "Usage"),
      h(
        "section",
        { class: "card", "aria-labelledby": "usage-now-h" },
        h("h2", { id: "usage-now-h" }, "Reserved now"),
        h("div", { class: "actions" }, h("label", { for: "stats-range" }, "Range "), rangeSelect),
        statsErrors,
        now,
        statsCharts,
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "usage-days-h" },
        h("h2", { id: "usage-days-h" }, "Usage per day"),
        h("div", { class: "actions" }, h("label", { for: "usage-days" }, "Period "), daysSelect),
        usageErrors,
        totals,
        usageCharts,
      ),
    );
    await Promise.all([loadStats(), loadUsage()]);
  },
};
