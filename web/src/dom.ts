// Element building without innerHTML: every string lands as text, so data from the API can never
// inject markup.

import { ApiError } from "./api";

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** `h("button", {type: "submit", onclick: fn}, "Save")`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (typeof value === "function") {
        el.addEventListener(name.replace(/^on/, ""), value);
      } else if (value === true) {
        el.setAttribute(name, "");
      } else {
        el.setAttribute(name, String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function mount(el: Element, ...children: Child[]) {
  el.replaceChildren();
  append(el, children);
}

/** A labelled input; `id` ties label and control together for screen readers and tests. */
export function field(label: string, input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, hint?: string) {
  const hintEl = hint ? h("small", { class: "hint", id: `${input.id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, hintEl);
}

/** The message to show for any thrown value. */
export function describe(err: unknown): { code: string; message: string } {
  if (err instanceof ApiError) return { code: err.code, message: err.message };
  if (err instanceof Error) return { code: "", message: err.message };
  return { code: "", message: String(err) };
}

/** An inline error box for a form or section (role=alert so it is announced). */
export function errorBox(): HTMLDivElement & { show(err: unknown): void; clear(): void } {
  const box = h("div", { class: "error-box", role: "alert", hidden: true }) as HTMLDivElement & {
    show(err: unknown): void;
    clear(): void;
  };
  box.show = (err: unknown) => {
    const { code, message } = describe(err);
    mount(box, h("strong", null, message), code ? [" ", h("code", { class: "error-code" }, code)] : null);
    box.hidden = false;
  };
  box.clear = () => {
    box.replaceChildren();
    box.hidden = true;
  };
  return box;
}

/**
 * Wires a form: on submit, disables its controls, runs `action`, shows any error in `errors`,
 * and re-enables. Resolves nothing; the action does its own follow-up.
 */
export function onSubmit(
  form: HTMLFormElement,
  errors: ReturnType<typeof errorBox>,
  action: (data: FormData) => Promise<void>,
) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errors.clear();
    // Read the values first: disabled controls are left out of FormData.
    const data = new FormData(form);
    const controls = Array.from(form.elements) as HTMLInputElement[];
    const wasDisabled = controls.map((c) => c.disabled);
    controls.forEach((c) => (c.disabled = true));
    form.setAttribute("aria-busy", "true");
    try {
      await action(data);
    } catch (err) {
      errors.show(err);
    } finally {
      controls.forEach((c, i) => (c.disabled = wasDisabled[i]));
      form.removeAttribute("aria-busy");
    }
  });
}

/** Runs a button's action with the button disabled meanwhile; errors go to `report`. */
export function busy(button: HTMLButtonElement, action: () => Promise<void>, report: (err: unknown) => void) {
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await action();
    } catch (err) {
      report(err);
    } finally {
      button.disabled = false;
    }
  });
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** A <time> element with a readable local date and the RFC 3339 value as datetime. */
export function time(value: string | null | undefined): Node {
  if (!value) return h("span", { class: "muted" }, "—");
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return document.createTextNode(value);
  return h("time", { datetime: value, title: d.toISOString() }, dateFormat.format(d));
}

export function str(data: FormData, name: string): string {
  const v = data.get(name);
  return typeof v === "string" ? v : "";
}

/**
 * A "Copy" button for `text`. Without clipboard access (it needs a secure context) it selects
 * `shown`, the element displaying the text, so it can be copied by hand.
 */
export function copyButton(text: string, shown: Element, label = "Copy"): HTMLButtonElement {
  const copy = h("button", { type: "button", class: "secondary" }, label);
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      copy.textContent = "Copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(shown);
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(range);
    }
  });
  return copy;
}

/** A page body for someone who may not use the page: its heading and why not. */
export function notAllowed(title: string, message: string): Node[] {
  return [h("h1", { tabindex: "-1" }, title), h("div", { class: "error-box", role: "alert", id: "not-allowed" }, h("strong", null, message))];
}
