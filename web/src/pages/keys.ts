// API keys of the current team: create (the plaintext key is shown once, here only), list,
// revoke.

import { api, getAll, seg, type ApiKey, type CreatedApiKey } from "../api";
import { currentTeam, type Page } from "../app";
import { busy, copyButton, errorBox, field, h, mount, onSubmit, str, time } from "../dom";

export const apiKeysPage: Page = {
  title: "API keys",
  async render(root, { app, live }) {
    const errors = errorBox();
    const reveal = h("div", { id: "new-key", "aria-live": "polite" });
    const tbody = h("tbody");
    const table = h(
      "table",
      { id: "api-keys", hidden: true },
      h("caption", { class: "sr-only" }, "API keys"),
      h("thead", null, h("tr", null, ["Name", "Key", "Created", "Last used", ""].map((c) => h("th", { scope: "col" }, c)))),
      tbody,
    );
    const empty = h("p", { class: "muted", hidden: true }, "No API keys yet.");

    const form = h(
      "form",
      { id: "create-key-form", class: "inline-form" },
      field("Key name", h("input", { id: "key-name", name: "name", required: true, maxlength: 100, placeholder: "ci-runner" })),
      h("button", { type: "submit" }, "Create key"),
    );
    onSubmit(form, errors, async (data) => {
      const created = await api.post<CreatedApiKey>("/v1/api-keys", { name: str(data, "name").trim() });
      form.reset();
      showOnce(created);
      await load();
    });

    function showOnce(created: CreatedApiKey) {
      const keyEl = h("code", { id: "new-key-value", class: "secret" }, created.key);
      const copy = copyButton(created.key, keyEl);
      const done = h("button", { type: "button" }, "I have saved it");
      done.addEventListener("click", () => reveal.replaceChildren());
      mount(
        reveal,
        h(
          "div",
          { class: "callout", role: "status" },
          h("p", null, h("strong", null, `Key “${created.name}” created.`), " Copy it now: it will not be shown again."),
          h("div", { class: "secret-row" }, keyEl, copy),
          done,
        ),
      );
    }

    async function load() {
      const keys = await getAll<ApiKey>("/v1/api-keys");
      if (!live()) return;
      empty.hidden = keys.length > 0;
      table.hidden = keys.length === 0;
      mount(
        tbody,
        keys.map((k) => {
          const revoke = h("button", { type: "button", class: "danger small", "aria-label": `Revoke ${k.name}` }, "Revoke");
          busy(
            revoke,
            async () => {
              if (!confirm(`Revoke the key “${k.name}”? Programs using it stop working.`)) return;
              await api.del(`/v1/api-keys/${seg(k.id)}`);
              app.notify("success", `Key “${k.name}” revoked.`);
              await load();
            },
            (err) => errors.show(err),
          );
          return h(
            "tr",
            { "data-id": k.id },
            h("td", null, k.name),
            h("td", null, h("code", null, `${k.key_prefix}…`)),
            h("td", null, time(k.created_at)),
            h("td", null, k.last_used ? time(k.last_used) : h("span", { class: "muted" }, "never")),
            h("td", { class: "actions" }, revoke),
          );
        }),
      );
    }

    mount(
      root,
      h("h1", { tabindex: "-1" }, "API keys"),
      h(
        "p",
        { class: "lede" },
        "Keys act for the team ",
        h("strong", null, currentTeam(app)?.name ?? ""),
        ". Send one as the ",
        h("code", null, "X-API-Key"),
        " header.",
      ),
      errors,
      form,
      reveal,
      table,
      empty,
    );
    await load();
  },
};
