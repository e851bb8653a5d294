"""The agent bar in real Chromium against the whole UCS on the simulated PBX.

UCS runs in this process (the container in demo mode, no random callers, the
web service on a free port) on pytest-twisted's reactor; each test drives
Chromium with Playwright's sync API from a worker thread (it cannot run in the
reactor's thread) and reaches into UCS with ``blockingCallFromThread``.  Waits
are on conditions (polling the page and the PBX), never fixed sleeps.  The demo page
runs under its Content-Security-Policy (no ``eval``), so the page is polled with
``evaluate`` (which the policy does not cover) rather than ``wait_for_function``.

Needs Debian's ``chromium`` (``/usr/bin/chromium``, or ``$UCS_CHROMIUM``) and
PyPI's ``playwright`` (its driver only: never ``playwright install``).  Without
them these tests are skipped, unless ``UCS_REQUIRE_BROWSER=1`` (CI) makes that a
failure.  ``UCS_BAR_SCREENSHOTS=1`` also writes docs/agent-bar-*.png.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task, threads

from ucs import demo
from ucs.api.auth import sso_token

CHROMIUM = os.environ.get("UCS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
DOCS = Path(__file__).resolve().parents[1] / "docs"
SHOTS = os.environ.get("UCS_BAR_SCREENSHOTS") == "1"


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "PyPI's playwright is not installed (pip install playwright; never `playwright install`)"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"Chromium is not at {CHROMIUM} (apt-get install chromium)"
    return None


_why = _missing()
if _why and os.environ.get("UCS_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"browser tests are required (UCS_REQUIRE_BROWSER=1) but {_why}")
pytestmark = pytest.mark.skipif(_why is not None, reason=_why or "")


class UCS:
    """The running UCS, as the test thread sees it."""

    def __init__(self, server: Any, web: Any) -> None:
        self.server = server
        self.web = web
        self.base = web.url.rstrip("/")

    def run(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Call ``fn`` in the reactor thread and return its result (a Deferred's, waited for)."""
        return threads.blockingCallFromThread(reactor, fn, *args, **kw)

    @property
    def sim(self) -> Any:
        return self.server.get_demo_pbx().sim

    def customer_calls(self, exten: str = "5000", number: str = "420777123456", name: str = "Jana Novak") -> None:
        self.run(self.sim.caller_calls, exten, number, name)

    def wait(self, test: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        """Poll ``test`` in the reactor thread until it returns something true; this
        thread blocks once, on the whole wait, which fails after ``timeout`` seconds."""

        async def poll() -> Any:
            deadline = reactor.seconds() + timeout  # type: ignore[attr-defined]
            while not (value := test()):
                if reactor.seconds() > deadline:  # type: ignore[attr-defined]
                    raise AssertionError(f"{what}: not true within {timeout} s")
                await task.deferLater(reactor, 0.01, lambda: None)
            return value

        return self.run(lambda: defer.Deferred.fromCoroutine(poll()))


async def _start(tmp_path: Path, *, phones: int = 2, demo_pbx: Any = None,
                 **sections: dict[str, Any]) -> tuple[Any, Any]:
    """The demo UCS for the browser tests: ``phones`` demo phones (1001 and 1002 answer from
    the bar only), agents READY after login and no ACW, ``sections`` over those defaults;
    ``demo_pbx``: the simulated PBX service to use instead of the demo's own."""
    from ucs.config import Config
    from ucs.server import UCSServer

    base: dict[str, dict[str, Any]] = {
        "store": {"url": f"sqlite:///{tmp_path / 'ucs.db'}"},
        "demo": {"enabled": True, "call_rate": 0, "phones": phones, "softphone": False},
        "auth": {"sso_secret": demo.SSO_SECRET},
        "agents": {"acw_seconds": 0, "initial_status": "ready"},
        "web": {"listen": "127.0.0.1", "port": 0},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    server = UCSServer(Config().replace(**base), reactor, demo_pbx=demo_pbx)
    root = server.service  # builds the tree and the demo PBX before anything asks for the AMI client
    web = server.get_web_service()
    sim = server.get_demo_pbx().sim
    for device in ("SIP/1001", "SIP/1002"):  # answered from the bar only (SIP NOTIFY), never by themselves
        sim.phone(device).set_behaviour(remote_answer=True)
    root.startService()
    await root.whenStarted()
    # The AMI link is up once the PBX model knows the demo's queues.
    for _ in range(500):
        if "support" in server.get_pbx().queues and web.port:
            break
        await _tick()
    return server, web


def _tick() -> defer.Deferred[None]:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(0.02, d.callback, None)  # type: ignore[attr-defined]
    return d


@pytest.fixture
def ucs(tmp_path: Path) -> Iterator[UCS]:
    server, web = pytest_twisted.blockon(defer.ensureDeferred(_start(tmp_path)))
    try:
        yield UCS(server, web)
    finally:
        pytest_twisted.blockon(server.service.stopService())


def in_browser_with(*extra: str) -> Callable[[Callable[[UCS, Any], None]], Callable[[UCS], Any]]:
    """Run ``fn(ucs, browser)`` in a worker thread with Chromium (launched with ``extra``
    switches too), while the reactor runs."""

    def wrap(fn: Callable[[UCS, Any], None]) -> Callable[[UCS], Any]:
        def scenario(ucs: UCS) -> None:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS + list(extra))
                try:
                    fn(ucs, browser)
                finally:
                    browser.close()

        @pytest_twisted.ensureDeferred
        async def test(ucs: UCS) -> None:
            await threads.deferToThread(scenario, ucs)

        test.__name__ = fn.__name__
        test.__doc__ = fn.__doc__
        return test

    return wrap


#: :func:`in_browser_with` no extra switches: the decorator most browser tests use.
in_browser = in_browser_with()


# -- the page ------------------------------------------------------------------------------------


class Bar:
    """One demo CRM page with the bar: its callback log and its buttons."""

    def __init__(self, browser: Any, ucs: UCS, query: str = "") -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 760})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{ucs.base}/demo/{query}")
        self.wait("onCredentials")

    def log(self, *, debug: bool = False) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self.page.evaluate("window.ucsDemoLog")
        return [e for e in entries if debug or e["name"] != "onDebug"]

    def names(self) -> list[str]:
        return [e["name"] for e in self.log()]

    def wait(self, name: str, count: int = 1, timeout: float = 10_000, where: str = "true") -> dict[str, Any]:
        """The ``count``-th firing of callback ``name`` (whose first argument ``a`` satisfies ``where``)."""
        try:
            self._wait(name, count, timeout, where)
        except Exception:
            print(f"callbacks of {self.page.url} while waiting for {name}:")
            for e in self.log(debug=True)[-40:]:
                print("   ", e["name"], json.dumps(e["args"])[:160])
            raise
        hits = [e for e in self.log() if e["name"] == name]
        return hits[count - 1] if where == "true" else hits[-1]

    def _wait(self, name: str, count: int, timeout: float, where: str) -> None:
        self.until(f"window.ucsDemoLog.filter(e => e.name === {json.dumps(name)} && ((a) => {where})(e.args[0]))"
                   f".length >= {count}", timeout)

    def until(self, js: str, timeout: float = 10_000) -> Any:
        """Wait until the JavaScript expression ``js`` is true (``timeout`` in ms), and return it.

        The page polls it itself, on each animation frame, in one ``evaluate``: the
        demo page's CSP forbids ``eval``, which ``page.wait_for_function`` needs for a
        string, but the expression written into the function ``evaluate`` is given is
        compiled by the browser's debugging protocol, which the CSP does not govern."""
        outcome = self.page.evaluate(f"""async () => {{
            const deadline = performance.now() + {timeout};
            for (;;) {{
                const value = ({js});
                if (value) return {{value}};
                if (performance.now() > deadline) return {{timedOut: true}};
                await new Promise(requestAnimationFrame);
            }}
        }}""")
        if outcome.get("timedOut"):
            raise AssertionError(f"{js}: not true within {timeout / 1000:g} s")
        return outcome["value"]

    def call(self, js: str) -> Any:
        """Call ``window.ucsOperator.…`` the way a CRM does, and wait for its promise."""
        return self.page.evaluate(f"Promise.resolve(window.ucsOperator.{js})")

    def try_call(self, js: str) -> dict[str, Any]:
        return self.page.evaluate(
            f"Promise.resolve().then(() => window.ucsOperator.{js}).then(r => ({{ok: true, r}}), e => ({{ok: false, code: e.code, message: e.message}}))")

    def login(self, i: int) -> None:
        user, password = demo.user_of(i)
        self.page.fill("[data-ref=loginUser]", user)
        self.page.fill("[data-ref=loginPass]", password)
        self.page.click("[data-ref=loginBtn]")
        self.wait("onIdentify")
        self.page.click("[data-act=pick-phone]")
        self.wait("onReady")

    def shot(self, name: str) -> None:
        if SHOTS:
            self.page.screenshot(path=str(DOCS / f"agent-bar-{name}.png"))

    def close(self) -> None:
        assert not self.errors, self.errors
        self.context.close()


def _member(ucs: UCS, device: str, queue: str = "support") -> Any:
    return ucs.sim.queues[queue].members.get(device)


def _in_order(names: list[str], expected: list[str]) -> bool:
    it = iter(names)
    return all(any(n == want for n in it) for want in expected)


# -- tests -----------------------------------------------------------------------------------------


@in_browser
def test_two_agents_a_queue_call_and_a_consulted_transfer(ucs: UCS, browser: Any) -> None:
    a = Bar(browser, ucs)
    b = Bar(browser, ucs)
    a.shot("login")
    a.login(1)
    b.login(2)
    a.shot("ready")
    b.call('changeStatus("AUX", "Break")')  # only agent 1 takes queue calls
    b.wait("onStateChange", where="a.status === 'AUX'")
    ucs.wait(lambda: (m := _member(ucs, "SIP/1002")) is not None and m.paused, what="SIP/1002 paused")

    ucs.customer_calls("5000", "420777123456", "Jana Novak")
    ring = a.wait("onCallRinging")["args"][0]
    for key in ("uniqueid", "id", "direction", "number", "caller_number", "caller_number_norm", "caller_name",
                "called_number", "state", "cause", "created", "connected", "disconnected", "caller_muted",
                "connected_muted", "data", "subcalls", "caller_type", "connected_type"):
        assert key in ring, key
    assert ring["direction"] == "INCOMING" and ring["caller_number"] == "420777123456"
    assert ring["caller_name"] == "Jana Novak" and ring["state"] == 2 and ring["cause"] == -1
    assert ring["caller_number_norm"] == "+420777123456"
    a.page.wait_for_selector(".ucs-call.ucs-ringing")
    a.shot("ringing")

    a.page.click("[data-act=answer]")  # the bar's own button
    a.wait("onCallConnect")
    a.call("tribute()")
    a.wait("onCallHold")
    a.page.wait_for_selector('.ucs-call[data-call-state="5"]')
    a.call("unhold()")
    a.wait("onCallResume")
    a.call("mute()")
    a.wait("onCallMute")
    a.page.wait_for_selector("[data-act=mute].ucs-on")
    a.shot("call")
    a.call("mute()")
    a.wait("onCallUnmute")

    # A wrong-state call gets a clear warning, not silence.
    result = a.try_call("unhold()")
    assert not result["ok"] and "no call on hold" in result["message"]
    assert "unhold: there is no call on hold" in a.wait("onWarning")["args"][0]

    # Consult agent 2, then hand the caller over.
    a.call('transfer("1002")')
    b_ring = b.wait("onCallRinging")["args"][0]
    assert b_ring["state"] == 2 and b_ring["caller_number"] == "420777123456"  # B sees whom it is about
    a.page.wait_for_selector(".ucs-consult")  # A: "Consulting 1002 — the caller is on hold"
    b.page.click("[data-act=answer]")
    assert b.wait("onCallConnect")["args"][0]["state"] == 3  # B talks with A
    a.shot("consult")
    a.page.click("[data-act=finish]")
    a.wait("onCallHangup")  # A is out; the caller is with B
    ucs.wait(lambda: any(c.connected_channel.startswith("SIP/1002") and c.state == 3
                         for c in ucs.server.get_call_tracker().active_calls()), what="the caller connected to SIP/1002")
    b.page.wait_for_selector('.ucs-call[data-call-state="3"]')
    assert "Jana Novak" in b.page.inner_text(".ucs-calls")

    expected_a = ["onConnect", "onCredentials", "onUser", "onIdentify", "onIdentifier", "onDevice", "onReady",
                  "onCallRinging", "onCallConnect", "onCallHold", "onCallResume", "onCallMute", "onCallUnmute",
                  "onCallHangup"]
    assert _in_order(a.names(), expected_a), a.names()
    calls = [n for n in a.names() if n.startswith("onCall")]  # other callbacks (queue figures) come any time
    after_hold = calls[calls.index("onCallHold", calls.index("onCallUnmute")):]
    assert after_hold == ["onCallHold", "onCallHangup"], after_hold  # no "resume" as the caller leaves
    expected_b = ["onConnect", "onCredentials", "onUser", "onIdentify", "onDevice", "onReady", "onStateChange",
                  "onCallRinging", "onCallConnect"]
    assert _in_order(b.names(), expected_b), b.names()

    # The account code picker opened after the call; pick a reason with the bar.
    a.page.wait_for_selector(".ucs-account-form")
    a.page.click('.ucs-code[data-arg="SALES"]')
    a.shot("account-code")
    a.page.click(".ucs-account-form button[type=submit]")
    a.wait("onInfo", where="a === 'Call reason saved'")
    b.call("hangup()")
    b.wait("onCallHangup")
    a.close()
    b.close()


@in_browser
def test_crm_status_change_reaches_the_pbx_and_the_other_tab(ucs: UCS, browser: Any) -> None:
    crm = Bar(browser, ucs)
    crm.login(1)
    tab2 = Bar(browser, ucs)
    tab2.page.fill("[data-ref=loginUser]", "agent1")
    tab2.page.fill("[data-ref=loginPass]", "demo-pass-1")
    tab2.page.click("[data-ref=loginBtn]")
    tab2.wait("onReady")  # the agent works already: the second tab joins at once
    crm.call('changeStatus("AUX", "Lunch")')
    ucs.wait(lambda: (m := _member(ucs, "SIP/1001")) is not None and m.paused and m.reason == "Lunch",
             what="SIP/1001 paused for Lunch")
    change = tab2.wait("onStateChange", where="a.status === 'AUX'")["args"][0]
    assert change == {"status": "AUX", "reason": "Lunch"}
    tab2.page.wait_for_selector(".ucs-status.s-AUX")
    assert "Lunch" in tab2.page.inner_text(".ucs-status")
    # Back to READY from the other tab's own switcher.
    tab2.page.click("[data-act=status]")
    tab2.page.click('[data-act=set-status][data-status="READY"]')
    crm.wait("onStateChange", where="a.status === 'READY'")
    ucs.wait(lambda: (m := _member(ucs, "SIP/1001")) is not None and not m.paused, what="SIP/1001 unpaused")
    # Method outside its states: a warning.
    result = tab2.try_call('login("agent1", "x")')
    assert not result["ok"] and result["code"] == 412
    assert "login is allowed in CREDENTIALS; the agent bar is in READY" in tab2.wait("onWarning")["args"][0]
    crm.close()
    tab2.close()


@in_browser
def test_a_dropped_websocket_comes_back_and_shows_the_call(ucs: UCS, browser: Any) -> None:
    a = Bar(browser, ucs)
    a.login(1)
    ucs.customer_calls("5000", "420604111222", "Petr Svoboda")
    a.wait("onCallRinging")
    a.call("answer()")
    a.wait("onCallConnect")
    # The connection indicator is drawn again as it changes, and the bar may be back (ucs-ok)
    # before a selector is looked for: whether it showed "bad" meanwhile is recorded, not waited for.
    a.page.evaluate("""() => {
        window.__connBad = false;
        new MutationObserver(() => { if (document.querySelector('.ucs-conn.ucs-bad')) window.__connBad = true; })
            .observe(document.body, {subtree: true, childList: true, attributes: true});
    }""")
    # Cut every agent-bar socket on the server side, like a network failure.
    ucs.run(lambda: [c.transport.abort() for c in list(ucs.web.hub.connections)])
    a.wait("onError", where="a.indexOf('lost') >= 0")
    a.page.wait_for_function("window.__connBad")
    ready = a.wait("onReady", count=2, timeout=20_000)["args"][0]
    assert ready["call"] is not None and ready["call"]["caller_number"] == "420604111222"
    a.page.wait_for_selector(".ucs-conn.ucs-ok")
    a.page.wait_for_selector('.ucs-call[data-call-state="3"]')
    assert "Petr Svoboda" in a.page.inner_text(".ucs-calls")
    a.call("hangup()")
    a.wait("onCallHangup")
    a.close()


@in_browser
def test_wrong_password_then_sso_login(ucs: UCS, browser: Any) -> None:
    a = Bar(browser, ucs, "?identifier=phone-1002")  # identifyURL pairs the phone
    a.page.fill("[data-ref=loginUser]", "agent2")
    a.page.fill("[data-ref=loginPass]", "not-the-password")
    a.page.click("[data-ref=loginBtn]")
    err = a.wait("onLoginError")["args"]
    assert err[0] == 401 and "bad user name or password" in err[1]
    a.page.wait_for_selector("[data-ref=loginError]:has-text('Bad user name or password')")
    a.shot("login-error")
    token = sso_token(demo.SSO_SECRET, "agent2", int(time.time()))
    a.call(f'sso("agent2", {json.dumps(token)}, "Acme CRM")')
    user = a.wait("onUser")["args"][0]
    assert user["username"] == "agent2"
    assert a.wait("onIdentifier")["args"][0] == "phone-1002"
    assert a.wait("onDevice")["args"][0]["device"] == "SIP/1002"
    a.wait("onReady")
    assert a.page.evaluate("window.ucsOperator.componentState()") == "READY"
    a.close()


@in_browser
def test_confirm_device_dial_queues_notify_remembered_login_and_headless(ucs: UCS, browser: Any) -> None:
    a = Bar(browser, ucs, "?confirmDevice=1&lang=cs")
    assert "Přihlášení" in a.page.inner_text(".ucs-login")  # lang: before login
    a.shot("login-cs")
    a.call('login("agent1", "demo-pass-1", true)')  # remember me
    a.wait("onIdentify")
    a.page.click("[data-act=pick-phone]")
    assert a.wait("onDevice")["args"][0]["device"] == "SIP/1001"
    a.page.wait_for_selector(".ucs-confirm:has-text('Is this your phone?')")  # the user's locale now
    assert a.page.evaluate("window.ucsOperator.componentState()") == "DEVICE"
    a.page.click("[data-act=confirm]")
    a.wait("onReady")

    a.call("suspend(1)")
    assert a.wait("onAgentSuspend")["args"] == [1]
    ucs.wait(lambda: (m := _member(ucs, "SIP/1001")) is None or m.paused, what="suspended from support")
    a.call("resume(1)")
    assert a.wait("onAgentResume")["args"] == [1]

    a.call('notify("Bad identifier: {identifier}", "error", true, null, null, null, {values: {identifier: "cisco"}})')
    a.page.wait_for_selector(".ucs-note-error:has-text('Bad identifier: cisco')")

    a.call('dial("0800123456")')
    new = a.wait("onCallNew")["args"][0]
    assert new["legs"][0]["device"] == "SIP/1001"  # click-to-dial rings the agent's own phone first
    a.call("hangup()")
    a.wait("onCallHangup")

    # The remembered login logs in by itself on the next visit (logging out would have
    # revoked it: tests/test_bar_security.py), still on the phone paired before.
    a.page.goto(f"{ucs.base}/demo/?autologin=1")
    a.wait("onReady")
    names = a.names()
    assert "onCredentials" not in names and "onUser" in names, names
    a.close()

    # Headless: no GUI, the same methods and callbacks.
    h = Bar(browser, ucs, "?headless=1")
    assert h.page.query_selector(".ucs-bar") is None
    h.call('login("agent2", "demo-pass-2")')
    assert h.wait("onUser")["args"][0]["username"] == "agent2"
    h.call('selectIdentifier("phone-1002")')
    h.wait("onReady")
    h.close()
