"""The admin page's operations tab (/admin/, issue 19) in real Chromium against the whole
demo UCS: who is logged in (refreshed as agents come), a forced logout after a
confirmation, the plugins unloaded and loaded (and one that fails to load, named with
its error), the AMI link as the simulated Asterisk goes away and comes back; in Czech too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from serverkit import working_agent, write_plugin
from test_admin_page import log_in
from test_bar_browser import UCS, _start, in_browser, pytestmark  # noqa: F401 - the skip
from twisted.internet import defer

from ucs import demo


@pytest.fixture
def ucs(tmp_path: Path) -> Iterator[UCS]:
    write_plugin(tmp_path, "greeter", "class Greeter:\n    def __init__(self, ucs):\n        self.ucs = ucs\n"
                                      "UCS_PLUGIN = 'Greeter'\n")
    server, web = pytest_twisted.blockon(defer.ensureDeferred(
        _start(tmp_path, plugins={"directory": str(tmp_path / "plugins")})))
    try:
        yield UCS(server, web)
    finally:
        pytest_twisted.blockon(server.service.stopService())


def agent_works(ucs: UCS, n: int) -> None:
    """Demo agent ``n`` logs in and pairs its phone (through the API, in the reactor thread)."""
    ucs.run(lambda: defer.Deferred.fromCoroutine(working_agent(ucs.server, n)))


@in_browser
def test_the_operations_tab(ucs: UCS, browser: Any) -> None:
    agent_works(ucs, 1)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    sent: list[str] = []  # what the page sends on its WebSocket
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
    log_in(page, ucs.base, "admin", demo.ADMIN_PASSWORD)
    page.wait_for_selector("#rows tr[data-id]")
    page.click("#ops-tab")
    row = page.wait_for_selector('#ops-who tr[data-user="agent1"]')
    assert page.is_hidden("#list") and page.get_attribute("#ops-tab", "aria-selected") == "true"
    assert row.query_selector('[data-field="status"]').inner_text() == "READY"  # type: ignore[union-attr]
    assert "SIP/1001" in row.query_selector('[data-field="phone"]').inner_text()  # type: ignore[union-attr]
    assert "agent bar" in page.inner_text('#ops-who tr[data-user="admin"] [data-field="where"]')
    node = ucs.run(lambda: ucs.server.get_operations().node)
    assert page.inner_text('#ops-who tr[data-user="agent1"] [data-field="node"]') == node  # one UCS: itself
    assert page.is_hidden("#ops-missing")
    assert page.query_selector('#ops-who tr[data-user="admin"] button.force-logout') is None  # not oneself

    # refreshed while shown: a second agent appears by itself
    agent_works(ucs, 2)
    page.wait_for_selector('#ops-who tr[data-user="agent2"]', timeout=10_000)

    # the AMI link, up, with its last resync
    page.wait_for_selector('#ops-ami dd[data-field="state"].ami-up')
    assert page.inner_text('#ops-ami dd[data-field="version"]') == ucs.sim.version
    assert "complete" in page.inner_text('#ops-ami dd[data-field="resync"]')
    first_resync = page.inner_text('#ops-ami dd[data-field="resync"]')

    # forced logout: asked first; refused, nothing happens; accepted, the agent is out
    answers = iter([False, True])
    page.on("dialog", lambda d: d.accept() if next(answers) else d.dismiss())
    page.click('#ops-who tr[data-user="agent1"] button.force-logout')
    page.evaluate("0")  # the click's handler, confirm() answered, has run: whatever it sent was sent
    assert not [f for f in sent if "ops.logout" in f]
    assert ucs.run(lambda: ucs.server.get_agents().get(_uid(ucs, "agent1")) is not None)
    page.click('#ops-who tr[data-user="agent1"] button.force-logout')
    page.wait_for_selector('#ops-who tr[data-user="agent1"]', state="detached")
    assert "agent1 was logged out" in page.inner_text("#ops-message")
    assert len([f for f in sent if "ops.logout" in f]) == 1
    ucs.wait(lambda: ucs.server.get_agents().get(_uid(ucs, "agent1")) is None, what="agent1 logged out")
    ucs.wait(lambda: "SIP/1001" not in ucs.sim.queues["support"].members, what="SIP/1001 out of support")

    # plugins: unload, load, and one that fails to load says why
    page.wait_for_selector('#ops-plugins tr[data-plugin="greeter"] td[data-field="state"]:text-is("running")')
    page.click('#ops-plugins tr[data-plugin="greeter"] button.plugin-unload')
    page.wait_for_selector('#ops-plugins tr[data-plugin="greeter"] td[data-field="state"]:text-is("stopped")')
    page.click('#ops-plugins tr[data-plugin="greeter"] button.plugin-load')
    page.wait_for_selector('#ops-plugins tr[data-plugin="greeter"] td[data-field="state"]:text-is("running")')
    write_plugin(Path(ucs.server.config.plugins.directory).parent, "broken", "import no_such_module_here\n")
    page.fill("#ops-plugin-name", "broken")
    page.click("#ops-plugin-load")
    page.wait_for_selector("#ops-message.refused")
    assert "no_such_module_here" in page.inner_text("#ops-message")
    page.wait_for_selector('#ops-plugins tr[data-plugin="broken"] td[data-field="state"]:text-is("failed")')

    # the simulated Asterisk goes away, then comes back: the tab follows
    demo_pbx = ucs.server.get_demo_pbx()

    def cut() -> Any:
        d = defer.maybeDeferred(demo_pbx.stop_listening)
        ucs.server.get_ami_client().protocol.transport.abortConnection()
        return d

    ucs.run(cut)
    page.wait_for_selector('#ops-ami dd[data-field="state"].ami-connecting', timeout=10_000)
    assert page.inner_text('#ops-ami dd[data-field="lost"]') != "never"
    ucs.run(demo_pbx.start_listening)
    page.wait_for_selector('#ops-ami dd[data-field="state"].ami-up', timeout=15_000)
    page.wait_for_function(
        "previous => document.querySelector('#ops-ami dd[data-field=\"resync\"]').textContent !== previous",
        arg=first_resync, timeout=10_000)

    # in Czech
    page.select_option("#lang", "cs")
    assert page.inner_text("#ops-tab") == "Provoz"
    page.wait_for_selector('#ops-ami dd[data-field="state"]:text-is("připojeno")')
    assert page.inner_text('#ops h2:first-child') == "Přihlášení"

    # another tab closes this one
    page.click('nav [data-tab="users"]')
    page.wait_for_selector("#list:not([hidden])")
    assert page.is_hidden("#ops") and page.get_attribute("#ops-tab", "aria-selected") == "false"
    assert errors == []
    page.close()


def _uid(ucs: UCS, username: str) -> int:
    user = ucs.server.get_directory().user_by_username(username)
    assert user is not None
    return int(user.id)
