"""The page and the remember-me token (issue 14, points 6 and 7) in real Chromium.

The same set-up as tests/test_bar_browser.py (its fixtures): the whole UCS in
this process, Chromium driven from a worker thread.

- No text from outside reaches the DOM as HTML: a ``topMenuNameContent`` in the
  demo page's URL used to run its script with the password cookie in reach; an
  option, a user's name, a caller's name and a notification now all stay text.
  The check is the DOM (no element made of them), not that the script did not run:
  the demo page's Content-Security-Policy would stop an inline handler anyway, and
  CRM pages have no such policy.
- "Remember me" keeps a token UCS issued in an ``HttpOnly`` cookie on UCS's own
  page, never the password; the bar logs in by itself with it; a password change
  and a logout revoke it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from test_bar_browser import UCS, Bar, in_browser, pytestmark, ucs  # noqa: F401 - fixtures
from twisted.internet.defer import Deferred

from ucs import demo
from ucs.api.remember import COOKIE, NAMESPACE

PAYLOAD = "<img src=x onerror=\"window.__pwned=(window.__pwned||'')+document.cookie+'|'\">"


def no_markup_from_outside(bar: Bar) -> None:
    found = bar.page.evaluate("""() => ({
        imgs: document.querySelectorAll('.ucs-bar img, .ucs-bar [onerror]').length,
        pwned: window.__pwned === undefined ? null : String(window.__pwned),
    })""")
    assert found == {"imgs": 0, "pwned": None}, found


@in_browser
def test_a_script_in_the_demo_url_does_not_run(ucs: UCS, browser: Any) -> None:
    query = "?autologin=1&topMenuNameContent=" + quote(PAYLOAD, safe="")
    a = Bar(browser, ucs, query)
    a.login(1)
    no_markup_from_outside(a)
    a.page.wait_for_selector(".ucs-name .ucs-username")
    assert "onerror" not in a.page.inner_text(".ucs-name")  # the URL sets no text of the bar
    assert a.page.evaluate("window.ucsOperator.topMenuNameContent") is None
    a.close()


@in_browser
def test_options_names_and_messages_stay_text(ucs: UCS, browser: Any) -> None:
    directory = ucs.server.get_directory()
    user = directory.user_by_username("agent1")
    ucs.run(lambda: Deferred.fromCoroutine(directory.edit("users", user.id, {"displayname": "Eve " + PAYLOAD})))
    a = Bar(browser, ucs)
    a.page.evaluate(f"window.ucsOperator.topMenuNameContent = {PAYLOAD!r} + ' %icon% %name% <b>bold</b>'")
    a.login(1)
    name = a.page.inner_text(".ucs-name")
    assert name.startswith(PAYLOAD) and "Eve " + PAYLOAD in name and name.endswith("<b>bold</b>"), name
    assert a.page.query_selector(".ucs-name svg.ucs-avatar") is not None  # %icon% is still the icon

    ucs.customer_calls(name="Mallory " + PAYLOAD)
    a.wait("onCallRinging")
    a.page.wait_for_selector(".ucs-call-name:has-text('Mallory')")
    assert PAYLOAD in a.page.inner_text(".ucs-call-name")
    a.call(f"notify({PAYLOAD!r}, {PAYLOAD!r}, true, null)")
    a.page.wait_for_selector(".ucs-note")
    assert PAYLOAD in a.page.inner_text(".ucs-bottom")
    no_markup_from_outside(a)
    a.call("hangup()")
    a.close()


def stored(ucs: UCS) -> dict[str, Any]:
    """The remember-me records in the store (keyed by the token's SHA-256)."""
    result: dict[str, Any] = ucs.run(lambda: ucs.server.get_store().kv_items(NAMESPACE))
    return result


def remember_cookie(context: Any) -> dict[str, Any] | None:
    return next((c for c in context.cookies() if c["name"] == COOKIE), None)


@contextmanager
def remember_posted(page: Any) -> Iterator[None]:
    """Run a block that makes the bar POST ``/remember`` (which puts or clears the
    remember-me cookie), then wait for UCS's answer: page scripts cannot see an HttpOnly
    cookie, so the browser's own record of the response is what is waited on."""
    with page.expect_response(lambda r: r.url.endswith("/remember") and r.request.method == "POST",
                              timeout=10_000) as answered:
        yield
    response = answered.value
    response.finished()
    assert response.ok, response.status


@in_browser
def test_remember_me_keeps_a_revocable_token_never_the_password(ucs: UCS, browser: Any) -> None:
    username, password = demo.user_of(1)
    a = Bar(browser, ucs)
    a.page.fill("[data-ref=loginUser]", username)
    a.page.fill("[data-ref=loginPass]", password)
    a.page.check("[data-ref=loginRemember]")
    with remember_posted(a.page):
        a.page.click("[data-ref=loginBtn]")
        a.wait("onIdentify")
        a.page.click("[data-act=pick-phone]")
        a.wait("onReady")

    cookie = remember_cookie(a.context)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    seen = a.page.evaluate("document.cookie + ' ' + JSON.stringify(Object.assign({}, localStorage))")
    for secret in (password, base64.b64encode(password.encode()).decode(), cookie["value"]):
        assert secret not in seen, seen
    assert all(password not in c["value"] for c in a.context.cookies())
    [record] = stored(ucs).values()
    assert cookie["value"] not in str(record)  # the store has its hash only

    # A new visit logs in by itself (autologin), with no password anywhere.
    a.page.goto(f"{ucs.base}/demo/?autologin=1")
    a.wait("onReady")
    assert "onCredentials" not in a.names()
    # Without autologin the form is filled with the user name; an empty password logs in.
    a.page.goto(f"{ucs.base}/demo/")
    a.wait("onCredentials")
    a.until("document.querySelector('[data-ref=loginUser]').value === 'agent1'")
    assert a.page.input_value("[data-ref=loginPass]") == ""
    a.page.click("[data-ref=loginBtn]")
    a.wait("onReady")

    # Logging out revokes it: the stolen cookie is refused in another browser.
    stolen = dict(cookie)
    with remember_posted(a.page):
        a.call("logout()")
        a.wait("onCredentials", count=2)
    assert stored(ucs) == {}
    assert remember_cookie(a.context) is None
    thief = Bar(browser, ucs)
    thief.context.add_cookies([{k: stolen[k] for k in ("name", "value", "domain", "path", "httpOnly", "sameSite")}])
    thief.page.goto(f"{ucs.base}/demo/?autologin=1")
    thief.wait("onCredentials")
    assert "onUser" not in thief.names()
    assert thief.page.input_value("[data-ref=loginUser]") == ""
    thief.close()

    # A password change revokes it too.
    a.page.goto(f"{ucs.base}/demo/")
    a.wait("onCredentials")
    with remember_posted(a.page):
        a.call(f'login("{username}", "{password}", true)')
        a.wait("onReady")
    assert remember_cookie(a.context) is not None
    directory = ucs.server.get_directory()
    user = directory.user_by_username(username)
    ucs.run(lambda: Deferred.fromCoroutine(directory.edit("users", user.id, {"password": "a-new-pass-1"})))
    a.page.goto(f"{ucs.base}/demo/?autologin=1")
    a.wait("onCredentials")
    assert "onUser" not in a.names()
    assert stored(ucs) == {}
    a.close()
