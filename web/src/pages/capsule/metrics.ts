// Charts of one capsule's CPU, memory and disk over the ranges the API keeps
// (`GET /v1/capsules/{id}/metrics?range=`), drawn as inline SVG: no chart library.

import { api, seg, type CapsuleMetrics, type MetricsPoint } from "../../api";
import { errorBox, h, mount } from "../../dom";
import { size } from "../../format";

export const RANGES = ["5m", "10m", "1h", "2h", "6h", "24h"] as const;
const REFRESH_MS = 10_000;
const SVG = "http://www.w3.org/2000/svg";
const W = 480;
const H = 140;
const PAD = { left: 64, right: 8, top: 8, bottom: 22 };

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

const clock = (unix: number) => new Date(unix * 1000).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });

/** One series as a line chart with its maximum, its latest value and the time span. */
function chart(id: string, title: string, points: MetricsPoint[], value: (p: MetricsPoint) => number, label: (v: number) => string, floor: number) {
  const values = points.map(value);
  const max = Math.max(floor, ...values);
  const latest = values.length ? label(values[values.length - 1]) : "no samples";
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart", id: `chart-${id}`, "aria-label": `${title}: latest ${latest}, peak ${label(Math.max(0, ...values))}` });
  const x0 = PAD.left;
  const x1 = W - PAD.right;
  const y0 = H - PAD.bottom;
  const y1 = PAD.top;
  root.append(
    svg("line", { x1: x0, y1: y0, x2: x1, y2: y0, class: "axis" }),
    svg("line", { x1: x0, y1: y1, x2: x0, y2: y0, class: "axis" }),
    svg("text", { x: x0 - 6, y: y1 + 10, "text-anchor": "end", class: "tick" }, label(max)),
    svg("text", { x: x0 - 6, y: y0, "text-anchor": "end", class: "tick" }, label(0)),
  );
  if (points.length > 0) {
    const t0 = points[0].timestamp_unix;
    const t1 = points[points.length - 1].timestamp_unix;
    const span = Math.max(1, t1 - t0);
    const xy = points.map((p, i) => {
      const x = points.length === 1 ? x1 : x0 + ((p.timestamp_unix - t0) / span) * (x1 - x0);
      const y = y0 - (values[i] / max) * (y0 - y1);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    root.append(
      svg("polyline", { points: xy.join(" "), class: "series" }),
      svg("text", { x: x0, y: H - 6, class: "tick" }, clock(t0)),
      svg("text", { x: x1, y: H - 6, "text-anchor": "end", class: "tick" }, clock(t1)),
    );
  }
  return h("figure", { class: "chart-figure" }, h("figcaption", null, h("strong", null, title), " ", h("span", { class: "muted", id: `chart-${id}-latest` }, latest)), root);
}

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
      mount(
        charts,
        chart("cpu", "CPU", points, (p) => p.cpu_pct, (v) => `${v.toFixed(v < 10 ? 1 : 0)}%`, 1),
        chart("memory", "Memory", points, (p) => p.mem_bytes, size, 1024 * 1024),
        chart("disk", "Disk", points, (p) => p.disk_bytes, size, 1024 * 1024),
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
