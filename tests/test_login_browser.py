"""What an agent sees of login throttling in the real agent bar (Chromium), in its own
language.  Uses the browser harness of tests/test_bar_browser.py (skipped without
Chromium and Playwright, like those tests)."""

from __future__ import annotations

from typing import Any

from test_bar_browser import UCS, Bar, in_browser, pytestmark, ucs  # noqa: F401 - the fixture and the skip


@in_browser
def test_a_throttled_login_says_when_to_try_again_in_czech_without_the_address(ucs: UCS, browser: Any) -> None:
    a = Bar(browser, ucs, "?lang=cs")
    for attempt in range(1, 6):
        a.page.fill("[data-ref=loginUser]", "agent1")
        a.page.fill("[data-ref=loginPass]", f"wrong-{attempt}")
        a.page.click("[data-ref=loginBtn]")
        assert a.wait("onLoginError", count=attempt)["args"][0] == 401
    a.page.fill("[data-ref=loginPass]", "demo-pass-1")  # the right one, too late
    a.page.click("[data-ref=loginBtn]")
    assert a.wait("onLoginError", count=6)["args"][0] == 429
    shown = a.page.inner_text("[data-ref=loginError]")
    assert shown == "Příliš mnoho neúspěšných přihlášení; zkuste to znovu za 10 s"
    assert "127.0.0.1" not in shown
    a.close()
