// Building the page: every element is made with `h`, which sets text as text nodes and
// attributes one by one, so a value a user or a flow controls (a run name, a log line, a
// parameter) is never parsed as HTML. Event handlers are passed as functions (`on: {click}`),
// never as attributes; links to `javascript:` and other non-web schemes are dropped.

const SAFE_URL = /^(https?:|mailto:|\/(?!\/)|#|\?)/i;

/** A safe href: web, mail, same-site paths and fragments; anything else becomes "#". */
export function safeHref(url) {
  const s = String(url ?? "").trim();
  return SAFE_URL.test(s) ? s : "#";
}

/**
 * h("a", {href: "/runs", class: "x", on: {click: fn}}, "text", child, [more])
 * Children: strings and numbers (text), nodes, arrays, null/undefined/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "on") {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else if (k.startsWith("on")) {
      throw new Error(`event handler attribute ${k}: use {on: {...}}`);
    } else if (k === "href" || k === "src" || k === "action") {
      el.setAttribute(k, safeHref(v));
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link inside the application (handled by the router without a page load). */
export function link(href, ...children) {
  return h("a", { href, "data-link": true }, ...children);
}
