// A flow run (`/runs/flow-run/{id}`, the link the client prints): its state, timing, flow,
// deployment, parameters and tags; tabs for its logs (level filter, search, live while the run
// is active), task runs, subflow runs and state history; cancel and delete.
import { h, replace, link } from "../dom.js";
import { api, post, flowNames } from "../api.js";
import { FINAL, when, runDuration, stateBadge, tags } from "../format.js";
import { logsPanel, followWhileActive } from "../logs.js";
import { facts, json, table, tabs, stateHistory } from "../widgets.js";
import { navigate } from "../main.js";


async function taskRunsPanel(run, signal) {
  const tasks = await post("/task_runs/filter",
    { flow_runs: { id: { any_: [run.id] } }, sort: "EXPECTED_START_TIME_ASC", limit: 200 }, { signal });
  return h("section", {}, table("Task runs",
    [["Task run"], ["State"], ["Start", "optional"], ["Duration", "optional"], ["Tags", "optional"]],
    tasks.map((t) => h("tr", {},
      h("td", { class: "name" }, link(`/runs/task-run/${encodeURIComponent(t.id)}`, t.name)),
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
  return stateHistory(await api(`/flow_run_states/?flow_run_id=${encodeURIComponent(run.id)}`, { signal }));
}

export async function flowRunPage(main, { params, signal }) {
  const [id] = params;
  let run = await api(`/flow_runs/${encodeURIComponent(id)}`, { signal });
  const [flow, deployment] = await Promise.all([
    api(`/flows/${run.flow_id}`, { signal }),
    run.deployment_id ? api(`/deployments/${run.deployment_id}`, { signal }).catch(() => null) : null,
  ]);
  document.title = `${run.name} · ${flow.name} · Orrery`;

  const logs = await logsPanel({ flow_run_id: { any_: [run.id] } }, signal);
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
  followWhileActive(signal, logs, async () => {
    run = await api(`/flow_runs/${encodeURIComponent(id)}`, { signal });
    drawHead();
  }, () => !FINAL.has(run.state_type));
}
