// What the admin pages share: the platform-admin gate, the section's tabs, and cursor paging
// of the admin lists (`limit`/`cursor` in, `X-Next-Cursor` out; API contract of /v1/admin/*).

import { getPage, type ListPage } from "../../api";
export { allPages } from "../../api";
import { isPlatformAdmin, type App } from "../../app";
import { busy, h, mount, notAllowed, type errorBox } from "../../dom";

export const ADMIN_PAGE_SIZE = 50;

/** Page size from the URL's `limit` (1-200, as the API allows), else the default. */
export function pageLimit(query: URLSearchParams, fallback = ADMIN_PAGE_SIZE): number {
  const n = Number(query.get("limit"));
  return Number.isInteger(n) && n >= 1 && n <= 200 ? n : fallback;
}

const TABS: [string, string][] = [
  ["/admin", "Overview"],
  ["/admin/teams", "Teams"],
  ["/admin/users", "Users"],
  ["/admin/templates", "Templates"],
  ["/admin/capsules", "Capsules"],
  ["/admin/builds", "Builds"],
];

/** False (after rendering the refusal) unless the signed-in user is a platform admin. */
export function adminOnly(app: App, root: HTMLElement, title: string): boolean {
  if (isPlatformAdmin(app)) return true;
  mount(root, notAllowed(title, "Platform admins only: this page administers the whole Wrenn installation."));
  return false;
}

/** The admin section's own navigation. */
export function adminTabs(current: string): HTMLElement {
  return h(
    "nav",
    { class: "tabs", "aria-label": "Administration" },
    h(
      "ul",
      null,
      TABS.map(([href, label]) => h("li", null, h("a", { href, "aria-current": href === current ? "page" : null }, label))),
    ),
  );
}

/**
 * A table filled page by page: `reload()` shows the first page, the "Load more" button appends
 * the next while the server names one. Empty lists show `empty` instead of the table.
 */
export function pagedTable<T>(opts: {
  path: () => string;
  row: (item: T) => HTMLElement;
  table: HTMLTableElement;
  tbody: HTMLTableSectionElement;
  empty: HTMLElement;
  errors: ReturnType<typeof errorBox>;
  live: () => boolean;
  /** Items per page (default 50). */
  limit?: number;
  /** Called with every page's items (e.g. for totals). */
  onPage?: (page: ListPage<T>, first: boolean) => void;
}) {
  let next: string | null = null;
  // Bumped by every reload: an answer to an earlier reload, or a "Load more" of the list
  // before it, arrives too late to be shown.
  let generation = 0;
  const more = h("button", { type: "button", class: "secondary load-more", hidden: true }, "Load more");

  async function load(first: boolean) {
    const gen = first ? ++generation : generation;
    const page = await getPage<T>(opts.path(), first ? null : next, opts.limit ?? ADMIN_PAGE_SIZE);
    if (!opts.live() || gen !== generation) return;
    const rows = page.items.map(opts.row);
    if (first) mount(opts.tbody, rows);
    else rows.forEach((r) => opts.tbody.appendChild(r));
    next = page.next;
    more.hidden = next === null;
    const any = opts.tbody.childElementCount > 0;
    opts.table.hidden = !any;
    opts.empty.hidden = any;
    opts.onPage?.(page, first);
  }
  busy(more, () => load(false), (err) => opts.errors.show(err));

  return {
    /** The "Load more" button, to place under the table. */
    more: h("div", { class: "pager" }, more),
    reload: () => load(true),
  };
}

/**
 * Shows `fresh` in place of the row of item `id`: `tr`, or the row a reload put there while the
 * change that produced `fresh` was on its way (that row may predate the change). If keyboard
 * focus was in the replaced row, or was lost (its control was disabled meanwhile), it moves to
 * `fresh`'s control matching `focus`.
 */
export function replaceRow(tbody: HTMLElement, tr: HTMLElement, id: string, fresh: HTMLElement, focus: string) {
  const shown = tr.isConnected ? tr : tbody.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
  if (!shown) return;
  const active = document.activeElement;
  const refocus = active === null || active === document.body || shown.contains(active);
  shown.replaceWith(fresh);
  if (refocus) fresh.querySelector<HTMLElement>(focus)?.focus({ preventScroll: true });
}

/** A table head row of plain column titles. */
export function head(columns: string[]): HTMLElement {
  return h("thead", null, h("tr", null, columns.map((c) => h("th", { scope: "col" }, c))));
}
