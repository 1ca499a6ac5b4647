"""The operator console at /console in a real browser, in English and Chinese, against a real
`imagehub serve`: keys (create, limit, revoke, the last admin key refused), and a key that is
not an admin's, which reaches no console data at all.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import KEY
from tests.browser.conftest import Page, expect

ADMIN_ROUTES = (
    "/hub/v1/admin/keys",
    "/hub/v1/admin/tenants",
    "/hub/v1/admin/routes",
    "/hub/v1/admin/tasks",
    "/hub/v1/admin/usage?group_by=day",
    "/hub/v1/admin/webhooks/deliveries",
)


def open_console(page: Page, key: str = KEY, query: str = "") -> Any:
    tab = page.tab
    tab.goto(page.server.url + "/console" + query)
    tab.wait_for_selector("html[data-ready=true]")
    tab.fill("#console-key", key)
    tab.evaluate("document.documentElement.dataset.ready = 'false'")
    tab.locator("#console-key-form button[type=submit]").click()
    return tab


def keys_row(tab: Any, tenant: str) -> Any:
    return tab.locator("#keys-table tbody tr", has_text=tenant)


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        (
            "en",
            {
                "title": "Operator console",
                "created": "Copy it now",
                "saved": "Limits of",
                "revoked": "revoked",
                "no_limit": "no limit",
            },
        ),
        (
            "zh",
            {
                "title": "运维控制台",
                "created": "请立即复制",
                "saved": "的限额已保存",
                "revoked": "已于",
                "no_limit": "不限",
            },
        ),
    ],
)
def test_an_operator_creates_limits_and_revokes_a_key(
    page: Page, api: httpx.Client, lang: str, words: dict[str, str]
):
    tab = open_console(page, query=f"?lang={lang}")
    expect(tab.locator("h1")).to_have_text(words["title"])
    assert tab.evaluate("document.documentElement.lang") == ("zh-CN" if lang == "zh" else "en")
    expect(tab.locator("#console-body")).to_be_visible()
    expect(tab.locator("#keys-table tbody tr[data-key]").first).to_be_visible()

    # create: the key is shown once, and it works against the API
    tenant = f"acme-{lang}"
    form = tab.locator("#key-create")
    form.locator("[name=tenant_id]").fill(tenant)
    form.locator("[name=name]").fill("batch jobs")
    form.locator("[name=requests_per_minute]").fill("30")
    form.locator("button[type=submit]").click()
    expect(tab.locator("#key-created")).to_be_visible()
    expect(tab.locator("#key-created")).to_contain_text(words["created"])
    secret = tab.locator("#key-created-value").inner_text()
    assert secret.startswith("ih_")
    with page.server.client(secret) as client:
        me = client.get("/hub/v1/key").json()
    assert (me["tenant_id"], me["name"], me["admin"]) == (tenant, "batch jobs", False)
    assert me["limits"]["requests_per_minute"] == 30
    row = keys_row(tab, tenant)
    expect(row).to_have_count(1)
    tab.locator("#key-created-done").click()
    expect(tab.locator("#key-created")).to_be_hidden()
    assert secret not in tab.content()  # shown once: gone from the page

    # search narrows the list to the tenant; so does the tenant's chip
    tab.fill("#keys-search", "batch")
    expect(tab.locator("#keys-table tbody tr")).to_have_count(1)  # revoked keys are hidden
    tab.fill("#keys-search", "")
    chip = tab.locator(f"#tenants [data-tenant='{tenant}']")
    expect(chip).to_contain_text("1")
    chip.click()
    expect(tab.locator("#keys-search")).to_have_value(tenant)
    expect(tab.locator("#keys-table tbody tr")).to_have_count(1)

    # limits: concurrency and budget set, the rate limit removed
    row.locator("[data-limits]").click()
    dialog = tab.locator("#limits-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("[name=requests_per_minute]")).to_have_value("30")
    dialog.locator("[name=requests_per_minute]").fill("")
    dialog.locator("[name=concurrent_tasks]").fill("3")
    dialog.locator("[name=budget_usd]").fill("12.5")
    dialog.locator("#limits-save").click()
    expect(dialog).to_be_hidden()
    expect(tab.locator("#keys-message")).to_contain_text(words["saved"])
    key_id = row.get_attribute("data-key")
    limits = api.get(f"/hub/v1/admin/keys/{key_id}").json()["limits"]
    assert limits == {"requests_per_minute": None, "concurrent_tasks": 3, "budget_usd": 12.5}
    expect(row.locator("td").nth(4)).to_have_text(words["no_limit"])
    expect(row.locator("td").nth(5)).to_have_text("3")

    # revoke: the key is refused by the API from then on
    tab.once("dialog", lambda question: question.accept())
    row.locator("[data-revoke]").click()
    expect(tab.locator("#keys-table tbody tr", has_text=tenant)).to_have_count(0)
    tab.check("#keys-revoked")
    expect(keys_row(tab, tenant)).to_contain_text(words["revoked"])
    assert api.get(f"/hub/v1/admin/keys/{key_id}").json()["revoked_at"] is not None
    with page.server.client(secret) as client:
        assert client.get("/hub/v1/key").status_code == 401


def test_the_last_admin_key_cannot_be_revoked_and_the_console_says_why(
    page: Page, api: httpx.Client
):
    tab = open_console(page)
    me = api.get("/hub/v1/key").json()
    admins = [k for k in api.get("/hub/v1/admin/keys").json()["data"] if k["admin"]]
    assert [k["id"] for k in admins if not k["revoked_at"]] == [me["id"]]
    row = tab.locator(f"#keys-table tbody tr[data-key='{me['id']}']")
    tab.once("dialog", lambda question: question.accept())
    row.locator("[data-revoke]").click()
    message = tab.locator("#keys-message")
    expect(message).to_have_attribute("data-kind", "error")
    expect(message).to_contain_text("409")
    expect(message).to_contain_text("last_admin_key")
    assert api.get("/hub/v1/key").status_code == 200  # still working
    page.screenshot("console-keys")


@pytest.mark.parametrize(
    ("lang", "refusal"),
    [("en", "is not an admin key"), ("zh", "不是管理员密钥")],
)
def test_a_tenant_key_reaches_no_console_data(
    page: Page, api: httpx.Client, lang: str, refusal: str
):
    created = api.post("/hub/v1/admin/keys", json={"tenant_id": f"tenant-{lang}"}).json()
    tenant_key = created["key"]
    # the API: every admin route the console reads refuses the key
    with page.server.client(tenant_key) as client:
        for path in ADMIN_ROUTES:
            assert client.get(path).status_code == 403, path
    # the console: a refusal, no section, and no admin route asked
    tab = open_console(page, tenant_key, f"?lang={lang}")
    tab.wait_for_selector("html[data-ready=true]")
    expect(tab.locator("#console-refusal")).to_be_visible()
    expect(tab.locator("#console-refusal")).to_contain_text(refusal)
    expect(tab.locator("#console-body")).to_be_hidden()
    assert tab.locator("#keys-table tbody tr").count() == 0
    assert not [url for url in page.requests if "/hub/v1/admin/" in url]


def test_the_language_switch_keeps_the_console_open_at_its_section(page: Page):
    tab = open_console(page, query="#routes")
    tab.wait_for_selector("html[data-ready=true]")
    expect(tab.locator("#console-body")).to_be_visible()
    tab.locator(".lang-switch [data-set-lang=zh]").click()
    tab.wait_for_url("**/console?lang=zh#routes")
    tab.wait_for_selector("html[data-ready=true]")
    assert tab.evaluate("document.documentElement.lang") == "zh-CN"
    # the key is still this tab's: the console reopens in Chinese without asking again
    expect(tab.locator("#console-body")).to_be_visible()
    expect(tab.locator("#routes-title")).to_have_text("路由")
    expect(tab.locator("#console-who")).to_contain_text("已使用管理员密钥")
    # the choice is saved: the next visit without ?lang= is Chinese too
    tab.goto(page.server.url + "/console")
    assert tab.evaluate("document.documentElement.lang") == "zh-CN"


def test_on_a_phone_the_console_fits_the_screen_and_its_tables_scroll(phone: Page):
    tab = open_console(phone)
    tab.wait_for_selector("html[data-ready=true]")
    expect(tab.locator("#keys-table tbody tr[data-key]").first).to_be_visible()
    width = tab.evaluate("document.documentElement.clientWidth")
    assert tab.evaluate("document.documentElement.scrollWidth") <= width
    # a wide table scrolls inside its own box
    box = tab.locator("#keys .table-scroll")
    assert box.evaluate("n => n.scrollWidth > n.clientWidth")
