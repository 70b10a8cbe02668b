// How values are shown: times, durations, states, log levels.
import { h } from "./dom.js";

export const STATE_TYPES = [
  "SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING",
  "COMPLETED", "FAILED", "CRASHED", "CANCELLED",
];
export const FINAL = new Set(["COMPLETED", "FAILED", "CRASHED", "CANCELLED"]);

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** An ISO time as the reader's local date and time (title: the exact UTC time). */
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h("span", {}, String(iso));
  return h("time", { datetime: d.toISOString(), title: d.toISOString() }, dateTime.format(d));
}

/** Seconds as "1h 2m", "3m 4s", "5.2s", "120ms". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return "—";
  const s = Number(seconds);
  if (s < 1) return `${Math.round(s * 1000)}ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s - m * 60)}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h ${m - hrs * 60}m`;
  return `${Math.floor(hrs / 24)}d ${hrs % 24}h`;
}

/** A run's duration: its total run time, or the time since it started while it runs. */
export function runDuration(run) {
  if (run.state_type === "RUNNING" && run.start_time) {
    return duration((Date.now() - new Date(run.start_time).getTime()) / 1000);
  }
  return duration(run.total_run_time ?? run.estimated_run_time);
}

/** The state badge: its colour from the state type, its text the state's name. */
export function stateBadge(state) {
  if (!state) return h("span", { class: "muted" }, "—");
  const type = state.type || "";
  const late = state.name === "Late" ? " late" : "";
  return h("span", { class: `badge ${type}${late}`, title: state.message || null }, state.name || type);
}

export const LEVELS = [
  [10, "DEBUG"], [20, "INFO"], [30, "WARNING"], [40, "ERROR"], [50, "CRITICAL"],
];

export function levelName(n) {
  let name = `LEVEL ${n}`;
  for (const [v, l] of LEVELS) if (n >= v) name = l;
  return name;
}

export function tags(list) {
  return (list || []).map((t) => h("span", { class: "tag" }, t));
}
