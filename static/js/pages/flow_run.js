// A flow run (`/runs/flow-run/{id}`, the link the client prints): its state, timing, flow,
// deployment, parameters and tags; tabs for its logs (level filter, search, live while the run
// is active), task runs, subflow runs and state history; cancel and delete.
import { h, replace, link } from "../dom.js";
import { api, post, flowNames } from "../api.js";
import { FINAL, LEVELS, when, runDuration, stateBadge, levelName, tags } from "../format.js";
import { navigate } from "../main.js";

// The API's largest page; a long log is read page after page.
const LOG_PAGE = 200;
const LOG_PAGES_PER_READ = 25;
const POLL_MS = 2000;

function facts(pairs) {
  return h("dl", { class: "facts" },
    pairs.filter(Boolean).map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
}

function json(value) {
  return h("pre", { tabindex: "0" }, JSON.stringify(value ?? {}, null, 2));
}

function table(caption, head, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption }, h("table", {},
    h("caption", { class: "skip" }, caption),
    h("thead", {}, h("tr", {}, head.map(([t, cls]) => h("th", { scope: "col", class: cls || null }, t)))),
    h("tbody", {}, rows)));
}

async function logsPanel(run, signal) {
  const level = h("select", { id: "log-level" },
    LEVELS.map(([v, name]) => h("option", { value: v, selected: v === 20 }, name.toLowerCase() + " and up")));
  const search = h("input", { id: "log-q", type: "search", placeholder: "Search the lines" });
  const list = h("div", { class: "logs", role: "log", "aria-live": "polite", "aria-label": "Logs", tabindex: "0" });
  const note = h("p", { class: "muted" });
  let lines = [];
  let lastTimestamp = null;

  const draw = () => {
    const min = Number(level.value);
    const q = search.value.trim().toLowerCase();
    const shown = lines.filter((l) => l.level >= min && (!q || String(l.message).toLowerCase().includes(q)));
    replace(list, shown.length
      ? shown.map((l) => h("div", { class: `log ${levelName(l.level)}` },
          h("span", { class: "ts" }, new Date(l.timestamp).toLocaleTimeString()),
          h("span", { class: "lvl" }, levelName(l.level)),
          h("span", { class: "msg" }, l.message)))
      : h("p", { class: "empty" }, lines.length ? "No line matches." : "No logs yet."));
  };
  const seen = new Set();
  const readPage = async () => {
    const filter = { flow_run_id: { any_: [run.id] } };
    if (lastTimestamp) filter.timestamp = { after_: lastTimestamp };
    const got = await post("/logs/filter", { logs: filter, sort: "TIMESTAMP_ASC", limit: LOG_PAGE }, { signal });
    const fresh = got.filter((l) => !seen.has(l.id));
    for (const l of fresh) seen.add(l.id);
    if (fresh.length) {
      lines = lines.concat(fresh);
      lastTimestamp = lines[lines.length - 1].timestamp;
    }
    // A full page of lines all at one timestamp would read the same page again: stop there.
    return got.length === LOG_PAGE && fresh.length > 0;
  };
  const fetchMore = async () => {
    const before = lines.length;
    for (let i = 0; i < LOG_PAGES_PER_READ && (await readPage()); i++);
    if (lines.length !== before) {
      const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      draw();
      if (atBottom) list.scrollTop = list.scrollHeight;
    }
  };
  await fetchMore();
  draw();
  level.addEventListener("change", draw);
  search.addEventListener("input", draw);
  return {
    el: h("section", {},
      h("div", { class: "filters" },
        h("label", { for: "log-level" }, "Level", level),
        h("label", { for: "log-q" }, "Search", search)),
      list, note),
    poll: fetchMore,
    live: (on) => { note.textContent = on ? "Live: new lines appear as the run writes them." : ""; },
  };
}

async function taskRunsPanel(run, signal) {
  const tasks = await post("/task_runs/filter",
    { flow_runs: { id: { any_: [run.id] } }, sort: "EXPECTED_START_TIME_ASC", limit: 200 }, { signal });
  return h("section", {}, table("Task runs",
    [["Task run"], ["State"], ["Start", "optional"], ["Duration", "optional"], ["Tags", "optional"]],
    tasks.map((t) => h("tr", {},
      h("td", { class: "name" }, t.name),
      h("td", {}, stateBadge(t.state)),
      h("td", { class: "optional" }, when(t.start_time || t.expected_start_time)),
      h("td", { class: "optional" }, runDuration(t)),
      h("td", { class: "optional" }, tags(t.tags)))),
    "This run has no task runs."));
}

async function subflowsPanel(run, signal) {
  const subs = await post("/flow_runs/filter",
    { flow_runs: { parent_flow_run_id: { any_: [run.id] } }, sort: "START_TIME_ASC", limit: 200 }, { signal });
  const flowName = await flowNames(subs, signal);
  return h("section", {}, table("Subflow runs", [["Run"], ["Flow"], ["State"], ["Start", "optional"], ["Duration", "optional"]],
    subs.map((r) => h("tr", {},
      h("td", { class: "name" }, link(`/runs/flow-run/${encodeURIComponent(r.id)}`, r.name)),
      h("td", { class: "name" }, flowName.get(r.flow_id) || "—"),
      h("td", {}, stateBadge(r.state)),
      h("td", { class: "optional" }, when(r.start_time || r.expected_start_time)),
      h("td", { class: "optional" }, runDuration(r)))),
    "This run started no subflows."));
}

async function historyPanel(run, signal) {
  const states = await api(`/flow_run_states/?flow_run_id=${encodeURIComponent(run.id)}`, { signal });
  states.sort((a, b) => String(a.timestamp).localeCompare(String(b.timestamp)));
  return h("section", {}, table("State history", [["State"], ["At"], ["Message", "optional"]],
    states.map((s) => h("tr", {},
      h("td", {}, stateBadge(s)),
      h("td", {}, when(s.timestamp)),
      h("td", { class: "optional name" }, s.message || "")))),
    "No states recorded.");
}

function tabs(defs) {
  const buttons = [];
  const panel = h("div", { role: "tabpanel", id: "tab-panel", tabindex: "0" });
  const select = async (i) => {
    buttons.forEach((b, j) => {
      b.setAttribute("aria-selected", String(i === j));
      b.tabIndex = i === j ? 0 : -1;
    });
    panel.setAttribute("aria-labelledby", buttons[i].id);
    replace(panel, h("p", { class: "muted" }, "Loading…"));
    try {
      replace(panel, await defs[i][1]());
    } catch (e) {
      if (e && e.name === "AbortError") return;
      replace(panel, h("p", { class: "error", role: "alert" }, String(e.message || e)));
    }
  };
  defs.forEach(([label], i) => {
    buttons.push(h("button", {
      type: "button", role: "tab", id: `tab-${i}`, "aria-controls": "tab-panel",
      on: {
        click: () => select(i),
        keydown: (e) => {
          const d = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
          if (!d) return;
          const next = (i + d + defs.length) % defs.length;
          buttons[next].focus();
          select(next);
        },
      },
    }, label));
  });
  select(0);
  return [h("div", { role: "tablist", "aria-label": "Run details" }, buttons), panel];
}

export async function flowRunPage(main, { params, signal }) {
  const [id] = params;
  let run = await api(`/flow_runs/${encodeURIComponent(id)}`, { signal });
  const [flow, deployment] = await Promise.all([
    api(`/flows/${run.flow_id}`, { signal }),
    run.deployment_id ? api(`/deployments/${run.deployment_id}`, { signal }).catch(() => null) : null,
  ]);
  document.title = `${run.name} · ${flow.name} · Orrery`;

  const logs = await logsPanel(run, signal);
  const head = h("div");
  const info = h("div");
  const act = async (what, fn) => {
    if (!confirm(`${what} this run?`)) return;
    try {
      await fn();
    } catch (e) {
      alert(`${what} failed: ${e.message}`);
      return;
    }
    if (what === "Delete") navigate("/runs");
    else navigate(location.pathname, { replaceState: true });
  };
  const drawHead = () => {
    const active = !FINAL.has(run.state_type);
    replace(head,
      h("div", { class: "crumbs" }, link("/runs", "Runs"), " / ", flow.name),
      h("div", { class: "page-head" },
        h("h1", {}, run.name), stateBadge(run.state),
        h("div", { class: "actions" },
          active ? h("button", { type: "button", on: { click: () => act("Cancel",
            () => post(`/flow_runs/${run.id}/set_state`, { state: { type: "CANCELLING", name: "Cancelling" } })) } }, "Cancel") : null,
          h("button", { type: "button", class: "danger", on: { click: () => act("Delete",
            () => api(`/flow_runs/${run.id}`, { method: "DELETE" })) } }, "Delete"))));
    replace(info,
      facts([
        ["Flow", flow.name],
        deployment ? ["Deployment", deployment.name] : null,
        run.work_pool_name ? ["Work pool", run.work_pool_name] : null,
        run.work_queue_name ? ["Work queue", run.work_queue_name] : null,
        ["Expected start", when(run.expected_start_time)],
        ["Started", when(run.start_time)],
        ["Ended", when(run.end_time)],
        ["Duration", runDuration(run)],
        ["Run count", String(run.run_count ?? 0)],
        run.state && run.state.message ? ["Message", run.state.message] : null,
        run.tags && run.tags.length ? ["Tags", tags(run.tags)] : null,
        ["Run id", h("code", {}, run.id)],
      ]),
      h("details", {}, h("summary", {}, "Parameters"), json(run.parameters)));
  };
  drawHead();
  replace(main, head, info, ...tabs([
    ["Logs", async () => logs.el],
    ["Task runs", () => taskRunsPanel(run, signal)],
    ["Subflow runs", () => subflowsPanel(run, signal)],
    ["State history", () => historyPanel(run, signal)],
  ]));

  // Live while the run is active: its state and new log lines, until it ends or the page goes.
  const tick = async () => {
    if (signal.aborted) return;
    try {
      run = await api(`/flow_runs/${encodeURIComponent(id)}`, { signal });
      await logs.poll();
      drawHead();
    } catch (e) {
      if (signal.aborted) return;
    }
    const active = !FINAL.has(run.state_type);
    logs.live(active);
    if (active) setTimeout(tick, POLL_MS);
  };
  if (!FINAL.has(run.state_type)) {
    logs.live(true);
    setTimeout(tick, POLL_MS);
  }
}
