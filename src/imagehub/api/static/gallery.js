// The history of the key's tasks: thumbnails, status, model and prompt, paged with the API's
// cursors (a stack of them gives "previous"), and a dialog with one task's details.

import { ApiError, api, getKey } from "./api.js";
import { _ } from "./i18n.js";
import { badge, el, formatCost, formatTime, imageMeta, statusName, taskOutput } from "./render.js";

const $ = (id) => document.getElementById(id);
export const PAGE_SIZE = 12;

export class Gallery {
  constructor({ onReuse } = {}) {
    this.cursors = [null]; // the cursor of every page seen so far; the last is the current one
    this.next = null;
    this.onReuse = onReuse;
    $("gallery-next").addEventListener("click", () => this.go(this.cursors.length));
    $("gallery-prev").addEventListener("click", () => this.go(this.cursors.length - 2));
    $("gallery-refresh").addEventListener("click", () => this.load());
    $("task-dialog-close").addEventListener("click", () => $("task-dialog").close());
    $("task-dialog").addEventListener("click", (event) => {
      if (event.target === event.currentTarget) event.currentTarget.close(); // the backdrop
    });
    document.addEventListener("imagehub:key", () => this.reset());
    document.addEventListener("imagehub:task-finished", () => {
      if (this.cursors.length === 1) this.load();
    });
    this.reset();
  }

  reset() {
    this.cursors = [null];
    this.load();
  }

  go(index) {
    if (index < 0) return;
    if (index === this.cursors.length) this.cursors.push(this.next);
    else this.cursors = this.cursors.slice(0, index + 1);
    this.load().then(() => $("gallery").querySelector("button")?.focus());
  }

  status(message) {
    $("gallery-status").textContent = message;
  }

  async load() {
    if (!getKey()) {
      $("gallery").replaceChildren();
      this.status(_("Paste your API key in the playground to see your tasks."));
      this.pager(false);
      return;
    }
    const cursor = this.cursors[this.cursors.length - 1];
    const query = new URLSearchParams({ limit: PAGE_SIZE });
    if (cursor) query.set("cursor", cursor);
    try {
      const page = await api(`/hub/v1/tasks?${query}`);
      this.next = page.next_cursor;
      $("gallery").replaceChildren(...page.data.map((task) => this.card(task)));
      const first = (this.cursors.length - 1) * PAGE_SIZE;
      this.status(page.data.length
        ? _("Tasks {first} to {last}, newest first.", { first: first + 1, last: first + page.data.length })
        : _("No tasks yet: generate one in the playground."));
      this.pager(true);
    } catch (error) {
      $("gallery").replaceChildren();
      this.status(error instanceof ApiError && error.status === 401
        ? _("The hub does not know this key.")
        : _("Could not load the history: {error}", { error: error.message }));
      this.pager(false);
    }
  }

  pager(enabled) {
    $("gallery-prev").disabled = !enabled || this.cursors.length < 2;
    $("gallery-next").disabled = !enabled || !this.next;
    $("gallery-page").textContent = _("Page {page}", { page: this.cursors.length });
  }

  card(task) {
    const prompt = String(task.input.prompt ?? "");
    const top = el("span", { class: "card-top" },
      badge(task.status), el("span", { class: "card-model", text: task.model }));
    const text = el("span", { class: "card-text" }, top,
      el("span", { class: "card-prompt", text: prompt }),
      el("span", { class: "card-time", text: formatTime(task.created_at) }));
    const button = el("button", {
      type: "button", class: "task-card", "aria-haspopup": "dialog", "data-task-id": task.task_id,
      "aria-label": _("{status}: {model}: {prompt}. Open details", {
        status: statusName(task.status), model: task.model, prompt: prompt.slice(0, 80),
      }),
    }, el("span", { class: "thumb" }, thumbnail(task)), text);
    button.addEventListener("click", () => this.open(task.task_id, button));
    return el("li", {}, button);
  }

  async open(taskId, opener) {
    const dialog = $("task-dialog");
    $("task-dialog-title").textContent = taskId;
    $("task-dialog-body").replaceChildren(el("p", { class: "muted", text: _("Loading…") }));
    dialog.addEventListener("close", () => opener?.focus(), { once: true });
    dialog.showModal();
    try {
      const task = await api(`/hub/v1/tasks/${encodeURIComponent(taskId)}`);
      $("task-dialog-body").replaceChildren(...this.details(task));
    } catch (error) {
      $("task-dialog-body").replaceChildren(el("p", { class: "task-error", text: error.message }));
    }
  }

  details(task) {
    const rows = [
      [_("Status"), badge(task.status)], [_("Model"), el("code", { text: task.model })],
      [_("Created"), formatTime(task.created_at)],
      [_("Finished"), formatTime(task.finished_at) || "–"],
      [_("Provider"), task.provider || "–"], [_("Attempts"), String(task.attempts)],
    ];
    if (task.usage) rows.push([_("Cost"), formatCost(task.usage.cost_usd)]);
    for (const [i, image] of (task.output?.images || []).entries()) {
      rows.push([_("Image {number}", { number: i + 1 }), imageMeta(image)]);
    }
    const pairs = rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]);
    const list = el("dl", { class: "kv" }, ...pairs);
    const reuse = el("button", {
      type: "button", class: "btn btn-small", text: _("Open in the playground"),
    });
    reuse.addEventListener("click", () => {
      $("task-dialog").close();
      this.onReuse?.(task);
    });
    const input = el("code", { text: JSON.stringify(task.input, null, 2) });
    return [list, ...taskOutput(task), el("h4", { text: _("Input") }),
      el("pre", { tabindex: "0" }, input), reuse];
  }
}

// The hub's own files come as previews a few hundred pixels wide (twice that on dense
// screens): a page of full-size originals would weigh megabytes. Images stored elsewhere are
// shown as they are.
function previews(url) {
  const files = `${document.getElementById("base-url")?.textContent}/files/`;
  if (!url.startsWith(files)) return { src: url };
  return { src: `${url}?w=256`, srcset: `${url}?w=256 1x, ${url}?w=512 2x` };
}

function thumbnail(task) {
  const image = task.output?.images?.[0];
  if (image) {
    return el("img", { ...previews(image.url), alt: "", loading: "lazy", decoding: "async" });
  }
  let text = task.ready ? statusName(task.status) : _("in progress…");
  if (task.output?.output_purged) text = _("not kept (sync_mode)");
  return el("span", { text });
}
