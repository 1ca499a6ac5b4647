// Routes: each route's state now (healthy, or cooling down until when; calls in flight against
// its concurrency) and its calls over the last hour (count, p50/p95 latency, errors by class).

import { _ } from "./i18n.js";
import { admin, el, explain, fillTable, number, say, seconds, when } from "./console-api.js";

function state(route) {
  let badge;
  if (route.cooling_until) {
    const text = route.rate_limited
      ? _("rate limited until {when}", { when: when(route.cooling_until) })
      : _("cooling down until {when}", { when: when(route.cooling_until) });
    badge = el("span", { class: "tag tag-warn", dataset: { state: "cooling" } }, text);
  } else if (route.healthy === false) {
    badge = el("span", { class: "tag tag-bad", dataset: { state: "unhealthy" } }, _("unhealthy"));
  } else {
    badge = el("span", { class: "tag tag-ok", dataset: { state: "healthy" } }, _("healthy"));
  }
  if (!route.last_error) return badge;
  return [badge, el("div", { class: "muted small" }, route.last_error)];
}

function errors(hour) {
  const entries = Object.entries(hour.errors || {}).filter(([, count]) => count > 0);
  if (!entries.length) return _("none");
  return el("ul", { class: "plain" }, entries.map(([code, count]) =>
    el("li", {}, el("code", {}, code), ` × ${number(count)}`)));
}

export class RoutesSection {
  constructor() {
    this.table = document.getElementById("routes-table");
  }

  async load() {
    try {
      const answer = await admin("/hub/v1/admin/routes");
      const rows = answer.data.map((route) => {
        const hour = route.last_hour;
        const limit = route.max_concurrency;
        return el(
          "tr",
          { dataset: { route: route.route, model: route.model } },
          el("td", {}, el("code", {}, route.route)),
          el("td", {}, route.provider),
          el("td", {}, el("code", {}, route.model)),
          el("td", {}, state(route)),
          el("td", { class: "num" }, limit === null
            ? number(route.in_flight)
            : _("{count} of {limit}", { count: number(route.in_flight), limit: number(limit) })),
          el("td", { class: "num" }, number(hour.requests)),
          el("td", { class: "num" }, `${seconds(hour.p50_seconds)} / ${seconds(hour.p95_seconds)}`),
          el("td", {}, errors(hour)),
        );
      });
      fillTable(this.table, rows, _("This hub has no routes."), 8);
      say("routes-message", _("As of {when}.", { when: when(new Date().toISOString()) }));
    } catch (error) {
      say("routes-message", explain(error), "error");
    }
  }
}
