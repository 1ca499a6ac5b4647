// The hub's API as the page uses it. The API key lives in this browser only and is sent
// nowhere but this hub's own /hub/v1 routes (relative URLs: same origin, enforced by the CSP).

import { _ } from "./i18n.js";

const KEY_NAME = "imagehub.apiKey";

export function getKey() {
  return sessionStorage.getItem(KEY_NAME) || localStorage.getItem(KEY_NAME) || "";
}

export function isRemembered() {
  return localStorage.getItem(KEY_NAME) !== null;
}

export function setKey(key, remember) {
  sessionStorage.removeItem(KEY_NAME);
  localStorage.removeItem(KEY_NAME);
  if (!key) return;
  (remember ? localStorage : sessionStorage).setItem(KEY_NAME, key);
}

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || _("The hub answered HTTP {status}.", { status }));
    this.status = status;
    this.code = error.code || "http_error";
    this.details = error.details || [];
  }
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${getKey()}`, ...extra };
}

function hubPath(path) {
  if (!path.startsWith("/hub/v1/")) throw new Error(`not a hub API path: ${path}`);
  return path;
}

async function answer(response) {
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export async function api(path, { method = "GET", json, signal } = {}) {
  const init = { method, headers: headers(), signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  return answer(await fetch(hubPath(path), init));
}

export async function upload(file) {
  const form = new FormData();
  form.append("file", file);
  const response = await fetch("/hub/v1/files", { method: "POST", headers: headers(), body: form });
  return answer(response);
}

// Server-sent events over fetch(): EventSource cannot send an Authorization header.
export async function* taskEvents(taskId, signal) {
  const path = hubPath(`/hub/v1/tasks/${encodeURIComponent(taskId)}/events`);
  const response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  if (!response.ok) await answer(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replace(/\r\n?/g, "\n");
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const event = parseFrame(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event) yield event;
      end = buffer.indexOf("\n\n");
    }
  }
}

export function parseFrame(frame) {
  let type = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { type, data: JSON.parse(data.join("\n")) } : null;
}
