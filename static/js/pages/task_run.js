// A task run (`/runs/task-run/{id}`): its state, timing, flow run, cache key, inputs and tags;
// tabs for its logs (live while it runs), its artifacts and its state history.
import { h, replace, link } from "../dom.js";
import { api, post } from "../api.js";
import { FINAL, when, runDuration, stateBadge, tags } from "../format.js";
import { logsPanel, followWhileActive } from "../logs.js";
import { facts, json, table, tabs, stateHistory } from "../widgets.js";

async function artifactsPanel(taskRun, signal) {
  const artifacts = await post("/artifacts/filter",
    { artifacts: { task_run_id: { any_: [taskRun.id] } }, sort: "CREATED_DESC", limit: 200 }, { signal });
  return h("section", {}, table("Artifacts", [["Key"], ["Type"], ["Created", "optional"], ["Description", "optional"]],
    artifacts.map((a) => h("tr", {},
      h("td", { class: "name" }, a.key || h("span", { class: "muted" }, "(no key)")),
      h("td", {}, a.type || "—"),
      h("td", { class: "optional" }, when(a.created)),
      h("td", { class: "optional name" }, a.description || ""))),
    "This task run made no artifacts."));
}

async function historyPanel(taskRun, signal) {
  return stateHistory(await api(`/task_run_states/?task_run_id=${encodeURIComponent(taskRun.id)}`, { signal }));
}

export async function taskRunPage(main, { params, signal }) {
  const [id] = params;
  let taskRun = await api(`/task_runs/${encodeURIComponent(id)}`, { signal });
  const flowRun = taskRun.flow_run_id
    ? await api(`/flow_runs/${taskRun.flow_run_id}`, { signal }).catch(() => null)
    : null;
  document.title = `${taskRun.name} · Orrery`;
  const logs = await logsPanel({ task_run_id: { any_: [taskRun.id] } }, signal);
  const head = h("div");
  const info = h("div");
  const draw = () => {
    replace(head,
      h("div", { class: "crumbs" }, link("/runs", "Runs"),
        flowRun ? [" / ", link(`/runs/flow-run/${encodeURIComponent(flowRun.id)}`, flowRun.name)] : null),
      h("div", { class: "page-head" }, h("h1", {}, taskRun.name), stateBadge(taskRun.state)));
    replace(info,
      facts([
        flowRun ? ["Flow run", link(`/runs/flow-run/${encodeURIComponent(flowRun.id)}`, flowRun.name)] : null,
        ["Task key", h("code", {}, taskRun.task_key || "—")],
        ["Expected start", when(taskRun.expected_start_time)],
        ["Started", when(taskRun.start_time)],
        ["Ended", when(taskRun.end_time)],
        ["Duration", runDuration(taskRun)],
        ["Run count", String(taskRun.run_count ?? 0)],
        ["Cache key", taskRun.cache_key ? h("code", {}, taskRun.cache_key) : "—"],
        taskRun.state && taskRun.state.message ? ["Message", taskRun.state.message] : null,
        taskRun.tags && taskRun.tags.length ? ["Tags", tags(taskRun.tags)] : null,
        ["Task run id", h("code", {}, taskRun.id)],
      ]),
      h("details", {}, h("summary", {}, "Inputs"), json(taskRun.task_inputs)));
  };
  draw();
  replace(main, head, info, ...tabs([
    ["Logs", async () => logs.el],
    ["Artifacts", () => artifactsPanel(taskRun, signal)],
    ["State history", () => historyPanel(taskRun, signal)],
  ]));

  followWhileActive(signal, logs, async () => {
    taskRun = await api(`/task_runs/${encodeURIComponent(id)}`, { signal });
    draw();
  }, () => !FINAL.has(taskRun.state_type));
}
