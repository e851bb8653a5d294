"""The agent bar's transfer directory, swap and conference during a consultation, and the
in-call keypad (issue 16), in real Chromium against the whole UCS on the simulated PBX.

Uses the browser harness of tests/test_bar_browser.py (skipped without Chromium and
Playwright, like those tests).
"""

from __future__ import annotations

from typing import Any

from test_bar_browser import UCS, Bar, _member, in_browser, pytestmark, ucs  # noqa: F401 - the fixture and the skip


def _caller(ucs: UCS) -> Any:
    """The customer's channel on the simulated PBX."""
    return next(c for c in ucs.sim.channels.values() if c.name.startswith("SIP/carrier"))


def _op(ucs: UCS, device: str = "SIP/1001") -> str:
    op = ucs.server.get_call_control().ops.get(device)
    return op.state if op is not None else "idle"


@in_browser
def test_keypad_directory_consult_swap_and_conference(ucs: UCS, browser: Any) -> None:
    a = Bar(browser, ucs)
    b = Bar(browser, ucs)
    a.login(1)
    b.login(2)
    b.call('changeStatus("AUX", "Break")')  # only agent 1 takes queue calls
    b.wait("onStateChange", where="a.status === 'AUX'")
    ucs.wait(lambda: (m := _member(ucs, "SIP/1002")) is not None and m.paused, what="SIP/1002 paused")
    ucs.customer_calls("5000", "420777123456", "Jana Novak")
    a.wait("onCallRinging")
    a.page.click("[data-act=answer]")
    a.wait("onCallConnect")

    # The keypad: a named toggle, named keys, clicks and typed digits go to the caller.
    toggle = a.page.locator("[data-act=dtmf]")
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    assert a.page.locator("[data-act=dtmf]").get_attribute("aria-expanded") == "true"
    pad = a.page.locator(".ucs-dtmf")
    assert pad.is_visible() and pad.get_attribute("role") == "group"
    a.page.get_by_role("button", name="Send 1").click()
    pad.focus()
    a.page.keyboard.type("2#")
    ucs.wait(lambda: _caller(ucs).dtmf == ["1", "2", "#"], what="the caller got 1 2 #")
    a.until("document.querySelector('.ucs-dtmf-sent').textContent === 'Sent: 12#'")
    a.shot("keypad")
    a.page.keyboard.press("Escape")
    a.until("document.querySelector('.ucs-dtmf').hidden")

    # The directory: colleagues with number and presence, queues, searchable.
    a.page.click("[data-act=transfer]")
    a.page.wait_for_selector('.ucs-dir-row[data-number="1002"]')
    bob = a.page.locator('.ucs-dir-row[data-number="1002"]')
    assert "Not ready · Break" in bob.inner_text()
    assert a.page.locator('.ucs-dir-row[data-number="5000"]').count() == 1  # Support
    assert a.page.locator('.ucs-dir-row[data-number="5001"]').count() == 1  # Sales
    a.shot("directory")
    a.page.get_by_role("searchbox", name="Search colleagues and queues by name or number").fill("sup")
    a.until("document.querySelectorAll('.ucs-dir-row').length === 1")
    assert a.page.locator('.ucs-dir-row[data-number="5000"]').count() == 1
    a.page.fill(".ucs-dir-search", "1002")
    a.until("document.querySelectorAll('.ucs-dir-row').length === 1")
    consult = a.page.locator('.ucs-dir-row[data-number="1002"] [data-act=dir-consult]')
    assert consult.get_attribute("aria-label").startswith("Consult ") and consult.get_attribute("aria-label").endswith("(1002)")
    consult.click()  # one click: the consultation call to agent 2
    b.wait("onCallRinging")
    a.page.wait_for_selector(".ucs-consult")
    b.page.click("[data-act=answer]")
    b.wait("onCallConnect")
    ucs.wait(lambda: _op(ucs) == "consulting", what="consulting")
    a.page.wait_for_selector("[data-act=swap]")
    a.shot("swap")

    # Swap to the caller and back.
    a.page.click("[data-act=swap]")
    a.page.wait_for_selector(".ucs-consult.ucs-swapped")
    ucs.wait(lambda: _op(ucs) == "swapped", what="back with the caller")
    assert not _caller(ucs).moh
    a.page.click("[data-act=swap]")
    ucs.wait(lambda: _op(ucs) == "consulting", what="consulting again")
    a.until("!document.querySelector('.ucs-swapped')")
    assert _caller(ucs).moh

    # Conference: all three talk; then agent 1 leaves them talking.
    a.page.click("[data-act=conference]")
    a.page.wait_for_selector(".ucs-consult.ucs-conference")
    ucs.wait(lambda: _op(ucs) == "conference", what="the conference")
    bridge = _caller(ucs).bridge
    assert bridge is not None and len(bridge.channels) == 3 and not _caller(ucs).moh
    assert a.page.locator("[data-act=swap]").count() == 0
    a.shot("conference")
    a.page.click("[data-act=hangup]")
    a.wait("onCallHangup")
    ucs.wait(lambda: _op(ucs) == "idle" and _caller(ucs).bridge is not None
             and any(c.name.startswith("SIP/1002") for c in _caller(ucs).bridge.channels)
             or any(c.name.startswith("Local/") for c in (_caller(ucs).bridge.channels if _caller(ucs).bridge else [])),
             what="the caller still talks with agent 2")
    b.call("hangup()")
    b.wait("onCallHangup")
    a.close()
    b.close()
