// Usage and spend by day, model, tenant or provider over a time range, from
// GET /hub/v1/admin/usage: a chart (Chart.js, vendored in static/vendor/) of one measure, and
// the table of every measure beneath it.

import { _, LANG } from "./i18n.js";
import { admin, el, explain, fillTable, number, percent, say, seconds, usd } from "./console-api.js";

const DAY = 24 * 3600 * 1000;

// measure -> [its value in a row, its label]; labels are translated when drawn
const MEASURES = {
  tasks: [(row) => row.tasks, () => _("tasks")],
  images: [(row) => row.images, () => _("images")],
  cost: [(row) => row.cost_usd, () => _("cost (USD)")],
  failure_rate: [(row) => (row.failure_rate ?? 0) * 100, () => _("failure rate (%)")],
  latency: [(row) => row.latency_p50_seconds, () => _("latency (s)")],
};

const HEADS = {
  day: () => _("Day"),
  model: () => _("Model"),
  tenant: () => _("Tenant"),
  provider: () => _("Provider"),
};

function cssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export class UsageSection {
  constructor() {
    this.form = document.getElementById("usage-filter");
    this.table = document.getElementById("usage-table");
    this.canvas = document.getElementById("usage-chart");
    this.chart = null;
    this.rows = [];
    this.form.addEventListener("change", (event) => {
      if (event.target.name === "metric") this.draw();
      else this.load();
    });
  }

  async load() {
    const groupBy = this.form.elements.group_by.value;
    const days = Number(this.form.elements.range.value);
    const until = new Date();
    const since = new Date(until.getTime() - days * DAY);
    try {
      const answer = await admin("/hub/v1/admin/usage", {
        query: { group_by: groupBy, since: since.toISOString(), until: until.toISOString() },
      });
      this.groupBy = groupBy;
      this.rows = answer.groups;
      this.draw();
      say("usage-message", _("In all: tasks {tasks}, images {images}, cost {cost}.", {
        tasks: number(answer.total.tasks),
        images: number(answer.total.images),
        cost: usd(answer.total.cost_usd),
      }));
    } catch (error) {
      say("usage-message", explain(error), "error");
    }
  }

  draw() {
    const metric = this.form.elements.metric.value;
    const [value, label] = MEASURES[metric];
    document.getElementById("usage-key-head").textContent = HEADS[this.groupBy]();
    // the chart shows every day of the range; the table only the days with tasks, newest first
    const listed = this.groupBy === "day"
      ? this.rows.filter((row) => row.tasks > 0).reverse()
      : this.rows;
    fillTable(this.table, listed.map((row) => el(
      "tr",
      { dataset: { usageKey: row.key } },
      el("th", { scope: "row" }, row.key),
      el("td", { class: "num" }, number(row.tasks)),
      el("td", { class: "num" }, number(row.images)),
      el("td", { class: "num" }, usd(row.cost_usd)),
      el("td", { class: "num" }, percent(row.failure_rate)),
      el("td", { class: "num" }, `${seconds(row.latency_p50_seconds)} / ${seconds(row.latency_p95_seconds)}`),
    )), _("Nothing was used in this time range."), 6);
    const data = {
      labels: this.rows.map((row) => row.key),
      datasets: [{
        label: label(),
        data: this.rows.map((row) => value(row) ?? 0),
        backgroundColor: cssColor("--accent"),
        borderColor: cssColor("--accent"),
      }],
    };
    const text = cssColor("--muted");
    const grid = cssColor("--border");
    if (this.chart) {
      this.chart.data = data;
      this.chart.update();
      return;
    }
    // window.Chart: the vendored UMD build, loaded by the page before this module
    this.chart = new window.Chart(this.canvas, {
      type: "bar",
      data,
      options: {
        locale: LANG,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { labels: { color: text } } },
        scales: {
          x: { ticks: { color: text }, grid: { color: grid } },
          y: { beginAtZero: true, ticks: { color: text }, grid: { color: grid } },
        },
      },
    });
  }
}
