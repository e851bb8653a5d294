"""2,000 agent bars reconnecting at once after a network blip (issue 8).

The bars are ``bench/loadgen.py``: a separate process holding 2,000 real
WebSockets (asyncio + ``websockets``), each logged in by SSO with its phone
paired and READY.  ``reconnect`` aborts every socket at once; each client then
comes back like the agent bar (full-jitter backoff, ``session.resume`` with
its sid, ``state``).  Meanwhile a bar that was not dropped keeps changing its
status through UCS, which must keep answering it.

What must hold: every bar resumes its own session (none fails, none is logged
out, no agent is left with two sessions), every agent is still READY on its
phone, and the bar that stayed saw every one of its changes go through.  How
long it took and the stayer's round trips are printed (speed is measured by
``bench/fanout.py``, not asserted here).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import pytest_twisted
from serverkit import demo_config
from test_web_api import ready_agent
from twisted.internet import reactor

from ucs import demo
from ucs.constants import AgentStatus
from ucs.server import UCSServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from loadgen_process import LoadGenProcess  # noqa: E402  (bench/ is not a package)

BARS = 2000
FIRST_DEVICE = 200000


async def seed_bars(server: UCSServer) -> None:
    """Users ``bench1..`` (SSO only: no password to hash) with a line each, in the Support queue."""
    directory = server.get_directory()
    support = directory.queue_by_asterisk_name(demo.QUEUES[0][1])
    assert support is not None
    for i in range(1, BARS + 1):
        line = await directory.add("lines", {"device": f"SIP/{FIRST_DEVICE + i}", "name": f"Storm phone {i}",
                                             "identifiers": [f"bench-phone-{i}"]})
        await directory.add("users", {"username": f"bench{i}", "firstname": "Storm", "lastname": str(i),
                                      "lines": [line.id], "queues": {str(support.id): {"priorities": 0}}})


@pytest_twisted.ensureDeferred
async def test_two_thousand_bars_reconnect_at_once_and_each_resumes_its_session(tmp_path: Path) -> None:
    config = demo_config(tmp_path, demo={"phones": 1}, web={"max_connections": 0},
                         auth={"sso_secret": demo.SSO_SECRET, "sso_window": 3600.0})
    server = UCSServer(config, reactor)
    sim = server.get_demo_pbx().sim
    for i in range(1, BARS + 1):
        sim.add_line(f"SIP/{FIRST_DEVICE + i}", f"Storm {i}", f"10.1.{i >> 8}.{i & 255}")
    server.service.startService()
    lg: LoadGenProcess | None = None
    try:
        await server.service.whenStarted()
        if not server.get_pbx_link().resyncs:
            await server.get_pbx_link().whenSynced()
        await seed_bars(server)
        stayer = await ready_agent(server, 1)

        lg = LoadGenProcess.spawn(reactor, server.get_web_service().port, BARS, demo.SSO_SECRET)
        ready = await lg.expect("ready", timeout=300)
        assert ready.startswith(f"{BARS} clients (0 failed)"), ready
        agents = server.get_agents()
        bench = [a for a in agents.all() if a.user.username.startswith("bench")]
        assert len(bench) == BARS and all(a.status == AgentStatus.READY for a in bench)
        sids = {s.sid for s in server.get_sessions() if s.user is not None and s.user.username.startswith("bench")}
        assert len(sids) == BARS

        # The blip: every bar's socket aborted at once; the stayer keeps working meanwhile.
        back = lg.expect("reconnected", timeout=300)
        lg.command("reconnect")
        round_trips: list[float] = []
        target = "AUX"
        while not back.called:
            t0 = time.perf_counter()
            result = await stayer.call("agent.changeStatus", [target, "Lunch"] if target == "AUX" else [target])
            round_trips.append(time.perf_counter() - t0)
            assert result["status"] == target
            target = "READY" if target == "AUX" else "AUX"
        report = json.loads(await back)
        print(f"\n{BARS} bars back: {report}; the stayer's status changes meanwhile: {len(round_trips)}, "
              f"slowest {max(round_trips) * 1000:.0f} ms")

        assert report["resumed"] == BARS and report["failed"] == 0, report
        assert len(round_trips) > 0
        # Each bar resumed the session it had: same sids, one session per agent, all READY on their phones.
        after = [s for s in server.get_sessions() if s.user is not None and s.user.username.startswith("bench")]
        assert {s.sid for s in after} == sids
        assert max(Counter(s.user.username for s in after).values()) == 1
        assert len(agents.all()) == BARS + 1
        assert all(a.status == AgentStatus.READY for a in bench)
        assert {a.line.device for a in bench} == {f"SIP/{FIRST_DEVICE + i}" for i in range(1, BARS + 1)}
        assert all(s.push is not None for s in after)  # attached to a live socket again
    finally:
        if lg is not None:
            await lg.quit()
        await server.service.stopService()
