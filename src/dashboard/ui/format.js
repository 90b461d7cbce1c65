/**
 * How values are shown: ages, durations, sizes, statuses, progress and
 * budgets.
 *
 * @module
 */
import { h } from "./dom.js";

/** The statuses a job ends in. */
export const TERMINAL = new Set(["success", "error", "cancelled", "timed_out"]);

/**
 * A duration, short: `42s`, `3m 05s`, `2h 10m`, `4d 3h`.
 *
 * @param {number} ms milliseconds
 * @returns {string}
 */
export function duration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const hours = Math.floor(m / 60);
  if (hours < 24) return `${hours}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/**
 * How long ago a time was.
 *
 * @param {string | undefined} iso an RFC 3339 time
 * @returns {string}
 */
export function age(iso) {
  return iso ? duration(Date.now() - Date.parse(iso)) : "—";
}

/**
 * A time as the operator's clock shows it, with seconds.
 *
 * @param {string | undefined} iso an RFC 3339 time
 * @returns {string}
 */
export function clock(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { hour12: false });
}

/**
 * A byte count in binary units.
 *
 * @param {number | undefined} n bytes
 * @returns {string}
 */
export function bytes(n) {
  if (typeof n !== "number") return "—";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/**
 * A status badge: the word and a colour, so colour is never the only cue.
 *
 * @param {string} status a job or session status
 * @returns {HTMLElement}
 */
export function badge(status) {
  return h("span", { class: `badge s-${status}` }, status.replace("_", " "));
}

/**
 * A job's progress: a bar and its numbers.
 *
 * @param {{ current: number, total?: number, units?: string, message?: string } | undefined} p
 *   the last progress event
 * @param {string} status the job's status
 * @returns {HTMLElement}
 */
export function progress(p, status) {
  if (!p) {
    return h(
      "span",
      { class: "progress none" },
      status === "running" ? h("progress", { "aria-label": "Progress (unknown)" }) : "—",
    );
  }
  const label = p.total !== undefined
    ? `${p.current} / ${p.total}${p.units ? ` ${p.units}` : ""}`
    : `${p.current}${p.units ? ` ${p.units}` : ""}`;
  const bar = h("progress", { "aria-label": `Progress ${label}`, max: p.total ?? 1 });
  if (p.total !== undefined) bar.value = p.current;
  else if (TERMINAL.has(status)) bar.value = 1;
  return h("span", { class: "progress" }, bar, h("span", { class: "num" }, label));
}

/**
 * A budget: one gauge per currency, of what remains.
 *
 * @param {Record<string, { limit: string, remaining: string }> | undefined} budget
 * @returns {HTMLElement}
 */
export function budget(budget) {
  const entries = Object.entries(budget ?? {});
  if (entries.length === 0) return h("span", { class: "budget none" }, "—");
  return h(
    "span",
    { class: "budget" },
    entries.map(([currency, { limit, remaining }]) => {
      const max = Number(limit);
      const label = `${currency} ${remaining} of ${limit} left`;
      return h(
        "span",
        { class: "gauge" },
        gauge(Number(remaining), max, `Budget ${label}`, level(Number(remaining) / max)),
        h("span", { class: "num" }, `${remaining} / ${limit} ${currency}`),
      );
    }),
  );
}

/**
 * How full a budget still is, as a gauge's colour.
 *
 * @param {number} share what remains, 0 to 1
 * @returns {string}
 */
function level(share) {
  return share > 0.5 ? "good" : share > 0.2 ? "low" : "out";
}

/**
 * A gauge: an ARIA meter whose fill is sized through the CSSOM (which the
 * page's CSP allows, unlike a `style` attribute). `<meter>` is not used as
 * Chromium will not size a restyled one.
 *
 * @param {number} value the value
 * @param {number} max the maximum (above 0)
 * @param {string} label what it measures, for assistive technology
 * @param {string} [tone] `good`, `low`, `out` or `plain`
 * @returns {HTMLElement}
 */
export function gauge(value, max, label, tone = "plain") {
  const fill = h("span", { class: "fill" });
  const share = max > 0 ? Math.min(1, Math.max(0, value / max)) : 0;
  fill.style.width = `${(share * 100).toFixed(1)}%`;
  return h(
    "span",
    {
      class: `meter ${tone}`,
      role: "meter",
      "aria-label": label,
      "aria-valuemin": "0",
      "aria-valuemax": String(max),
      "aria-valuenow": String(value),
    },
    fill,
  );
}

/**
 * A short id: the last characters, which differ between ULIDs made close
 * together.
 *
 * @param {string} id an id
 * @returns {string}
 */
export function shortId(id) {
  return id.length > 12 ? `…${id.slice(-8)}` : id;
}

/**
 * A value as indented JSON.
 *
 * @param {unknown} value
 * @returns {HTMLElement}
 */
export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}
