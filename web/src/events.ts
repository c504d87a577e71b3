// Following a server-sent event stream (`GET /v1/events/stream`, `/v1/admin/events/stream`)
// with fetch, so every event name is seen (EventSource only dispatches names it was told) and
// errors keep the API's code. Reconnects after a drop until the page is left.

import { ApiError, errorFrom, type LiveEvent } from "./api";

export type StreamState = { kind: "connecting" } | { kind: "open" } | { kind: "error"; error: unknown; retryInMs: number };

const RETRY_MS = 3000;

/** Splits an SSE byte stream into messages (`event:` name, `data:` lines joined by newlines). */
export function sseParser(onMessage: (name: string, data: string) => void) {
  let buffer = "";
  return (chunk: string) => {
    buffer += chunk.replace(/\r\n?/g, "\n");
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line === "" || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      }
      if (data.length) onMessage(name, data.join("\n"));
    }
  };
}

/**
 * Follows `path` while `live()` holds, calling `onEvent` with each parsed event and `onState`
 * when the connection opens, fails (then it retries) or is being made.
 */
export function followEvents(path: string, live: () => boolean, onEvent: (e: LiveEvent) => void, onState: (s: StreamState) => void) {
  const controller = new AbortController();
  const watch = window.setInterval(() => {
    if (!live()) {
      controller.abort();
      window.clearInterval(watch);
    }
  }, 1000);
  const parse = sseParser((_name, data) => {
    try {
      onEvent(JSON.parse(data) as LiveEvent);
    } catch {
      // Not an event payload (keep-alives are comments and never get here).
    }
  });

  void (async () => {
    while (live()) {
      onState({ kind: "connecting" });
      try {
        const res = await fetch(path, { credentials: "same-origin", headers: { Accept: "text/event-stream" }, signal: controller.signal });
        if (!res.ok) throw await errorFrom(res);
        if (!res.body) throw new ApiError(res.status, "invalid_response", "The event stream has no body.");
        onState({ kind: "open" });
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parse(value);
        }
        throw new ApiError(0, "stream_ended", "The event stream ended.");
      } catch (err) {
        if (!live() || controller.signal.aborted) return;
        onState({ kind: "error", error: err, retryInMs: RETRY_MS });
        // A refusal (not an admin, signed out) does not get better by retrying.
        if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return;
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  })();
  return () => controller.abort();
}
