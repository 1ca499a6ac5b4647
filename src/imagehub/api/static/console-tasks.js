// Tasks across tenants, filtered by status, model, tenant, provider and time, a page at a time;
// a task's detail lists every attempt (each route call) and its error.

import { _ } from "./i18n.js";
import { admin, el, explain, fillTable, say, seconds, when } from "./console-api.js";

// A datetime-local value is the browser's local time: the API takes RFC 3339 with an offset.
function instant(value) {
  return value ? new Date(value).toISOString() : "";
}

function statusBadge(status) {
  const kind = { succeeded: "ok", failed: "bad", canceled: "bad", running: "warn" }[status] || "";
  return el("span", { class: `tag tag-${kind}`, dataset: { status } }, status);
}

export class TasksSection {
  constructor() {
    this.table = document.getElementById("tasks-table");
    this.form = document.getElementById("tasks-filter");
    this.more = document.getElementById("tasks-more");
    this.detail = document.getElementById("task-detail");
    this.cursor = null;
    this.rows = [];
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.load();
    });
    this.more.addEventListener("click", () => this.load({ more: true }));
    this.table.addEventListener("click", (event) => {
      const button = event.target.closest("[data-task]");
      if (button) this.show(button.dataset.task);
    });
  }

  query() {
    const field = (name) => this.form.elements[name].value.trim();
    return {
      status: field("status"),
      model: field("model"),
      tenant_id: field("tenant"),
      provider: field("provider"),
      since: instant(field("since")),
      until: instant(field("until")),
    };
  }

  async load({ more = false } = {}) {
    const query = this.query();
    if (more) query.cursor = this.cursor;
    try {
      const page = await admin("/hub/v1/admin/tasks", { query });
      const rows = page.data.map((task) => this.row(task));
      this.rows = more ? [...this.rows, ...rows] : rows;
      fillTable(this.table, this.rows, _("No task matches."), 7);
      this.cursor = page.next_cursor || null;
      this.more.hidden = !this.cursor;
      say("tasks-message", _("Tasks shown: {count}.", { count: this.rows.length }));
    } catch (error) {
      say("tasks-message", explain(error), "error");
    }
  }

  row(task) {
    return el(
      "tr",
      { dataset: { taskRow: task.task_id } },
      el("td", {}, el("button", { class: "link", type: "button", dataset: { task: task.task_id } },
        task.task_id)),
      el("td", {}, statusBadge(task.status)),
      el("td", {}, el("code", {}, task.model)),
      el("td", {}, task.tenant_id || "—"),
      el("td", {}, task.provider || "—"),
      el("td", {}, when(task.created_at)),
      el("td", {}, task.error ? el("code", {}, task.error.code) : ""),
    );
  }

  async show(id) {
    try {
      const task = await admin(`/hub/v1/admin/tasks/${encodeURIComponent(id)}`);
      this.drawDetail(task);
    } catch (error) {
      this.detail.replaceChildren(el("p", { class: "console-message", "data-kind": "error" },
        explain(error)));
      this.detail.hidden = false;
    }
  }

  drawDetail(task) {
    const facts = [
      [_("Status"), statusBadge(task.status)],
      [_("Model"), el("code", {}, task.model)],
      [_("Tenant"), task.tenant_id || "—"],
      [_("Provider"), task.provider || "—"],
      [_("Created"), when(task.created_at)],
      [_("Finished"), when(task.finished_at) || "—"],
      [_("Attempts"), String(task.attempts)],
    ];
    if (task.webhook) {
      const hook = task.webhook;
      facts.push([_("Webhook"), el("span", {}, el("code", { class: "url" }, hook.url), " ",
        el("span", { class: "tag", dataset: { state: hook.state } }, hook.state), " ",
        _("attempts: {count}", { count: hook.attempts }))]);
    }
    if (task.error) {
      facts.push([_("Error"), el("span", {}, el("code", {}, task.error.code), " ",
        task.error.message)]);
    }
    const calls = task.route_calls.map((attempt) => el(
      "tr",
      { dataset: { outcome: attempt.outcome } },
      el("td", { class: "num" }, attempt.number),
      el("td", {}, el("code", {}, attempt.route)),
      el("td", {}, attempt.provider),
      el("td", {}, when(attempt.started_at)),
      el("td", { class: "num" }, seconds(attempt.seconds)),
      el("td", {}, attempt.outcome === "succeeded"
        ? el("span", { class: "tag tag-ok" }, attempt.outcome)
        : el("span", { class: "tag tag-bad" }, attempt.outcome)),
      el("td", {}, attempt.message || ""),
    ));
    const table = el("table", { class: "console-table", id: "attempts-table" },
      el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, _("Attempt")),
        el("th", { scope: "col" }, _("Route")),
        el("th", { scope: "col" }, _("Provider")),
        el("th", { scope: "col" }, _("Started")),
        el("th", { scope: "col" }, _("Duration")),
        el("th", { scope: "col" }, _("Outcome")),
        el("th", { scope: "col" }, _("Message")))),
      el("tbody", {}));
    fillTable(table, calls, _("No route was called for this task."), 7);
    this.detail.replaceChildren(
      el("div", { class: "section-head" },
        el("h3", {}, _("Task {id}", { id: task.task_id })),
        el("button", { class: "btn btn-small", type: "button", id: "task-detail-close" },
          _("Close"))),
      el("dl", { class: "console-facts" },
        facts.map(([term, value]) => el("div", {}, el("dt", {}, term), el("dd", {}, value)))),
      el("h4", {}, _("Every attempt")),
      el("div", { class: "table-scroll" }, table),
    );
    this.detail.hidden = false;
    document.getElementById("task-detail-close").addEventListener("click", () => {
      this.detail.hidden = true;
    });
    this.detail.focus();
  }
}
