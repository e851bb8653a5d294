"""The agent bar's session on a contact-center floor (issue 16, points 4 and 8), in real
Chromium against the whole UCS on the simulated PBX: a closed tab never takes calls, the
agent is not ready after login, logging out during a call asks (and never strands the
call), a page whose origin UCS does not allow says so, and without a phone a status
change says that a phone is needed.

The harness is tests/test_bar_browser.py's (skipped without Chromium and Playwright);
UCS runs with the defaults of ``[agents]`` that these points are about, and a short
``resume_window`` (1 s) so that a closed tab's session ends within the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_bar_browser import UCS, Bar, _member, _start, in_browser_with, pytestmark  # noqa: F401 - the skip
from test_bar_floor import FloorBar
from twisted.internet import defer

from ucs import demo

WINDOW = 1.0


@pytest.fixture
def ucs(tmp_path: Path) -> Iterator[UCS]:
    # initial_status and session_expiry as they come (not ready after login, logout on expiry)
    started = _start(tmp_path, agents={"initial_status": "aux"}, web={"resume_window": WINDOW})
    server, web = pytest_twisted.blockon(defer.ensureDeferred(started))
    try:
        yield UCS(server, web)
    finally:
        pytest_twisted.blockon(server.service.stopService())


def _status_text(bar: Bar) -> str:
    return str(bar.page.inner_text(".ucs-status-text"))


@in_browser_with()
def test_not_ready_after_login_and_a_closed_tab_never_takes_calls(ucs: UCS, browser: Any) -> None:
    a = Bar(browser, ucs)
    a.login(1)
    ready = a.wait("onReady")["args"][0]
    assert (ready["status"], ready["reason"]) == ("AUX", "Login")
    assert _status_text(a) == "Not ready · Login"
    ucs.wait(lambda: (m := _member(ucs, "SIP/1001")) is not None and m.paused, what="SIP/1001 paused")
    a.call('changeStatus("READY")')
    a.wait("onStateChange", where="a.status === 'READY'")
    ucs.wait(lambda: (m := _member(ucs, "SIP/1001")) is not None and not m.paused, what="SIP/1001 takes calls")
    a.page.close()  # the agent closes the tab (no logout)
    # After the resume window the agent is out of every queue, in the PBX's own state.
    ucs.wait(lambda: all(_member(ucs, "SIP/1001", q) is None for q in ("support", "sales")),
             timeout=10, what="SIP/1001 out of the queues")
    assert ucs.server.get_agents().get(1) is None
    a.context.close()


def _on_a_call(a: Bar, ucs: UCS) -> None:
    a.call('changeStatus("READY")')
    a.wait("onStateChange", where="a.status === 'READY'")
    ucs.customer_calls("5000")
    a.wait("onCallRinging")
    a.call("answer()")
    a.wait("onCallConnect")
    a.page.wait_for_selector('.ucs-call[data-call-state="3"]')


@in_browser_with()
def test_logging_out_during_a_call_asks_and_never_strands_the_call(ucs: UCS, browser: Any) -> None:
    a = Bar(browser, ucs)
    a.login(1)
    _on_a_call(a, ucs)
    # A CRM's logout() while the call is up: refused, with what to do.
    r = a.try_call("logout()")
    assert not r["ok"] and "has a call; hang up or transfer it first" in r["message"]
    a.page.wait_for_selector(".ucs-alert >> text=Log out failed: your phone has a call: hang up or transfer it first")
    # The agent's Log out asks; staying keeps everything.
    a.page.click("[data-act=menu]")
    a.page.click("[data-act=logout]")
    ask = a.page.wait_for_selector("[data-ref=logoutAsk]")
    assert "You are on a call" in ask.inner_text()
    a.page.click("[data-act=logout-stay]")
    a.page.wait_for_selector("[data-ref=logoutAsk]", state="hidden")
    assert a.page.evaluate("window.ucsOperator.componentState()") == "READY"
    assert a.page.is_visible('.ucs-call[data-call-state="3"] [data-act=hangup]')
    # In Czech, and this time the agent hangs up and logs out.
    a.page.click("[data-act=menu]")
    a.page.click("[data-act=lang]")
    a.page.click("[data-act=menu]")
    a.page.click("[data-act=logout]")
    ask = a.page.wait_for_selector("[data-ref=logoutAsk]")
    assert "Máte hovor" in ask.inner_text() and "Zavěsit a odhlásit" in ask.inner_text()
    a.page.click("[data-act=logout-hangup]")
    a.wait("onCallHangup")
    a.until("window.ucsOperator.componentState() === 'CREDENTIALS'")
    ucs.wait(lambda: _member(ucs, "SIP/1001") is None, what="SIP/1001 out of the queues")
    assert not ucs.server.get_pbx().channels, "the call ended"
    a.close()


@in_browser_with("--host-resolver-rules=MAP crm.test 127.0.0.1")
def test_a_page_whose_origin_is_not_allowed_says_so(ucs: UCS, browser: Any) -> None:
    # UCS's own demo page under a host name UCS does not allow (DNS rebinding protection).
    port = ucs.web.port
    for lang, words in (("en", "may not connect to UCS: its origin is not allowed"), ("cs", "se nesmí připojit k UCS")):
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"http://crm.test:{port}/demo/?lang={lang}")
        origin = f"http://crm.test:{port}"
        page.wait_for_selector(f".ucs-loading >> text={words}", timeout=15_000)
        shown = page.inner_text(".ucs-loading")
        assert origin in shown and "allowed_origins" in shown, shown
        errors = page.evaluate("window.ucsDemoLog.filter(e => e.name === 'onError').map(e => e.args[0])")
        assert any(origin in e for e in errors), json.dumps(errors)
        assert page.evaluate("window.ucsOperator.componentState()") == "CONNECTING"
        context.close()


@in_browser_with()
def test_without_a_phone_a_status_change_says_a_phone_is_needed(ucs: UCS, browser: Any) -> None:
    a = FloorBar(browser, ucs, options={"withoutDevice": True})
    user, password = demo.user_of(1)
    a.page.fill("[data-ref=loginUser]", user)
    a.page.fill("[data-ref=loginPass]", password)
    a.page.click("[data-ref=loginBtn]")
    a.wait("onUser")
    a.until("window.ucsOperator.componentState() === 'IDENTIFY'")
    r = a.try_call('changeStatus("READY")')
    assert not r["ok"] and r["code"] == 412 and "it needs a phone: choose your phone first" in r["message"]
    a.page.wait_for_selector(".ucs-alert >> text=Status change failed: a phone is needed: choose your phone first")
    # The agent chooses a phone from the menu, and then works.
    a.page.click("[data-act=menu]")
    a.page.click("[data-act=ask-phone]")
    a.page.click("[data-act=pick-phone]")
    a.wait("onReady")
    a.call('changeStatus("READY")')
    a.wait("onStateChange", where="a.status === 'READY'")
    a.close()
