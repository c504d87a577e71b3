// A build's log as it grows: stdout as plain text, stderr and the build's own (system) lines
// marked apart. Append-only with text nodes (output is never parsed as markup), entries are
// taken once each by `seq` (a reconnect resumes with `after=`), and the view keeps to the
// bottom while the reader is there.

import type { LogEntry } from "../../api";
import { h } from "../../dom";

/** Within this many pixels of the end counts as "at the bottom". */
const BOTTOM_SLACK = 8;

export function logView() {
  // role=log names the region and makes it a landmark-like live area; announcing every line
  // of a build would drown the status changes, so it is not live (the status pill is).
  const el = h("pre", {
    id: "build-log",
    class: "output build-log",
    role: "log",
    "aria-live": "off",
    "aria-label": "Build log",
    tabindex: "0",
  });
  const placeholder = h("span", { class: "muted" }, "No output yet.");
  el.appendChild(placeholder);
  let last = 0;
  /** The open run of one stream: consecutive entries of it share one element. */
  let run: { stream: string; node: Node } | null = null;
  let endsWithNewline = true;

  function append(entry: LogEntry) {
    if (entry.seq <= last) return;
    last = entry.seq;
    if (!entry.data) return;
    placeholder.remove();
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight <= BOTTOM_SLACK;
    const stream = entry.stream === "stderr" || entry.stream === "system" ? entry.stream : "stdout";
    if (run?.stream !== stream) {
      // A stream's chunk may stop mid-line; the next stream's text starts on a line of its own.
      if (!endsWithNewline) el.appendChild(document.createTextNode("\n"));
      const node = stream === "stdout" ? el : el.appendChild(h("span", { class: `log-${stream}`, "data-stream": stream }));
      run = { stream, node };
    }
    run.node.appendChild(document.createTextNode(entry.data));
    endsWithNewline = entry.data.endsWith("\n");
    if (atBottom) el.scrollTop = el.scrollHeight;
  }

  return {
    el,
    append,
    /** The last `seq` taken: where a reconnect resumes. */
    lastSeq: () => last,
  };
}
