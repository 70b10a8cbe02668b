// Pieces several pages draw: a list of facts, JSON, a table, tabs, a state history.
import { h, replace } from "./dom.js";
import { when, stateBadge } from "./format.js";

export function facts(pairs) {
  return h("dl", { class: "facts" },
    pairs.filter(Boolean).map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
}

export function json(value) {
  return h("pre", { tabindex: "0" }, JSON.stringify(value ?? {}, null, 2));
}

export function table(caption, head, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption }, h("table", {},
    h("caption", { class: "skip" }, caption),
    h("thead", {}, h("tr", {}, head.map(([t, cls]) => h("th", { scope: "col", class: cls || null }, t)))),
    h("tbody", {}, rows)));
}

export function tabs(defs) {
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


/** A run's states, oldest first, as a table. */
export function stateHistory(states) {
  const sorted = [...states].sort((a, b) => String(a.timestamp).localeCompare(String(b.timestamp)));
  return h("section", {}, table("State history", [["State"], ["At"], ["Message", "optional"]],
    sorted.map((s) => h("tr", {},
      h("td", {}, stateBadge(s)),
      h("td", {}, when(s.timestamp)),
      h("td", { class: "optional name" }, s.message || ""))),
    "No states recorded."));
}
