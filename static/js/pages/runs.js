// Runs (`/runs`): flow runs with filters (state, name), sort and pages, all kept in the URL so a
// filtered list can be shared; bulk cancel and delete.
import { h, replace, link } from "../dom.js";
import { api, post, flowNames } from "../api.js";
import { STATE_TYPES, FINAL, when, runDuration, stateBadge, tags } from "../format.js";
import { navigate } from "../main.js";

const PAGE = 50;
const SORTS = [
  ["START_TIME_DESC", "Newest start first"],
  ["START_TIME_ASC", "Oldest start first"],
  ["EXPECTED_START_TIME_DESC", "Newest expected start first"],
  ["NAME_ASC", "Name A–Z"],
  ["NAME_DESC", "Name Z–A"],
];

function filterOf(query) {
  const flowRuns = {};
  const states = query.getAll("state").filter((s) => STATE_TYPES.includes(s));
  if (states.length) flowRuns.state = { type: { any_: states } };
  const q = (query.get("q") || "").trim();
  if (q) flowRuns.name = { like_: q };
  return { flow_runs: flowRuns };
}

function hrefWith(query, changes) {
  const next = new URLSearchParams(query);
  for (const [k, v] of Object.entries(changes)) {
    next.delete(k);
    for (const x of [].concat(v ?? [])) if (x !== "" && x !== null) next.append(k, x);
  }
  const s = next.toString();
  return "/runs" + (s ? `?${s}` : "");
}

export async function runsPage(main, { query, signal }) {
  document.title = "Runs · Orrery";
  const page = Math.max(1, parseInt(query.get("page") || "1", 10) || 1);
  const sort = SORTS.some(([s]) => s === query.get("sort")) ? query.get("sort") : "START_TIME_DESC";
  const filter = filterOf(query);
  const [runs, total] = await Promise.all([
    post("/flow_runs/filter", { ...filter, sort, limit: PAGE, offset: (page - 1) * PAGE }, { signal }),
    post("/flow_runs/count", filter, { signal }),
  ]);
  const flowName = await flowNames(runs, signal);

  const selected = new Set();
  const status = h("p", { class: "muted", "aria-live": "polite" });
  const bulk = (label, cls, act) => h("button", {
    type: "button", class: cls, disabled: true,
    on: {
      click: async () => {
        if (!selected.size) return;
        if (!confirm(`${label} ${selected.size} run(s)?`)) return;
        const failed = [];
        for (const id of selected) {
          try { await act(id); } catch (e) { failed.push(e.message); }
        }
        if (failed.length) status.textContent = `${label}: ${failed.length} failed: ${failed[0]}`;
        else navigate(location.pathname + location.search, { replaceState: true });
      },
    },
  }, `${label} selected`);
  const cancelBtn = bulk("Cancel", "", (id) => post(`/flow_runs/${id}/set_state`,
    { state: { type: "CANCELLING", name: "Cancelling" } }));
  const deleteBtn = bulk("Delete", "danger", (id) => api(`/flow_runs/${id}`, { method: "DELETE" }));
  const refreshBulk = () => { cancelBtn.disabled = deleteBtn.disabled = selected.size === 0; };

  const stateSelect = h("select", { name: "state", id: "f-state" },
    h("option", { value: "" }, "Any state"),
    STATE_TYPES.map((s) => h("option", { value: s, selected: query.getAll("state").includes(s) }, s.toLowerCase())));
  const search = h("input", { type: "search", name: "q", id: "f-q", value: query.get("q") || "", placeholder: "Run name contains" });
  const sortSelect = h("select", { name: "sort", id: "f-sort" },
    SORTS.map(([s, label]) => h("option", { value: s, selected: s === sort }, label)));
  const form = h("form", {
    class: "filters", role: "search",
    on: {
      submit: (e) => {
        e.preventDefault();
        navigate(hrefWith(query, { state: stateSelect.value, q: search.value.trim(), sort: sortSelect.value, page: null }));
      },
      change: (e) => { if (e.target !== search) form.requestSubmit(); },
    },
  },
  h("label", { for: "f-state" }, "State", stateSelect),
  h("label", { for: "f-q" }, "Name", search),
  h("label", { for: "f-sort" }, "Sort", sortSelect),
  h("button", { type: "submit" }, "Apply"));

  const rows = runs.map((r) => {
    const box = h("input", {
      type: "checkbox", "aria-label": `Select ${r.name}`,
      on: { change: (e) => { e.target.checked ? selected.add(r.id) : selected.delete(r.id); refreshBulk(); } },
    });
    return h("tr", {},
      h("td", {}, box),
      h("td", { class: "name" }, link(`/runs/flow-run/${encodeURIComponent(r.id)}`, r.name)),
      h("td", { class: "name" }, flowName.get(r.flow_id) || "—"),
      h("td", {}, stateBadge(r.state)),
      h("td", { class: "optional" }, when(r.start_time || r.expected_start_time)),
      h("td", { class: "optional" }, FINAL.has(r.state_type) || r.state_type === "RUNNING" ? runDuration(r) : "—"),
      h("td", { class: "optional" }, tags(r.tags)));
  });
  const first = total ? (page - 1) * PAGE + 1 : 0;
  const last = Math.min(total, page * PAGE);
  const pager = h("nav", { class: "pager", "aria-label": "Pages" },
    h("span", { class: "muted" }, `${first}–${last} of ${total}`),
    page > 1 ? link(hrefWith(query, { page: page - 1 }), "Previous") : null,
    last < total ? link(hrefWith(query, { page: page + 1 }), "Next") : null);

  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, "Runs"),
      h("div", { class: "actions" }, cancelBtn, deleteBtn)),
    form,
    status,
    runs.length
      ? h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Flow runs" }, h("table", {},
          h("caption", { class: "skip" }, "Flow runs"),
          h("thead", {}, h("tr", {},
            h("th", { scope: "col" }, h("span", { class: "skip" }, "Select")),
            h("th", { scope: "col" }, "Run"), h("th", { scope: "col" }, "Flow"),
            h("th", { scope: "col" }, "State"), h("th", { scope: "col", class: "optional" }, "Start"),
            h("th", { scope: "col", class: "optional" }, "Duration"),
            h("th", { scope: "col", class: "optional" }, "Tags"))),
          h("tbody", {}, rows)))
      : h("p", { class: "empty" }, total ? "No runs on this page." : "No flow runs match."),
    pager);
}
