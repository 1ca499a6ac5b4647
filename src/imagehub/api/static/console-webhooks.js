// Webhook deliveries across tenants: the failing ones first, their attempts and last error, and
// a retry-now action (the hub sends the delivery again at once).

import { _ } from "./i18n.js";
import { admin, el, explain, fillTable, number, say, when } from "./console-api.js";

function statusBadge(status) {
  const kind = { delivered: "ok", failed: "bad", pending: "warn" }[status] || "";
  return el("span", { class: `badge badge-${kind}`, dataset: { status } }, status);
}

export class WebhooksSection {
  constructor() {
    this.table = document.getElementById("webhooks-table");
    this.form = document.getElementById("webhooks-filter");
    this.form.addEventListener("change", () => this.load());
    this.table.addEventListener("click", (event) => {
      const button = event.target.closest("[data-retry]");
      if (button) this.retry(button);
    });
  }

  async load() {
    const failing = this.form.elements.failing.checked;
    try {
      const page = await admin("/hub/v1/admin/webhooks/deliveries", {
        query: failing ? { status: "failed" } : {},
      });
      const rows = page.data.map((delivery) => this.row(delivery));
      fillTable(this.table, rows, failing
        ? _("No failing delivery.")
        : _("No delivery yet."), 8);
      say("webhooks-message", _("{count} deliveries shown.", { count: rows.length }));
    } catch (error) {
      say("webhooks-message", explain(error), "error");
    }
  }

  row(delivery) {
    const retry = delivery.status === "delivered"
      ? ""
      : el("button", { class: "btn btn-small", type: "button", dataset: { retry: delivery.id } },
        _("Retry now"));
    return el(
      "tr",
      { dataset: { delivery: delivery.id } },
      el("td", {}, el("code", { class: "url" }, delivery.url)),
      el("td", {}, delivery.tenant_id),
      el("td", {}, el("code", {}, delivery.task_id)),
      el("td", {}, statusBadge(delivery.status)),
      el("td", { class: "num" }, number(delivery.attempts)),
      el("td", {}, delivery.last_error || ""),
      el("td", {}, when(delivery.next_attempt_at) || "—"),
      el("td", { class: "actions" }, retry),
    );
  }

  async retry(button) {
    button.disabled = true;
    try {
      const path = `/hub/v1/admin/webhooks/deliveries/${encodeURIComponent(button.dataset.retry)}/retry`;
      const delivery = await admin(path, { method: "POST" });
      await this.load();
      say("webhooks-message", _("Delivery to {url}: {status}.", {
        url: delivery.url,
        status: delivery.status,
      }), delivery.status === "delivered" ? "ok" : "error");
    } catch (error) {
      button.disabled = false;
      say("webhooks-message", explain(error), "error");
    }
  }
}
