// The "New build" form: a template name, the recipe, the files its COPY lines name (each under
// a path that defaults to the file's name), "rebuild even if unchanged", and for platform admins
// the platform scope. The API's refusal (a recipe error names its line) shows in the form; a
// queued build (or a reused earlier one) opens its page.

import { api, seg, type Build, type BuildFile, type CreateBuild } from "../../api";
import { isPlatformAdmin, type App } from "../../app";
import { errorBox, field, h, mount, onSubmit, str } from "../../dom";
import { size } from "../../format";

const RECIPE_EXAMPLE = `FROM minimal-debian
ENV APP_HOME=/srv/app
WORKDIR /srv/app
COPY app.py ./app.py
RUN apt-get install -y python3
START python3 app.py`;

/** A file's bytes as base64 (`btoa` over binary strings of bounded size). */
async function base64Of(file: File): Promise<string> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const parts: string[] = [];
  const CHUNK = 0x8000;
  for (let i = 0; i < bytes.length; i += CHUNK) parts.push(String.fromCharCode(...bytes.subarray(i, i + CHUNK)));
  return btoa(parts.join(""));
}

export function newBuildForm(app: App): HTMLElement {
  const errors = errorBox();
  /** The chosen files, each with the input holding the path the recipe names it by. */
  let chosen: { file: File; path: HTMLInputElement }[] = [];
  let fileSeq = 0;
  const fileList = h("ul", { class: "plain build-files", id: "build-files" });
  const picker = h("input", { id: "build-files-input", type: "file", multiple: true });

  function showFiles() {
    mount(
      fileList,
      chosen.map(({ file, path }) => {
        const remove = h("button", { type: "button", class: "secondary small", "aria-label": `Remove ${file.name}` }, "Remove");
        remove.addEventListener("click", () => {
          chosen = chosen.filter((c) => c.file !== file);
          showFiles();
          picker.focus();
        });
        return h(
          "li",
          { "data-file": file.name },
          h("label", { for: path.id }, `Path of ${file.name}`, h("span", { class: "muted" }, ` (${size(file.size)})`)),
          " ",
          path,
          " ",
          remove,
        );
      }),
    );
  }
  picker.addEventListener("change", () => {
    for (const file of Array.from(picker.files ?? [])) {
      const path = h("input", { id: `build-file-path-${++fileSeq}`, value: file.name, required: true, autocomplete: "off", spellcheck: false });
      chosen.push({ file, path });
    }
    // The same file may be chosen again later (after a remove, say).
    picker.value = "";
    showFiles();
  });

  const form = h(
    "form",
    { id: "new-build-form" },
    field(
      "Template name",
      h("input", {
        id: "build-name",
        name: "name",
        required: true,
        maxlength: 64,
        pattern: "[a-zA-Z0-9][a-zA-Z0-9._\\-]{0,63}",
        autocomplete: "off",
        spellcheck: false,
      }),
      "Letters, digits, dots, dashes and underscores. A later build of the same name replaces the template once it succeeds.",
    ),
    field(
      "Recipe",
      h("textarea", { id: "build-recipe", name: "recipe", required: true, rows: 8, spellcheck: false, placeholder: RECIPE_EXAMPLE, class: "recipe" }),
      "FROM first, then RUN, START, ENV, WORKDIR, USER, COPY and HEALTHCHECK lines, one per line. START keeps a process running: the template is a snapshot.",
    ),
    field("Files for COPY", picker, "COPY names each file by its path below (the file's name unless you change it)."),
    fileList,
    h("label", { class: "check-inline" }, h("input", { type: "checkbox", name: "rebuild", id: "build-rebuild" }), "Rebuild even if unchanged"),
    isPlatformAdmin(app)
      ? h("label", { class: "check-inline" }, h("input", { type: "checkbox", name: "platform", id: "build-platform" }), "Platform template (every team can use it)")
      : null,
    h("div", { class: "form-actions" }, h("button", { type: "submit", id: "build-submit" }, "Start build")),
  );

  onSubmit(form, errors, async (data) => {
    const files: BuildFile[] = [];
    for (const { file, path } of chosen) files.push({ path: path.value.trim(), content_base64: await base64Of(file) });
    const body: CreateBuild = {
      name: str(data, "name").trim(),
      recipe: str(data, "recipe"),
      files,
      rebuild: data.get("rebuild") !== null,
      scope: data.get("platform") !== null ? "platform" : "team",
    };
    const build = await api.post<Build>("/v1/builds", body);
    if (build.reused) {
      app.notify("info", `Nothing changed since an earlier build of ${build.name}: its template was reused. Tick “Rebuild even if unchanged” to build it again.`);
    } else {
      app.notify("success", `Build of ${build.name} queued.`);
    }
    app.navigate(`/builds/${seg(build.id)}`);
  });

  return h("section", { class: "card", "aria-labelledby": "new-build-h" }, h("h2", { id: "new-build-h" }, "New build"), errors, form);
}
