// Settings (`/settings`): what this server is, the command that points the client at it, and
// the health of each of its stores.
import { h, replace } from "../dom.js";
import { api } from "../api.js";

export async function settingsPage(main, { signal }) {
  document.title = "Settings · Orrery";
  const apiUrl = document.body.dataset.apiUrl || `${location.origin}/api`;
  const version = document.getElementById("version").textContent;
  let stores;
  try {
    const ready = await api("/ready", { signal });
    stores = Object.entries((ready && ready.stores) || {});
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    stores = null;
  }
  const command = `prefect config set PREFECT_API_URL=${apiUrl}`;
  const copy = h("button", {
    type: "button",
    on: {
      click: async () => {
        try {
          await navigator.clipboard.writeText(command);
          copy.textContent = "Copied";
        } catch {
          copy.textContent = "Select and copy the command";
        }
      },
    },
  }, "Copy");
  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, "Settings")),
    h("section", { class: "card" },
      h("h2", {}, "Connect the client"),
      h("p", {}, "Point the ", h("code", {}, "prefect"), " client and its workers at this server:"),
      h("p", {}, h("code", { id: "connect" }, command), " ", copy)),
    h("section", { class: "card", style: null },
      h("h2", {}, "Server"),
      h("dl", { class: "facts" },
        h("div", {}, h("dt", {}, "Version"), h("dd", {}, version)),
        h("div", {}, h("dt", {}, "API"), h("dd", {}, h("code", {}, apiUrl))))),
    h("section", { class: "card" },
      h("h2", {}, "Health"),
      stores === null
        ? h("p", { class: "error", role: "alert" }, "The server is not ready.")
        : h("dl", { class: "facts" }, stores.map(([role, health]) =>
            // "memory": the in-process broker of the embedded server, healthy by construction.
            h("div", {}, h("dt", {}, role), h("dd", { class: health === "degraded" ? "bad" : "ok" },
              health === "memory" ? "ok (in process)" : String(health)))))));
}
