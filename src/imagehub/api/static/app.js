// The page's entry point: tabs, cards, copy buttons, the playground, the history and the
// language switch.

import { initCopyButtons } from "./copy.js";
import { Gallery } from "./gallery.js";
import { Playground } from "./playground.js";
import { initLanguageSwitch, restoreState } from "./switch.js";
import { initLanguageTabs, initTabs, selectTab } from "./tabs.js";

// A link to a model (#model-nano-banana-2) selects its tab and opens its card.
function openFromHash() {
  const card = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  if (!card || !card.classList.contains("model-card")) return;
  const panel = card.closest('[role="tabpanel"]');
  selectTab(document.querySelector(`[aria-controls="${panel.id}"]`));
  card.open = true;
  card.scrollIntoView();
}

function main() {
  const catalog = JSON.parse(document.getElementById("catalog-data").textContent);
  initTabs(document.querySelector(".cap-tabs"));
  initLanguageTabs(document);
  initCopyButtons(document);
  for (const card of document.querySelectorAll(".model-card")) {
    // keep the address in step with the open card, so it can be shared
    card.addEventListener("toggle", () => {
      if (card.open) history.replaceState(null, "", `#${card.id}`);
    });
  }
  const playground = new Playground(catalog);
  const toPlayground = (modelId, input) => {
    playground.useModel(modelId, input);
    document.getElementById("playground").scrollIntoView();
    document.getElementById("pg-model").focus({ preventScroll: true });
  };
  document.addEventListener("click", (event) => {
    const link = event.target.closest("[data-try-model]");
    if (!link) return;
    event.preventDefault();
    toPlayground(link.dataset.tryModel);
  });
  new Gallery({ onReuse: (task) => toPlayground(task.model, task.input) });
  window.addEventListener("hashchange", openFromHash);
  openFromHash();
  initLanguageSwitch(playground);
  restoreState(playground);
  document.documentElement.dataset.ready = "true";
}

main();
