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
