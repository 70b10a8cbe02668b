// The JSON API, as the pages call it: the same routes the `prefect` client uses, so the UI reads
// exactly what the API answers. The API's base comes from the page (`/api` on one host, the API
// host's URL in the two-host layout). Errors carry Prefect's `detail`.

const base = () => document.body.dataset.api || "/api";

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

/** Calls the API; answers the parsed JSON (null for an empty answer). */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  const csrf = sessionStorage.getItem("orrery-csrf");
  if (csrf) headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(base() + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  const text = await r.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!r.ok) throw new ApiError(r.status, (data && data.detail) || r.statusText || String(r.status));
  return data;
}

export const post = (path, body, opts = {}) => api(path, { ...opts, method: "POST", body });

/** The names of the flows of `runs`, by flow id (one request). */
export async function flowNames(runs, signal) {
  const ids = [...new Set(runs.map((r) => r.flow_id))];
  const flows = ids.length ? await post("/flows/filter", { flows: { id: { any_: ids } } }, { signal }) : [];
  return new Map(flows.map((f) => [f.id, f.name]));
}
