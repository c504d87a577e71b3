// Following a server-sent event stream (`GET /v1/events/stream`, `/v1/admin/events/stream`, a
// build's `/v1/builds/{id}/logs?follow=true`) with fetch, so every event name is seen
// (EventSource only dispatches names it was told) and errors keep the API's code. Reconnects
// after a drop until the page is left (or the stream has said it is done).

import { ApiError, errorFrom, type LiveEvent } from "./api";

/** `ended`: a stream that ends by design (a build's log) was read to its end. */
export type StreamState = { kind: "connecting" } | { kind: "open" } | { kind: "ended" } | { kind: "error"; error: unknown; retryInMs: number };

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
  return followStream(
    () => path,
    live,
    (_name, data) => {
      try {
        onEvent(JSON.parse(data) as LiveEvent);
      } catch {
        // Not an event payload (keep-alives are comments and never get here).
      }
    },
    onState,
  );
}

/**
 * Follows an SSE stream while `live()` holds, calling `onMessage` with every event's name and
 * data. A dropped connection is made again to `path()` (so a caller can resume where it was,
 * e.g. `after=SEQ`) unless `finished()` says the stream was meant to end (a build's `end`).
 * Refusals (401, 403, 404) are not retried. Returns a function that stops following.
 */
export function followStream(
  path: () => string,
  live: () => boolean,
  onMessage: (name: string, data: string) => void,
  onState: (s: StreamState) => void,
  finished: () => boolean = () => false,
) {
  const controller = new AbortController();
  const watch = window.setInterval(() => {
    if (!live()) {
      controller.abort();
      window.clearInterval(watch);
    }
  }, 1000);
  const parse = sseParser(onMessage);
  const over = () => !live() || controller.signal.aborted || finished();

  void (async () => {
    try {
      while (!over()) {
        onState({ kind: "connecting" });
        try {
          const res = await fetch(path(), { credentials: "same-origin", headers: { Accept: "text/event-stream" }, signal: controller.signal });
          if (!res.ok) throw await errorFrom(res);
          if (!res.body) throw new ApiError(res.status, "invalid_response", "The event stream has no body.");
          onState({ kind: "open" });
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            parse(value);
          }
          if (finished()) break;
          throw new ApiError(0, "stream_ended", "The event stream ended.");
        } catch (err) {
          if (over()) break;
          onState({ kind: "error", error: err, retryInMs: RETRY_MS });
          // A refusal (not an admin, signed out, not the team's) does not get better by retrying.
          if (err instanceof ApiError && [401, 403, 404].includes(err.status)) return;
          await new Promise((r) => setTimeout(r, RETRY_MS));
        }
      }
      if (finished() && live()) onState({ kind: "ended" });
    } finally {
      window.clearInterval(watch);
    }
  })();
  return () => controller.abort();
}
