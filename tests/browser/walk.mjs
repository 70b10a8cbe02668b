// Walks the main pages of a web UI served by Orrery in headless Chromium and records every API
// answer: prints one JSON report and exits 1 when an API answer is >= 400 (other than the routes
// allowed to fail, named on the command line) or a page throws.
//
//   ORRERY_NODE_MODULES=DIR node walk.mjs --base http://127.0.0.1:4200 --ids ids.json --out DIR [--allow ROUTE ...]
//                 [--resolve "MAP *.example.test 127.0.0.1"] [--api-host HOST:PORT]
//
// With --api-host, every API call must go to that host (the two-host layout).
//
// ROUTE is a method and a path pattern, `POST /api/events/filter`; `*` matches one path segment.
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

// playwright-core is installed outside the checkout (scripts/browser.sh): ORRERY_NODE_MODULES.
const require = createRequire(path.join(process.env.ORRERY_NODE_MODULES ?? "node_modules", "x.js"));
const { chromium } = require("playwright-core");

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const allowed = args.flatMap((a, i) => (a === "--allow" ? [args[i + 1]] : []));
const base = opt("--base");
const out = opt("--out", "target/browser");
const ids = JSON.parse(fs.readFileSync(opt("--ids"), "utf8"));
const resolve = opt("--resolve", "");
const apiHost = opt("--api-host", "");
fs.mkdirSync(out, { recursive: true });

const pages = [
  ["dashboard", "/dashboard"],
  ["runs", "/runs"],
  ["flow-run", `/runs/flow-run/${ids.flow_run}`, { tabs: true }],
  ["task-run", `/runs/task-run/${ids.task_run}`],
  ["flows", "/flows"],
  ["flow", `/flows/flow/${ids.flow}`],
  ["deployments", "/deployments"],
  ["deployment", `/deployments/deployment/${ids.deployment}`],
  ["work-pools", "/work-pools"],
  ["work-pool", `/work-pools/work-pool/${ids.work_pool}`],
  ["blocks", "/blocks"],
  ["block", `/blocks/block/${ids.block}`],
  ["variables", "/variables"],
  ["concurrency", "/concurrency-limits"],
  ["artifacts", "/artifacts"],
  ["automations", "/automations"],
  ["events", "/events"],
];

const pattern = (route) => {
  const [method, p] = route.split(" ");
  const re = new RegExp("^" + p.split("*").map((s) => s.replace(/[.?+^$()[\]{}|\\]/g, "\\$&")).join("[^/]+") + "$");
  return { method, re };
};
const allow = allowed.map(pattern);
const isAllowed = (method, p) => allow.some((a) => a.method === method && a.re.test(p));

const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"];
if (resolve) flags.push(`--host-resolver-rules=${resolve}`);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: flags });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const report = { base, pages: [], failures: [], allowed_failures: [], page_errors: [] };
let current = "";
context.on("response", (r) => {
  const url = new URL(r.url());
  if (!url.pathname.startsWith("/api/")) return;
  const method = r.request().method();
  if (method === "OPTIONS") return;
  const entry = { page: current, method, path: url.pathname, status: r.status(), host: url.host };
  if (apiHost && url.host !== apiHost) {
    report.failures.push({ ...entry, error: `called ${url.host}, not the API host ${apiHost}` });
  } else if (r.status() >= 400) {
    (isAllowed(method, url.pathname) ? report.allowed_failures : report.failures).push(entry);
  }
});
context.on("requestfailed", (r) => {
  const url = new URL(r.url());
  if (url.pathname.startsWith("/api/")) {
    report.failures.push({ page: current, method: r.request().method(), path: url.pathname, error: r.failure()?.errorText });
  }
});

const page = await context.newPage();
page.on("pageerror", (e) => report.page_errors.push({ page: current, error: String(e).slice(0, 500) }));
const settle = async () => {
  await page.waitForLoadState("networkidle", { timeout: 15000 }).catch(() => {});
  await page.waitForTimeout(500);
};
for (const [name, p, extra] of pages) {
  current = name;
  let calls = 0;
  const count = (r) => {
    if (new URL(r.url()).pathname.startsWith("/api/")) calls++;
  };
  context.on("response", count);
  await page.goto(base + p, { waitUntil: "domcontentloaded", timeout: 30000 });
  await settle();
  const shots = [`${name}.png`];
  await page.screenshot({ path: path.join(out, shots[0]), fullPage: true });
  if (extra?.tabs) {
    const tabs = page.getByRole("tab");
    const n = await tabs.count();
    for (let i = 0; i < n; i++) {
      const label = (await tabs.nth(i).innerText()).trim().replace(/\W+/g, "-").toLowerCase() || `tab${i}`;
      current = `${name}#${label}`;
      await tabs.nth(i).click().catch(() => {});
      await settle();
      const shot = `${name}-${label}.png`;
      await page.screenshot({ path: path.join(out, shot), fullPage: true });
      shots.push(shot);
    }
  }
  const text = (await page.locator("body").innerText()).slice(0, 2000);
  context.off("response", count);
  report.pages.push({ name, path: p, api_calls: calls, screenshots: shots, broken: /something went wrong/i.test(text) });
}
await browser.close();
fs.writeFileSync(path.join(out, "report.json"), JSON.stringify(report, null, 2));
// A page may show the UI's error only where an allowed route failed under it.
const excused = new Set(report.allowed_failures.map((f) => f.page.split("#")[0]));
const broken = report.pages.filter((p) => p.broken && !excused.has(p.name)).map((p) => p.name);
const noApi = report.pages.filter((p) => p.api_calls === 0).map((p) => p.name);
if (noApi.length) report.failures.push({ error: `pages that called no API: ${noApi}` });
console.log(JSON.stringify({ failures: report.failures, page_errors: report.page_errors, broken, allowed_failures: report.allowed_failures.length }, null, 1));
process.exit(report.failures.length || report.page_errors.length || broken.length ? 1 : 0);
