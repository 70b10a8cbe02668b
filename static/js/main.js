// The application: a router over Prefect's URL scheme (the links the client prints, such as
// `/runs/flow-run/{id}`, open the right page), the theme, and the frame every page is drawn in.
// The server answers the same page for every path; this decides what it shows.
import { h, replace, link } from "./dom.js";
import { ApiError } from "./api.js";
import { runsPage } from "./pages/runs.js";
import { flowRunPage } from "./pages/flow_run.js";
import { taskRunPage } from "./pages/task_run.js";
import { settingsPage } from "./pages/settings.js";

const ROUTES = [
  [/^\/$/, "runs", runsPage],
  [/^\/runs\/?$/, "runs", runsPage],
  [/^\/runs\/flow-run\/([^/]+)\/?$/, "runs", flowRunPage],
  [/^\/runs\/task-run\/([^/]+)\/?$/, "runs", taskRunPage],
  [/^\/settings\/?$/, "settings", settingsPage],
];

let current = null; // the AbortController of the page on screen

function notFound(main) {
  document.title = "Not found · Orrery";
  replace(main, h("h1", {}, "Page not found"),
    h("p", {}, "Nothing here. ", link("/runs", "See the runs"), "."));
}

/** What a page shows when its data could not be read. */
export function failure(main, err) {
  const signIn = err instanceof ApiError && (err.status === 401 || err.status === 403);
  replace(main,
    h("h1", {}, signIn ? "Not signed in" : "Something went wrong"),
    h("p", { class: "error", role: "alert" },
      signIn ? "This server requires authentication; your session has none or it ended."
        : String(err && err.message ? err.message : err)));
}

async function render() {
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  const main = document.getElementById("main");
  const path = location.pathname;
  const route = ROUTES.find(([re]) => re.test(path));
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (route && a.dataset.nav === route[1]) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!route) return notFound(main);
  const [re, , page] = route;
  const params = path.match(re).slice(1).map(decodeURIComponent);
  replace(main, h("p", { class: "muted", "aria-live": "polite" }, "Loading…"));
  try {
    await page(main, { params, query: new URLSearchParams(location.search), signal });
  } catch (err) {
    if (signal.aborted || (err && err.name === "AbortError")) return;
    failure(main, err);
  }
}

/** Goes to `href` inside the application. */
export function navigate(href, { replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  render();
  if (!replaceState) document.getElementById("main").focus();
}

document.addEventListener("click", (e) => {
  const a = e.target.closest && e.target.closest("a[data-link]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", render);

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
}
const saved = localStorage.getItem("orrery-theme");
applyTheme(saved || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
document.getElementById("theme").addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  localStorage.setItem("orrery-theme", next);
  applyTheme(next);
});

render();
