/**
 * One job: its record, lease and credentials (ids only: the API never
 * returns a value), its events as they happen (Server-Sent Events from
 * `GET /v1/jobs/:id/events`, resumed from the last index if the stream
 * drops before the job ends), and the operator's cancel.
 *
 * @module
 */
import { api, sse } from "./api.js";
import { h, pause, replace } from "./dom.js";
import { age, badge, budget, clock, duration, json, progress, TERMINAL } from "./format.js";

const RECORD_REFRESH_MS = 2000;
/** Events kept on the page; a job may log up to 100 000, the tab should not hold them all. */
const MAX_SHOWN = 1000;

/**
 * Mounts the job view.
 *
 * @param {HTMLElement} root where
 * @param {string} jobId the job
 * @param {{ signal: AbortSignal }} ctx
 */
export function jobView(root, jobId, ctx) {
  const { signal } = ctx;
  document.title = `Job ${jobId} · ARCP runtime`;
  const heading = h("h1", null, "Job ", h("span", { class: "mono id" }, jobId));
  const statusCell = h("div", { class: "status-line", role: "status", "aria-live": "polite" });
  const cancel = h(
    "button",
    { type: "button", class: "danger", id: "cancel-job", hidden: true },
    "Cancel job",
  );
  const summary = h("dl", { class: "facts" });
  const live = h("div", { class: "live-state" });
  const lease = h("div");
  const credentials = h("div");
  const eventCount = h("span", { class: "muted" });
  const events = h("ol", { class: "events", id: "events" });
  const streamState = h("p", { class: "muted", id: "stream-state" }, "Connecting…");
  const dialog = cancelDialog(jobId, () => refresh());
  replace(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "← Jobs")),
    h("div", { class: "title" }, heading, cancel),
    statusCell,
    h(
      "div",
      { class: "grid" },
      h(
        "section",
        { class: "card", "aria-labelledby": "h-summary" },
        h("h2", { id: "h-summary" }, "Record"),
        summary,
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "h-live" },
        h("h2", { id: "h-live" }, "Progress and budget"),
        live,
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "h-lease" },
        h("h2", { id: "h-lease" }, "Lease"),
        lease,
      ),
      h(
        "section",
        { class: "card", "aria-labelledby": "h-creds" },
        h("h2", { id: "h-creds" }, "Credentials"),
        credentials,
      ),
    ),
    h(
      "section",
      { class: "card", "aria-labelledby": "h-events" },
      h("div", { class: "title" }, h("h2", { id: "h-events" }, "Events"), eventCount),
      streamState,
      // The log role (polite announcements) on a wrapper: on the list itself
      // it would take away the list's semantics.
      h("div", { role: "log", "aria-label": "Job events" }, events),
    ),
    dialog,
  );
  cancel.addEventListener("click", () => dialog.showModal());

  let job = null;
  let ended = false;
  let lastProgress;
  /** Who cancelled the job, from its terminal event (the record does not say). */
  let actor;
  let count = 0;

  async function refresh() {
    try {
      job = (await api(`/v1/jobs/${encodeURIComponent(jobId)}`, { signal })).job;
      ended = TERMINAL.has(job.status);
      render(job);
    } catch (e) {
      if (signal.aborted) return;
      replace(
        statusCell,
        h(
          "span",
          { class: "error" },
          e.status === 404 ? "No such job, or not yours to see." : e.message,
        ),
      );
    }
  }

  function render(job) {
    replace(
      statusCell,
      badge(job.status),
      job.error
        ? h(
          "span",
          { class: "code" },
          `${job.error.code}: ${job.error.message}${actor ? ` (by ${actor})` : ""}`,
        )
        : null,
    );
    cancel.hidden = ended;
    replace(
      summary,
      fact("Agent", job.agent),
      fact("Principal", job.principal),
      fact("Status", job.status),
      fact("Created", `${clock(job.created_at)} (${age(job.created_at)} ago)`),
      job.ended_at
        ? fact(
          "Ended",
          `${clock(job.ended_at)} (ran ${
            duration(Date.parse(job.ended_at) - Date.parse(job.created_at))
          })`,
        )
        : null,
      job.max_runtime_sec !== undefined ? fact("Max runtime", `${job.max_runtime_sec}s`) : null,
      fact("Session", h("span", { class: "mono" }, job.session_id ?? "—")),
      fact("Trace", h("span", { class: "mono" }, job.trace_id ?? "—")),
      job.parent_job_id
        ? fact(
          "Parent job",
          h(
            "a",
            { class: "mono", href: `#/jobs/${encodeURIComponent(job.parent_job_id)}` },
            job.parent_job_id,
          ),
        )
        : null,
    );
    replace(
      live,
      h(
        "div",
        { class: "meter-row" },
        h("span", { class: "label" }, "Progress"),
        progress(lastProgress ?? job.progress, job.status),
      ),
      (lastProgress ?? job.progress)?.message
        ? h("p", { class: "muted" }, (lastProgress ?? job.progress).message)
        : null,
      h("div", { class: "meter-row" }, h("span", { class: "label" }, "Budget"), budget(job.budget)),
    );
    replace(
      lease,
      job.lease && Object.keys(job.lease).length
        ? json(job.lease)
        : h("p", { class: "muted" }, "No capabilities granted."),
      job.lease_constraints ? h("h3", null, "Constraints") : null,
      job.lease_constraints ? json(job.lease_constraints) : null,
    );
    const creds = job.credentials ?? [];
    replace(
      credentials,
      creds.length === 0 ? h("p", { class: "muted" }, "None issued.") : h(
        "table",
        { class: "plain" },
        h(
          "thead",
          null,
          h("tr", null, ["Id", "Profile", "Status"].map((t) => h("th", { scope: "col" }, t))),
        ),
        h(
          "tbody",
          null,
          creds.map((c) =>
            h(
              "tr",
              null,
              h("td", { class: "mono" }, c.id),
              h("td", null, c.profile ?? "—"),
              h("td", null, badge(c.status)),
            )
          ),
        ),
      ),
    );
  }

  // The record: now, after each event burst, and every few seconds (the
  // move from pending to running has no event of its own in every runtime).
  (async () => {
    await refresh();
    while (!signal.aborted && !ended) {
      await pause(RECORD_REFRESH_MS, signal);
      if (!signal.aborted) await refresh();
    }
  })();

  // The events: history, then live, until the terminal item.
  (async () => {
    let after = -1;
    let finished = false;
    let refreshing = false;
    while (!signal.aborted && !finished) {
      try {
        const path = `/v1/jobs/${encodeURIComponent(jobId)}/events${
          after >= 0 ? `?after=${after}` : ""
        }`;
        streamState.textContent = "Live: events appear as they happen.";
        for await (const message of sse(path, signal)) {
          const item = JSON.parse(message.data);
          if (item.index <= after) continue;
          after = item.index;
          // Follow the log while the reader is at its end, not when they scrolled up.
          const atEnd = events.scrollTop + events.clientHeight >= events.scrollHeight - 4;
          events.append(eventItem(item));
          if (events.childElementCount > MAX_SHOWN) events.firstElementChild.remove();
          if (atEnd) events.scrollTop = events.scrollHeight;
          count++;
          eventCount.textContent = count > MAX_SHOWN
            ? `${count} events, the last ${MAX_SHOWN} shown`
            : `${count} event${count === 1 ? "" : "s"}`;
          if (item.kind === "progress") {
            lastProgress = item.payload?.body ?? item.payload;
            if (job) render(job);
          }
          if (item.type === "job.result" || item.type === "job.error") finished = true;
          if (item.type === "job.error") actor = item.payload?.details?.actor;
          if (!refreshing) {
            refreshing = true;
            queueMicrotask(async () => {
              await refresh();
              refreshing = false;
            });
          }
        }
        if (!finished) {
          // The server closed early (a restart, a proxy): resume after the last index.
          streamState.textContent = "Stream interrupted; reconnecting…";
          await pause(1000, signal);
        }
      } catch (e) {
        if (signal.aborted) return;
        // A refusal will not change by asking again; anything else may (a restart, a proxy).
        const refused = e.status === 401 || e.status === 403 || e.status === 404;
        streamState.textContent = `Event stream failed: ${e.message}.${
          refused ? "" : " Retrying…"
        }`;
        if (refused) return;
        await pause(2000, signal);
      }
    }
    if (finished) {
      streamState.textContent = "The job has ended; this is its whole event log.";
      await refresh();
    }
  })();
}

/**
 * One fact of the record.
 *
 * @param {string} name
 * @param {Node | string} value
 * @returns {DocumentFragment}
 */
function fact(name, value) {
  const f = document.createDocumentFragment();
  f.append(h("dt", null, name), h("dd", null, value));
  return f;
}

/**
 * One event of the log: when, what, a line saying it, and its payload on
 * demand.
 *
 * @param {{ index: number, type: string, kind?: string, time: string, payload: any }} item
 * @returns {HTMLLIElement}
 */
function eventItem(item) {
  const what = item.kind ?? item.type.replace(/^job\./, "");
  return h(
    "li",
    { class: `event k-${what}`, "data-index": item.index, "data-kind": what },
    h(
      "details",
      null,
      h(
        "summary",
        null,
        h("span", { class: "mono idx" }, `#${item.index}`),
        h(
          "time",
          { datetime: item.time, class: "mono" },
          new Date(item.time).toLocaleTimeString(undefined, { hour12: false }),
        ),
        h("span", { class: "kind" }, what),
        h("span", { class: "line" }, describe(item)),
      ),
      json(item.payload),
    ),
  );
}

/**
 * A one-line description of an event.
 *
 * @param {{ type: string, kind?: string, payload: any }} item
 * @returns {string}
 */
function describe(item) {
  const p = item.payload ?? {};
  const b = p.body ?? p;
  switch (item.kind ?? item.type) {
    case "progress":
      return `${b.current}${b.total !== undefined ? ` / ${b.total}` : ""}${
        b.units ? ` ${b.units}` : ""
      }${b.message ? ` — ${b.message}` : ""}`;
    case "log":
      return `[${b.level}] ${b.message}`;
    case "status":
      return `${b.phase}${b.message ? ` — ${b.message}` : ""}`;
    case "thought":
      return b.text ?? "";
    case "tool_call":
      return `${b.tool} (${b.call_id})`;
    case "tool_result":
      return b.error ? `${b.call_id} failed: ${b.error.code}` : `${b.call_id} returned`;
    case "metric":
      return `${b.name} = ${b.value}${b.unit ? ` ${b.unit}` : ""}`;
    case "artifact_ref":
      return `${b.uri} (${b.content_type})`;
    case "delegate":
      return `delegated to ${b.agent}`;
    case "job.result":
      return "succeeded";
    case "job.error":
      return `${p.final_status}: ${p.code} — ${p.message}${
        p.details?.actor ? ` (by ${p.details.actor})` : ""
      }`;
    case "job.accepted":
      return "accepted";
    default:
      return "";
  }
}

/**
 * The cancel confirmation, a modal dialog with an optional reason.
 *
 * @param {string} jobId the job
 * @param {() => void} done called after the runtime accepted the cancel
 * @returns {HTMLDialogElement}
 */
function cancelDialog(jobId, done) {
  const reason = h("input", {
    id: "cancel-reason",
    name: "reason",
    autocomplete: "off",
    placeholder: "optional",
  });
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const confirm = h(
    "button",
    { type: "submit", class: "danger", id: "confirm-cancel" },
    "Cancel the job",
  );
  const dialog = h(
    "dialog",
    { "aria-labelledby": "cancel-title" },
    h(
      "form",
      { method: "dialog" },
      h("h2", { id: "cancel-title" }, "Cancel this job?"),
      h(
        "p",
        null,
        "The agent is told to stop; the job ends CANCELLED and its session is told who cancelled it.",
      ),
      h("label", { for: "cancel-reason" }, "Reason"),
      reason,
      error,
      h(
        "div",
        { class: "actions" },
        h(
          "button",
          { type: "button", class: "quiet", onclick: () => dialog.close() },
          "Keep it running",
        ),
        confirm,
      ),
    ),
  );
  dialog.querySelector("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    confirm.disabled = true;
    try {
      const body = reason.value.trim() ? { reason: reason.value.trim() } : {};
      await api(`/v1/jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST", body });
      dialog.close();
      done();
    } catch (e) {
      error.hidden = false;
      error.textContent = e.status === 409
        ? `Already ended (${e.details?.status ?? "finished"}).`
        : e.message;
    } finally {
      confirm.disabled = false;
    }
  });
  return dialog;
}
