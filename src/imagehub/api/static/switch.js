// The language switch. Its links work alone (`?lang=zh`); with scripts, the choice is also saved
// in a cookie the hub reads (so the next visit opens in it), and the page comes back in the
// other language as it was: the same capability tab, open cards, model and typed values.

import { selectTab } from "./tabs.js";

const COOKIE = "imagehub_lang";
const STATE_KEY = "imagehub.pageState";
const YEAR = 365 * 24 * 3600;

function snapshot(playground) {
  return {
    tab: document.querySelector('.cap-tabs [aria-selected="true"]')?.id,
    open: [...document.querySelectorAll(".model-card[open]")].map((card) => card.id),
    model: playground.form?.model.id,
    input: playground.form?.values(),
    scroll: window.scrollY,
  };
}

export function initLanguageSwitch(playground) {
  document.addEventListener("click", (event) => {
    const link = event.target.closest("[data-set-lang]");
    if (!link) return;
    event.preventDefault();
    const lang = link.dataset.setLang;
    document.cookie = `${COOKIE}=${lang}; Path=/; Max-Age=${YEAR}; SameSite=Lax`;
    sessionStorage.setItem(STATE_KEY, JSON.stringify(snapshot(playground)));
    const url = new URL(location.href);
    url.searchParams.set("lang", lang);
    location.assign(url);
  });
}

// After a switch: put the page back as it was; any other load finds nothing to restore.
export function restoreState(playground) {
  const saved = sessionStorage.getItem(STATE_KEY);
  if (!saved) return;
  sessionStorage.removeItem(STATE_KEY);
  let state;
  try {
    state = JSON.parse(saved);
  } catch {
    return;
  }
  const tab = state.tab && document.getElementById(state.tab);
  if (tab?.closest(".cap-tabs")) selectTab(tab);
  for (const id of state.open || []) {
    const card = document.getElementById(id);
    if (card?.classList.contains("model-card")) card.open = true;
  }
  if (playground.models.has(state.model)) playground.useModel(state.model, state.input || {});
  window.scrollTo(0, state.scroll || 0);
}
