// Notification channels of the current team: where capsule, snapshot and host lifecycle events
// go (a signed webhook or a chat provider). List with enable/disable and delete, a create form
// whose settings follow the provider, "Send test" with the form's values, the webhook signing
// secret shown once, editing (name, events, replacing the config and rotating the secret), and a
// channel's recent delivery attempts.

import {
  api,
  getAll,
  listOf,
  seg,
  type Channel,
  type ChannelTestResult,
  type CreatedChannel,
  type Delivery,
  type Provider,
} from "../api";
import { currentTeam, type Page } from "../app";
import { busy, errorBox, field, h, mount, onSubmit, str, time } from "../dom";

/** Subscribable event types (API.md) with a human gloss. */
const EVENTS: [string, string][] = [
  ["capsule.create", "a capsule was created"],
  ["capsule.pause", "a capsule was paused"],
  ["capsule.resume", "a capsule was resumed"],
  ["capsule.destroy", "a capsule was destroyed"],
  ["template.snapshot.create", "a snapshot template was created"],
  ["template.snapshot.delete", "a snapshot template was deleted"],
  ["host.up", "one of the team's own hosts came up"],
  ["host.down", "one of the team's own hosts went down"],
];

interface ConfigField {
  key: string;
  label: string;
  type: "url" | "text" | "password";
  required: boolean;
  hint?: string;
  placeholder?: string;
}

interface ProviderInfo {
  label: string;
  about: string;
  fields: ConfigField[];
}

const SECRET_URL_HINT = "It carries its token: stored encrypted and never shown again.";

const FORMATTER: ConfigField = {
  key: "formatter",
  label: "Formatter (optional)",
  type: "text",
  required: false,
  hint: "Name of a message formatter installed on the control plane. Empty uses the built-in text.",
};

function chatUrl(label: string, placeholder: string): ConfigField[] {
  return [{ key: "url", label, type: "password", required: true, hint: SECRET_URL_HINT, placeholder }, FORMATTER];
}

const PROVIDERS: Record<Provider, ProviderInfo> = {
  webhook: {
    label: "Webhook",
    about: "Each event is POSTed as JSON to your URL, signed with HMAC-SHA256 in the X-WRENN-SIGNATURE header.",
    fields: [{ key: "url", label: "Receiver URL", type: "url", required: true, placeholder: "https://example.com/wrenn-events" }],
  },
  slack: {
    label: "Slack",
    about: "Posts a message through a Slack incoming webhook.",
    fields: chatUrl("Slack webhook URL", "https://hooks.slack.com/services/…"),
  },
  discord: {
    label: "Discord",
    about: "Posts a message through a Discord channel webhook.",
    fields: chatUrl("Discord webhook URL", "https://discord.com/api/webhooks/…"),
  },
  teams: {
    label: "Microsoft Teams",
    about: "Posts an Adaptive Card through a Teams incoming webhook (Workflows).",
    fields: chatUrl("Teams webhook URL", "https://…"),
  },
  googlechat: {
    label: "Google Chat",
    about: "Posts a message through a Google Chat space webhook.",
    fields: chatUrl("Google Chat webhook URL", "https://chat.googleapis.com/v1/spaces/…"),
  },
  telegram: {
    label: "Telegram",
    about: "Sends a message from your bot to a chat.",
    fields: [
      { key: "bot_token", label: "Bot token", type: "password", required: true, hint: "From @BotFather, like 123456:ABC-…; stored encrypted, never shown again." },
      { key: "chat_id", label: "Chat ID", type: "text", required: true, hint: "A chat id such as -1001234567890, or an @channel name." },
      { key: "api_url", label: "Bot API URL (optional)", type: "url", required: false, hint: "Empty means https://api.telegram.org.", placeholder: "https://api.telegram.org" },
      FORMATTER,
    ],
  },
  matrix: {
    label: "Matrix",
    about: "Sends a message to a room as the user of an access token.",
    fields: [
      { key: "homeserver_url", label: "Homeserver URL", type: "url", required: true, placeholder: "https://matrix.example.org" },
      { key: "room_id", label: "Room ID", type: "text", required: true, placeholder: "!abc123:example.org", hint: "A room id (!…:server) or alias (#…:server)." },
      { key: "access_token", label: "Access token", type: "password", required: true, hint: "Stored encrypted, never shown again." },
      FORMATTER,
    ],
  },
};

const PROVIDER_ORDER: Provider[] = ["webhook", "slack", "discord", "teams", "googlechat", "telegram", "matrix"];

const providerLabel = (p: string) => PROVIDERS[p as Provider]?.label ?? p;

function hostOf(url: string | undefined): string {
  if (!url) return "";
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** Where a channel delivers, from its non-secret config. */
function destination(c: Channel): string {
  const cfg = c.config ?? {};
  switch (c.provider) {
    case "telegram": {
      const via = cfg.api_url && hostOf(cfg.api_url) !== "api.telegram.org" ? ` via ${hostOf(cfg.api_url)}` : "";
      return `chat ${cfg.chat_id ?? "?"}${via}`;
    }
    case "matrix":
      return `${cfg.room_id ?? "?"} on ${hostOf(cfg.homeserver_url)}`;
    default:
      return cfg.url_host ?? "";
  }
}

const preciseFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** Like dom.time, with seconds: delivery attempts and their retries are seconds apart. */
function preciseTime(value: string): Node {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return document.createTextNode(value);
  return h("time", { datetime: value, title: d.toISOString() }, preciseFormat.format(d));
}

const dash = () => h("span", { class: "muted" }, "—");

/** A provider's labelled settings inputs in `fieldset` (ids start with `prefix`). */
function fillSettings(fieldset: HTMLFieldSetElement, provider: Provider, prefix: string, legend: string) {
  mount(
    fieldset,
    h("legend", null, legend),
    PROVIDERS[provider].fields.map((f) =>
      field(
        f.label,
        h("input", {
          id: `${prefix}-${f.key}`,
          name: `cfg_${f.key}`,
          type: f.type,
          required: f.required,
          maxlength: 2048,
          placeholder: f.placeholder ?? null,
          autocomplete: "off",
          spellcheck: "false",
        }),
        f.hint,
      ),
    ),
  );
}

/** The provider's config from a form: trimmed, optional fields left out when empty. */
function configFrom(data: FormData, provider: Provider): Record<string, string> {
  const config: Record<string, string> = {};
  for (const f of PROVIDERS[provider].fields) {
    const v = str(data, `cfg_${f.key}`).trim();
    if (v || f.required) config[f.key] = v;
  }
  return config;
}

/** Checkboxes named `events`, one per subscribable event type. */
function eventChecks(prefix: string, selected: string[] = []) {
  return h(
    "fieldset",
    { id: prefix, class: "checks", "aria-describedby": `${prefix}-hint` },
    h("legend", null, "Events"),
    h("small", { class: "hint", id: `${prefix}-hint` }, "Success and error outcomes both arrive. Pick at least one."),
    EVENTS.map(([name, gloss]) =>
      h(
        "label",
        { class: "check", for: `${prefix}-${name}` },
        h("input", { type: "checkbox", id: `${prefix}-${name}`, name: "events", value: name, checked: selected.includes(name) }),
        h("code", null, name),
        " ",
        h("span", { class: "muted" }, gloss),
      ),
    ),
  );
}

function chosenEvents(data: FormData): string[] {
  const chosen = data.getAll("events").filter((v): v is string => typeof v === "string");
  if (chosen.length === 0) throw new Error("Pick at least one event for the channel.");
  return chosen;
}

/** The webhook signing secret, shown once, with a copy button. */
function secretCallout(container: HTMLElement, title: string, secret: string, valueId: string) {
  const secretEl = h("code", { id: valueId, class: "secret" }, secret);
  const copy = h("button", { type: "button", class: "secondary" }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(secret);
      copy.textContent = "Copied";
    } catch {
      // Clipboard needs a secure context; select the text so it can be copied by hand.
      const range = document.createRange();
      range.selectNodeContents(secretEl);
      getSelection()?.removeAllRanges();
      getSelection()?.addRange(range);
    }
  });
  const done = h("button", { type: "button" }, "I have saved it");
  done.addEventListener("click", () => container.replaceChildren());
  mount(
    container,
    h(
      "div",
      { class: "callout", role: "status" },
      h("p", null, h("strong", null, title), " This is its signing secret. Copy it now: you will not see it again."),
      h("div", { class: "secret-row" }, secretEl, copy),
      h(
        "p",
        { class: "hint" },
        "Verify each delivery: ",
        h("code", null, "X-WRENN-SIGNATURE"),
        " is ",
        h("code", null, "sha256=<hex HMAC-SHA256(secret, X-Wrenn-Timestamp + \".\" + body)>"),
        ".",
      ),
      done,
    ),
  );
}

const DELIVERIES_PAGE = 50;
const DELIVERIES_POLL_MS = 5000;

export const channelsPage: Page = {
  title: "Channels",
  async render(root, { app, live }) {
    // ---- List -------------------------------------------------------------------------------
    const listErrors = errorBox();
    const retry = h("button", { type: "button", class: "secondary", hidden: true }, "Try again");
    busy(retry, () => load(), (err) => listErrors.show(err));
    const tbody = h("tbody");
    const table = h(
      "table",
      { id: "channels", hidden: true },
      h("caption", { class: "sr-only" }, "Notification channels"),
      h("thead", null, h("tr", null, ["Name", "Provider", "Destination", "Events", "Enabled", "Created", ""].map((c) => h("th", { scope: "col" }, c)))),
      tbody,
    );
    const empty = h(
      "p",
      { class: "muted", id: "channels-empty", hidden: true },
      "No channels yet. Add one below to hear about capsules being created, paused, resumed and destroyed.",
    );

    async function load() {
      let channels: Channel[];
      try {
        channels = await getAll<Channel>("/v1/channels");
      } catch (err) {
        if (!live()) return;
        table.hidden = true;
        empty.hidden = true;
        listErrors.show(err);
        retry.hidden = false;
        return;
      }
      if (!live()) return;
      listErrors.clear();
      retry.hidden = true;
      table.hidden = channels.length === 0;
      empty.hidden = channels.length > 0;
      mount(tbody, channels.map(row));
      if (shown && !channels.some((c) => c.id === shown!.id)) hideDeliveries();
      if (editing && !channels.some((c) => c.id === editing!.id)) closeEdit();
    }

    function row(c: Channel) {
      const toggle = h("input", { type: "checkbox", role: "switch", "aria-label": `Enabled: ${c.name}` }) as HTMLInputElement;
      toggle.checked = c.enabled;
      const state = h("span", { class: c.enabled ? "toggle-state" : "toggle-state muted", "aria-hidden": "true" }, c.enabled ? "on" : "off");
      toggle.addEventListener("change", async () => {
        const on = toggle.checked;
        toggle.disabled = true;
        try {
          const updated = await api.patch<Channel>(`/v1/channels/${seg(c.id)}`, { enabled: on });
          c.enabled = updated?.enabled ?? on;
          toggle.checked = c.enabled;
          state.textContent = c.enabled ? "on" : "off";
          state.className = c.enabled ? "toggle-state" : "toggle-state muted";
          app.notify("success", c.enabled ? `“${c.name}” is enabled.` : `“${c.name}” is disabled: its events are not delivered.`);
        } catch (err) {
          toggle.checked = !on;
          listErrors.show(err);
        } finally {
          toggle.disabled = false;
        }
      });

      const show = h(
        "button",
        { type: "button", class: "secondary small", "aria-label": `Deliveries of ${c.name}`, "aria-controls": "deliveries-panel" },
        "Deliveries",
      );
      show.addEventListener("click", () => void showDeliveries(c));

      const edit = h("button", { type: "button", class: "secondary small", "aria-label": `Edit ${c.name}`, "aria-controls": "edit-panel" }, "Edit");
      edit.addEventListener("click", () => openEdit(c));

      const remove = h("button", { type: "button", class: "danger small", "aria-label": `Delete ${c.name}` }, "Delete");
      busy(
        remove,
        async () => {
          if (!confirm(`Delete the channel “${c.name}”? Its delivery history goes with it.`)) return;
          await api.del(`/v1/channels/${seg(c.id)}`);
          app.notify("success", `Channel “${c.name}” deleted.`);
          if (shown?.id === c.id) hideDeliveries();
          if (editing?.id === c.id) closeEdit();
          await load();
        },
        (err) => listErrors.show(err),
      );

      return h(
        "tr",
        { "data-id": c.id },
        h("td", null, c.name),
        h("td", null, providerLabel(c.provider)),
        h("td", null, destination(c) || dash()),
        h("td", { class: "event-list" }, c.events.length === EVENTS.length ? "all events" : c.events.join(", ")),
        h("td", { class: "toggle" }, toggle, " ", state),
        h("td", null, time(c.created_at)),
        h("td", { class: "actions" }, show, edit, remove),
      );
    }

    // ---- Edit: name and events, or the whole config (secrets cannot be read back) -----------
    let editing: Channel | null = null;
    const editPanel = h("section", { id: "edit-panel", class: "card", "aria-labelledby": "edit-h", hidden: true });

    function closeEdit() {
      editing = null;
      editPanel.hidden = true;
      editPanel.replaceChildren();
    }

    function openEdit(c: Channel) {
      editing = c;
      const heading = h("h2", { id: "edit-h", tabindex: "-1" }, `Edit channel: ${c.name}`);
      const closeButton = h("button", { type: "button", class: "secondary small" }, "Close");
      closeButton.addEventListener("click", closeEdit);

      const errors = errorBox();
      const form = h(
        "form",
        { id: "edit-channel-form" },
        field("Name", h("input", { id: "edit-channel-name", name: "name", required: true, maxlength: 100, value: c.name })),
        eventChecks("edit-event", c.events),
        h("div", { class: "actions" }, h("button", { type: "submit" }, "Save changes")),
      );
      onSubmit(form, errors, async (data) => {
        const updated = await api.patch<Channel>(`/v1/channels/${seg(c.id)}`, {
          name: str(data, "name").trim(),
          events: chosenEvents(data),
        });
        app.notify("success", `“${updated.name}” saved.`);
        closeEdit();
        await load();
      });

      const info = PROVIDERS[c.provider] ?? PROVIDERS.webhook;
      const settingsSet = h("fieldset", { class: "settings" });
      fillSettings(settingsSet, c.provider, "edit-cfg", `New ${info.label} settings`);
      const webhook = c.provider === "webhook";
      const rotate = webhook
        ? h(
            "label",
            { class: "check", for: "edit-rotate" },
            h("input", { type: "checkbox", id: "edit-rotate", name: "rotate_secret" }),
            h("span", null, "Issue a new signing secret"),
            " ",
            h("span", { class: "muted" }, "the current one stops working at once"),
          )
        : null;
      const configErrors = errorBox();
      const rotated = h("div", { id: "rotated-secret", "aria-live": "polite" });
      const configForm = h(
        "form",
        { id: "replace-config-form" },
        h(
          "p",
          { class: "hint" },
          "Secrets are never shown again, so enter the whole configuration to replace it.",
          webhook ? " The signing secret is kept unless you ask for a new one." : null,
        ),
        settingsSet,
        rotate,
        h("div", { class: "actions" }, h("button", { type: "submit", class: "secondary" }, "Replace settings")),
      );
      onSubmit(configForm, configErrors, async (data) => {
        const body: Record<string, unknown> = { config: configFrom(data, c.provider) };
        if (webhook) body.rotate_secret = data.get("rotate_secret") === "on";
        const replaced = await api.put<CreatedChannel>(`/v1/channels/${seg(c.id)}/config`, body);
        configForm.reset();
        if (replaced.signing_secret) {
          secretCallout(rotated, `Settings of “${replaced.name}” replaced.`, replaced.signing_secret, "rotated-secret-value");
        } else rotated.replaceChildren();
        app.notify("success", `Settings of “${replaced.name}” replaced.`);
        await load();
      });

      mount(
        editPanel,
        h("div", { class: "panel-head" }, heading, h("div", { class: "actions" }, closeButton)),
        errors,
        form,
        h("h3", null, "Destination and secrets"),
        configErrors,
        rotated,
        configForm,
      );
      editPanel.hidden = false;
      heading.focus();
      editPanel.scrollIntoView({ block: "nearest" });
    }

    // ---- Recent deliveries ------------------------------------------------------------------
    let shown: Channel | null = null;
    let showToken = 0;
    let paged = false;
    let oldest: number | null = null;
    let timer: number | undefined;
    const deliveriesHeading = h("h2", { id: "deliveries-h", tabindex: "-1" }, "Recent deliveries");
    const deliveriesErrors = errorBox();
    const deliveriesBody = h("tbody");
    const deliveriesCaption = h("caption", { class: "sr-only" }, "Recent deliveries");
    const deliveriesTable = h(
      "table",
      { id: "deliveries", hidden: true },
      deliveriesCaption,
      h("thead", null, h("tr", null, ["Time", "Event", "Attempt", "Status", "HTTP status", "Latency", "Error"].map((c) => h("th", { scope: "col" }, c)))),
      deliveriesBody,
    );
    const deliveriesEmpty = h(
      "p",
      { class: "muted", hidden: true },
      "No deliveries yet. Each attempt to deliver a subscribed event shows up here, newest first.",
    );
    const refresh = h("button", { type: "button", class: "secondary small" }, "Refresh");
    busy(refresh, () => loadDeliveries(false), (err) => deliveriesErrors.show(err));
    const older = h("button", { type: "button", class: "secondary small", hidden: true }, "Load older");
    busy(older, () => loadDeliveries(true), (err) => deliveriesErrors.show(err));
    const close = h("button", { type: "button", class: "secondary small" }, "Close");
    close.addEventListener("click", () => hideDeliveries());
    const panel = h(
      "section",
      { id: "deliveries-panel", class: "card", "aria-labelledby": "deliveries-h", hidden: true },
      h("div", { class: "panel-head" }, deliveriesHeading, h("div", { class: "actions" }, refresh, close)),
      h(
        "p",
        { class: "hint" },
        "A failed attempt is retried; after the last retry the event is dropped for this channel. Refreshes every few seconds.",
      ),
      deliveriesErrors,
      deliveriesTable,
      deliveriesEmpty,
      older,
    );

    function deliveryRow(d: Delivery) {
      return h(
        "tr",
        { "data-id": String(d.id), "data-status": d.status },
        h("td", null, preciseTime(d.created_at)),
        h("td", null, h("code", null, d.event)),
        h("td", null, String(d.attempt)),
        h("td", null, h("span", { class: `status status-${d.status}` }, d.status)),
        h("td", null, d.http_status ?? dash()),
        h("td", null, `${d.latency_ms} ms`),
        h("td", { class: "delivery-error" }, d.error || dash()),
      );
    }

    async function loadDeliveries(more: boolean) {
      clearTimeout(timer);
      const channel = shown;
      if (!channel) return;
      const token = showToken;
      const q = new URLSearchParams({ limit: String(DELIVERIES_PAGE) });
      if (more && oldest !== null) q.set("before", String(oldest));
      const rows = listOf<Delivery>(await api.get<unknown>(`/v1/channels/${seg(channel.id)}/deliveries?${q}`), "deliveries");
      if (!live() || token !== showToken) return;
      deliveriesErrors.clear();
      if (more) {
        paged = true;
        rows.forEach((d) => deliveriesBody.appendChild(deliveryRow(d)));
      } else {
        paged = false;
        mount(deliveriesBody, rows.map(deliveryRow));
      }
      if (rows.length > 0) oldest = rows[rows.length - 1].id;
      else if (!more) oldest = null;
      const any = deliveriesBody.childElementCount > 0;
      deliveriesTable.hidden = !any;
      deliveriesEmpty.hidden = any;
      older.hidden = rows.length < DELIVERIES_PAGE;
      schedule();
    }

    // Only the first page refreshes by itself: a paged-back view stays as the user left it.
    function schedule() {
      clearTimeout(timer);
      if (!shown || paged) return;
      timer = window.setTimeout(() => {
        if (!live() || !shown || !panel.isConnected) return;
        loadDeliveries(false).catch((err) => deliveriesErrors.show(err));
      }, DELIVERIES_POLL_MS);
    }

    async function showDeliveries(c: Channel) {
      shown = c;
      showToken++;
      paged = false;
      oldest = null;
      deliveriesHeading.textContent = `Recent deliveries: ${c.name}`;
      deliveriesCaption.textContent = `Recent deliveries of ${c.name}`;
      deliveriesBody.replaceChildren();
      deliveriesTable.hidden = true;
      deliveriesEmpty.hidden = true;
      older.hidden = true;
      deliveriesErrors.clear();
      panel.hidden = false;
      deliveriesHeading.focus();
      panel.scrollIntoView({ block: "nearest" });
      try {
        await loadDeliveries(false);
      } catch (err) {
        deliveriesErrors.show(err);
      }
    }

    function hideDeliveries() {
      clearTimeout(timer);
      shown = null;
      showToken++;
      panel.hidden = true;
    }

    // ---- Create -----------------------------------------------------------------------------
    const createErrors = errorBox();
    const reveal = h("div", { id: "new-channel", "aria-live": "polite" });
    const providerSelect = h(
      "select",
      { id: "channel-provider", name: "provider", "aria-describedby": "channel-provider-about" },
      PROVIDER_ORDER.map((p) => h("option", { value: p }, PROVIDERS[p].label)),
    );
    const providerAbout = h("small", { class: "hint", id: "channel-provider-about" });
    const settings = h("fieldset", { id: "channel-settings", class: "settings" });

    const provider = () => providerSelect.value as Provider;

    function renderSettings() {
      const info = PROVIDERS[provider()];
      providerAbout.textContent = info.about;
      fillSettings(settings, provider(), "channel-cfg", `${info.label} settings`);
    }
    providerSelect.addEventListener("change", () => {
      renderSettings();
      testResult.replaceChildren();
    });

    const events = eventChecks("channel-event");

    const testButton = h("button", { type: "button", class: "secondary", id: "channel-test" }, "Send test");
    const testResult = h("div", { id: "channel-test-result", role: "status", "aria-live": "polite" });
    const form = h(
      "form",
      { id: "create-channel-form" },
      h(
        "div",
        { class: "channel-basics" },
        field("Channel name", h("input", { id: "channel-name", name: "name", required: true, maxlength: 100, placeholder: "ops alerts" })),
        h("div", { class: "field" }, h("label", { for: "channel-provider" }, "Provider"), providerSelect, providerAbout),
      ),
      settings,
      events,
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Create channel"), testButton),
      testResult,
    );
    renderSettings();

    busy(
      testButton,
      async () => {
        createErrors.clear();
        testResult.replaceChildren();
        // Only the destination has to be filled in for a test; the browser explains what is off.
        for (const input of Array.from(settings.querySelectorAll("input"))) {
          if (!input.checkValidity()) {
            input.reportValidity();
            return;
          }
        }
        const data = new FormData(form);
        const name = str(data, "name").trim();
        mount(testResult, h("p", { class: "muted" }, "Sending a test message…"));
        let result: ChannelTestResult;
        try {
          result = await api.post<ChannelTestResult>("/v1/channels/test", {
            provider: provider(),
            config: configFrom(data, provider()),
            ...(name ? { name } : {}),
          });
        } catch (err) {
          testResult.replaceChildren();
          throw err;
        }
        const status = result.http_status != null ? `HTTP ${result.http_status}` : "no HTTP answer";
        mount(
          testResult,
          result.delivered
            ? h(
                "p",
                { class: "test-result ok" },
                h("strong", null, "Test delivered"),
                ` (${status} in ${result.latency_ms} ms). Check that it arrived.`,
              )
            : h(
                "p",
                { class: "test-result bad" },
                h("strong", null, "Test failed"),
                ` (${status} after ${result.latency_ms} ms)`,
                result.error ? [": ", h("span", { class: "test-error" }, result.error)] : ".",
              ),
        );
      },
      (err) => createErrors.show(err),
    );

    onSubmit(form, createErrors, async (data) => {
      const chosen = chosenEvents(data);
      const created = await api.post<CreatedChannel>("/v1/channels", {
        name: str(data, "name").trim(),
        provider: provider(),
        config: configFrom(data, provider()),
        events: chosen,
      });
      form.reset();
      renderSettings();
      testResult.replaceChildren();
      if (created.signing_secret) secretCallout(reveal, `Channel “${created.name}” created.`, created.signing_secret, "signing-secret-value");
      else {
        reveal.replaceChildren();
        app.notify("success", `Channel “${created.name}” created.`);
      }
      await load();
    });

    // ---- Page -------------------------------------------------------------------------------
    mount(
      root,
      h("h1", { tabindex: "-1" }, "Channels"),
      h(
        "p",
        { class: "lede" },
        "Where the lifecycle events of ",
        h("strong", null, currentTeam(app)?.name ?? "the team"),
        " go: a signed webhook, Slack, Discord, Teams, Google Chat, Telegram or Matrix.",
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "channels-h" },
        h("h2", { id: "channels-h" }, "Your channels"),
        listErrors,
        retry,
        table,
        empty,
      ),
      editPanel,
      panel,
      h(
        "section",
        { class: "card", "aria-labelledby": "new-channel-h" },
        h("h2", { id: "new-channel-h" }, "New channel"),
        reveal,
        createErrors,
        form,
      ),
    );
    await load();
  },
};
