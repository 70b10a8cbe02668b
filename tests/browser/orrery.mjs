// Orrery's own UI in headless Chromium, on data seeded with the real client (seed.py): each
// page shows the seeded data, its actions work, nothing a user or a flow controls runs as code,
// no serious accessibility violation (axe-core), no page error or console error. Screenshots
// of every page (desktop and phone width) and report.json go to --out. Exits 1 on a failure.
//
//   ORRERY_NODE_MODULES=DIR node orrery.mjs --base http://127.0.0.1:4200 --ids ids.json --out DIR
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.ORRERY_NODE_MODULES ?? "node_modules", "x.js"));
const { chromium } = require("playwright-core");
const axePath = require.resolve("axe-core/axe.min.js");

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const base = opt("--base");
const out = opt("--out", "target/browser/orrery");
const ids = JSON.parse(fs.readFileSync(opt("--ids"), "utf8"));
fs.mkdirSync(out, { recursive: true });

const failures = [];
const fail = (what) => failures.push(what);
const check = (ok, what) => { if (!ok) fail(what); };

async function apiCall(method, p, body) {
  const r = await fetch(`${base}/api${p}`, {
    method,
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// Values a flow or a user controls, made to run if they were ever parsed as HTML or followed.
const EVIL = `"><img src=x onerror=alert(1)><script>alert(2)</script>`;
const evil = await apiCall("POST", "/flow_runs/", {
  flow_id: ids.flow, name: `evil ${EVIL}`, tags: [`<script>alert(3)</script>`],
  parameters: { link: "javascript:alert(4)", html: EVIL },
  state: { type: "RUNNING", name: "Running" },
});
await apiCall("POST", "/logs/", [{
  name: "evil", level: 40, message: `log ${EVIL}`, timestamp: new Date().toISOString(), flow_run_id: evil.id,
}]);
const future = new Date(Date.now() + 3600_000).toISOString();
const doomed = await apiCall("POST", "/flow_runs/", {
  flow_id: ids.flow, name: "to-be-cancelled", state: { type: "SCHEDULED", name: "Scheduled", state_details: { scheduled_time: future } },
});

const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"];
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: flags });
// bypassCSP only so that axe-core can be injected; the page's own policy is checked below.
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, bypassCSP: true });
const page = await context.newPage();
let current = "";
page.on("pageerror", (e) => fail(`${current}: page error ${String(e).slice(0, 300)}`));
page.on("console", (m) => { if (m.type() === "error") fail(`${current}: console error ${m.text().slice(0, 300)}`); });
page.on("dialog", async (d) => {
  if (d.type() === "confirm") return d.accept();
  fail(`${current}: a ${d.type()} dialog opened: ${d.message()}`);
  return d.dismiss();
});
const report = { base, pages: [] };

/** Runs one check; an exception (a locator that timed out) is its failure, and the next goes on. */
async function step(name, fn) {
  current = name;
  try {
    await fn();
  } catch (e) {
    fail(`${name}: ${String(e && e.message ? e.message : e).split("\n")[0].slice(0, 300)}`);
  }
}

async function visit(name, p, expect) {
  current = name;
  const resp = await page.goto(base + p, { waitUntil: "domcontentloaded", timeout: 30000 });
  if (name === "runs") {
    const csp = resp.headers()["content-security-policy"] || "";
    check(/script-src 'self'/.test(csp) && !/unsafe-inline/.test(csp), `runs: Content-Security-Policy is ${csp}`);
  }
  for (const text of expect) {
    await page.getByText(text, { exact: false }).first().waitFor({ timeout: 15000 })
      .catch(() => fail(`${name}: "${text}" not shown`));
  }
  await page.waitForLoadState("networkidle", { timeout: 10000 }).catch(() => {});
  await page.screenshot({ path: path.join(out, `${name}.png`), fullPage: true });
  await page.addScriptTag({ path: axePath });
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  const serious = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of serious) fail(`${name}: axe ${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
  report.pages.push({ name, path: p, violations: result.violations.map((v) => `${v.id}:${v.impact}`) });
}

await step("runs", () => visit("runs", "/runs", ["Runs", "parent", "fails"]));
await step("runs-failed", async () => {
  await visit("runs-failed", "/runs?state=FAILED", ["fails"]);
  const states = await page.locator("tbody .badge").allInnerTexts();
  check(states.length > 0 && states.every((s) => s === "Failed"), `runs-failed: the states listed are ${states}`);
});
// The seed sends WARNING and above (browser.sh): the failed task's error is a line of the parent.
await step("flow-run", () => visit("flow-run", `/runs/flow-run/${ids.flow_run}`, ["parent", "Retries are exhausted"]));
await step("flow-run log filter", async () => {
  await page.getByLabel("Search").fill("no line says this");
  await page.getByText("No line matches.").waitFor({ timeout: 5000 });
  await page.getByLabel("Search").fill("");
  await page.getByLabel("Level").selectOption("50");
  check(await page.locator(".log").count() === 0, "flow-run: critical-only still shows error lines");
  await page.getByLabel("Level").selectOption("20");
});
for (const [tab, text] of [["Task runs", "double"], ["Subflow runs", "child"], ["State history", "Completed"]]) {
  await step(`flow-run#${tab}`, async () => {
    await page.getByRole("tab", { name: tab }).click();
    await page.getByRole("tabpanel").getByText(text).first().waitFor({ timeout: 15000 });
    await page.screenshot({ path: path.join(out, `flow-run-${tab.replace(/\W+/g, "-").toLowerCase()}.png`), fullPage: true });
  });
}
await step("task-run", async () => {
  await visit("task-run", `/runs/task-run/${ids.task_run}`, ["flaky", "Retries are exhausted"]);
  await page.getByRole("tab", { name: "Artifacts" }).click();
  await page.getByText("This task run made no artifacts.").waitFor({ timeout: 15000 });
  await page.getByRole("tab", { name: "State history" }).click();
  await page.getByRole("tabpanel").getByText("Failed").first().waitFor({ timeout: 15000 });
  // Up to its flow run, then down to a task run from the task runs tab.
  await page.locator(".crumbs a").last().click();
  await page.getByRole("tab", { name: "Task runs" }).click();
  await page.getByRole("tabpanel").getByRole("link", { name: /^double/ }).first().click();
  await page.getByRole("heading", { level: 1, name: /^double/ }).waitFor({ timeout: 15000 });
  check(page.url().includes("/runs/task-run/"), `task-run: the task link went to ${page.url()}`);
});
await step("flow-run keyboard", async () => {
  await page.goto(`${base}/runs/flow-run/${ids.flow_run}`);
  // The tabs move with the arrow keys.
  await page.getByRole("tab", { name: "Logs" }).click();
  await page.keyboard.press("ArrowRight");
  check(await page.getByRole("tab", { name: "Task runs" }).getAttribute("aria-selected") === "true",
    "flow-run: ArrowRight does not select the next tab");
});
await step("evil-run", async () => {
  await visit("evil-run", `/runs/flow-run/${evil.id}`, ["evil", "log \"><img"]);
  check(await page.locator("img[src='x']").count() === 0, "evil-run: an injected <img> is in the page");
  check(await page.locator("main script").count() === 0, "evil-run: an injected <script> is in the page");
  // The run is active: a line it writes now appears without a reload.
  await apiCall("POST", "/logs/", [{
    name: "evil", level: 20, message: "a line written while the page is open",
    timestamp: new Date().toISOString(), flow_run_id: evil.id,
  }]);
  await page.getByText("a line written while the page is open").waitFor({ timeout: 15000 });
  await page.locator("summary", { hasText: "Parameters" }).click();
  check((await page.locator("pre").first().innerText()).includes("javascript:alert(4)"),
    "evil-run: parameters not shown as text");
});
await step("cancel", async () => {
  await visit("cancel", `/runs/flow-run/${doomed.id}`, ["to-be-cancelled", "Scheduled"]);
  await page.getByRole("button", { name: "Cancel", exact: true }).click();
  await page.getByText(/Cancell(ing|ed)/).first().waitFor({ timeout: 15000 });
  const cancelled = await apiCall("GET", `/flow_runs/${doomed.id}`);
  check(["CANCELLING", "CANCELLED"].includes(cancelled.state_type), `cancel: the run is ${cancelled.state_type}`);
});
await step("bulk-delete", async () => {
  await visit("bulk-delete", "/runs?q=to-be-cancelled", ["to-be-cancelled"]);
  await page.getByRole("checkbox", { name: "Select to-be-cancelled" }).check();
  await page.getByRole("button", { name: "Delete selected" }).click();
  await page.getByText("No flow runs match.").waitFor({ timeout: 15000 });
  const gone = await fetch(`${base}/api/flow_runs/${doomed.id}`);
  check(gone.status === 404, `bulk-delete: GET the deleted run answers ${gone.status}`);
});
await step("settings", () => visit("settings", "/settings", ["prefect config set PREFECT_API_URL=", "Health"]));
await step("not-found", () => visit("not-found", "/no/such/page", ["Page not found"]));
// The dark theme (the reader's preference), its contrast checked too.
await page.emulateMedia({ colorScheme: "dark" });
await step("runs-dark", () => visit("runs-dark", "/runs", ["parent"]));
await step("flow-run-dark", () => visit("flow-run-dark", `/runs/flow-run/${ids.flow_run}`, ["Retries are exhausted"]));
await page.emulateMedia({ colorScheme: "light" });
// Phone width.
await page.setViewportSize({ width: 390, height: 844 });
await step("runs-phone", () => visit("runs-phone", "/runs", ["parent"]));
await step("flow-run-phone", () => visit("flow-run-phone", `/runs/flow-run/${ids.flow_run}`, ["parent"]));

await browser.close();
report.failures = failures;
fs.writeFileSync(path.join(out, "report.json"), JSON.stringify(report, null, 2));
console.log(JSON.stringify({ failures }, null, 1));
process.exit(failures.length ? 1 : 0);
