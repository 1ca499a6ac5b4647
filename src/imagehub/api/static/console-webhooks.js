// Webhook deliveries across tenants: the failing ones first, their attempts and last error, and
// a retry-now action (the hub sends the delivery again at once).

import { _ } from "./i18n.js";
import { admin, el, explain, fillTable, number, say, when } from "./console-api.js";

// how long after a retry the list is read again, while the retried delivery is on its way
const FOLLOW_MS = 1000;
const FOLLOW_TIMES = 15;

function stateBadge(state) {
  const kind = { succeeded: "ok", failed: "bad", pending: "warn" }[state] || "";
  return el("span", { class: `tag tag-${kind}`, dataset: { state } }, state);
}

// The last attempt in words: the receiver's status, or why there was none.
function lastAttempt(delivery) {
  const last = delivery.history.at(-1);
  if (!last) return "";
  const status = last.status === null ? "" : `HTTP ${last.status}`;
  return [status, last.error].filter(Boolean).join(" · ");
}

export class WebhooksSection {
  constructor() {
    this.table = document.getElementById("webhooks-table");
    this.form = document.getElementById("webhooks-filter");
    this.more = document.getElementById("webhooks-more");
    this.cursor = null;
    this.rows = [];
    this.form.addEventListener("change", () => this.load());
    this.more.addEventListener("click", () => this.load({ more: true }));
    this.table.addEventListener("click", (event) => {
      const button = event.target.closest("[data-retry]");
      if (button) this.retry(button);
    });
  }

  async load({ more = false } = {}) {
    const failing = this.form.elements.failing.checked;
    const query = failing ? { state: "failing" } : {};
    if (more) query.cursor = this.cursor;
    try {
      const page = await admin("/hub/v1/admin/webhooks/deliveries", { query });
      const rows = page.data.map((delivery) => this.row(delivery));
      this.rows = more ? [...this.rows, ...rows] : rows;
      fillTable(this.table, this.rows, failing
        ? _("No failing delivery.")
        : _("No delivery yet."), 8);
      this.cursor = page.next_cursor || null;
      this.more.hidden = !this.cursor;
      say("webhooks-message", _("Deliveries shown: {count}.", { count: this.rows.length }));
    } catch (error) {
      say("webhooks-message", explain(error), "error");
    }
  }

  row(delivery) {
    const retry = ["failed", "pending"].includes(delivery.state)
      ? el("button", { class: "btn btn-small", type: "button",
        dataset: { retry: delivery.webhook_id } }, _("Retry now"))
      : "";
    return el(
      "tr",
      { dataset: { delivery: delivery.webhook_id, task: delivery.task_id } },
      el("td", {}, el("code", { class: "url" }, delivery.url)),
      el("td", {}, delivery.tenant_id),
      el("td", {}, el("code", {}, delivery.task_id)),
      el("td", {}, stateBadge(delivery.state)),
      el("td", { class: "num" }, number(delivery.attempts)),
      el("td", {}, lastAttempt(delivery)),
      el("td", {}, when(delivery.next_attempt_at) || "—"),
      el("td", { class: "actions" }, retry),
    );
  }

  async retry(button) {
    button.disabled = true;
    const id = button.dataset.retry;
    try {
      const path = `/hub/v1/admin/webhooks/deliveries/${encodeURIComponent(id)}/retry`;
      const delivery = await admin(path, { method: "POST" });
      say("webhooks-message", _("Delivery to {url} sent again.", { url: delivery.url }), "ok");
      this.follow(id, FOLLOW_TIMES);
    } catch (error) {
      button.disabled = false;
      say("webhooks-message", explain(error), "error");
    }
  }

  // Read the deliveries again until the retried one has an answer: it is sent at once.
  async follow(id, times) {
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_MS));
    const page = await admin("/hub/v1/admin/webhooks/deliveries").catch(() => null);
    const delivery = page?.data.find((d) => d.webhook_id === id);
    if (delivery && delivery.state === "pending" && times > 1) {
      this.follow(id, times - 1);
      return;
    }
    await this.load();
    if (delivery) {
      say("webhooks-message", _("Delivery to {url}: {state}.", {
        url: delivery.url,
        state: delivery.state,
      }), delivery.state === "succeeded" ? "ok" : "error");
    }
  }
}
