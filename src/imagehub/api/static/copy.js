// Copy buttons: `data-copy="<id>"` copies the text of that element.

import { _ } from "./i18n.js";

export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // a fresh node, so screen readers announce the same message twice in a row too
  window.setTimeout(() => { region.textContent = message; }, 50);
}

export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // fall through to the selection-based copy
    }
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.append(area);
  area.select();
  const ok = document.execCommand("copy");
  area.remove();
  return ok;
}

export function initCopyButtons(root) {
  root.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const ok = await copyText(source.textContent);
    button.textContent = ok ? _("Copied") : _("Copy failed");
    button.classList.toggle("copied", ok);
    announce(ok ? _("Copied to the clipboard") : _("Could not copy; select the text instead"));
    window.setTimeout(() => {
      button.textContent = _("Copy");
      button.classList.remove("copied");
    }, 2000);
  });
}
