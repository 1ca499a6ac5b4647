// The console's access to the admin API, and the small helpers its sections share. The admin
// key is kept in this tab's sessionStorage only (not the playground's key: an admin key should
// not outlive the tab), and is sent nowhere but this hub's own /hub/v1 routes.

import { ApiError } from "./api.js";
import { _, LANG } from "./i18n.js";

const KEY_NAME = "imagehub.consoleKey";

export function getKey() {
  return sessionStorage.getItem(KEY_NAME) || "";
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY_NAME, key);
  else sessionStorage.removeItem(KEY_NAME);
}

export async function admin(path, { method = "GET", json, query } = {}) {
  if (!path.startsWith("/hub/v1/")) throw new Error(`not a hub API path: ${path}`);
  const init = { method, headers: { Authorization: `Bearer ${getKey()}` } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(name, value);
    }
    if ([...params].length) url += `?${params}`;
  }
  const response = await fetch(url, init);
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// An element: el("td", {class: "num"}, "text", child, ...). Text is always text, never HTML.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(LANG, { dateStyle: "short", timeStyle: "medium" });
}

export function usd(value) {
  if (value === null || value === undefined) return _("no limit");
  return new Intl.NumberFormat(LANG, { style: "currency", currency: "USD", maximumFractionDigits: 4 })
    .format(value);
}

export function number(value, digits = 0) {
  if (value === null || value === undefined) return "—";
  return new Intl.NumberFormat(LANG, { maximumFractionDigits: digits }).format(value);
}

export function seconds(value) {
  if (value === null || value === undefined) return "—";
  return _("{seconds} s", { seconds: number(value, 2) });
}

export function percent(value) {
  if (value === null || value === undefined) return "—";
  return new Intl.NumberFormat(LANG, { style: "percent", maximumFractionDigits: 1 }).format(value);
}

// An API failure in words: the hub's own message, which says what went wrong and why.
export function explain(error) {
  if (error instanceof ApiError) {
    return _("{message} (HTTP {status}, {code})", {
      message: error.message,
      status: error.status,
      code: error.code,
    });
  }
  return _("The hub could not be reached: {message}", { message: error.message });
}

export function say(id, text, kind = "") {
  const node = document.getElementById(id);
  node.textContent = text;
  node.dataset.kind = kind;
}

export function fillTable(table, rows, emptyText, columns) {
  const body = table.tBodies[0];
  body.replaceChildren();
  if (!rows.length) {
    body.append(el("tr", {}, el("td", { colspan: columns, class: "muted" }, emptyText)));
    return;
  }
  body.append(...rows);
}
