"""Seed 002's bar parameters and callbacks that no other test asserted (issue 17), in real
Chromium against the whole UCS on the simulated PBX: ``showDialControl``,
``topMenuNameContent``, ``state()``, ``notifyWaitingCallers`` with
``onWaitingCallersChange`` and ``onDebug``, ``notify``'s ``timeout`` / ``boundState`` /
``group``, ``autologout`` with ``onMessage``, ``identifyIP``, ``confirmUnload``, the
``sso`` provider with and without ``disableIntegratedAutoLogout``, and ``legacyStartup``.

The harness is tests/test_bar_browser.py's (skipped without Chromium and Playwright); a
setting the demo page does not take from its URL is added to its ``window.ucsOperator``
(``FloorBar``), and ``legacyStartup`` gets a page of its own (a CRM page that has not
finished loading).
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from test_bar_browser import UCS, Bar, in_browser, pytestmark, ucs  # noqa: F401 - the fixture and the skip
from test_bar_floor import FloorBar
from twisted.internet import defer
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from twisted.web.static import Data

from ucs import demo
from ucs.api.auth import sso_token

# A system notification (seed 002 notifyWaitingCallers: "a system alert") the page may show:
# the permission granted, each one recorded.
FAKE_NOTIFICATION = """
window.__systemAlerts = [];
window.Notification = function (title, options) { window.__systemAlerts.push({title: title, body: options && options.body}); };
window.Notification.permission = "default";
window.__permissionAsked = 0;
window.Notification.requestPermission = function () {
  window.__permissionAsked++; window.Notification.permission = "granted"; return Promise.resolve("granted");
};
"""


def _debug(bar: Bar) -> list[str]:
    return [e["args"][0] for e in bar.log(debug=True) if e["name"] == "onDebug"]


def _notes(bar: Bar, where: str = ".ucs-notes") -> list[str]:
    return [str(t) for t in bar.page.eval_on_selector_all(f"{where} .ucs-note span", "els => els.map(e => e.textContent)")]


def _visible(bar: Bar, selector: str) -> bool:
    return bool(bar.page.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                                  "return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0; })()"))


# -- showDialControl, topMenuNameContent, state() ------------------------------------------------


@in_browser
def test_dial_control_name_content_and_state(ucs: UCS, browser: Any) -> None:
    a = FloorBar(browser, ucs, "?showDialControl=0", {"topMenuNameContent": "<b>%name%</b> (%icon%)"})
    refused = a.try_call("state()")  # state: READY only
    assert not refused["ok"] and refused["code"] == 412
    a.login(1)
    # showDialControl false: no number field, keypad or Call button in the top bar.
    assert not _visible(a, "[data-ref=dial]") and not _visible(a, "[data-ref=dialInput]")
    # topMenuNameContent: %name% is the agent's name, %icon% the icon; the rest is text, never HTML.
    name = a.page.eval_on_selector(".ucs-bar [data-ref=name]", "e => ({text: e.textContent, html: e.innerHTML, "
                                   "b: e.querySelectorAll('b').length, svg: e.querySelectorAll('svg').length, "
                                   "user: (e.querySelector('.ucs-username') || {}).textContent})")
    ready = a.wait("onReady")["args"][0]
    shown = ready["user"]["displayname"] or ready["user"]["username"]
    assert name["user"] == shown
    assert name["text"] == f"<b>{shown}</b> ()", name
    assert name["b"] == 0 and name["svg"] == 1, name
    assert name["html"].index("ucs-username") < name["html"].index("<svg")  # in the template's order

    # state(): the object onReady gave, now — synchronously the bar's snapshot, then UCS's.
    assert a.page.evaluate("window.ucsOperator.state().status") == "READY"
    state = a.call("state()")
    missing = set(ready) - set(state)
    assert not missing, missing
    assert state["ringingSound"] == "default" and state["status"] == "READY" and state["call"] is None
    for key in ("status", "reason", "call", "user", "device", "auxReasons", "callReasons", "queues", "groups",
                "agents", "waitingCallers", "now"):
        assert key in state, key
    assert state["device"]["device"] == "SIP/1001" and state["user"]["username"] == "agent1"
    a.call('changeStatus("AUX", "Lunch")')
    a.wait("onStateChange", where="a.status === 'AUX'")
    state = a.call("state()")
    assert (state["status"], state["reason"]) == ("AUX", "Lunch")
    a.call('changeStatus("READY")')
    a.wait("onStateChange", where="a.status === 'READY'")
    ucs.customer_calls("5000", "420777000001", "Eva Dvorak")
    ring = a.wait("onCallRinging")["args"][0]
    state = a.call("state()")
    assert state["call"]["uniqueid"] == ring["uniqueid"] and state["call"]["state"] == 2
    assert [c["uniqueid"] for c in state["calls"]] == [ring["uniqueid"]]
    a.call("answer()")
    a.wait("onCallConnect")
    assert a.call("state()")["call"]["state"] == 3
    a.call("hangup()")
    a.wait("onCallHangup")
    a.close()

    # The defaults: the dial control shows once ready, and the name with its icon.
    b = Bar(browser, ucs)
    assert not _visible(b, "[data-ref=dial]")  # not before login
    b.login(2)
    assert _visible(b, "[data-ref=dial]") and _visible(b, "[data-ref=dialInput]")
    b.page.fill("[data-ref=dialInput]", "0800123456")
    b.page.click("[data-ref=dial] button[type=submit]")
    assert b.wait("onCallNew")["args"][0]["called_number"] == "0800123456"
    deadline = time.monotonic() + 10
    while not b.try_call("hangup()")["ok"]:  # refused while the dial is still being set up
        assert time.monotonic() < deadline
        b.page.wait_for_timeout(100)
    b.wait("onCallHangup")
    assert b.page.eval_on_selector(".ucs-bar [data-ref=name]", "e => e.querySelectorAll('svg').length") == 1
    b.close()


# -- notifyWaitingCallers, onWaitingCallersChange, onDebug ------------------------------------------


@in_browser
def test_waiting_callers_alert_in_aux_only_where_asked_and_debug(ucs: UCS, browser: Any) -> None:
    a = Bar(browser, ucs)  # the demo page sets notifyWaitingCallers: true
    a.context.add_init_script(FAKE_NOTIFICATION)
    a.page.reload()
    a.wait("onCredentials")
    b = Bar(browser, ucs, "?notifyWaitingCallers=0")
    b.context.add_init_script(FAKE_NOTIFICATION)
    b.page.reload()
    b.wait("onCredentials")
    a.login(1)
    b.login(2)
    # The system alert's permission is asked for at the agent's login click, only where it is used.
    assert a.page.evaluate("window.__permissionAsked") == 1
    assert b.page.evaluate("[window.__permissionAsked, Notification.permission]") == [0, "default"]
    b.page.evaluate("Notification.permission = 'granted'")  # b's page may alert: the bar still must not
    for bar in (a, b):  # nobody takes queue calls: callers wait
        bar.call('changeStatus("AUX", "Break")')
        bar.wait("onStateChange", where="a.status === 'AUX'")

    ucs.customer_calls("5000", "420777000002", "Waiting One")
    assert a.wait("onWaitingCallersChange", where="a === 1")["args"] == [1]
    assert b.wait("onWaitingCallersChange", where="a === 1")["args"] == [1]
    # a (AUX, notifyWaitingCallers): a notification on the bar and a system alert.
    a.until("document.querySelector('.ucs-notes .ucs-note-warning') !== null")
    assert _notes(a) == ["Callers are waiting: 1"]
    assert a.page.evaluate("window.__systemAlerts") == [{"title": "UCS", "body": "Callers are waiting: 1"}]
    # b (notifyWaitingCallers: false): the count only.
    a.until("document.querySelector('.ucs-waiting-badge b').textContent === '1'")
    b.until("document.querySelector('.ucs-waiting-badge b').textContent === '1'")
    assert _notes(b) == [] and b.page.evaluate("window.__systemAlerts") == []

    # READY: a takes the caller; the count drops to 0, and a caller who then waits is no alert.
    a.call('changeStatus("READY")')
    a.wait("onCallRinging")
    a.call("answer()")
    a.wait("onCallConnect")
    assert a.wait("onWaitingCallersChange", where="a === 0")["args"] == [0]
    ucs.customer_calls("5000", "420777000003", "Waiting Two")
    a.wait("onWaitingCallersChange", count=2, where="a === 1")
    assert a.page.evaluate("window.__systemAlerts.length") == 1
    counts = [e["args"][0] for e in a.log() if e["name"] == "onWaitingCallersChange"]
    assert counts[-3:] == [1, 0, 1], counts

    # onDebug: requests, replies, events and callbacks, as text.
    debug = _debug(a)
    assert all(isinstance(m, str) for m in debug)
    for want in ("connecting to ws://", "→ call.answer", "← call.answer ok", "← event call.ringing",
                 "callback onCallRinging", "callback onWaitingCallersChange", "state READY"):
        assert any(m.startswith(want) for m in debug), want
    assert not any(m == "callback onDebug" for m in debug)
    a.call("hangup()")
    a.wait("onCallHangup")
    a.close()
    b.close()


# -- notify: timeout, boundState, group -------------------------------------------------------------


@in_browser
def test_notify_timeout_bound_state_and_group(ucs: UCS, browser: Any) -> None:
    a = Bar(browser, ucs)
    login_note = a.call('notify("Before login", "info", false, null, "CREDENTIALS")')
    a.until("document.querySelector('[data-ref=loginNotes] .ucs-note') !== null")  # under the login form
    assert _notes(a, "[data-ref=loginNotes]") == ["Before login"]
    a.login(1)
    assert "Before login" not in _notes(a)  # bound to CREDENTIALS: not while READY
    assert isinstance(login_note, int)

    # timeout: seconds up to 600, else milliseconds; null: until closed.
    a.call('notify("One second", "info", false, 1)')
    a.call('notify("1500 ms", "success", false, 1500)')
    a.call('notify("Stays", "warning", false, null)')
    a.until("document.querySelectorAll('.ucs-notes .ucs-note').length === 3")
    started = time.monotonic()
    a.until("![...document.querySelectorAll('.ucs-notes .ucs-note span')].some(e => e.textContent === 'One second')",
            timeout=5_000)
    assert 0.5 < time.monotonic() - started < 3
    a.until("![...document.querySelectorAll('.ucs-notes .ucs-note span')].some(e => e.textContent === '1500 ms')",
            timeout=5_000)
    assert _notes(a) == ["Stays"]

    # boundState READY: shown now, not after logging out.
    a.call('notify("Only when ready", "info", false, null, "READY")')
    # group: with unique, a newer notification of the group replaces the older; other groups stay.
    a.call('notify("CRM sync 1/2", "info", true, null, null, "crm-sync")')
    a.call('notify("Mail arrived", "info", true, null, null, "mail")')
    a.call('notify("CRM sync 2/2", "success", true, null, null, "crm-sync")')
    a.until("![...document.querySelectorAll('.ucs-notes .ucs-note span')].some(e => e.textContent === 'CRM sync 1/2')")
    assert _notes(a) == ["Stays", "Only when ready", "Mail arrived", "CRM sync 2/2"]
    # Without unique, the same group may hold several.
    a.call('notify("Mail arrived again", "info", false, null, null, "mail")')
    a.until("document.querySelectorAll('.ucs-notes .ucs-note').length === 5")
    # The object form of seed 002's arguments, with other.values.
    a.call('notify({title: "Bad identifier: {identifier}", type: "error", unique: true, group: "mail", '
           'other: {values: {identifier: "cisco"}}})')
    a.until("document.querySelector('.ucs-notes .ucs-note-error') !== null")
    assert [n for n in _notes(a) if "ail" in n or "identifier" in n] == ["Bad identifier: cisco"]

    a.page.click("[data-act=menu]")
    a.page.click("[data-act=logout]")
    a.wait("onCredentials", count=2)
    a.until("document.querySelector('[data-ref=loginNotes] .ucs-note') !== null")
    shown = _notes(a, "[data-ref=loginNotes]")
    assert "Before login" in shown and "Only when ready" not in shown, shown
    a.close()


# -- autologout, onMessage ----------------------------------------------------------------------


@in_browser
def test_autologout_and_on_message(ucs: UCS, browser: Any) -> None:
    # autologout: this tab is logged out when the same user logs in elsewhere.
    a = Bar(browser, ucs, "?autologout=1")
    a.login(1)
    b = Bar(browser, ucs)
    b.call('login("agent1", "demo-pass-1")')
    b.wait("onReady")
    message = a.wait("onMessage")["args"][0]
    assert set(message) == {"message", "type", "group", "data"}
    assert message["group"] == "autologout" and message["type"] == "warning" and message["message"]
    a.wait("onCredentials", count=2)
    assert a.page.evaluate("window.ucsOperator.componentState()") == "CREDENTIALS"
    a.page.wait_for_selector("[data-ref=loginNotes] .ucs-note-warning")
    assert b.page.evaluate("window.ucsOperator.componentState()") == "READY"

    # Without autologout (the default) both tabs work on: a login elsewhere is no reason to leave.
    c = Bar(browser, ucs)
    c.call('login("agent1", "demo-pass-1")')
    c.wait("onReady")
    assert b.page.evaluate("window.ucsOperator.componentState()") == "READY"
    assert [e for e in b.log() if e["name"] == "onMessage"] == []
    # A logout in one tab is a message in the others (group "logout").
    c.call("logout()")
    logout = b.wait("onMessage")["args"][0]
    assert logout["group"] == "logout" and logout["type"] == "warning"
    assert logout["message"] == "You were logged out in another window."
    b.wait("onCredentials", count=2)
    for bar in (a, b, c):
        bar.close()


# -- identifyIP ---------------------------------------------------------------------------------


@in_browser
def test_identify_ip_pairs_the_phone_listed_under_the_computers_address(ucs: UCS, browser: Any) -> None:
    directory = ucs.server.get_directory()
    line = directory.line_by_device("SIP/1001")
    ucs.run(lambda: defer.ensureDeferred(directory.edit("lines", line.id, {"identifiers": ["phone-1001", "127.0.0.1"]})))

    a = Bar(browser, ucs, "?identifyIP=1")
    a.page.fill("[data-ref=loginUser]", "agent1")
    a.page.fill("[data-ref=loginPass]", "demo-pass-1")
    a.page.click("[data-ref=loginBtn]")
    assert a.wait("onIdentifier")["args"] == ["127.0.0.1"]  # the address UCS saw (hello.address)
    assert a.wait("onDevice")["args"][0]["device"] == "SIP/1001"
    a.wait("onReady")
    assert "onIdentify" not in a.names()
    a.call("logout()")
    a.close()

    # Not one of this user's phones: tried, then the user picks one.
    b = Bar(browser, ucs, "?identifyIP=1")
    b.call('login("agent2", "demo-pass-2")')
    assert b.wait("onIdentifier")["args"] == ["127.0.0.1"]
    b.wait("onIdentify")
    assert "onDevice" not in b.names()
    b.call("logout()")
    b.close()

    # identifyIP false: the address is not tried.
    c = Bar(browser, ucs, "?identifyIP=0")
    c.call('login("agent1", "demo-pass-1")')
    c.wait("onIdentify")
    assert "onIdentifier" not in c.names() and "onDevice" not in c.names()
    c.close()


# -- confirmUnload --------------------------------------------------------------------------------


def _close_asks(bar: Bar) -> list[str]:
    """Close the tab as a user does (beforeunload runs); the dialogs it asked, each dismissed
    (the user stays).  Waits for the tab to close or for a dialog."""
    asked: list[str] = []

    def dialog(d: Any) -> None:
        asked.append(d.type)
        d.dismiss()

    bar.page.on("dialog", dialog)
    pump = bar.context.new_page()  # Playwright's events arrive while this thread waits on a page
    bar.page.close(run_before_unload=True)
    deadline = time.monotonic() + 10
    while not asked and not bar.page.is_closed():
        assert time.monotonic() < deadline, "neither closed nor asked"
        pump.wait_for_timeout(50)
    pump.close()
    return asked


@in_browser
def test_confirm_unload_asks_only_while_logged_in(ucs: UCS, browser: Any) -> None:
    a = Bar(browser, ucs, "?confirmUnload=1")
    a.page.click("[data-ref=loginUser]")  # the page had a user gesture: browsers ask only then
    assert _close_asks(a) == [] and a.page.is_closed()  # not logged in: nothing to lose
    a.context.close()

    b = Bar(browser, ucs, "?confirmUnload=1")
    b.login(1)
    assert _close_asks(b) == ["beforeunload"]
    assert not b.page.is_closed()  # the agent chose to stay
    assert b.page.evaluate("window.ucsOperator.componentState()") == "READY"
    b.close()

    c = Bar(browser, ucs)  # the default: no question
    c.login(2)
    assert _close_asks(c) == [] and c.page.is_closed()
    c.context.close()


# -- sso provider, disableIntegratedAutoLogout ---------------------------------------------------------


#: Each token of a test a second older than the last: two logins of one user in the same
#: second would otherwise sign the same token, which logs in once.
_AGO = itertools.count()


def _sso(bar: Bar, user: str, provider: str | None) -> None:
    token = sso_token(demo.SSO_SECRET, user, int(time.time()) - next(_AGO))
    bar.call(f"sso({json.dumps(user)}, {json.dumps(token)}, {json.dumps(provider)})")
    bar.wait("onReady")


def _sessions_of(ucs: UCS, username: str) -> list[Any]:
    return [s for s in ucs.server.get_sessions() if s.user is not None and s.user.username == username and not s.closed]


@in_browser
def test_sso_provider_logs_out_on_close_unless_disabled(ucs: UCS, browser: Any) -> None:
    a = Bar(browser, ucs, "?identifier=phone-1001")
    _sso(a, "agent1", "Acme CRM")
    (session,) = ucs.run(_sessions_of, ucs, "agent1")
    assert session.data["sso_provider"] == "Acme CRM"
    # The bar has no tabs to activate (docs/agent-bar.md): the provider changes nothing on it.
    assert a.page.query_selector("[role=tab], [role=tablist]") is None
    a.page.close()  # the CRM's tab is closed: the agent is logged out at once
    ucs.wait(lambda: ucs.server.get_agents().get(1) is None and not _sessions_of(ucs, "agent1"),
             what="agent1 logged out")
    a.context.close()

    # disableIntegratedAutoLogout: the closed tab's session waits for the resume window.
    b = Bar(browser, ucs, "?identifier=phone-1002&disableIntegratedAutoLogout=1")
    _sso(b, "agent2", "Acme CRM")
    b.page.close()
    ucs.wait(lambda: len(ucs.web.hub._expiry) == 1, what="agent2's session detached")
    assert ucs.server.get_agents().get(2) is not None and ucs.run(_sessions_of, ucs, "agent2")
    b.context.close()

    # Without a provider the login is not an integration's: no logout on close either.
    c = Bar(browser, ucs, "?identifier=phone-1001")
    _sso(c, "agent1", None)
    c.page.close()
    ucs.wait(lambda: len(ucs.web.hub._expiry) == 2, what="agent1's session detached")
    assert ucs.server.get_agents().get(1) is not None
    c.context.close()


# -- legacyStartup ----------------------------------------------------------------------------------


CRM_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>CRM</title></head><body>
<div id="bar">Loading agent bar...</div>
<script>
window.log = [];
window.ucsOperator = {renderTo: "bar", legacyStartup: %s, identifyIP: false,
  onConnect: function (v) { window.log.push(["onConnect", document.readyState]); },
  onCredentials: function () { window.log.push(["onCredentials", document.readyState]); }};
</script>
<script src="/operator/operator-v4.0.0.js"></script>
<img src="/crm-test/slow.png?%s" alt="">
</body></html>"""


class CRMPages(Resource):
    """A CRM's pages, served by UCS for the test (its origin may connect): ``legacy`` and
    ``onload``, each with an image UCS answers only when :meth:`release` is called — until
    then the page has not finished loading (no ``load`` event)."""

    def __init__(self) -> None:
        super().__init__()
        for name, legacy in (("legacy", "true"), ("onload", "false")):
            self.putChild(name.encode(), Data((CRM_PAGE % (legacy, name)).encode(), "text/html; charset=utf-8"))
        self.held: list[Any] = []
        self.putChild(b"slow.png", _Held(self.held))

    def release(self) -> None:
        for request in self.held:
            request.setResponseCode(204)
            request.finish()
        self.held.clear()


class _Held(Resource):
    isLeaf = True

    def __init__(self, held: list[Any]) -> None:
        super().__init__()
        self.held = held

    def render_GET(self, request: Any) -> Any:
        self.held.append(request)
        return NOT_DONE_YET


@in_browser
def test_legacy_startup_starts_before_the_page_has_loaded(ucs: UCS, browser: Any) -> None:
    pages = CRMPages()
    ucs.run(ucs.web.root.putChild, b"crm-test", pages)
    for legacy in (True, False):
        context = browser.new_context()
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{ucs.base}/crm-test/{'legacy' if legacy else 'onload'}", wait_until="domcontentloaded")
        ucs.wait(lambda: pages.held, what="the image asked for")
        assert page.evaluate("document.readyState") == "interactive"
        if legacy:
            # Connected and asking for credentials while the page is still loading.
            page.wait_for_function("window.log.length >= 2", timeout=10_000)
            assert page.evaluate("window.log") == [["onConnect", "interactive"], ["onCredentials", "interactive"]]
            assert page.query_selector("#bar .ucs-bar") is not None
        else:
            page.wait_for_timeout(1000)  # time enough to connect, had it started
            assert page.evaluate("window.log") == [] and page.query_selector("#bar .ucs-bar") is None
        ucs.run(pages.release)
        page.wait_for_function("window.log.length >= 2", timeout=10_000)
        if not legacy:  # started on the page's load event
            assert page.evaluate("window.log") == [["onConnect", "complete"], ["onCredentials", "complete"]]
        assert errors == []
        context.close()
