// Admin: people who sign in and machine keys (a key's secret is shown once, on creation).
import { api, session } from "./api.js";
import { h, fill, field, when } from "./dom.js";
import { t } from "./i18n.js";

const ROLES = ["viewer", "operator", "admin", "integration"];

export function adminPage(main, { toast }) {
  if (!session.can("admin")) {
    fill(main, h("p", { class: "panel", "data-testid": "not-allowed" }, t("adminOnly")));
    return null;
  }
  const users = h("tbody", { "data-testid": "users" });
  const keys = h("tbody", { "data-testid": "keys" });
  const secretBox = h("p", { class: "secret", role: "status", "data-testid": "new-key" });
  const roleSelect = (value) => h("select", { name: "role" }, ROLES.map((r) => h("option", { value: r, selected: r === value }, r)));
  const act = async (fn, done) => {
    try { await fn(); await load(); if (done) toast(done); } catch (error) { toast(t("error", { reason: error.message })); }
  };

  const load = async () => {
    const [people, machines] = await Promise.all([api("/api/v1/users"), api("/api/v1/keys")]);
    fill(users, people.map((u) => h("tr", { "data-user": u.username },
      h("th", { scope: "row" }, u.username), h("td", {}, u.role), h("td", {}, when(u.created_at)),
      h("td", {}, u.username === session.get().name ? "" : h("button", { type: "button", onclick: () => {
        if (confirm(t("confirmRemove", { name: u.username }))) {
          act(() => api(`/api/v1/users/${encodeURIComponent(u.username)}`, { method: "DELETE" }), t("removed"));
        }
      } }, t("remove"))))));
    fill(keys, machines.map((k) => h("tr", { "data-key": k.name },
      h("th", { scope: "row" }, k.name), h("td", {}, k.role), h("td", {}, `${k.prefix}…`),
      h("td", {}, k.revoked ? t("revoked") : when(k.last_used_at)),
      h("td", {}, k.revoked ? "" : h("button", { type: "button", onclick: () => act(
        () => api(`/api/v1/keys/${encodeURIComponent(k.name)}`, { method: "DELETE" }), t("revoked")) }, t("revoke"))))));
  };

  const userName = h("input", { name: "username", required: true, maxlength: 64, autocomplete: "off" });
  const userPass = h("input", { name: "password", type: "password", required: true, minlength: 10, autocomplete: "new-password" });
  const userRole = roleSelect("viewer");
  const userForm = h("form", { class: "row", "data-testid": "add-user" }, field(t("username"), userName),
    field(t("password"), userPass), field(t("role"), userRole), h("button", { type: "submit", class: "primary" }, t("addUser")));
  userForm.addEventListener("submit", (e) => {
    e.preventDefault();
    act(() => api("/api/v1/users", { method: "POST", json: { username: userName.value.trim(), password: userPass.value, role: userRole.value } }), t("added"))
      .then(() => { userName.value = ""; userPass.value = ""; });
  });
  const keyName = h("input", { name: "name", required: true, maxlength: 64, autocomplete: "off" });
  const keyRole = roleSelect("integration");
  const keyForm = h("form", { class: "row", "data-testid": "add-key" }, field(t("keyName"), keyName),
    field(t("role"), keyRole), h("button", { type: "submit", class: "primary" }, t("createKey")));
  keyForm.addEventListener("submit", (e) => {
    e.preventDefault();
    act(async () => {
      const key = await api("/api/v1/keys", { method: "POST", json: { name: keyName.value.trim(), role: keyRole.value } });
      secretBox.textContent = t("keyOnce", { name: key.name, secret: key.secret });
      keyName.value = "";
    });
  });
  const table = (heads, body) => h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, heads.map((k) => h("th", { scope: "col" }, t(k))))), body));
  fill(main,
    h("section", { class: "panel", "aria-labelledby": "users-title" }, h("h2", { id: "users-title" }, t("users")),
      table(["username", "role", "colCreated", "actions"], users), userForm),
    h("section", { class: "panel", "aria-labelledby": "keys-title" }, h("h2", { id: "keys-title" }, t("apiKeys")),
      table(["keyName", "role", "prefix", "lastUsed", "actions"], keys), keyForm, secretBox));
  load().catch((error) => toast(t("error", { reason: error.message })));
  return null;
}
