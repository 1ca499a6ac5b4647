// Drawing tasks: status badges, images with their size and format, errors. DOM only, no API.

import { LANG, _ } from "./i18n.js";

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(2)} MB`;
}

export function formatType(contentType) {
  return (contentType || "").replace("image/", "").toUpperCase();
}

const USD = new Intl.NumberFormat(LANG, {
  style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 4,
});

export function formatCost(usd) {
  return USD.format(usd);
}

export function formatTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(LANG, { dateStyle: "medium", timeStyle: "medium" });
}

// A task's status as the API spells it -> its name on the page
const STATUS_NAMES = {
  queued: _("queued"), running: _("running"), succeeded: _("succeeded"), failed: _("failed"),
  canceled: _("canceled"), ready: _("ready"),
};

export function statusName(status) {
  return STATUS_NAMES[status] || status;
}

export function badge(status) {
  return el("span", { class: `badge ${status}`, text: statusName(status) });
}

export function imageMeta(image) {
  const size = `${image.width} × ${image.height}`;
  return `${size} · ${formatType(image.content_type)} · ${formatBytes(image.file_size)}`;
}

export function imageFigure(image, index) {
  const name = image.file_name || `image ${index + 1}`;
  const img = el("img", {
    src: image.url, alt: _("Generated image {number}", { number: index + 1 }), width: image.width, height: image.height,
    loading: "lazy", decoding: "async",
  });
  const caption = el("figcaption", {},
    el("span", { class: "image-meta", text: imageMeta(image) }),
    el("a", {
      href: image.url, target: "_blank", rel: "noopener", download: name, text: _("Download"),
    }));
  return el("figure", { class: "result-image" }, img, caption);
}

export function errorBox(error) {
  return el("div", { class: "task-error", role: "alert" },
    el("strong", { text: error.code }),
    el("p", { text: error.message }));
}

export function warningsBox(warnings) {
  if (!warnings || !warnings.length) return null;
  const title = el("strong", { text: _("Warnings: ") });
  return el("div", { class: "warnings" }, title, warnings.join("; "));
}

const STEPS = ["queued", "running", "ready"];

export function progress(status) {
  const ready = ["succeeded", "failed", "canceled"].includes(status);
  const current = ready ? 2 : STEPS.indexOf(status);
  const list = el("ol", { class: "progress", "aria-hidden": "true" });
  STEPS.forEach((step, i) => {
    let state = i < current ? "done" : i === current ? "current" : "";
    if (ready && i === 2) state = status === "succeeded" ? "done" : "bad";
    list.append(el("li", { class: state, text: statusName(i === 2 && ready ? status : step) }));
  });
  return list;
}

// Where a waiting task is: a bar of its progress, its place in the queue, the time it has
// waited and the time left (a `progress` event, or the task itself; null where unknown).
export function progressBar(info) {
  const bar = el("progress", { class: "task-bar", max: "1", "aria-label": _("Progress") });
  bar.value = info.progress ?? 0;
  const parts = [];
  if (info.queue_position !== null && info.queue_position !== undefined) {
    parts.push(_("{count} ahead in the queue", { count: info.queue_position }));
  }
  if (info.elapsed_seconds !== null && info.elapsed_seconds !== undefined) {
    parts.push(_("{seconds} s elapsed", { seconds: Math.round(info.elapsed_seconds) }));
  }
  if (info.eta_seconds !== null && info.eta_seconds !== undefined) {
    parts.push(_("about {seconds} s left", { seconds: Math.round(info.eta_seconds) }));
  }
  const text = el("span", { class: "task-meta task-bar-text", text: parts.join(" · ") });
  return el("div", { class: "task-progress", id: "pg-progress" }, bar, text);
}

export function taskOutput(task) {
  const parts = [];
  if (task.error) parts.push(errorBox(task.error));
  const warnings = warningsBox(task.warnings);
  if (warnings) parts.push(warnings);
  const images = (task.output && task.output.images) || [];
  if (images.length) {
    parts.push(el("div", { class: "images" }, ...images.map(imageFigure)));
  } else if (task.output && task.output.output_purged) {
    const text = _("The images were returned once (sync_mode) and are no longer kept.");
    parts.push(el("p", { class: "muted", text }));
  }
  if (task.output && task.output.description) {
    parts.push(el("p", { class: "description", text: task.output.description }));
  }
  const grounding = task.output && task.output.grounding;
  if (grounding) parts.push(groundingBox(grounding));
  return parts;
}

// What Google Search grounded the images on: its search suggestions (each a link to the search,
// as Google asks them to be shown) and the pages it drew from.
export function groundingBox(grounding) {
  const box = el("div", { class: "grounding" },
    el("strong", { text: _("Grounded with Google Search") }));
  const queries = grounding.queries || [];
  if (queries.length) {
    const search = (q) => `https://www.google.com/search?q=${encodeURIComponent(q)}`;
    box.append(el("p", { class: "suggestions" }, _("Search suggestions: "),
      ...queries.map((q) => el("a", { href: search(q), target: "_blank", rel: "noopener", class: "chip", text: q }))));
  }
  const sources = grounding.sources || [];
  if (sources.length) {
    box.append(el("p", {}, _("Sources: ")), el("ol", { class: "sources" },
      ...sources.map((s) => el("li", {},
        el("a", { href: s.uri, target: "_blank", rel: "noopener noreferrer", text: s.title || s.uri })))));
  }
  return box;
}
