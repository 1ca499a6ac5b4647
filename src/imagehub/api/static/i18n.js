// The page's language in its scripts: `_("English text", {name: value})` gives the text in the
// page's language. The translations come from the hub's message catalog, embedded in the page
// (id messages-data) for the messages these scripts use; English needs none.

const MESSAGES = JSON.parse(document.getElementById("messages-data")?.textContent || "{}");

// the page's language as a BCP 47 tag (en, zh-CN): dates and numbers follow it
export const LANG = document.documentElement.lang || "en";

export function _(message, values = {}) {
  const text = MESSAGES[message] || message;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}
