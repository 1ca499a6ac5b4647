// The operator console's entry point: the admin key, the refusal of any other key, the sections
// and the language switch. Nothing is shown before the hub has said the key is an admin's.

import { _ } from "./i18n.js";
import { admin, getKey, setKey } from "./console-api.js";
import { KeysSection } from "./console-keys.js";
import { RoutesSection } from "./console-routes.js";
import { TasksSection } from "./console-tasks.js";
import { UsageSection } from "./console-usage.js";
import { WebhooksSection } from "./console-webhooks.js";

const COOKIE = "imagehub_lang";
// the routes' state changes by itself (a cool-down starts or ends): read it again this often
const ROUTES_EVERY_MS = 15_000;
const YEAR = 365 * 24 * 3600;

const body = document.getElementById("console-body");
const refusal = document.getElementById("console-refusal");
const who = document.getElementById("console-who");
const forget = document.getElementById("console-forget");
let sections = null;

function refuse(text) {
  body.hidden = true;
  refusal.textContent = text;
  refusal.hidden = false;
}

// Ask the hub who the key is: only an admin key opens the console. The page is marked ready
// (data-ready) once the answer is shown, and the sections' first reads are done.
async function open() {
  await check();
  document.documentElement.dataset.ready = "true";
}

async function check() {
  refusal.hidden = true;
  if (!getKey()) {
    body.hidden = true;
    who.textContent = _("Enter an admin key to open the console.");
    forget.hidden = true;
    return;
  }
  forget.hidden = false;
  let me;
  try {
    me = await admin("/hub/v1/key");
  } catch (error) {
    who.textContent = "";
    if (error.status === 401) refuse(_("The hub does not know this key, or it was revoked."));
    else refuse(_("The hub refused the key: {message}", { message: error.message }));
    return;
  }
  if (!me.admin) {
    who.textContent = "";
    refuse(_("This key belongs to the tenant {tenant} and is not an admin key: the console is for admin keys only.", { tenant: me.tenant_id }));
    return;
  }
  who.textContent = _("Signed in with the admin key {prefix} ({tenant}).", {
    prefix: me.prefix,
    tenant: me.tenant_id,
  });
  body.hidden = false;
  sections ??= {
    keys: new KeysSection(),
    routes: new RoutesSection(),
    tasks: new TasksSection(),
    usage: new UsageSection(),
    webhooks: new WebhooksSection(),
  };
  await Promise.all(Object.values(sections).map((section) => section.load()));
}

function refreshRoutes() {
  setInterval(() => {
    if (sections && !body.hidden && document.visibilityState === "visible") sections.routes.load();
  }, ROUTES_EVERY_MS);
}

function initKeyForm() {
  const form = document.getElementById("console-key-form");
  const input = document.getElementById("console-key");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setKey(input.value.trim());
    input.value = "";
    open();
  });
  forget.addEventListener("click", () => {
    setKey("");
    location.reload();
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-refresh]");
    if (button && sections) sections[button.dataset.refresh].load();
  });
}

// The language switch: save the choice and come back in the other language at the same section.
function initLanguageSwitch() {
  document.addEventListener("click", (event) => {
    const link = event.target.closest("[data-set-lang]");
    if (!link) return;
    event.preventDefault();
    const lang = link.dataset.setLang;
    document.cookie = `${COOKIE}=${lang}; Path=/; Max-Age=${YEAR}; SameSite=Lax`;
    const url = new URL(location.href);
    url.searchParams.set("lang", lang);
    location.assign(url);
  });
}

async function main() {
  initKeyForm();
  initLanguageSwitch();
  refreshRoutes();
  await open();
}

main();
