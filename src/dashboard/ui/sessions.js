/**
 * The sessions: who is connected (or detached and resumable), since when,
 * with how many live jobs. Refreshed every few seconds.
 *
 * @module
 */
import { api } from "./api.js";
import { h, pause, replace } from "./dom.js";
import { age, badge, clock } from "./format.js";

const REFRESH_MS = 3000;

/**
 * Mounts the sessions table.
 *
 * @param {HTMLElement} root where
 * @param {{ me: { admin: boolean }, signal: AbortSignal }} ctx
 */
export function sessionsView(root, ctx) {
  const { signal } = ctx;
  document.title = "Sessions · ARCP runtime";
  const status = h("p", { class: "muted", role: "status" }, "Loading…");
  const tbody = h("tbody");
  replace(
    root,
    h("div", { class: "title" }, h("h1", null, "Sessions"), status),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "cards" },
        h("caption", { class: "sr-only" }, ctx.me.admin ? "All sessions" : "Your sessions"),
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            ["Session", "Principal", "State", "Opened", "Live jobs"].map((t) =>
              h("th", { scope: "col" }, t)
            ),
          ),
        ),
        tbody,
      ),
    ),
  );
  (async () => {
    while (!signal.aborted) {
      try {
        const { sessions } = await api("/v1/sessions", { signal });
        replace(
          tbody,
          sessions.map((s) =>
            h(
              "tr",
              null,
              h("th", { scope: "row", "data-label": "Session", class: "mono" }, s.session_id),
              h("td", { "data-label": "Principal" }, s.principal),
              h("td", { "data-label": "State" }, badge(s.state)),
              h(
                "td",
                { "data-label": "Opened", title: clock(s.opened_at) },
                `${age(s.opened_at)} ago`,
              ),
              h("td", { "data-label": "Live jobs", class: "num" }, s.live_jobs),
            )
          ),
        );
        status.className = "muted";
        status.textContent = sessions.length === 0
          ? "No sessions."
          : `${sessions.length} session${sessions.length === 1 ? "" : "s"} · live`;
      } catch (e) {
        if (signal.aborted) return;
        status.className = "error";
        status.textContent = `Could not load sessions: ${e.message}`;
      }
      await pause(REFRESH_MS, signal);
    }
  })();
}
