/**
 * The jobs table: newest first, refreshed every second, with filters and
 * the keyset cursor of `GET /v1/jobs` for older pages. Rows are kept by job
 * id and updated in place, so focus and reading position survive a refresh.
 *
 * @module
 */
import { api } from "./api.js";
import { h, pause, replace } from "./dom.js";
import { age, badge, budget, progress, shortId } from "./format.js";

const STATUSES = ["pending", "running", "success", "error", "cancelled", "timed_out"];
const REFRESH_MS = 1000;

/**
 * Mounts the jobs table.
 *
 * @param {HTMLElement} root where
 * @param {{ me: { principal: string, admin: boolean }, signal: AbortSignal, params: URLSearchParams }} ctx
 */
export function jobsView(root, ctx) {
  const { params, signal } = ctx;
  document.title = "Jobs · ARCP runtime";
  const filters = filterForm(params, ctx.me.admin);
  const status = h("p", { class: "muted", role: "status" }, "Loading…");
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "jobs cards" },
    h("caption", { class: "sr-only" }, "Jobs, newest first"),
    h(
      "thead",
      null,
      h(
        "tr",
        null,
        ["Job", "Status", "Agent", "Principal", "Age", "Progress", "Budget"].map((t) =>
          h("th", { scope: "col" }, t)
        ),
      ),
    ),
    tbody,
  );
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  replace(
    root,
    h("div", { class: "title" }, h("h1", null, "Jobs"), status),
    filters,
    h("div", { class: "table-wrap" }, table),
    pager,
  );

  /** @type {Map<string, ReturnType<typeof jobRow>>} */
  const rows = new Map();
  (async () => {
    while (!signal.aborted) {
      try {
        const page = await api(`/v1/jobs?${query(params)}`, { signal });
        render(page);
      } catch (e) {
        if (signal.aborted) return;
        status.textContent = `Could not load jobs: ${e.message}`;
        status.className = "error";
      }
      await pause(REFRESH_MS, signal);
    }
  })();

  function render(page) {
    const seen = new Set();
    for (const [i, job] of page.jobs.entries()) {
      seen.add(job.job_id);
      let row = rows.get(job.job_id);
      if (!row) {
        row = jobRow(job);
        rows.set(job.job_id, row);
      }
      row.update(job);
      // Keep the server's order without moving rows that are already in place.
      if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] ?? null);
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    status.className = "muted";
    status.textContent = page.jobs.length === 0
      ? "No jobs match."
      : `${page.jobs.length} job${page.jobs.length === 1 ? "" : "s"} shown · live`;
    const links = [];
    if (params.get("cursor")) {
      links.push(h("a", { href: `#/jobs?${query(params, { cursor: null })}` }, "← Newest"));
    }
    if (page.next_cursor) {
      links.push(
        h("a", { href: `#/jobs?${query(params, { cursor: page.next_cursor })}` }, "Older →"),
      );
    }
    if (
      pager.childElementCount !== links.length ||
      pager.textContent !== links.map((l) => l.textContent).join("")
    ) {
      replace(pager, ...links);
    }
  }
}

/**
 * The API query of a page: filters and cursor from the URL.
 *
 * @param {URLSearchParams} params the view's parameters
 * @param {Record<string, string | null>} [change] parameters to set or drop
 * @returns {string}
 */
function query(params, change = {}) {
  const q = new URLSearchParams();
  for (const key of ["status", "agent", "principal", "cursor"]) {
    const value = key in change ? change[key] : params.get(key);
    if (value) q.set(key, value);
  }
  return q.toString();
}

/**
 * The filter form; submitting it changes the URL, which re-mounts the view.
 *
 * @param {URLSearchParams} params current filters
 * @param {boolean} admin whether a principal filter makes sense
 * @returns {HTMLFormElement}
 */
function filterForm(params, admin) {
  const status = h(
    "select",
    { id: "f-status", name: "status" },
    h("option", { value: "" }, "any"),
    STATUSES.map((s) =>
      h("option", { value: s, selected: params.get("status") === s }, s.replace("_", " "))
    ),
  );
  const agent = h("input", {
    id: "f-agent",
    name: "agent",
    value: params.get("agent") ?? "",
    placeholder: "name",
  });
  const principal = admin
    ? h("input", {
      id: "f-principal",
      name: "principal",
      value: params.get("principal") ?? "",
      placeholder: "any",
    })
    : null;
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter jobs" },
    h("div", null, h("label", { for: "f-status" }, "Status"), status),
    h("div", null, h("label", { for: "f-agent" }, "Agent"), agent),
    principal && h("div", null, h("label", { for: "f-principal" }, "Principal"), principal),
    h("button", { type: "submit" }, "Filter"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (String(v).trim()) q.set(k, String(v).trim());
    location.hash = `#/jobs${q.size ? `?${q}` : ""}`;
  });
  return form;
}

/**
 * One row of the table, built once and updated in place.
 *
 * @param {any} job the job's summary
 * @returns {{ tr: HTMLTableRowElement, update: (job: any) => void }}
 */
function jobRow(job) {
  const cells = {
    status: h("td", { "data-label": "Status", class: "c-status" }),
    age: h("td", { "data-label": "Age", class: "num c-age" }),
    progress: h("td", { "data-label": "Progress", class: "c-progress" }),
    budget: h("td", { "data-label": "Budget", class: "c-budget" }),
  };
  const tr = h(
    "tr",
    { "data-job-id": job.job_id },
    h(
      "th",
      { scope: "row", "data-label": "Job", class: "c-job" },
      h(
        "a",
        { href: `#/jobs/${encodeURIComponent(job.job_id)}`, class: "mono", title: job.job_id },
        shortId(job.job_id),
      ),
    ),
    cells.status,
    h("td", { "data-label": "Agent", class: "c-agent" }, job.agent),
    h("td", { "data-label": "Principal", class: "c-principal" }, job.principal),
    cells.age,
    cells.progress,
    cells.budget,
  );
  let last = "";
  return {
    tr,
    update(next) {
      cells.age.textContent = age(next.created_at);
      const key = JSON.stringify([next.status, next.progress, next.budget, next.error]);
      if (key === last) return;
      last = key;
      tr.dataset.status = next.status;
      replace(
        cells.status,
        badge(next.status),
        // The code says more than the status only when they differ (not CANCELLED on cancelled).
        next.error && next.error.code.toLowerCase() !== next.status
          ? h("span", { class: "code" }, next.error.code)
          : null,
      );
      replace(cells.progress, progress(next.progress, next.status));
      replace(cells.budget, budget(next.budget));
      // A phone's card leaves out the bars a job does not have.
      cells.progress.classList.toggle("empty", !next.progress && next.status !== "running");
      cells.budget.classList.toggle("empty", !next.budget || Object.keys(next.budget).length === 0);
    },
  };
}
