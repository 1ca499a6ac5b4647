// The playground: an API key kept in this browser, a form per model, a submit, the task's
// status live over its server-sent events, and the images.

import { ApiError, api, getKey, isRemembered, setKey, taskEvents } from "./api.js";
import { announce } from "./copy.js";
import { _ } from "./i18n.js";
import { ModelForm } from "./form.js";
import {
  badge, el, errorBox, formatCost, formatTime, progress, progressBar, statusName, taskOutput,
} from "./render.js";

const $ = (id) => document.getElementById(id);

export class Playground {
  constructor(catalog) {
    this.catalog = catalog;
    this.models = new Map(catalog.models.map((m) => [m.id, m]));
    this.form = null;
    this.watching = null;
    this.initKey();
    this.initForm();
  }

  // -- the API key

  initKey() {
    const input = $("api-key");
    const remember = $("key-remember");
    input.value = getKey();
    remember.checked = isRemembered();
    const save = () => {
      setKey(input.value.trim(), remember.checked);
      this.keyStatus("", "");
      document.dispatchEvent(new CustomEvent("imagehub:key"));
    };
    input.addEventListener("change", save);
    remember.addEventListener("change", save);
    $("key-show").addEventListener("click", (event) => {
      const show = input.type === "password";
      input.type = show ? "text" : "password";
      event.currentTarget.setAttribute("aria-pressed", String(show));
      event.currentTarget.textContent = show ? _("Hide") : _("Show");
    });
    $("key-forget").addEventListener("click", () => {
      input.value = "";
      save();
      this.keyStatus(_("The key is forgotten."), "");
    });
  }

  keyStatus(message, kind) {
    const status = $("key-status");
    status.textContent = message;
    status.className = `key-status ${kind}`;
  }

  // -- the form

  initForm() {
    const select = $("pg-model");
    select.addEventListener("change", () => this.useModel(select.value));
    $("pg-form").addEventListener("input", () => this.preview());
    $("pg-form").addEventListener("change", () => this.preview());
    $("pg-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    $("pg-reset").addEventListener("click", () => {
      this.form.reset();
      this.form.clearErrors();
      $("pg-errors").hidden = true;
      this.preview();
    });
    this.useModel(select.value);
  }

  useModel(modelId, input) {
    const model = this.models.get(modelId);
    const kept = this.form ? pick(this.form.values(), ["prompt", "image_urls"]) : model.example;
    $("pg-model").value = modelId;
    $("pg-model-desc").textContent = `${model.name} (${model.vendor}): ${model.description}`;
    this.form = new ModelForm($("pg-fields"), model, this.catalog.presets);
    this.form.setValues(input || kept);
    $("pg-errors").hidden = true;
    this.preview();
  }

  body() {
    return { model: this.form.model.id, input: this.form.values() };
  }

  preview() {
    $("pg-body").textContent = JSON.stringify(this.body(), null, 2);
  }

  // -- submit and follow

  async submit() {
    if (!getKey()) {
      this.keyStatus(_("Paste your API key first."), "bad");
      $("api-key").focus();
      return;
    }
    const button = $("pg-submit");
    button.disabled = true;
    this.form.clearErrors();
    $("pg-errors").hidden = true;
    try {
      const task = await api("/hub/v1/tasks", { method: "POST", json: this.body() });
      this.keyStatus("", "");
      await this.follow(task);
    } catch (error) {
      this.failed(error);
    } finally {
      button.disabled = false;
    }
  }

  failed(error) {
    if (!(error instanceof ApiError)) {
      this.showStatus(errorBox({ code: "network_error", message: error.message }));
      return;
    }
    if (error.status === 401) {
      this.keyStatus(_("The hub does not know this key."), "bad");
      $("api-key").focus();
      return;
    }
    this.summary(error, error.status === 422 ? this.form.showErrors(error.details) : error.details);
  }

  // A list of every failing field, each linking to its control, then focus on it.
  summary(error, unplaced) {
    const box = $("pg-errors");
    const items = error.details.map((detail) => {
      const name = detail.loc && detail.loc[0] === "input" ? detail.loc[1] : null;
      const control = name ? this.form.firstControl(name) : null;
      const label = name || (detail.loc ? detail.loc.join(".") : _("request"));
      const text = `${label}: ${detail.msg}`;
      if (!control || unplaced.includes(detail)) return el("li", { text });
      const link = el("a", { href: `#${control.id}`, text });
      link.addEventListener("click", (event) => { event.preventDefault(); control.focus(); });
      return el("li", {}, link);
    });
    const title = el("h4", { text: `${error.code}: ${error.message}` });
    box.replaceChildren(title, el("ul", {}, ...items));
    box.hidden = false;
    box.setAttribute("role", "alert");
    box.focus();
  }

  showStatus(...nodes) {
    $("pg-status").replaceChildren(...nodes);
  }

  render(task) {
    const line = el("div", { class: "status-line" }, badge(task.status),
      el("code", { text: task.task_id }), el("span", { class: "task-meta", text: task.model }));
    const meta = el("p", { class: "task-meta", text: describe(task) });
    const waiting = task.ready ? null : progressBar(this.furthest(task));
    this.showStatus(line, progress(task.status), waiting, meta);
    if (task.ready) $("pg-output").replaceChildren(...taskOutput(task));
  }

  // a `progress` event: the bar moves, never back (estimates may be revised)
  showProgress(info) {
    $("pg-progress")?.replaceWith(progressBar(this.furthest(info)));
  }

  furthest(info) {
    this.reached = Math.max(this.reached || 0, info.progress || 0);
    const elapsed = info.elapsed_seconds ?? (Date.now() - Date.parse(info.created_at)) / 1000;
    return { ...info, progress: this.reached, elapsed_seconds: Math.max(elapsed, 0) };
  }

  addCancel(task) {
    $("pg-cancel")?.remove();
    if (!task || task.ready) return;
    const button = el("button", {
      type: "button", class: "btn btn-small btn-danger", id: "pg-cancel", text: _("Cancel task"),
    });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api(`/hub/v1/tasks/${encodeURIComponent(task.task_id)}/cancel`, { method: "POST" });
      } catch (error) {
        announce(_("Cancel failed: {error}", { error: error.message }));
      }
    });
    $("pg-status").querySelector(".status-line").append(button);
  }

  async follow(first) {
    this.watching?.abort();
    const controller = new AbortController();
    this.watching = controller;
    $("pg-output").replaceChildren();
    this.reached = 0;
    let task = first;
    this.render(task);
    this.addCancel(task);
    try {
      for await (const event of taskEvents(task.task_id, controller.signal)) {
        if (event.type === "progress") {
          this.showProgress(event.data);
          continue;
        }
        task = event.data;
        this.render(task);
        this.addCancel(task);
        if (task.ready) break;
      }
    } catch (error) {
      if (controller.signal.aborted) return;
    }
    // the stream ended early (a proxy cut it, say): long-poll until the task is ready
    while (!task.ready && !controller.signal.aborted) {
      const path = `/hub/v1/tasks/${encodeURIComponent(task.task_id)}?wait=30`;
      task = await api(path, { signal: controller.signal });
      this.render(task);
    }
    announce(_("Task {status}", { status: statusName(task.status) }));
    document.dispatchEvent(new CustomEvent("imagehub:task-finished", { detail: task }));
  }
}

function pick(object, names) {
  const kept = names.filter((name) => object[name] !== undefined);
  return Object.fromEntries(kept.map((name) => [name, object[name]]));
}

function describe(task) {
  const parts = [_("Created {time}", { time: formatTime(task.created_at) })];
  if (task.attempts > 1) parts.push(_("attempt {number}", { number: task.attempts }));
  if (task.provider) parts.push(_("provider {name}", { name: task.provider }));
  if (task.finished_at && task.started_at) {
    const seconds = (Date.parse(task.finished_at) - Date.parse(task.created_at)) / 1000;
    parts.push(_("ready in {seconds} s", { seconds: seconds.toFixed(1) }));
  }
  if (task.usage) parts.push(_("cost {cost}", { cost: formatCost(task.usage.cost_usd) }));
  return parts.join(" · ");
}
