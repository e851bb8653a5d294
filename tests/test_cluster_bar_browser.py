"""The agent bar in real Chromium shows a node's cluster notice (issue 20, point "telling the bars").

When a node's link to the other nodes (NATS) goes, the hub pushes a ``cluster``
event (``{"ok": false, "message": ...}``) to every bar, and to each bar that
connects meanwhile; the bar shows it as a warning until ``{"ok": true}`` clears
it.  The notice is set here on the hub of the demo UCS as the cluster node sets
it (``ClusterNode._tell_bars``; the node's real NATS going and coming back is
``tests/test_cluster_nats_bars.py``).
"""

from __future__ import annotations

from typing import Any

from test_bar_browser import UCS, Bar, in_browser, ucs  # noqa: F401 - the fixture

DOWN = {"ok": False, "nats": "down", "role": "standby", "node": "n1",
        "message": "UCS: this server lost its link to the other UCS nodes; what this bar shows may be out of date"}
UP = {"ok": True, "nats": "up", "role": "standby", "node": "n1", "message": "The link to the other UCS nodes is back."}
NOTE = ".ucs-note-warning:has-text('lost its link to the other UCS nodes')"


@in_browser
def test_the_bar_shows_the_cluster_notice_while_the_node_is_cut_off_and_clears_it(ucs: UCS, browser: Any) -> None:
    hub = ucs.server.get_web_service().hub
    a = Bar(browser, ucs)
    a.login(1)
    ucs.run(hub.cluster_notice, DOWN)
    a.page.wait_for_selector(NOTE, timeout=10_000)
    told = a.wait("onMessage", where="a.group === 'cluster'")["args"][0]
    assert told["type"] == "warning" and told["data"]["ok"] is False
    # A bar that connects while the node is cut off is told too.
    b = Bar(browser, ucs)
    b.login(2)
    b.page.wait_for_selector(NOTE, timeout=10_000)
    ucs.run(hub.cluster_notice, UP)
    for bar in (a, b):
        bar.page.wait_for_selector(NOTE, state="detached", timeout=10_000)
        bar.wait("onMessage", where="a.group === 'cluster' && a.data.ok === true")
        assert bar.page.query_selector(".ucs-note-warning") is None
    a.close()
    b.close()
