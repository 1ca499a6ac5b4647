// Keys and tenants: list and search, create (the key shown once), change limits, revoke.
// Every action is one admin API call; the API's refusals (the last admin key, a bad limit) are
// shown as the API words them.

import { _ } from "./i18n.js";
import { admin, el, explain, fillTable, number, say, usd, when } from "./console-api.js";

const LIMITS = ["requests_per_minute", "concurrent_tasks", "budget_usd"];

function limitsFrom(form, { omitEmpty }) {
  const limits = {};
  for (const name of LIMITS) {
    const raw = form.elements[name].value.trim();
    if (raw === "") {
      if (!omitEmpty) limits[name] = null;
      continue;
    }
    limits[name] = name === "budget_usd" ? Number(raw) : Number.parseInt(raw, 10);
  }
  return limits;
}

export class KeysSection {
  constructor() {
    this.keys = [];
    this.tenantList = [];
    this.table = document.getElementById("keys-table");
    this.search = document.getElementById("keys-search");
    this.showRevoked = document.getElementById("keys-revoked");
    this.dialog = document.getElementById("limits-dialog");
    this.editing = null;
    this.search.addEventListener("input", () => this.draw());
    this.showRevoked.addEventListener("change", () => this.draw());
    document.getElementById("key-create").addEventListener("submit", (event) => {
      event.preventDefault();
      this.create(event.target);
    });
    document.getElementById("key-created-done").addEventListener("click", () => {
      document.getElementById("key-created-value").textContent = "";
      document.getElementById("key-created").hidden = true;
    });
    this.table.addEventListener("click", (event) => this.act(event));
    this.tenants = document.getElementById("tenants");
    this.tenants.addEventListener("click", (event) => {
      const button = event.target.closest("[data-tenant]");
      if (!button) return;
      this.search.value = button.dataset.tenant;
      this.draw();
    });
    document.getElementById("limits-form").addEventListener("submit", (event) => {
      if (event.submitter?.value !== "save") return;
      event.preventDefault();
      this.saveLimits(event.target);
    });
  }

  async load() {
    try {
      const [keys, tenants] = await Promise.all([
        admin("/hub/v1/admin/keys"),
        admin("/hub/v1/admin/tenants"),
      ]);
      this.keys = keys.data;
      this.tenantList = tenants.data;
      this.draw();
    } catch (error) {
      say("keys-message", explain(error), "error");
    }
  }

  matches(key, words) {
    const text = `${key.tenant_id} ${key.name} ${key.prefix} ${key.id}`.toLowerCase();
    return words.every((word) => text.includes(word));
  }

  draw() {
    const words = this.search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = this.keys.filter(
      (key) => (this.showRevoked.checked || !key.revoked_at) && this.matches(key, words),
    );
    const rows = shown.map((key) => this.row(key));
    fillTable(this.table, rows, _("No key matches."), 10);
    this.drawTenants();
    const tenants = this.tenantList.length;
    say(
      "keys-message",
      _("Keys shown: {shown} of {total}. Tenants: {tenants}.", {
        shown: shown.length,
        total: this.keys.length,
        tenants,
      }),
    );
  }

  // One chip per tenant (GET /hub/v1/admin/tenants): its active keys, tasks in flight and
  // spend; a click lists its keys.
  drawTenants() {
    this.tenants.replaceChildren(...this.tenantList.map((tenant) => el("li", {},
      el("button", { class: "chip-button", type: "button", dataset: { tenant: tenant.tenant_id } },
        el("strong", {}, tenant.tenant_id), " ",
        _("active keys: {keys}, tasks in flight: {tasks}, spent: {spent}", {
          keys: tenant.active_keys,
          tasks: tenant.active_tasks,
          spent: usd(tenant.spent_usd),
        })))));
  }

  row(key) {
    const limit = (value) => (value === null ? _("no limit") : number(value));
    const actions = key.revoked_at
      ? el("span", { class: "tag tag-bad" }, _("revoked {when}", { when: when(key.revoked_at) }))
      : [
          el("button", { class: "btn btn-small", type: "button", dataset: { limits: key.id } },
            _("Limits")),
          el("button", { class: "btn btn-small btn-danger", type: "button",
            dataset: { revoke: key.id } }, _("Revoke")),
        ];
    return el(
      "tr",
      { dataset: { key: key.id }, class: key.revoked_at ? "revoked" : null },
      el("td", {}, key.tenant_id),
      el("td", {}, key.name || "—"),
      el("td", {}, el("code", {}, key.prefix)),
      el("td", {}, key.admin ? el("span", { class: "tag" }, _("admin")) : _("tenant")),
      el("td", { class: "num" }, limit(key.limits.requests_per_minute)),
      el("td", { class: "num" }, limit(key.limits.concurrent_tasks)),
      el("td", { class: "num" }, usd(key.limits.budget_usd)),
      el("td", { class: "num" }, usd(key.usage.spent_usd)),
      el("td", {}, when(key.created_at)),
      el("td", { class: "actions" }, actions),
    );
  }

  async create(form) {
    const body = {
      tenant_id: form.elements.tenant_id.value.trim(),
      name: form.elements.name.value.trim(),
      admin: form.elements.admin.checked,
      limits: limitsFrom(form, { omitEmpty: true }),
    };
    try {
      const created = await admin("/hub/v1/admin/keys", { method: "POST", json: body });
      document.getElementById("key-created-value").textContent = created.key;
      document.getElementById("key-created").hidden = false;
      form.reset();
      await this.load();
      say("keys-message", _("Key {prefix} created for {tenant}.", {
        prefix: created.prefix,
        tenant: created.tenant_id,
      }), "ok");
    } catch (error) {
      say("keys-message", explain(error), "error");
    }
  }

  act(event) {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.dataset.limits) this.editLimits(button.dataset.limits);
    if (button.dataset.revoke) this.revoke(button.dataset.revoke);
  }

  editLimits(id) {
    const key = this.keys.find((k) => k.id === id);
    this.editing = key;
    const form = document.getElementById("limits-form");
    for (const name of LIMITS) {
      const value = key.limits[name];
      form.elements[name].value = value === null ? "" : String(value);
    }
    document.getElementById("limits-key").textContent =
      `${key.tenant_id} · ${key.name || key.prefix} · ${key.prefix}`;
    say("limits-message", "");
    this.dialog.showModal();
  }

  async saveLimits(form) {
    if (!form.reportValidity()) return;
    try {
      const path = `/hub/v1/admin/keys/${encodeURIComponent(this.editing.id)}`;
      const key = await admin(path, { method: "PATCH", json: limitsFrom(form, { omitEmpty: false }) });
      this.dialog.close();
      await this.load();
      say("keys-message", _("Limits of {prefix} saved.", { prefix: key.prefix }), "ok");
    } catch (error) {
      say("limits-message", explain(error), "error");
    }
  }

  async revoke(id) {
    const key = this.keys.find((k) => k.id === id);
    const question = _("Revoke the key {prefix} of {tenant}? Every request with it will be refused.", {
      prefix: key.prefix,
      tenant: key.tenant_id,
    });
    if (!window.confirm(question)) return;
    try {
      await admin(`/hub/v1/admin/keys/${encodeURIComponent(id)}/revoke`, { method: "POST" });
      await this.load();
      say("keys-message", _("Key {prefix} revoked.", { prefix: key.prefix }), "ok");
    } catch (error) {
      say("keys-message", explain(error), "error");
    }
  }
}
