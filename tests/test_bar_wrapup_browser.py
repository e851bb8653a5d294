"""Issue 16 in real Chromium against the whole UCS on the simulated PBX: the agent
extends and ends wrap-up from the bar, a queue that requires a call reason holds it
(the picker, by keyboard, keeps a reason picked across redraws), the recent calls with
filters, `debounceRequests`, the missed-call badge and redial, and the per-queue
figures.  The harness is tests/test_bar_browser.py's (skipped without Chromium)."""

from __future__ import annotations

import re
from typing import Any

from test_bar_browser import UCS, in_browser, pytestmark, ucs  # noqa: F401 - the fixture and the skip
from test_bar_floor import FloorBar


def _wrapup(ucs: UCS, *, acw: float, step: float = 30, longest: float = 120, required: bool = True) -> None:
    """ACW after queue calls (the browser fixture has none), and Support requiring a reason."""
    agents = ucs.server.get_agents()

    def configure() -> Any:
        agents.acw_seconds = acw
        agents.wrapup.step, agents.wrapup.max_seconds = step, longest
        directory = ucs.server.get_directory()
        queue = directory.queue_by_asterisk_name("support")
        return directory.edit("queues", queue.id, {"require_reason": required})

    ucs.run(configure)


def _seconds(text: str) -> int:
    m = re.search(r"(\d+):(\d\d)", text)
    assert m, text
    return int(m.group(1)) * 60 + int(m.group(2))


def _talk_and_hang_up(a: FloorBar, ucs: UCS, n: int) -> None:
    ucs.customer_calls("5000", "420777123456", "Jana Novak")
    a.wait("onCallRinging", count=n)
    a.call("answer()")
    a.wait("onCallConnect", count=n)
    a.call("hangup()")
    a.wait("onStateChange", count=n, where="a.status === 'ACW'")


@in_browser
def test_wrap_up_extended_ended_and_held_for_a_required_reason_picked_by_keyboard(ucs: UCS, browser: Any) -> None:
    _wrapup(ucs, acw=20, step=30, longest=60)
    a = FloorBar(browser, ucs)
    a.login(1)
    _talk_and_hang_up(a, ucs, 1)
    # The wrap-up row: time left, +30 s, End; the reason is required: the picker is open, no Skip
    a.page.wait_for_selector(".ucs-wrapup-row")
    a.until("/left/.test(document.querySelector('[data-wrapup-left]').textContent)")
    left = _seconds(a.text("[data-wrapup-left]"))
    assert 15 <= left <= 20
    assert a.page.get_attribute("[data-act=wrapup-extend]", "aria-label") == "+30 s: extend wrap-up by 30 seconds"
    a.page.wait_for_selector(".ucs-account-form .ucs-required")
    assert a.page.query_selector(".ucs-account-form [data-act=skip]") is None
    assert a.page.get_attribute(".ucs-codes", "role") == "radiogroup"
    assert a.page.get_attribute(".ucs-codes", "aria-labelledby") == "ucs-account-title"
    a.axe("wrap-up with a required reason")
    a.shot("wrapup")

    a.page.click("[data-act=wrapup-extend]")
    a.until("parseInt(document.querySelector('[data-wrapup-left]').textContent.split(':')[1]) >= 0 && "
            "document.querySelector('[data-wrapup-left]').textContent.startsWith('0:4')")
    assert _seconds(a.text("[data-wrapup-left]")) > 40
    a.page.click("[data-act=wrapup-extend]")  # capped at 60 s from the start: the button says so
    a.page.wait_for_selector("[data-act=wrapup-extend][disabled]")
    assert a.text("[data-act=wrapup-extend]") == "longest allowed"

    # End without the reason: refused, the bar says what is missing
    a.page.click("[data-act=wrapup-end]")
    a.page.wait_for_selector(".ucs-alert:has-text('a call reason is required before wrap-up ends')")
    assert "requires a call reason" in a.wait("onWarning")["args"][0]
    assert a.call("componentState()") == "READY" and a.page.query_selector(".ucs-wrapup-row") is not None

    # The picker by keyboard: focus the first reason, arrows move, Escape keeps a required one
    a.page.focus(".ucs-code input")
    a.page.keyboard.press("ArrowRight")
    a.until("document.querySelector('.ucs-code.ucs-on') && document.querySelector('.ucs-code.ucs-on').dataset.arg === 'SUPPORT'")
    assert a.page.evaluate("document.activeElement.value") == "SUPPORT"
    a.page.keyboard.press("Escape")
    a.page.wait_for_selector(".ucs-alert:has-text('Save or skip the reason')")
    assert a.page.query_selector(".ucs-account-form") is not None
    # Picked and not saved: a new call ringing and ending, timer ticks, never replace it
    ucs.run(lambda: ucs.sim.phone("SIP/1002").dial("1001"))
    a.wait("onCallRinging", count=2)
    ucs.run(lambda: ucs.sim.phone("SIP/1002").hangup())
    a.wait("onCallHangup", count=2)
    a.page.wait_for_timeout(1200)  # timer ticks
    assert a.page.evaluate("document.querySelector('.ucs-code.ucs-on').dataset.arg") == "SUPPORT"
    assert a.page.evaluate("document.querySelector('.ucs-code input:checked').value") == "SUPPORT"
    a.page.focus(".ucs-code input:checked")
    a.page.keyboard.press("Enter")  # saves
    a.wait("onInfo", where="a === 'Call reason saved'")
    a.page.wait_for_selector(".ucs-account-form", state="detached")
    a.page.click("[data-act=wrapup-end]")
    a.wait("onStateChange", where="a.status === 'READY'")
    a.page.wait_for_selector(".ucs-wrapup-row", state="detached")

    # The timer runs out without the reason: held in ACW, the bar says so and shows the picker
    _wrapup(ucs, acw=2)
    _talk_and_hang_up(a, ucs, 2)
    a.page.wait_for_selector(".ucs-alert:has-text('Wrap-up is over: save the call reason to go on')", timeout=8_000)
    assert a.page.evaluate("window.ucsOperator.state().status") == "ACW"
    a.page.click('.ucs-code[data-arg="SALES"]')
    a.page.keyboard.press("Enter")
    a.wait("onStateChange", count=2, where="a.status === 'READY'")
    a.close()


@in_browser
def test_recent_calls_filters_debounced_missed_badge_and_redial(ucs: UCS, browser: Any) -> None:
    a = FloorBar(browser, ucs, options={"debounceRequests": True})
    a.login(1)
    # missed: it rang and the caller gave up
    ucs.run(lambda: ucs.sim.caller_calls("5000", "420777000001", "Jana Novak", abandon_after=2))
    a.wait("onCallHangup")
    a.page.wait_for_selector("[data-missed]:has-text('1')")
    assert a.page.get_attribute(".ucs-history-btn", "aria-label") == "Recent calls, 1 missed"
    # answered
    ucs.customer_calls("5000", "420602000002", "Petr Svoboda")
    a.wait("onCallRinging", count=2)
    a.call("answer()")
    a.wait("onCallConnect")
    a.call("hangup()")
    a.wait("onCallHangup", count=2)
    # the queue figures follow: the answered caller no longer waits
    a.until("/Support\\s*nobody waiting/.test(document.querySelector('.ucs-figures').textContent)", timeout=5_000)

    a.page.click(".ucs-history-btn")
    a.page.wait_for_selector(".ucs-history-item >> nth=1")
    rows = a.page.eval_on_selector_all(".ucs-history-item", "els => els.map(e => [e.dataset.result, e.querySelector('b').textContent])")
    assert rows == [["answered", "Petr Svoboda · 420602000002"], ["missed", "Jana Novak · 420777000001"]]
    a.page.wait_for_selector("[data-missed]", state="detached")  # seen: the badge goes
    a.axe("recent calls")
    a.shot("recent-calls")
    assert a.page.get_attribute(".ucs-history-btn", "aria-label") == "Recent calls"

    a.page.select_option("[data-history-filter][name=result]", "missed")
    a.until("document.querySelectorAll('.ucs-history-item').length === 1")
    assert a.page.get_attribute(".ucs-history-item", "data-result") == "missed"
    a.page.select_option("[data-history-filter][name=result]", "")
    a.until("document.querySelectorAll('.ucs-history-item').length === 2")
    # debounceRequests: typing a word sends one query, 500 ms after the last key
    def sent() -> int:
        return int(a.page.evaluate("window.ucsDemoLog.filter(e => e.name === 'onDebug' && "
                                   "String(e.args[0]).startsWith('\u2192 history.list')).length"))

    before = sent()
    a.page.type("[data-history-filter][name=text]", "svob", delay=60)
    a.until("document.querySelectorAll('.ucs-history-item').length === 1")
    assert sent() - before == 1
    assert a.page.input_value("[data-history-filter][name=text]") == "svob"  # kept across the redraws

    # redial with one click
    a.page.click(".ucs-history-item [data-act=redial]")
    new = a.wait("onCallNew")
    assert new["args"][0]["number"] == "420602000002"
    a.close()


@in_browser
def test_queue_figures_show_waiting_callers_and_the_longest_wait(ucs: UCS, browser: Any) -> None:
    a = FloorBar(browser, ucs)
    a.login(1)
    a.call('changeStatus("AUX", "Lunch")')
    a.wait("onStateChange", where="a.status === 'AUX'")
    a.page.wait_for_selector("[data-queue-figure]")
    assert "nobody waiting" in a.text(".ucs-figures")
    ucs.customer_calls("5000", "420777000001")
    ucs.customer_calls("5000", "420777000002")
    ucs.customer_calls("5001", "420777000003")
    a.until("/2 waiting/.test(document.querySelector('.ucs-figures').textContent)")
    support = a.page.locator("[data-queue-figure]", has_text="Support")
    sales = a.page.locator("[data-queue-figure]", has_text="Sales")
    assert "2 waiting · longest 0:0" in support.inner_text()
    assert "1 waiting" in sales.inner_text()
    a.axe("queue figures")
    first = _seconds(support.inner_text())
    a.until(f"/longest 0:0[{first + 2}-9]/.test(document.querySelector('[data-queue-figure]').textContent)", timeout=5_000)
    a.close()
