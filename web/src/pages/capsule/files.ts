// A file browser for a running capsule (API.md, Files): list a directory, walk into
// subdirectories and back up, upload (streamed, no size cap beyond the capsule's disk), download,
// make a directory, delete.

import { api, postForBlob, postForm, seg, type FileEntry } from "../../api";
import type { App } from "../../app";
import { busy, errorBox, h, mount } from "../../dom";
import { size } from "../../format";

/** `/a/b` + `c` → `/a/b/c`. */
function join(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

/** The parent of an absolute path (`/` for `/` itself). */
function parent(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

/** Whether `name` is usable as one path element. */
function validName(name: string): boolean {
  return name !== "" && name !== "." && name !== ".." && !name.includes("/") && !name.includes("\0");
}

export interface FilesPanel {
  el: HTMLElement;
  setRunning(running: boolean): void;
}

export function filesPanel(app: App, capsuleId: string, live: () => boolean, start = "/"): FilesPanel {
  const base = `/v1/capsules/${seg(capsuleId)}/files`;
  const errors = errorBox();
  const crumbs = h("nav", { id: "files-path", class: "crumbs", "aria-label": "Directory" });
  const tbody = h("tbody");
  const table = h(
    "table",
    { id: "files" },
    h("caption", { class: "sr-only" }, "Files"),
    h("thead", null, h("tr", null, ["Name", "Size", "Permissions", "Owner", "Modified", ""].map((c) => h("th", { scope: "col" }, c)))),
    tbody,
  );
  const empty = h("p", { class: "muted", id: "files-empty", hidden: true }, "This directory is empty.");
  const paused = h("p", { class: "muted", hidden: true }, "Files can be browsed only while the capsule is running.");

  const fileInput = h("input", { type: "file", id: "files-upload-input", multiple: true, "aria-label": "Files to upload" });
  const uploadButton = h("button", { type: "button", id: "files-upload", class: "secondary" }, "Upload");
  const progress = h("span", { id: "files-progress", class: "muted", "aria-live": "polite" });
  const dirName = h("input", { id: "files-mkdir-name", placeholder: "new-directory", autocomplete: "off", spellcheck: false, "aria-label": "New directory name" });
  const mkdirButton = h("button", { type: "button", id: "files-mkdir", class: "secondary" }, "New directory");
  const refreshButton = h("button", { type: "button", id: "files-refresh", class: "secondary" }, "Refresh");
  const toolbar = h("div", { class: "actions files-toolbar" }, fileInput, uploadButton, progress, dirName, mkdirButton, refreshButton);

  const el = h("div", null, paused, crumbs, toolbar, errors, table, empty);

  let dir = start;
  let running = false;
  let generation = 0;

  function renderCrumbs() {
    const parts = dir.split("/").filter(Boolean);
    const links: (Node | string)[] = [];
    const link = (label: string, path: string) => {
      const a = h("a", { href: "#", "data-path": path }, label);
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        void open(path);
      });
      return a;
    };
    links.push(link("/", "/"));
    parts.forEach((p, i) => {
      const path = `/${parts.slice(0, i + 1).join("/")}`;
      if (i > 0) links.push(" / ");
      links.push(i === parts.length - 1 ? h("strong", { "aria-current": "location" }, p) : link(p, path));
    });
    mount(crumbs, links);
  }

  async function download(entry: FileEntry) {
    const blob = await postForBlob(`${base}/read`, { path: entry.path });
    const url = URL.createObjectURL(blob);
    const a = h("a", { href: url, download: entry.name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }

  function row(entry: FileEntry) {
    const report = (err: unknown) => errors.show(err);
    let name: Node;
    if (entry.type === "directory") {
      const a = h("a", { href: "#", class: "dir", "data-path": entry.path }, `${entry.name}/`);
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        void open(entry.path);
      });
      name = a;
    } else {
      name = h("span", null, entry.name, entry.type === "symlink" && entry.symlink_target ? h("span", { class: "muted" }, ` → ${entry.symlink_target}`) : null);
    }
    const actions: HTMLButtonElement[] = [];
    if (entry.type === "file") {
      const b = h("button", { type: "button", class: "secondary small", "aria-label": `Download ${entry.name}` }, "Download");
      busy(b, () => download(entry), report);
      actions.push(b);
    }
    const del = h("button", { type: "button", class: "danger small", "aria-label": `Delete ${entry.name}` }, "Delete");
    busy(
      del,
      async () => {
        const what = entry.type === "directory" ? `the directory ${entry.path} and everything in it` : entry.path;
        if (!confirm(`Delete ${what}?`)) return;
        await api.post(`${base}/remove`, { path: entry.path });
        app.notify("success", `Deleted ${entry.path}.`);
        await load();
      },
      report,
    );
    actions.push(del);
    return h(
      "tr",
      { "data-name": entry.name },
      h("th", { scope: "row" }, name),
      h("td", null, entry.type === "directory" ? "—" : size(entry.size)),
      h("td", null, h("code", null, entry.permissions)),
      h("td", null, `${entry.owner}:${entry.group}`),
      h("td", null, entry.modified_at ? new Date(entry.modified_at * 1000).toLocaleString() : "—"),
      h("td", { class: "actions" }, actions),
    );
  }

  async function load() {
    if (!running) return;
    const mine = ++generation;
    const res = await api.post<{ entries: FileEntry[] }>(`${base}/list`, { path: dir, depth: 1 });
    if (!live() || mine !== generation) return;
    errors.clear();
    const entries = [...(res?.entries ?? [])].sort((a, b) => {
      const ad = a.type === "directory" ? 0 : 1;
      const bd = b.type === "directory" ? 0 : 1;
      return ad - bd || a.name.localeCompare(b.name);
    });
    const up: Node[] = [];
    if (dir !== "/") {
      const a = h("a", { href: "#", id: "files-up" }, "../");
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        void open(parent(dir));
      });
      up.push(h("tr", null, h("th", { scope: "row" }, a), h("td", { colspan: 5 })));
    }
    mount(tbody, up, entries.map(row));
    empty.hidden = entries.length > 0;
  }

  async function open(path: string) {
    const before = dir;
    dir = path;
    renderCrumbs();
    try {
      await load();
    } catch (err) {
      // Stay where the listing worked; say why this one did not.
      dir = before;
      renderCrumbs();
      errors.show(err);
    }
  }

  busy(
    uploadButton,
    async () => {
      const files = Array.from(fileInput.files ?? []);
      if (files.length === 0) {
        errors.show(new Error("Choose one or more files to upload first."));
        return;
      }
      errors.clear();
      for (const [i, file] of files.entries()) {
        mount(progress, `Uploading ${file.name} (${size(file.size)}${files.length > 1 ? `, ${i + 1} of ${files.length}` : ""})…`);
        const form = new FormData();
        form.append("path", join(dir, file.name));
        form.append("file", file, file.name);
        try {
          await postForm(`${base}/stream/write`, form);
        } finally {
          mount(progress, "");
        }
      }
      fileInput.value = "";
      app.notify("success", files.length === 1 ? `Uploaded ${join(dir, files[0].name)}.` : `Uploaded ${files.length} files to ${dir}.`);
      await load();
    },
    (err) => errors.show(err),
  );

  busy(
    mkdirButton,
    async () => {
      const name = dirName.value.trim();
      if (!validName(name)) {
        errors.show(new Error("A directory name is one path element: not empty, no '/', not '.' or '..'."));
        return;
      }
      await api.post(`${base}/mkdir`, { path: join(dir, name) });
      dirName.value = "";
      app.notify("success", `Created ${join(dir, name)}.`);
      await load();
    },
    (err) => errors.show(err),
  );
  busy(refreshButton, () => load(), (err) => errors.show(err));

  renderCrumbs();
  return {
    el,
    setRunning(now: boolean) {
      const was = running;
      running = now;
      paused.hidden = now;
      for (const c of [fileInput, uploadButton, dirName, mkdirButton, refreshButton]) c.disabled = !now;
      if (now && !was) load().catch((err) => live() && errors.show(err));
    },
  };
}
