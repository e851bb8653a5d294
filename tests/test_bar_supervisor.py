"""The bar's supervisor mode (issue 17) in real Chromium against the whole UCS on the
simulated PBX: a supervisor logs in and works without a phone — the Team panel with an
agent's status changing live, sorting and filtering by mouse and keyboard, setting an agent
not ready with a reason, logging one out (that agent's bar goes back to choosing a phone,
saying why), the queue wallboard strip, Czech texts and axe-core — and a supervisor with a
phone listening in on an agent's call (the simulated PBX rings the supervisor's phone into
ChanSpy), with a refusal shown on the bar.

Uses the browser harness of tests/test_bar_browser.py and the axe-core check of
tests/test_bar_floor.py (skipped without Chromium and Playwright, like those tests).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_bar_browser import UCS, _start, in_browser, pytestmark  # noqa: F401 - the skip
from test_bar_floor import FloorBar, _answered
from twisted.internet import defer

from ucs import demo


@pytest.fixture
def ucs(tmp_path: Path) -> Iterator[UCS]:
    server, web = pytest_twisted.blockon(defer.ensureDeferred(_start(tmp_path, phones=3)))
    try:
        yield UCS(server, web)
    finally:
        pytest_twisted.blockon(server.service.stopService())


def uid(ucs: UCS, i: int) -> int:
    user = ucs.server.get_directory().user_by_username(demo.user_of(i)[0])
    assert user is not None
    return int(user.id)


def name_of(i: int) -> str:
    from ucs.sim.lab import DEMO_NAMES

    return DEMO_NAMES[i - 1]


def supervisor_logs_in(bar: FloorBar, plan: str) -> None:
    bar.page.fill("[data-ref=loginUser]", "supervisor")
    bar.page.fill("[data-ref=loginPass]", "supervisor-demo")
    bar.page.click("[data-ref=loginBtn]")
    bar.page.wait_for_selector("[data-ref=supChoice]:not([hidden]) [data-act=sup-plan]")
    assert bar.page.is_hidden("[data-ref=pair]")  # the choice first, no phone list yet
    bar.page.click(f'[data-act=sup-plan][data-arg="{plan}"]')


def row(i: int, ucs: UCS) -> str:
    return f'tr[data-agent-row="{uid(ucs, i)}"]'


def status_of(bar: FloorBar, ucs: UCS, i: int) -> str:
    return bar.text(row(i, ucs) + " [data-agent-status]")


def until_status(bar: FloorBar, ucs: UCS, i: int, text: str, timeout: float = 5_000) -> None:
    sel = json.dumps(row(i, ucs) + " [data-agent-status]")
    bar.until(f"(document.querySelector({sel}) || {{}}).textContent === {json.dumps(text)}", timeout)


def names_in_order(bar: FloorBar) -> list[str]:
    return [str(n) for n in bar.page.eval_on_selector_all(".ucs-team-table tbody th", "els => els.map(e => e.textContent)")]


@in_browser
def test_a_supervisor_without_a_phone_runs_the_team(ucs: UCS, browser: Any) -> None:
    a1 = FloorBar(browser, ucs)
    a2 = FloorBar(browser, ucs)
    a1.login(1)
    a2.login(2)
    sup = FloorBar(browser, ucs)
    supervisor_logs_in(sup, "none")
    sup.wait("onReady")
    assert sup.call("componentState()") == "READY"
    sup.page.wait_for_selector(row(1, ucs))
    assert sup.text("[data-supervising]") == "Supervising"  # no status of its own to change
    assert sup.page.query_selector("[data-ref=menu] [data-act=suspend]") is None
    # The team: both agents ready, agent 3 logged out; nobody's call.
    assert status_of(sup, ucs, 1) == "Ready" and status_of(sup, ucs, 2) == "Ready"
    assert status_of(sup, ucs, 3) == "Offline"
    assert sup.text("[data-ref=teamCount]") == "3 of 3"
    # Time in status ticks in the page.
    since = sup.text(row(1, ucs) + " td:nth-child(3)")
    sup.until(f"document.querySelector({json.dumps(row(1, ucs) + ' td:nth-child(3)')}).textContent !== {json.dumps(since)}", 3_000)
    # No monitoring without a phone.
    assert sup.page.query_selector("[data-act=sup-listen]") is None
    # The queue wallboard strip: support with two agents ready.
    sup.page.wait_for_selector('[data-board-queue="support"]')
    assert sup.text('[data-board-queue="support"] [data-field=ready]') == "2"

    # An agent's own change reaches the team panel live.
    a1.call('changeStatus("AUX", "Lunch")')
    until_status(sup, ucs, 1, "Not ready · Lunch")
    sup.until("document.querySelector('[data-board-queue=\"support\"] [data-field=not_ready]').textContent === '1'")

    # Sorting: by name, by status (READY before AUX before OFFLINE) and back, by keyboard too.
    assert names_in_order(sup) == sorted([name_of(1), name_of(2), name_of(3)])
    sup.page.click('[data-act=sup-sort][data-arg="status"]')
    assert names_in_order(sup) == [name_of(2), name_of(1), name_of(3)]
    assert sup.page.get_attribute('th:has([data-arg="status"])', "aria-sort") == "ascending"
    sup.page.focus('[data-act=sup-sort][data-arg="status"]')
    sup.page.keyboard.press("Enter")
    assert names_in_order(sup) == [name_of(3), name_of(1), name_of(2)]
    assert sup.page.get_attribute('th:has([data-arg="status"])', "aria-sort") == "descending"
    assert sup.focused() == "BUTTON"  # the focus stays on the column's button
    # Filtering: by name, by status text.
    sup.page.fill("[data-ref=teamFilter]", name_of(2).split()[0])
    assert names_in_order(sup) == [name_of(2)] and sup.text("[data-ref=teamCount]") == "1 of 3"
    sup.page.fill("[data-ref=teamFilter]", "lunch")
    assert names_in_order(sup) == [name_of(1)]
    sup.page.fill("[data-ref=teamFilter]", "")

    # Agent 2 not ready with a reason, by keyboard: the reason form, a reason, Enter.
    sup.page.focus(row(2, ucs) + " [data-act=sup-aux]")
    sup.page.keyboard.press("Enter")
    sup.page.wait_for_selector(row(2, ucs) + " [name=supReason]")
    assert sup.focused() == "supReason"
    sup.page.keyboard.press("Escape")  # closes it, the focus back on the button
    assert sup.page.query_selector(row(2, ucs) + " [name=supReason]") is None
    sup.page.click(row(2, ucs) + " [data-act=sup-aux]")
    sup.page.select_option(row(2, ucs) + " [name=supReason]", "Break")
    sup.page.click(row(2, ucs) + " .ucs-sup-aux [type=submit]")
    assert a2.wait("onStateChange", where="a.status === 'AUX'")["args"][0]["reason"] == "Break"
    until_status(sup, ucs, 2, "Not ready · Break")
    # And ready again.
    sup.page.click(row(2, ucs) + " [data-act=sup-ready]")
    a2.wait("onStateChange", where="a.status === 'READY'")
    until_status(sup, ucs, 2, "Ready")

    sup.axe("the team panel and the wallboard strip")
    sup.page.click(row(1, ucs) + " [data-act=sup-aux]")
    sup.axe("the team panel with an agent's reason form")
    sup.page.click(row(1, ucs) + " [data-act=sup-aux-cancel]")

    # Logging agent 1 out: the agent's bar says so and goes back to choosing a phone.
    sup.page.click(row(1, ucs) + " [data-act=sup-logout]")
    until_status(sup, ucs, 1, "Offline")
    a1.until("window.ucsOperator.componentState() === 'IDENTIFY'")
    msg = a1.wait("onMessage", where="a.group === 'supervisorLogout'")["args"][0]
    assert "logged out by supervisor" in msg["message"]
    a1.page.wait_for_selector("[data-ref=pair]:not([hidden]) [data-act=pick-phone]")
    assert "logged out by supervisor" in a1.text(".ucs-bottom")
    ucs.wait(lambda: ucs.sim.queues["support"].members.get("SIP/1001") is None, what="SIP/1001 out of support")
    # It may work again: its phone, provisioned.
    a1.page.click("[data-act=pick-phone]")
    a1.wait("onReady", count=2)
    until_status(sup, ucs, 1, "Ready")

    # In Czech.
    sup.page.click("[data-act=menu]")
    sup.page.click("[data-act=lang]")
    assert sup.text("#ucs-team-title") == "Tým"
    assert sup.text('[data-act=sup-sort][data-arg="name"]') == "Operátor"
    assert status_of(sup, ucs, 2) == "Připraven"
    sup.axe("the team panel in Czech")
    for bar in (a1, a2, sup):
        bar.close()


@in_browser
def test_a_supervisor_with_a_phone_listens_in(ucs: UCS, browser: Any) -> None:
    a1 = FloorBar(browser, ucs)
    a2 = FloorBar(browser, ucs)
    a1.login(1)
    a2.login(2)
    a2.call('changeStatus("AUX", "Break")')  # only agent 1 takes queue calls
    a2.wait("onStateChange", where="a.status === 'AUX'")
    _answered(a1, ucs)

    sup = FloorBar(browser, ucs)
    supervisor_logs_in(sup, "phone")
    sup.wait("onIdentify")
    sup.page.click('[data-act=pick-phone][data-arg="phone-1003"]')
    ready = sup.wait("onReady")["args"][0]
    assert ready["device"]["device"] == "SIP/1003" and ready["status"] == "OFFLINE"
    assert ucs.sim.queues["support"].members.get("SIP/1003") is None  # supervising: in no queue
    sup.page.wait_for_selector(row(1, ucs) + " [data-act=sup-listen]")
    call = sup.text(row(1, ucs) + " [data-agent-call]")
    assert "420777123456" in call and "Incoming" in call and "support" in call
    # Only where the agent has a call.
    assert sup.page.query_selector(row(2, ucs) + " [data-act=sup-listen]") is None
    assert sup.page.get_attribute(row(1, ucs) + " [data-act=sup-whisper]", "aria-label") == f"Whisper to {name_of(1)}"

    # Listen: the supervisor's phone rings; answered, it is ChanSpy on the agent's channel.
    sup.page.click(row(1, ucs) + " [data-act=sup-listen]")
    ucs.wait(lambda: ucs.sim.phone("SIP/1003").ringing, what="the supervisor's phone rings")
    sup.page.wait_for_selector(".ucs-note:has-text('Your phone rings')")
    ucs.run(lambda: ucs.sim.phone("SIP/1003").answer())

    def spying() -> Any:
        agent = [c for c in ucs.sim.channels.values() if c.name.startswith("SIP/1001-")]
        return agent and any(j.mode == "listen" for j in ucs.sim.spies_of(agent[0]))

    ucs.wait(spying, what="ChanSpy listens on agent 1's channel")
    spy = ucs.run(lambda: [c for c in ucs.sim.channels.values() if c.name.startswith("SIP/1003-")])
    assert len(spy) == 1 and spy[0].app == "ChanSpy" and spy[0].state == 6
    sup.page.wait_for_selector(row(1, ucs) + " .ucs-sup-mon")  # the team panel: monitored
    # The spy leg on the supervisor's own phone: shown as monitoring (it is no call: no CDR, no
    # recent call), with its hang-up button to stop listening.
    sup.page.wait_for_selector(".ucs-calls .ucs-call.ucs-call-monitoring:has-text('Monitoring (listen)')")
    assert sup.page.query_selector(".ucs-calls .ucs-call-monitoring [data-act=hangup]") is not None
    assert a1.page.evaluate("window.ucsOperator.calls().length") == 1  # the agent's bar is unchanged

    # A refusal on the bar: agent 2 has no call to monitor.
    result = sup.try_call(f"monitor({uid(ucs, 2)}, 'barge')")
    assert not result["ok"] and "no call to monitor" in result["message"]
    sup.page.wait_for_selector(".ucs-alert:has-text('Monitoring failed: the agent has no call to monitor')")
    sup.axe("the team panel with a monitored call")
    for bar in (a1, a2, sup):
        bar.close()
