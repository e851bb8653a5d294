"""The agent bar's calls after a socket cut and its timers (issue 16, points 2 and 7),
in real Chromium against the whole UCS on the simulated PBX (the harness of
tests/test_bar_browser.py, skipped without Chromium and Playwright like those tests).

Timers: ringing counts from this phone's ring (not the caller's wait in the queue),
talking from this phone's answer (the consulted agent's: of the consultation), hold
from the start of the hold.  The gaps that tell them apart from the call's own times
are two seconds each (real time: the demo server runs on the reactor's clock).
"""

from __future__ import annotations

import time
from typing import Any

from test_bar_browser import UCS, Bar, _member, in_browser, pytestmark, ucs  # noqa: F401 - the fixture and the skip

GAP = 2.2  # seconds between the call's own times and this phone's


def timer(bar: Bar, state: int | None = None) -> int:
    """Seconds shown by the timer of the bar's (only or ``state``) call, read off the page."""
    sel = ".ucs-call" + (f'[data-call-state="{state}"]' if state is not None else "") + " .ucs-timer"
    bar.until(f"(document.querySelector({sel!r}) || {{}}).textContent")
    text = str(bar.page.inner_text(sel)).strip()
    m, s = text.rsplit(":", 1)
    return int(m.split(":")[-1]) * 60 + int(s)


def timer_reaches(bar: Bar, state: int, seconds: int) -> bool:
    """The timer ticks once a second: wait up to one tick and a half for it to show ``seconds``."""
    deadline = time.monotonic() + 1.5
    while timer(bar, state) < seconds:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def buttons(bar: Bar) -> list[str]:
    """The primary call's buttons (their data-act), in order."""
    return list(bar.page.eval_on_selector_all(".ucs-call:not(.ucs-call-held) .ucs-call-actions [data-act]",
                                             "els => els.map(e => e.getAttribute('data-act'))"))


def cut(ucs: UCS, username: str) -> None:
    """Drop that agent's sockets on the server side, like a network failure."""
    ucs.run(lambda: [c.transport.abort() for c in list(ucs.web.hub.connections)
                     if c.session is not None and c.session.user is not None and c.session.user.username == username])


def back(bar: Bar, ready: int) -> dict[str, Any]:
    """Wait for the bar to reconnect (its ``ready``-th onReady) and return that state."""
    bar.wait("onError", where="a.indexOf('lost') >= 0")
    state = bar.wait("onReady", count=ready, timeout=20_000)["args"][0]
    bar.page.wait_for_selector(".ucs-conn.ucs-ok")
    return state


@in_browser
def test_timers_count_this_phones_time_and_a_cut_redraws_the_consultation(ucs: UCS, browser: Any) -> None:
    a = Bar(browser, ucs)
    b = Bar(browser, ucs)
    a.login(1)
    b.login(2)
    for bar in (a, b):  # nobody takes queue calls yet: the caller waits
        bar.call('changeStatus("AUX", "Break")')
    ucs.wait(lambda: all((m := _member(ucs, d)) is not None and m.paused for d in ("SIP/1001", "SIP/1002")),
             what="both members paused")
    ucs.customer_calls("5000", "420777123456", "Jana Novak")
    ucs.wait(lambda: ucs.sim.queues["support"].entries,
             what="the caller in the queue")
    time.sleep(GAP)

    # Ringing: from this phone's ring, not the 2 s the caller waited.
    a.call('changeStatus("READY")')
    a.wait("onCallRinging")
    assert timer(a, 2) <= 1
    assert buttons(a) == ["answer", "hangup"]
    a.page.click("[data-act=answer]")
    a.wait("onCallConnect")
    time.sleep(GAP)
    assert timer_reaches(a, 3, 2)

    # Hold: from the start of the hold, not the call's time.
    a.call("tribute()")
    a.wait("onCallHold")
    assert timer(a, 5) <= 1
    a.call("unhold()")
    a.wait("onCallResume")
    assert timer_reaches(a, 3, 2)  # talking since agent 1's answer again

    # Consultation: agent 2 rings, then talks from its own answer.
    a.call('transfer("1002")')
    b.wait("onCallRinging")
    assert timer(b, 2) <= 1 and buttons(b) == ["answer", "hangup"]
    b.page.click("[data-act=answer]")
    b.wait("onCallConnect")
    assert timer(b, 3) <= 1  # the caller was answered over 2 s ago
    a.page.wait_for_selector('.ucs-call[data-call-state="5"]')
    assert timer(a, 5) <= 1

    # Agent 2's socket is cut: back, it talks (not "On hold / Resume"), from its own answer.
    cut(ucs, "agent2")
    state = back(b, 2)
    assert [c["state"] for c in state["calls"]] == [3] and state["call"]["state"] == 3
    b.page.wait_for_selector('.ucs-call[data-call-state="3"]')
    assert b.page.query_selector('.ucs-call[data-call-state="5"]') is None
    assert buttons(b) == ["hold", "mute", "transfer", "record", "dtmf", "hangup"]
    assert timer(b, 3) <= 2
    # Agent 1's: it holds the caller and still finishes the transfer.
    cut(ucs, "agent1")
    state = back(a, 2)
    assert [c["state"] for c in state["calls"]] == [5]
    a.page.wait_for_selector('.ucs-call[data-call-state="5"]')
    assert buttons(a) == ["record", "finish", "swap", "conference", "hangup"]
    assert timer(a, 5) <= 2
    a.page.click("[data-act=finish]")
    a.wait("onCallHangup")
    b.page.wait_for_selector('.ucs-call[data-call-state="3"]')
    assert timer(b, 3) <= 2  # still from its answer of the consultation
    b.call("hangup()")
    b.wait("onCallHangup")
    a.close()
    b.close()


@in_browser
def test_a_cut_while_a_blind_transfer_rings_shows_answer(ucs: UCS, browser: Any) -> None:
    a = Bar(browser, ucs)
    b = Bar(browser, ucs)
    a.login(1)
    b.login(2)
    b.call('changeStatus("AUX", "Break")')
    ucs.wait(lambda: (m := _member(ucs, "SIP/1002")) is not None and m.paused, what="SIP/1002 paused")
    ucs.customer_calls("5000", "420604111222", "Petr Svoboda")
    a.wait("onCallRinging")
    a.call("answer()")
    a.wait("onCallConnect")
    a.call('blindTransfer("1002")')
    b.wait("onCallRinging")
    a.wait("onCallHangup")
    cut(ucs, "agent2")
    state = back(b, 2)
    assert [c["state"] for c in state["calls"]] == [2]
    b.page.wait_for_selector('.ucs-call.ucs-ringing[data-call-state="2"]')
    assert buttons(b) == ["answer", "hangup"]  # not "Suspended" without Answer
    assert "Petr Svoboda" in b.page.inner_text(".ucs-calls")
    b.page.click("[data-act=answer]")
    b.wait("onCallConnect")
    b.page.wait_for_selector('.ucs-call[data-call-state="3"]')
    assert timer(b, 3) <= 1
    b.call("hangup()")
    b.wait("onCallHangup")
    a.close()
    b.close()
