"""A rolling restart of 3 UCS nodes behind a load balancer, the real bar in Chromium, a call up throughout (issue 20).

Three ``twistd --reactor=asyncio ucs`` processes share the real PostgreSQL (a schema of
their own) and NATS; the simulated Asterisk runs in this process; a round-robin TCP load
balancer (``tests/balancer.py``) stands in front of the three web ports, and Chromium loads
the demo CRM page through it.  The agent logs in with the bar and is READY; a customer
calls the support queue and the agent answers with the bar's button.  Then each node in
turn is stopped (SIGTERM), started again and waited for until it follows the owner's term
-- the node serving the bar's WebSocket first, the owner last (unless it is that node);
as the bar and the AMI link move, later steps may take the bar's new node or the new owner.
After each step: the bar is still logged in (no login form, no "session expired"), READY,
and shows the call connected with the customer's number; the simulator still has the same
call up, answered by the agent's phone.  The bar's node went at least once (the bar
reconnected through the balancer and resumed its session) and so did the owner (the call
was adopted by the new owner).  At the end the agent hangs up with the bar and the store
has exactly one CDR for the call, with its real answer time.  Harness as
tests/test_bar_browser.py (skipped without Chromium and Playwright).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import threads

from clusterkit import balanced_nodes, cluster_env, one_cdr, ready_bar_in_chromium, shows_the_call
from test_bar_browser import pytestmark  # noqa: F401 - the skip


@pytest_twisted.ensureDeferred
async def test_a_rolling_restart_behind_a_load_balancer_keeps_the_bar_and_its_call(tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        cluster = await balanced_nodes(env, tmp_path)
        steps: list[dict[str, Any]] = []

        def scenario() -> None:
            with ready_bar_in_chromium(cluster.front) as bar:
                channel = cluster.answered_call(bar)
                uniqueid = channel.linkedid
                readies = len([n for n in bar.names() if n == "onReady"])

                for name in cluster.order():  # the bar's node first, the owner last
                    was_bars = cluster.bar_node() == name
                    was_owner = cluster.owner() == name
                    cluster.nodes.procs[name].stop()
                    if was_bars:  # the bar lost its socket: it comes back through the balancer, resumed
                        bar.wait("onReady", count=readies + 1, timeout=40_000)
                        readies += 1
                        bar.page.wait_for_selector(".ucs-conn.ucs-ok", timeout=20_000)
                    if was_owner:  # another node takes the link first (back too soon, this one could claim it)
                        assert cluster.owner() != name
                    cluster.restart(name)
                    shows_the_call(bar)
                    assert bar.log()[-1]["name"] != "onCredentials"
                    assert "onCredentials" not in bar.names()[bar.names().index("onReady"):]
                    assert cluster.call_up() is channel, f"the call in the simulator changed across {name}'s restart"
                    steps.append({"node": name, "bars": was_bars, "owner": was_owner, "now_on": cluster.bar_node()})
                assert bar.page.query_selector("[data-act=answer]:visible") is None
                cluster.hang_up(bar)
                steps.append({"uniqueid": uniqueid})

        await threads.deferToThread(scenario)
        print("rolling restart:", steps)
        assert [s["node"] for s in steps[:-1]] and len(steps) == 4, steps
        assert any(s["bars"] for s in steps[:-1]), steps  # the bar's node restarted under it
        assert any(s["owner"] for s in steps[:-1]), steps  # and the owner, with the call up
        await one_cdr(env.store, steps[-1]["uniqueid"])
