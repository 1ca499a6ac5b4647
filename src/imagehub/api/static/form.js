// The playground form, drawn from a model's parameter table: enums as selects, integer ranges
// as bounded number inputs, booleans as switches, images as upload or URL, GPT image_size as a
// preset or a custom width and height. The hub stays the judge: the form is `novalidate` and
// the hub's 422 messages are shown on the fields they name.

import { upload } from "./api.js";
import { el } from "./render.js";

const WIDE = new Set(["prompt", "system_prompt", "image_urls", "mask_url", "image_size"]);

function fieldId(name) {
  return `f-${name}`;
}

function shell(param, control, { legend = false } = {}) {
  const id = fieldId(param.name);
  const mark = param.required ? el("span", { class: "req-mark", "aria-hidden": "true", text: "*" }) : null;
  const title = legend
    ? el("legend", { id: `${id}-label` }, param.name, mark)
    : el("label", { for: id, id: `${id}-label` }, param.name, mark);
  const hint = el("p", { class: "field-hint", id: `${id}-hint`, text: hintText(param) });
  const error = el("p", { class: "field-error", id: `${id}-error`, hidden: true });
  const body = legend ? el("fieldset", { "aria-describedby": `${id}-hint ${id}-error` }, title, control) : control;
  const field = el("div", { class: `field${WIDE.has(param.name) ? " wide" : ""}`, "data-field": param.name },
    ...(legend ? [body] : [title, control]), hint, error);
  return field;
}

function hintText(param) {
  const parts = [param.description];
  if (param.required) parts.unshift("Required.");
  if (param.kind === "integer" && param.minimum !== null && param.maximum !== null) {
    parts.push(`${param.minimum} to ${param.maximum}.`);
  }
  if (param.kind === "image_list") parts.push(`${param.min_items ?? 0} to ${param.max_items} images.`);
  return parts.join(" ");
}

function describe(control, name) {
  control.id = control.id || fieldId(name);
  control.name = name;
  control.setAttribute("aria-describedby", `${fieldId(name)}-hint ${fieldId(name)}-error`);
  return control;
}

function textField(param) {
  const area = el("textarea", { rows: param.name === "prompt" ? 4 : 2, spellcheck: "true" });
  if (param.required) area.setAttribute("aria-required", "true");
  area.value = param.default ?? "";
  const control = describe(area, param.name);
  return { node: shell(param, control), read: () => control.value, write: (v) => { control.value = v ?? ""; } };
}

function selectField(param) {
  const select = describe(el("select"), param.name);
  if (param.default === null && !param.required) select.append(el("option", { value: "", text: "Not set (leave out)" }));
  for (const value of param.values) {
    const label = value === param.default ? `${value} (default)` : value;
    select.append(el("option", { value, text: label }));
  }
  select.value = param.default ?? "";
  return { node: shell(param, select), read: () => select.value || undefined, write: (v) => { select.value = v ?? param.default ?? ""; } };
}

function integerField(param) {
  const input = describe(el("input", {
    type: "number", inputmode: "numeric", step: 1, min: param.minimum, max: param.maximum,
    placeholder: param.default ?? (param.name === "seed" ? "random" : ""),
  }), param.name);
  if (param.default !== null) input.value = param.default;
  const read = () => {
    const raw = input.value.trim();
    return raw === "" ? undefined : Number(raw);
  };
  return { node: shell(param, input), read, write: (v) => { input.value = v ?? ""; } };
}

function booleanField(param) {
  const input = describe(el("input", { type: "checkbox", role: "switch" }), param.name);
  input.checked = Boolean(param.default);
  const state = el("span", { class: "switch-state", "aria-hidden": "true", text: input.checked ? "On" : "Off" });
  input.addEventListener("change", () => { state.textContent = input.checked ? "On" : "Off"; });
  const wrapper = el("div", {}, el("label", { class: "switch" }, input, state));
  const node = shell(param, wrapper);
  return {
    node, read: () => input.checked,
    write: (v) => { input.checked = Boolean(v ?? param.default); state.textContent = input.checked ? "On" : "Off"; },
  };
}

function sizeField(param, presets) {
  const select = describe(el("select"), param.name);
  for (const [name, [w, h]] of Object.entries(presets)) {
    select.append(el("option", { value: name, text: `${name} · ${w} × ${h}${name === param.default ? " (default)" : ""}` }));
  }
  select.append(el("option", { value: "auto", text: `auto${param.default === "auto" ? " (default)" : ""}` }));
  select.append(el("option", { value: "custom", text: "Custom width × height…" }));
  select.value = param.default;
  const side = (label) => el("input", {
    type: "number", inputmode: "numeric", step: 16, min: 16, max: 3840, "aria-label": `${label} in pixels`,
    id: `${fieldId(param.name)}-${label}`,
  });
  const width = side("width");
  const height = side("height");
  width.value = 1024;
  height.value = 1024;
  const custom = el("div", { class: "inline custom-size", hidden: true }, width, el("span", { "aria-hidden": "true", text: "×" }), height);
  width.setAttribute("aria-describedby", `${fieldId(param.name)}-error`);
  height.setAttribute("aria-describedby", `${fieldId(param.name)}-error`);
  select.addEventListener("change", () => { custom.hidden = select.value !== "custom"; });
  const read = () => {
    if (select.value !== "custom") return select.value;
    const number = (input) => (input.value.trim() === "" ? null : Number(input.value));
    return { width: number(width), height: number(height) };
  };
  const write = (v) => {
    if (v && typeof v === "object") {
      select.value = "custom";
      width.value = v.width;
      height.value = v.height;
    } else {
      select.value = v ?? param.default;
    }
    custom.hidden = select.value !== "custom";
  };
  return { node: shell(param, el("div", { class: "size-picker" }, select, custom)), read, write };
}

function imageItem(url, onRemove, index) {
  const remove = el("button", { type: "button", class: "btn btn-small remove", "aria-label": `Remove image ${index + 1}`, text: "×" });
  remove.addEventListener("click", onRemove);
  return el("li", {}, el("img", { src: url, alt: `Input image ${index + 1}` }), remove);
}

function imagesField(param, single) {
  let urls = [];
  const id = fieldId(param.name);
  const list = el("ul", { class: "image-list", "aria-label": `${param.name}: chosen images` });
  const url = el("input", { type: "url", id, placeholder: "https://… or data:image/…", "aria-describedby": `${id}-hint ${id}-error`, "aria-label": `${param.name}: image URL` });
  const add = el("button", { type: "button", class: "btn", text: single ? "Use URL" : "Add URL" });
  const file = el("input", { type: "file", accept: "image/png,image/jpeg,image/webp,image/gif", multiple: !single, "aria-describedby": `${id}-error` });
  const pick = el("label", { class: "btn upload-label" }, file, single ? "Upload image" : "Upload images");
  const status = el("p", { class: "field-hint", role: "status" });
  const node = shell(param, el("div", { class: "image-input" }, list, el("div", { class: "inline" }, url, add), el("div", { class: "inline" }, pick), status), { legend: true });
  const draw = () => {
    list.replaceChildren(...urls.map((u, i) => imageItem(u, () => { urls.splice(i, 1); draw(); node.dispatchEvent(new Event("input", { bubbles: true })); }, i)));
  };
  const push = (value) => { urls = single ? [value] : [...urls, value]; draw(); node.dispatchEvent(new Event("input", { bubbles: true })); };
  add.addEventListener("click", () => { if (url.value.trim()) { push(url.value.trim()); url.value = ""; } });
  url.addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); add.click(); } });
  file.addEventListener("change", async () => {
    for (const chosen of file.files) {
      status.textContent = `Uploading ${chosen.name}…`;
      try {
        push((await upload(chosen)).url);
        status.textContent = `Uploaded ${chosen.name}.`;
      } catch (error) {
        status.textContent = `Upload of ${chosen.name} failed: ${error.message}`;
      }
    }
    file.value = "";
  });
  const read = () => (single ? urls[0] : [...urls]);
  const write = (v) => { urls = v ? (Array.isArray(v) ? [...v] : [v]) : []; draw(); };
  return { node, read, write };
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
    for (const { node } of this.fields.values()) {
      node.classList.remove("invalid");
      const error = node.querySelector(".field-error");
      error.hidden = true;
      error.textContent = "";
      for (const control of node.querySelectorAll("input, select, textarea")) control.removeAttribute("aria-invalid");
    }
  }

  // Put each of the hub's messages on its field; returns the messages no field took.
  showErrors(details) {
    this.clearErrors();
    const unplaced = [];
    for (const detail of details) {
      const [scope, name] = detail.loc || [];
      const field = scope === "input" ? this.fields.get(name) : undefined;
      if (!field) {
        unplaced.push(detail);
        continue;
      }
      field.node.classList.add("invalid");
      const error = field.node.querySelector(".field-error");
      error.hidden = false;
      error.textContent = error.textContent ? `${error.textContent}; ${detail.msg}` : detail.msg;
      for (const control of field.node.querySelectorAll("input, select, textarea")) control.setAttribute("aria-invalid", "true");
    }
    return unplaced;
  }

  firstControl(name) {
    return this.fields.get(name)?.node.querySelector("input:not([type=file]), select, textarea");
  }
}
