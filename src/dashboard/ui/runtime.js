/**
 * The runtime and its hosts: version, uptime, drain state, jobs by status,
 * the sandbox's processes with their memory, the limits in force, and the
 * diagnostics (admins only: they describe the deployment).
 *
 * @module
 */
import { api } from "./api.js";
import { h, pause, replace } from "./dom.js";
import { badge, bytes, clock, duration, gauge } from "./format.js";

const REFRESH_MS = 3000;
const STATUSES = ["pending", "running", "success", "error", "cancelled", "timed_out"];

/**
 * Mounts the runtime page.
 *
 * @param {HTMLElement} root where
 * @param {{ me: { admin: boolean }, signal: AbortSignal }} ctx
 */
export function runtimeView(root, ctx) {
  const { signal } = ctx;
  document.title = "Runtime · ARCP runtime";
  const status = h("p", { class: "muted", role: "status" }, "Loading…");
  const tiles = h("div", { class: "tiles" });
  const byStatus = h("div");
  const hosts = h("div");
  const limits = h("div");
  const diagnostics = h("div");
  replace(
    root,
    h("div", { class: "title" }, h("h1", null, "Runtime"), status),
    tiles,
    h(
      "div",
      { class: "grid" },
      section("Diagnostics", "h-diag", diagnostics),
      section("Jobs by status", "h-status", byStatus),
      section("Sandbox hosts", "h-hosts", hosts),
      section("Limits", "h-limits", limits),
    ),
  );
  if (!ctx.me.admin) {
    replace(diagnostics, h("p", { class: "muted" }, "Diagnostics are shown to admins."));
  }

  (async () => {
    while (!signal.aborted) {
      try {
        const [rt, diag] = await Promise.all([
          api("/v1/runtime", { signal }),
          ctx.me.admin ? api("/v1/diagnostics", { signal }) : null,
        ]);
        render(rt);
        if (diag) renderDiagnostics(diag.items);
        status.className = "muted";
        status.textContent = "live";
      } catch (e) {
        if (signal.aborted) return;
        status.className = "error";
        status.textContent = `Could not load the runtime: ${e.message}`;
      }
      await pause(REFRESH_MS, signal);
    }
  })();

  function render(rt) {
    replace(
      tiles,
      tile("Version", rt.version),
      tile("Uptime", duration(rt.uptime_sec * 1000), `since ${clock(rt.started_at)}`),
      tile(
        "Sessions",
        rt.sessions?.live ?? 0,
        rt.sessions?.held !== undefined ? `attached · ${rt.sessions.held} held for resume` : null,
      ),
      tile("Live jobs", rt.jobs?.live ?? 0),
      tile(
        "State",
        badge(rt.drain?.state ?? "serving"),
        rt.drain?.deadline ? `until ${clock(rt.drain.deadline)}` : null,
      ),
      tile(
        "Sandbox",
        rt.sandbox?.mode ?? "—",
        `${rt.sandbox?.warm ?? 0} warm${
          rt.sandbox?.memory_mb ? ` · ${rt.sandbox.memory_mb} MiB per host` : ""
        }`,
      ),
      rt.storage
        ? tile(
          "Storage",
          badge(rt.storage.ok ? "ok" : "failing"),
          rt.storage.ok ? null : `${rt.storage.error ?? ""} since ${clock(rt.storage.since)}`,
        )
        : null,
      rt.node_id ? tile("Node", h("span", { class: "mono" }, rt.node_id)) : null,
    );
    const counts = rt.jobs?.by_status ?? {};
    const total = STATUSES.reduce((n, s) => n + (counts[s] ?? 0), 0);
    replace(
      byStatus,
      h(
        "ul",
        { class: "bars" },
        STATUSES.map((s) =>
          h(
            "li",
            null,
            badge(s),
            gauge(counts[s] ?? 0, Math.max(total, 1), `${s} jobs`),
            h("span", { class: "num" }, counts[s] ?? 0),
          )
        ),
      ),
    );
    const list = rt.sandbox?.hosts ?? [];
    replace(
      hosts,
      list.length === 0 ? h("p", { class: "muted" }, "No sandbox processes running.") : h(
        "table",
        { class: "plain" },
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            ["PID", "Jobs", "Memory"].map((t) => h("th", { scope: "col" }, t)),
          ),
        ),
        h(
          "tbody",
          null,
          list.map((p) =>
            h(
              "tr",
              null,
              h("td", { class: "mono" }, p.pid),
              h("td", { class: "num" }, p.jobs),
              h("td", null, hostMemory(p.rss_bytes, rt.sandbox?.memory_mb)),
            )
          ),
        ),
      ),
    );
    const entries = Object.entries(rt.limits ?? {});
    replace(
      limits,
      entries.length === 0 ? h("p", { class: "muted" }, "—") : h(
        "dl",
        { class: "facts" },
        entries.map(([k, v]) => {
          const f = document.createDocumentFragment();
          f.append(
            h("dt", null, k.replaceAll("_", " ")),
            h("dd", { class: "mono" }, typeof v === "object" ? JSON.stringify(v) : String(v)),
          );
          return f;
        }),
      ),
    );
  }

  function renderDiagnostics(items) {
    replace(
      diagnostics,
      items.length === 0 ? h("p", { class: "muted" }, "Nothing to report.") : h(
        "ul",
        { class: "diagnostics" },
        items.map((d) =>
          h(
            "li",
            { class: `diag ${d.level}` },
            h("span", { class: `badge s-${d.level}` }, d.level),
            h("span", null, d.message),
            h("code", null, d.code),
          )
        ),
      ),
    );
  }
}

/**
 * A host's memory: its resident size against the per-host ceiling, as a
 * gauge that turns amber past 70 % and red past 90 % (a host near its
 * ceiling is about to be restarted).
 *
 * @param {number | undefined} rss resident bytes, once the host reported them
 * @param {number | undefined} ceilingMb the per-host ceiling in MiB
 * @returns {Node | string}
 */
function hostMemory(rss, ceilingMb) {
  if (rss === undefined) return "—";
  if (!ceilingMb) return bytes(rss);
  const max = ceilingMb * 1024 * 1024;
  const share = rss / max;
  return h(
    "span",
    { class: "gauge" },
    gauge(
      rss,
      max,
      `Memory ${bytes(rss)} of ${ceilingMb} MiB`,
      share > 0.9 ? "out" : share > 0.7 ? "low" : "good",
    ),
    h("span", { class: "num" }, `${bytes(rss)} / ${ceilingMb} MiB`),
  );
}

/**
 * A card with a heading.
 *
 * @param {string} title its heading
 * @param {string} id the heading's id
 * @param {Node} body its content
 * @returns {HTMLElement}
 */
function section(title, id, body) {
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), body);
}

/**
 * One figure of the summary.
 *
 * @param {string} name
 * @param {Node | string | number} value
 * @param {string | null} [note]
 * @returns {HTMLElement}
 */
function tile(name, value, note) {
  return h(
    "div",
    { class: "tile" },
    h("span", { class: "label" }, name),
    h("span", { class: "value" }, value),
    note ? h("span", { class: "note" }, note) : null,
  );
}
