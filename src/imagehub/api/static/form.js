// The playground form, drawn from a model's parameter table: enums as selects, integer ranges
// as bounded number inputs, booleans as switches, images as upload or URL, GPT image_size as a
// preset or a custom width and height. The hub stays the judge: the form is `novalidate` and
// the hub's 422 messages are shown on the fields they name.

import { upload } from "./api.js";
import { _ } from "./i18n.js";
import { el } from "./render.js";

const WIDE = new Set(["prompt", "system_prompt", "image_urls", "mask_url", "image_size"]);

const fieldId = (name) => `f-${name}`;
const describedBy = (name) => `${fieldId(name)}-hint ${fieldId(name)}-error`;

function hintText(param) {
  const parts = [param.description];
  if (param.required) parts.unshift(_("Required."));
  if (param.kind === "integer" && param.minimum !== null && param.maximum !== null) {
    parts.push(_("{minimum} to {maximum}.", param));
  }
  if (param.kind === "image_list") {
    parts.push(_("{minimum} to {maximum} images.", { minimum: param.min_items ?? 0, maximum: param.max_items }));
  }
  return parts.join(" ");
}

// The frame of every field: its label (or legend), the control, a hint and an error line.
function shell(param, control, { legend = false } = {}) {
  const id = fieldId(param.name);
  const mark = param.required
    ? el("span", { class: "req-mark", "aria-hidden": "true", text: "*" })
    : null;
  const hint = el("p", { class: "field-hint", id: `${id}-hint`, text: hintText(param) });
  const error = el("p", { class: "field-error", id: `${id}-error`, hidden: true });
  let body;
  if (legend) {
    const title = el("legend", { id: `${id}-label` }, param.name, mark);
    body = [el("fieldset", { "aria-describedby": describedBy(param.name) }, title, control)];
  } else {
    body = [el("label", { for: id, id: `${id}-label` }, param.name, mark), control];
  }
  const wide = WIDE.has(param.name) ? " wide" : "";
  return el("div", { class: `field${wide}`, "data-field": param.name }, ...body, hint, error);
}

function named(control, name) {
  control.id = control.id || fieldId(name);
  control.name = name;
  control.setAttribute("aria-describedby", describedBy(name));
  return control;
}

function textField(param) {
  const area = named(el("textarea", { rows: param.name === "prompt" ? 4 : 2 }), param.name);
  if (param.required) area.setAttribute("aria-required", "true");
  area.value = param.default ?? "";
  return {
    node: shell(param, area),
    read: () => area.value,
    write: (value) => { area.value = value ?? ""; },
  };
}

function selectField(param) {
  const select = named(el("select"), param.name);
  if (param.default === null && !param.required) {
    select.append(el("option", { value: "", text: _("Not set (leave out)") }));
  }
  for (const value of param.values) {
    const label = value === param.default ? _("{value} (default)", { value }) : value;
    select.append(el("option", { value, text: label }));
  }
  select.value = param.default ?? "";
  return {
    node: shell(param, select),
    read: () => select.value || undefined,
    write: (value) => { select.value = value ?? param.default ?? ""; },
  };
}

function integerField(param) {
  const input = named(el("input", {
    type: "number", inputmode: "numeric", step: 1, min: param.minimum, max: param.maximum,
    placeholder: param.default ?? (param.name === "seed" ? _("random") : ""),
  }), param.name);
  if (param.default !== null) input.value = param.default;
  const read = () => {
    const raw = input.value.trim();
    return raw === "" ? undefined : Number(raw);
  };
  return { node: shell(param, input), read, write: (value) => { input.value = value ?? ""; } };
}

function booleanField(param) {
  const input = named(el("input", { type: "checkbox", role: "switch" }), param.name);
  const state = el("span", { class: "switch-state", "aria-hidden": "true" });
  const show = () => { state.textContent = input.checked ? _("On") : _("Off"); };
  input.checked = Boolean(param.default);
  show();
  input.addEventListener("change", show);
  const write = (value) => {
    input.checked = Boolean(value ?? param.default);
    show();
  };
  const wrapper = el("div", {}, el("label", { class: "switch" }, input, state));
  return { node: shell(param, wrapper), read: () => input.checked, write };
}

function sizeOptions(select, param, presets) {
  const label = (name, text) => (name === param.default ? _("{value} (default)", { value: text }) : text);
  for (const [name, [w, h]] of Object.entries(presets)) {
    select.append(el("option", { value: name, text: label(name, `${name} · ${w} × ${h}`) }));
  }
  select.append(el("option", { value: "auto", text: label("auto", "auto") }));
  select.append(el("option", { value: "custom", text: _("Custom width × height…") }));
}

function sizeField(param, presets) {
  const select = named(el("select"), param.name);
  sizeOptions(select, param, presets);
  const side = (name, label) => el("input", {
    type: "number", inputmode: "numeric", step: 16, min: 16, max: 3840, value: 1024,
    id: `${fieldId(param.name)}-${name}`, "aria-label": label,
    "aria-describedby": `${fieldId(param.name)}-error`,
  });
  const width = side("width", _("width in pixels"));
  const height = side("height", _("height in pixels"));
  const times = el("span", { "aria-hidden": "true", text: "×" });
  const custom = el("div", { class: "inline custom-size" }, width, times, height);
  const toggle = () => { custom.hidden = select.value !== "custom"; };
  select.addEventListener("change", toggle);
  const number = (input) => (input.value.trim() === "" ? null : Number(input.value));
  const read = () => (select.value === "custom"
    ? { width: number(width), height: number(height) }
    : select.value);
  const write = (value) => {
    if (value && typeof value === "object") {
      select.value = "custom";
      width.value = value.width;
      height.value = value.height;
    } else {
      select.value = value ?? param.default;
    }
    toggle();
  };
  write(param.default);
  return { node: shell(param, el("div", { class: "size-picker" }, select, custom)), read, write };
}

// image_urls (many) and mask_url (one): a URL typed in, or a file uploaded to the hub.
function imagesField(param, single) {
  const id = fieldId(param.name);
  let urls = [];
  const list = el("ul", { class: "image-list", "aria-label": _("{name}: chosen images", param) });
  const url = el("input", {
    type: "url", id, placeholder: _("https://… or data:image/…"),
    "aria-label": _("{name}: image URL", param), "aria-describedby": describedBy(param.name),
  });
  const add = el("button", { type: "button", class: "btn", text: single ? _("Use URL") : _("Add URL") });
  const file = el("input", {
    type: "file", accept: "image/png,image/jpeg,image/webp,image/gif", multiple: !single,
    "aria-describedby": `${id}-error`,
  });
  const pick = el("label", { class: "btn upload-label" }, file,
    single ? _("Upload image") : _("Upload images"));
  const status = el("p", { class: "field-hint", role: "status" });
  const inputs = el("div", { class: "image-input" }, list,
    el("div", { class: "inline" }, url, add), el("div", { class: "inline" }, pick), status);
  const node = shell(param, inputs, { legend: true });

  const changed = () => node.dispatchEvent(new Event("input", { bubbles: true }));
  const draw = () => list.replaceChildren(...urls.map((u, i) => imageItem(u, i, () => {
    urls.splice(i, 1);
    draw();
    changed();
  })));
  const push = (value) => {
    urls = single ? [value] : [...urls, value];
    draw();
    changed();
  };
  add.addEventListener("click", () => {
    if (!url.value.trim()) return;
    push(url.value.trim());
    url.value = "";
  });
  url.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    add.click();
  });
  file.addEventListener("change", () => uploadAll(file, status, push));
  const write = (value) => {
    urls = value ? [].concat(value) : [];
    draw();
  };
  return { node, read: () => (single ? urls[0] : [...urls]), write };
}

function imageItem(url, index, onRemove) {
  const remove = el("button", {
    type: "button", class: "btn btn-small remove", text: "×",
    "aria-label": _("Remove image {number}", { number: index + 1 }),
  });
  remove.addEventListener("click", onRemove);
  return el("li", {}, el("img", { src: url, alt: _("Input image {number}", { number: index + 1 }) }), remove);
}

async function uploadAll(file, status, push) {
  for (const chosen of file.files) {
    status.textContent = _("Uploading {name}…", chosen);
    try {
      push((await upload(chosen)).url);
      status.textContent = _("Uploaded {name}.", chosen);
    } catch (error) {
      status.textContent = _("Upload of {name} failed: {error}", { name: chosen.name, error: error.message });
    }
  }
  file.value = "";
}

function build(param, presets) {
  switch (param.kind) {
    case "integer": return integerField(param);
    case "boolean": return booleanField(param);
    case "image_size": return sizeField(param, presets);
    case "image_list": return imagesField(param, false);
    case "image": return imagesField(param, true);
    default: return param.values ? selectField(param) : textField(param);
  }
}

// Whether a value belongs in the request: required, or different from the default.
function differs(param, value) {
  if (value === undefined) return false;
  if (param.required) return true;
  if (param.kind === "image_size" && typeof value === "object") return true;
  if (param.kind === "image_list") return value.length > 0;
  if (param.kind === "boolean") return value !== Boolean(param.default);
  if (param.kind === "string" && !param.values && value === "" && !param.default) return false;
  return value !== param.default;
}

export class ModelForm {
  constructor(container, model, presets) {
    this.model = model;
    this.fields = new Map();
    container.replaceChildren();
    for (const param of model.params) {
      const field = build(param, presets);
      this.fields.set(param.name, { param, ...field });
      container.append(field.node);
    }
  }

  // The input to send: required parameters and every value that differs from its default.
  values() {
    const input = {};
    for (const [name, { param, read }] of this.fields) {
      const value = read();
      if (differs(param, value)) input[name] = value;
    }
    return input;
  }

  setValues(input) {
    for (const [name, value] of Object.entries(input)) this.fields.get(name)?.write(value);
  }

  reset() {
    for (const { param, write } of this.fields.values()) write(param.default ?? undefined);
  }

  clearErrors() {
    for (const { node } of this.fields.values()) mark(node, null);
  }

  // Put each of the hub's messages on its field; returns the messages no field took.
  showErrors(details) {
    this.clearErrors();
    const unplaced = [];
    for (const detail of details) {
      const [scope, name] = detail.loc || [];
      const field = scope === "input" ? this.fields.get(name) : undefined;
      if (field) mark(field.node, detail.msg);
      else unplaced.push(detail);
    }
    return unplaced;
  }

  firstControl(name) {
    return this.fields.get(name)?.node.querySelector(
      "input:not([type=file]), select, textarea");
  }
}

// Mark a field invalid with one more message, or clear it (message null).
function mark(node, message) {
  const error = node.querySelector(".field-error");
  const controls = node.querySelectorAll("input, select, textarea");
  if (message === null) {
    node.classList.remove("invalid");
    error.hidden = true;
    error.textContent = "";
    for (const control of controls) control.removeAttribute("aria-invalid");
    return;
  }
  node.classList.add("invalid");
  error.hidden = false;
  error.textContent = error.textContent ? `${error.textContent}; ${message}` : message;
  for (const control of controls) control.setAttribute("aria-invalid", "true");
}
