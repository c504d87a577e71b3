// Line and bar charts as inline SVG (no chart library): one series each, with its peak and
// latest value in the caption and in the chart's accessible name, and the time span under it.

import { h } from "./dom";

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

export interface Series {
  /** Element ids derive from it: `chart-<id>`, `chart-<id>-latest`. */
  id: string;
  title: string;
  /** Sample times, unix seconds, ascending. */
  times: number[];
  values: number[];
  /** Renders a value for the axis and captions. */
  label: (v: number) => string;
  /** Renders a sample time for the span under the chart. */
  time: (unix: number) => string;
  /** The y axis reaches at least this (so a flat zero line is not drawn at the top). */
  floor?: number;
  kind?: "line" | "bars";
}

/** A `<figure>` with the chart; "no samples" when the series is empty. */
export function chart(s: Series): HTMLElement {
  const max = Math.max(s.floor ?? 1, ...s.values);
  const latest = s.values.length ? s.label(s.values[s.values.length - 1]) : "no samples";
  const peak = s.label(Math.max(0, ...s.values));
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart", id: `chart-${s.id}`, "aria-label": `${s.title}: latest ${latest}, peak ${peak}` });
  const [x0, x1, y0, y1] = [PAD.left, W - PAD.right, H - PAD.bottom, PAD.top];
  root.append(
    svg("line", { x1: x0, y1: y0, x2: x1, y2: y0, class: "axis" }),
    svg("line", { x1: x0, y1: y1, x2: x0, y2: y0, class: "axis" }),
    svg("text", { x: x0 - 6, y: y1 + 10, "text-anchor": "end", class: "tick" }, s.label(max)),
    svg("text", { x: x0 - 6, y: y0, "text-anchor": "end", class: "tick" }, s.label(0)),
  );
  const n = s.values.length;
  if (n > 0) {
    const y = (v: number) => y0 - (v / max) * (y0 - y1);
    if (s.kind === "bars") {
      const slot = (x1 - x0) / n;
      const width = Math.max(1, slot * 0.8);
      s.values.forEach((v, i) => {
        const top = y(v);
        root.append(svg("rect", { x: (x0 + i * slot + (slot - width) / 2).toFixed(1), y: top.toFixed(1), width: width.toFixed(1), height: (y0 - top).toFixed(1), class: "bar" }));
      });
    } else {
      const t0 = s.times[0];
      const span = Math.max(1, s.times[n - 1] - t0);
      const xy = s.values.map((v, i) => `${(n === 1 ? x1 : x0 + ((s.times[i] - t0) / span) * (x1 - x0)).toFixed(1)},${y(v).toFixed(1)}`);
      root.append(svg("polyline", { points: xy.join(" "), class: "series" }));
    }
    root.append(
      svg("text", { x: x0, y: H - 6, class: "tick" }, s.time(s.times[0])),
      svg("text", { x: x1, y: H - 6, "text-anchor": "end", class: "tick" }, s.time(s.times[n - 1])),
    );
  }
  return h(
    "figure",
    { class: "chart-figure" },
    h("figcaption", null, h("strong", null, s.title), " ", h("span", { class: "muted", id: `chart-${s.id}-latest` }, latest), n ? h("span", { class: "muted" }, ` (peak ${peak})`) : null),
    root,
  );
}

/** `14:05` */
export const clockTime = (unix: number) => new Date(unix * 1000).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
/** `Dec 2` */
export const dayTime = (unix: number) => new Date(unix * 1000).toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
