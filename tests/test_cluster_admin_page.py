"""Issue 20: the admin page's operations tab on one node of a cluster, in real Chromium.

Two whole ``UCSServer``s with ``[cluster]`` (real PostgreSQL, NATS, the simulated
Asterisk), agent 1 working through a bar on the owner A and with a second bar on
the standby B (real WebSocket clients); the administrator opens /admin/ on B:
agent 1's row names both nodes in its *UCS node* column and each connection says
its node; the forced logout from B's page closes both bars.  When A stops
answering, the tab names it ("Not answering") and lists what B knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor, threads

from clusterkit import cluster_env
from serverkit import until
from test_admin_page import log_in
from test_bar_browser import ARGS, CHROMIUM, pytestmark  # noqa: F401 - the skip
from test_cluster_logouts import ADMIN, bar_of
from ucs import demo
from ucs.server import UCSServer


@pytest_twisted.ensureDeferred
async def test_the_operations_tab_shows_every_nodes_sessions(tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        bars = env.clients
        timeout = {"request_timeout": 2.0}
        a = await env.start_owner(tmp_path, "node-a", 2, auth={"admin_password": ADMIN}, cluster=timeout)
        b = await env.start_standby(tmp_path, "node-b", a, cluster=timeout)
        user = a.get_directory().user_by_username(demo.user_of(1)[0])
        assert user is not None
        bars.append(await bar_of(a, 1, phone=True))
        await until(lambda: b.get_agents().get(user.id) is not None, 10)
        bars.append(await bar_of(b, 1, phone=False))
        base = b.get_web_service().url.rstrip("/")
        silenced: list[bool] = []

        def silence_a() -> Any:
            silenced.append(True)
            return a.get_cluster().sessync.stop()

        def scenario() -> None:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    page = browser.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    log_in(page, base, "admin", ADMIN)
                    page.wait_for_selector("#rows tr[data-id]")
                    page.click("#ops-tab")
                    row = '#ops-who tr[data-user="agent1"]'
                    page.wait_for_selector(f'{row} td[data-field="node"]:text-is("node-a, node-b")')
                    assert page.inner_text(f'{row} [data-field="status"]') == "READY"
                    where = page.inner_text(f'{row} [data-field="where"]')
                    assert "@ node-a" in where and "@ node-b" in where
                    assert page.inner_text('#ops-who tr[data-user="admin"] td[data-field="node"]') == "node-b"
                    assert page.is_hidden("#ops-missing")
                    page.on("dialog", lambda d: d.accept())
                    page.click(f"{row} button.force-logout")
                    page.wait_for_selector(row, state="detached")
                    # A stops answering: named on the tab (refreshed by itself), its users not listed.
                    threads.blockingCallFromThread(reactor, silence_a)
                    page.wait_for_selector("#ops-missing:not([hidden])", timeout=15_000)
                    assert "node-a" in page.inner_text("#ops-missing")
                    assert not errors, errors
                finally:
                    browser.close()

        await threads.deferToThread(scenario)
        assert silenced
        for bar in bars[:2]:
            closed = (await bar.event("session.closed", timeout=5))["data"]
            assert closed["message"] == "You were logged out by an administrator."
