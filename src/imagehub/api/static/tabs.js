// The WAI-ARIA tabs pattern: arrow keys, Home and End move between tabs (roving tabindex),
// and a tab shows its panel as soon as it gets focus.

export function selectTab(tab, { focus = false } = {}) {
  const tablist = tab.closest('[role="tablist"]');
  for (const other of tablist.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    const panel = document.getElementById(other.getAttribute("aria-controls"));
    if (panel) panel.hidden = !selected;
  }
  if (focus) tab.focus();
  tablist.dispatchEvent(new CustomEvent("tabchange", { detail: { tab }, bubbles: true }));
}

const MOVES = {
  ArrowRight: (i, n) => (i + 1) % n,
  ArrowDown: (i, n) => (i + 1) % n,
  ArrowLeft: (i, n) => (i - 1 + n) % n,
  ArrowUp: (i, n) => (i - 1 + n) % n,
  Home: () => 0,
  End: (i, n) => n - 1,
};

export function initTabs(tablist) {
  const tabs = [...tablist.querySelectorAll('[role="tab"]')];
  tablist.addEventListener("click", (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab) selectTab(tab);
  });
  tablist.addEventListener("keydown", (event) => {
    const move = MOVES[event.key];
    const index = tabs.indexOf(document.activeElement);
    if (!move || index < 0) return;
    event.preventDefault();
    selectTab(tabs[move(index, tabs.length)], { focus: true });
  });
}

// Every language switcher on the page follows the last choice, which the browser remembers.
const LANG_KEY = "imagehub.exampleLanguage";

export function initLanguageTabs(root) {
  const groups = [...root.querySelectorAll("[data-lang-group] > [role='tablist']")];
  const follow = (lang) => {
    for (const group of groups) {
      const tab = group.querySelector(`[data-lang="${lang}"]`);
      if (tab && tab.getAttribute("aria-selected") !== "true") selectTab(tab);
    }
  };
  for (const group of groups) {
    initTabs(group);
    group.addEventListener("tabchange", (event) => {
      const lang = event.detail.tab.dataset.lang;
      if (localStorage.getItem(LANG_KEY) === lang) return;
      localStorage.setItem(LANG_KEY, lang);
      follow(lang);
    });
  }
  const saved = localStorage.getItem(LANG_KEY);
  if (saved) follow(saved);
}
