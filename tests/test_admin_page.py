"""The admin page (/admin/, issue 19) in real Chromium against the whole demo UCS: the
admin logs in, adds a queue, finds it in the list, edits it and sees the change in the
audit log; a refusal shows the server's message; an agent is told they may not."""

from __future__ import annotations

from typing import Any

from test_bar_browser import UCS, in_browser, pytestmark, ucs  # noqa: F401 - the fixture and the skip

from ucs import demo


def log_in(page: Any, base: str, username: str, password: str) -> None:
    page.goto(base + "/admin/?lang=en")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login button[type=submit]")


@in_browser
def test_the_admin_adds_and_edits_a_queue_and_an_agent_is_refused(ucs: UCS, browser: Any) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, ucs.base, "admin", demo.ADMIN_PASSWORD)
    page.wait_for_selector("#rows tr[data-id]")  # the queues tab, first
    assert "Support" in page.inner_text("#rows")

    page.click("#add")
    page.fill('#fields [name="name"]', "Billing")
    page.fill('#fields [name="asterisk_name"]', "billing")
    page.fill('#fields [name="number"]', "5002")
    page.click("#save")
    row = page.wait_for_selector('#rows tr:has(td[data-field="asterisk_name"]:text-is("billing"))')
    assert row.inner_text().count("5002") == 1
    assert page.is_hidden("#editor")

    # The search narrows the list.
    page.fill("#search", "bill")
    assert page.locator("#rows tr").count() == 1
    page.fill("#search", "")

    # A refusal shows the server's message: a second queue of the same Asterisk name.
    page.click("#add")
    page.fill('#fields [name="name"]', "Billing again")
    page.fill('#fields [name="asterisk_name"]', "billing")
    page.click("#save")
    page.wait_for_selector("#error:not([hidden])")
    assert "billing" in page.inner_text("#error")
    page.click("#cancel")

    page.click('#rows tr:has(td:text-is("billing")) button.edit')
    page.fill('#fields [name="name"]', "Billing and invoices")
    page.click("#save")
    page.wait_for_selector('#rows td[data-field="name"]:text-is("Billing and invoices")')

    page.click('nav [data-tab="audit"]')
    first = page.wait_for_selector("#audit-rows tr")
    assert first.inner_text().count("admin") >= 1
    assert page.inner_text('#audit-rows tr:first-child td[data-field="action"]').strip() == "edit"
    assert "Billing → Billing and invoices" in page.inner_text('#audit-rows tr:first-child td[data-field="changes"]')
    assert page.is_disabled("#newer")

    # Deleting asks first, then the queue leaves the list.
    page.on("dialog", lambda d: d.accept())
    page.click('nav [data-tab="queues"]')
    page.click('#rows tr:has(td:text-is("billing")) button.delete')
    page.wait_for_selector('#rows td:text-is("billing")', state="detached")

    # The other tabs list users and lines.
    page.click('nav [data-tab="users"]')
    page.wait_for_selector('#rows td[data-field="username"]:text-is("agent1")')
    page.click('nav [data-tab="lines"]')
    page.wait_for_selector('#rows td[data-field="device"]:text-is("SIP/1001")')
    assert errors == []
    page.close()

    agent = browser.new_page()
    username, password = demo.user_of(1)
    log_in(agent, ucs.base, username, password)
    agent.wait_for_selector("#status.refused")
    assert "may not" in agent.inner_text("#status")
    assert agent.is_hidden("#app")
    agent.close()


# -- the other kinds, memberships, CSV, accessibility (issue 19, second slice) ------------------


def admin_page(browser: Any, ucs: UCS, lang: str = "en") -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: d.accept())
    page.goto(ucs.base + f"/admin/?lang={lang}")
    page.wait_for_selector("#login:not([hidden])")
    page.fill("#username", "admin")
    page.fill("#password", demo.ADMIN_PASSWORD)
    page.click("#login button[type=submit]")
    page.wait_for_selector("#app:not([hidden])")
    return page, errors


def names(ucs: UCS, kind: str, attr: str = "name") -> list[str]:
    """The entities of ``kind`` the store holds (not the page, not the directory in memory)."""
    docs = ucs.run(ucs.server.get_store().kv_items, f"dir.{kind}")
    return sorted(d[attr] for d in docs.values())


def row(kind_field: str, text: str) -> str:
    return f'#rows tr:has(td[data-field="{kind_field}"]:text-is("{text}"))'


@in_browser
def test_teams_groups_and_reasons_are_added_edited_deleted_and_refusals_shown(ucs: UCS, browser: Any) -> None:
    page, errors = admin_page(browser, ucs)
    for kind in ("teams", "groups", "auxreasons"):
        page.click(f'nav [data-tab="{kind}"]')
        before = names(ucs, kind)
        page.click("#add")
        page.fill('#fields [name="name"]', "Night shift")
        page.click("#save")
        page.wait_for_selector(row("name", "Night shift"))
        assert names(ucs, kind) == sorted(before + ["Night shift"])
        # The same name again: the server's refusal, on the form.
        page.click("#add")
        page.fill('#fields [name="name"]', "night shift")
        page.click("#save")
        page.wait_for_selector("#error:not([hidden])")
        assert "Not accepted — Name: 'night shift' is taken by" in page.inner_text("#error"), kind
        page.click("#cancel")
        page.click(row("name", "Night shift") + " button.edit")
        page.fill('#fields [name="name"]', "Late shift")
        page.click("#save")
        page.wait_for_selector(row("name", "Late shift"))
        assert "Late shift" in names(ucs, kind) and "Night shift" not in names(ucs, kind)
        page.click(row("name", "Late shift") + " button.delete")
        page.wait_for_selector(row("name", "Late shift"), state="detached")
        assert names(ucs, kind) == before, kind
        # Search and paging work on every kind's list.
        page.fill("#search", "zzz-nothing")
        assert page.locator("#rows tr").count() == 0
        page.fill("#search", "")

    # Call reasons: a sub-code picks its parent from a list of top-level codes.
    page.click('nav [data-tab="callreasons"]')
    page.wait_for_selector(row("code", "SALES"))
    page.click("#add")
    page.fill('#fields [name="code"]', "REFUND")
    page.fill('#fields [name="name"]', "Refund")
    page.click("#save")
    page.wait_for_selector(row("code", "REFUND"))
    page.click("#add")
    options = page.locator('#fields [name="parent_id"] option').all_inner_texts()
    assert "REFUND — Refund" in options and not any(o.startswith("NEW") for o in options)  # top-level only
    page.fill('#fields [name="code"]', "PARTIAL")
    page.select_option('#fields [name="parent_id"]', label="REFUND — Refund")
    page.click("#save")
    page.wait_for_selector(row("code", "PARTIAL") + ' td[data-field="parent_id"]:text-is("REFUND — Refund")')
    reasons = {d["code"]: d for d in ucs.run(ucs.server.get_store().kv_items, "dir.callreasons").values()}
    assert reasons["PARTIAL"]["parent_id"] == reasons["REFUND"]["id"]
    # Refused in the page's language: a code with sub-codes cannot go.
    page.select_option("#lang", "cs")
    page.click(row("code", "REFUND") + " button.delete")
    page.wait_for_selector("#status.refused")
    assert "Nepřijato" in page.inner_text("#status") and "má podřízené kódy" in page.inner_text("#status")
    assert "REFUND" in names(ucs, "callreasons", "code")
    page.click(row("code", "PARTIAL") + " button.delete")
    page.wait_for_selector(row("code", "PARTIAL"), state="detached")
    page.click(row("code", "REFUND") + " button.edit")
    page.fill('#fields [name="name"]', "Vrácení peněz")
    page.click("#save")
    page.wait_for_selector(row("name", "Vrácení peněz"))
    page.click(row("code", "REFUND") + " button.delete")
    page.wait_for_selector(row("code", "REFUND"), state="detached")
    assert "REFUND" not in names(ucs, "callreasons", "code")
    # A duplicate team, refused in Czech.
    page.click('nav [data-tab="teams"]')
    for _ in range(2):
        page.click("#add")
        page.fill('#fields [name="name"]', "Modrý")
        page.click("#save")
    page.wait_for_selector("#error:not([hidden])")
    assert "Nepřijato — Název: „Modrý“ už má tým" in page.inner_text("#error")
    assert errors == []
    page.close()
