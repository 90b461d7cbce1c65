/**
 * The dashboard's shell: sign-in, the header, and a router over the URL's
 * hash (`#/jobs`, `#/jobs/ID`, `#/sessions`, `#/runtime`), so the runtime
 * serves one page and a reload keeps the view. Each view is mounted with an
 * AbortSignal that ends its polling and streams when the operator leaves it.
 *
 * @module
 */
import { api, ApiError, setToken, token, whenUnauthorized } from "./api.js";
import { h, replace } from "./dom.js";
import { jobsView } from "./jobs.js";
import { jobView } from "./job.js";
import { sessionsView } from "./sessions.js";
import { runtimeView } from "./runtime.js";

const main = document.getElementById("main");
const header = document.querySelector("header.top");

/** @type {{ principal: string, admin: boolean } | null} */
let me = null;
/** @type {AbortController | null} */
let current = null;

// A token refused while signed in (revoked, expired): back to the form. The
// form and the first route handle their own refusals.
whenUnauthorized(() => {
  if (!me) return;
  setToken(null);
  me = null;
  signIn("The runtime no longer accepts that token. Sign in again.");
});

document.getElementById("sign-out").addEventListener("click", () => {
  setToken(null);
  me = null;
  signIn();
});
addEventListener("hashchange", () => route());

/**
 * Shows the sign-in form.
 *
 * @param {string} [notice] why it is shown again
 */
function signIn(notice) {
  current?.abort();
  current = null;
  header.hidden = true;
  document.title = "Sign in · ARCP runtime";
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help",
  });
  const error = h("p", { class: "error", role: "alert", hidden: !notice }, notice ?? "");
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "ARCP runtime"),
    h("label", { for: "token" }, "Access token"),
    input,
    h(
      "p",
      { id: "token-help", class: "help" },
      "The bearer token you open sessions with. It is kept in this tab only.",
    ),
    error,
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    setToken(input.value.trim());
    try {
      me = await api("/v1/whoami");
      route();
    } catch (e) {
      setToken(null);
      error.hidden = false;
      error.textContent = e instanceof ApiError && e.status === 401
        ? "That token was not accepted."
        : `Could not sign in: ${e.message}`;
      button.disabled = false;
      input.focus();
    }
  });
  replace(main, h("div", { class: "center" }, form));
  input.focus();
}

/** Shows the view the hash names. */
async function route() {
  if (!token()) return signIn();
  if (!me) {
    try {
      me = await api("/v1/whoami");
    } catch (e) {
      const refused = e instanceof ApiError && e.status === 401;
      if (refused) setToken(null);
      signIn(
        refused
          ? "The runtime no longer accepts that token. Sign in again."
          : `Could not reach the runtime: ${e.message}`,
      );
      return;
    }
  }
  header.hidden = false;
  const who = document.getElementById("principal");
  replace(who, me.principal, me.admin ? h("span", { class: "tag" }, "admin") : null);
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query);
  const section = parts[0] ?? "jobs";
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  current?.abort();
  current = new AbortController();
  const ctx = { me, signal: current.signal, params };
  const view = h("div", { class: "view" });
  replace(main, view);
  if (section === "jobs" && parts[1]) jobView(view, parts[1], ctx);
  else if (section === "sessions") sessionsView(view, ctx);
  else if (section === "runtime") runtimeView(view, ctx);
  else jobsView(view, ctx);
}

route();
