// A run's logs: a level filter, a search over the lines, and `poll()` for new lines while the
// run is active (the page calls it). `match` is the LogFilter of the run (flow or task run).
import { h, replace } from "./dom.js";
import { post } from "./api.js";
import { LEVELS, levelName } from "./format.js";

// The API's largest page; a long log is read page after page.
const LOG_PAGE = 200;
const LOG_PAGES_PER_READ = 25;
const POLL_MS = 2000;

/**
 * While `active()` holds, every two seconds: `refresh()` (the page reads its run again and
 * redraws) and the new log lines; stops when the run ends or the page is left (`signal`).
 */
export function followWhileActive(signal, logs, refresh, active) {
  const tick = async () => {
    if (signal.aborted) return;
    try {
      await refresh();
      await logs.poll();
    } catch {
      if (signal.aborted) return;
    }
    const on = active();
    logs.live(on);
    if (on) setTimeout(tick, POLL_MS);
  };
  if (active()) {
    logs.live(true);
    setTimeout(tick, POLL_MS);
  }
}

export async function logsPanel(match, signal) {
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
    const filter = { ...match };
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

