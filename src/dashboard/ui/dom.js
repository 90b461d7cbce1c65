/**
 * A tiny element builder. Text always goes in as text nodes, never as HTML,
 * so whatever a job or an agent wrote can only ever be shown.
 *
 * @module
 */

/**
 * Builds an element.
 *
 * @param {string} tag the tag name
 * @param {Record<string, unknown> | null} [attrs] attributes; `on*` functions become listeners,
 *   `false`/`null`/`undefined` values are left out
 * @param {...(Node | string | number | null | undefined | false)} children
 * @returns {HTMLElement} the element
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name in el && typeof value !== "string") {
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/**
 * Appends children, skipping empty ones.
 *
 * @param {Node} el the parent
 * @param {Array<Node | string | number | null | undefined | false>} children
 */
export function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/**
 * Replaces an element's children.
 *
 * @param {Node} el the parent
 * @param {...(Node | string | number | null | undefined | false)} children
 */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * Waits, or stops waiting when the signal aborts.
 *
 * @param {number} ms how long
 * @param {AbortSignal} signal the view's signal
 * @returns {Promise<void>}
 */
export function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
