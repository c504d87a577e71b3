// A terminal into a running capsule: xterm.js over `WS /v1/capsules/{id}/pty` (API.md, Exec and
// processes). The session outlives the page: its tag is kept in sessionStorage, so a reload (or
// coming back to the page in the same tab) re-attaches to the same shell instead of starting one.
// xterm.js is loaded on first use, so no other page downloads it.

import type { FitAddon } from "@xterm/addon-fit";
import type { Terminal } from "@xterm/xterm";
import { seg } from "../../api";
import { h, mount } from "../../dom";

/** Server frames of the PTY socket. */
type PtyFrame =
  | { type: "started"; tag: string; pid: number }
  | { type: "output"; data: string }
  | { type: "exit"; exit_code: number }
  | { type: "error"; data: string; fatal?: boolean }
  | { type: "ping" };

const storageKey = (capsuleId: string) => `wrenn.pty.${capsuleId}`;

/** A login shell: bash where the image has it, else sh. */
const SHELL = { type: "start", cmd: "/bin/sh", args: ["-c", "command -v bash >/dev/null && exec bash -l || exec sh -l"] };

function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export interface TerminalPanel {
  el: HTMLElement;
  /** The capsule's state changed: the terminal is usable only while it runs. */
  setRunning(running: boolean): void;
}

/**
 * The terminal section. Nothing runs until "Open terminal" (or a session of this tab to
 * re-attach to); leaving the page closes the socket and leaves the shell running.
 */
export function terminalPanel(capsuleId: string, live: () => boolean): TerminalPanel {
  const screen = h("div", { id: "terminal", class: "terminal", hidden: true });
  const state = h("p", { id: "terminal-state", class: "muted", "aria-live": "polite" }, "No terminal open.");
  const open = h("button", { type: "button", id: "terminal-open" }, "Open terminal");
  const end = h("button", { type: "button", id: "terminal-end", class: "danger small", hidden: true }, "End session");
  const el = h("div", null, h("div", { class: "actions" }, open, end), state, screen);

  let term: Terminal | null = null;
  let fit: FitAddon | null = null;
  let socket: WebSocket | null = null;
  let running = false;
  const encoder = new TextEncoder();

  const say = (text: string) => mount(state, text);
  const sendFrame = (frame: Record<string, unknown>) => {
    if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  };

  async function ensureTerminal(): Promise<Terminal> {
    if (term) return term;
    const [xterm, addon] = await Promise.all([import("@xterm/xterm"), import("@xterm/addon-fit"), import("@xterm/xterm/css/xterm.css")]);
    if (term) return term;
    screen.hidden = false;
    term = new xterm.Terminal({ convertEol: false, cursorBlink: true, fontSize: 14, scrollback: 5000 });
    fit = new addon.FitAddon();
    term.loadAddon(fit);
    term.open(screen);
    fit.fit();
    term.onData((data) => sendFrame({ type: "input", data: toBase64(encoder.encode(data)) }));
    term.onResize(({ cols, rows }) => sendFrame({ type: "resize", cols, rows }));
    const observer = new ResizeObserver(() => {
      if (!live()) {
        observer.disconnect();
        return;
      }
      fit?.fit();
    });
    observer.observe(screen);
    return term;
  }

  async function connect(first: Record<string, unknown>) {
    open.disabled = true;
    let t: Terminal;
    try {
      t = await ensureTerminal();
    } catch (err) {
      say(`The terminal could not be loaded: ${err instanceof Error ? err.message : String(err)}`);
      open.disabled = !running;
      return;
    }
    if (!live()) return;
    socket?.close();
    const url = new URL(`/v1/capsules/${seg(capsuleId)}/pty`, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    socket = ws;
    say(first.type === "connect" ? "Re-attaching to the terminal session…" : "Starting a shell…");
    let connected = false;
    ws.onopen = () => {
      ws.send(JSON.stringify({ ...first, cols: t.cols, rows: t.rows }));
      // A re-attached shell learns this tab's size too.
      if (first.type === "connect") ws.send(JSON.stringify({ type: "resize", cols: t.cols, rows: t.rows }));
    };
    ws.onmessage = (ev) => {
      if (socket !== ws || !live()) return;
      let frame: PtyFrame;
      try {
        frame = JSON.parse(String(ev.data)) as PtyFrame;
      } catch {
        return;
      }
      switch (frame.type) {
        case "started":
          connected = true;
          sessionStorage.setItem(storageKey(capsuleId), frame.tag);
          say(
            first.type === "connect"
              ? `Re-attached to session ${frame.tag} (pid ${frame.pid}).`
              : `Connected (session ${frame.tag}, pid ${frame.pid}). The shell keeps running if you leave this page.`,
          );
          end.hidden = false;
          t.focus();
          break;
        case "output":
          if (!connected) {
            connected = true;
            say(`Re-attached to session ${String(first.tag)}.`);
            end.hidden = false;
          }
          t.write(fromBase64(frame.data));
          break;
        case "exit":
          sessionStorage.removeItem(storageKey(capsuleId));
          t.write(`\r\n[process exited with code ${frame.exit_code}]\r\n`);
          say(`The shell exited with code ${frame.exit_code}.`);
          end.hidden = true;
          open.disabled = !running;
          break;
        case "error":
          if (frame.fatal && first.type === "connect") {
            // The session is gone (the capsule restarted, the shell ended meanwhile): start anew.
            sessionStorage.removeItem(storageKey(capsuleId));
            void connect(SHELL);
            return;
          }
          say(`Terminal error: ${frame.data}`);
          break;
        case "ping":
          break;
      }
    };
    ws.onclose = () => {
      if (socket !== ws || !live()) return;
      socket = null;
      open.disabled = !running;
      if (connected && !end.hidden) say("Disconnected. Open the terminal again to re-attach.");
      end.hidden = true;
    };
  }

  open.addEventListener("click", () => {
    const tag = sessionStorage.getItem(storageKey(capsuleId));
    void connect(tag ? { type: "connect", tag } : SHELL);
  });
  end.addEventListener("click", () => {
    sendFrame({ type: "kill" });
  });

  // Leaving the page closes the socket; the shell stays for a later re-attach.
  const watch = window.setInterval(() => {
    if (live()) return;
    window.clearInterval(watch);
    socket?.close();
    socket = null;
    term?.dispose();
  }, 1000);

  return {
    el,
    setRunning(now: boolean) {
      const was = running;
      running = now;
      open.disabled = !now || socket !== null;
      if (!now) {
        if (socket) say("The capsule is not running; the terminal is paused with it.");
        socket?.close();
        socket = null;
        end.hidden = true;
      } else if (!was && sessionStorage.getItem(storageKey(capsuleId)) && socket === null) {
        // A session of this tab is waiting: re-attach without a click.
        void connect({ type: "connect", tag: sessionStorage.getItem(storageKey(capsuleId)) });
      }
    },
  };
}
