"""The queue wallboard page (/wallboard/) in real Chromium against the whole UCS on the
simulated PBX: a supervisor logs in on the page, a customer's call is answered and
ends, and the page shows the new figures within a second (pushed over the WebSocket)."""

from __future__ import annotations

import time
from typing import Any

from test_bar_browser import UCS, in_browser, pytestmark, ucs  # noqa: F401 - the fixture and the skip
from twisted.internet import defer

from ucs import demo


def cell(page: Any, queue: str, field: str) -> str:
    return str(page.inner_text(f'tr[data-queue="{queue}"] [data-field="{field}"]')).strip()


def until_cell(page: Any, queue: str, field: str, value: str, timeout: float) -> float:
    """Seconds it took the page to show ``value`` (fails after ``timeout``)."""
    start = time.monotonic()
    while cell(page, queue, field) != value:
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{queue} {field}: {cell(page, queue, field)!r}, not {value!r}, after {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - start


def agent_works(ucs: UCS, n: int) -> None:
    async def login() -> None:
        reg = ucs.server.get_registry()
        session = ucs.server.get_sessions().create()
        username, password = demo.user_of(n)
        await reg.call(session, "login", [username, password])
        await reg.call(session, "identifier", [demo.line_of(n)[1]])
        await reg.call(session, "provision")

    ucs.run(lambda: defer.Deferred.fromCoroutine(login()))


@in_browser
def test_the_wallboard_shows_a_call_answered_within_a_second(ucs: UCS, browser: Any) -> None:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(ucs.base + "/wallboard/")
    page.fill("#username", "supervisor")
    page.fill("#password", "supervisor-demo")
    page.click("button[type=submit]")
    page.wait_for_selector('tr[data-queue="support"]')
    assert cell(page, "support", "answered") == "0" and cell(page, "support", "ready") == "0"
    assert page.is_hidden("#login")

    agent_works(ucs, 1)
    assert until_cell(page, "support", "ready", "1", 2.0) < 1.0
    ucs.customer_calls("5000", "420777123456", "Jana Novak")
    ucs.wait(lambda: ucs.sim.phone("SIP/1001").ringing, what="agent 1's phone rings")
    assert until_cell(page, "support", "on_call", "1", 2.0) < 1.0
    ucs.run(lambda: ucs.sim.phone("SIP/1001").answer())
    time.sleep(1.2)
    for ch in ucs.run(lambda: [c for c in ucs.sim.channels.values() if c.name.startswith("SIP/carrier")]):
        ucs.run(ucs.sim.hangup_channel, ch)
    # The change on the PBX reaches the page within a second.
    assert until_cell(page, "support", "answered", "1", 2.0) < 1.0
    assert cell(page, "support", "service_level") == "100 %"
    assert cell(page, "support", "abandoned") == "0"
    assert cell(page, "support", "average_handle") in ("0:01", "0:02")
    assert errors == []
    page.close()
