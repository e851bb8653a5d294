"""/metrics and /health of the whole server tell an operator what is going on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from serverkit import start_demo, working_agent
from ucs.events import EVENT_CALL_CONNECT


@pytest_twisted.ensureDeferred
async def test_metrics_and_health_follow_a_call(tmp_path: Path) -> None:
    server = await start_demo(tmp_path)
    try:
        await working_agent(server, 1)
        sim = server.get_demo_pbx().sim
        sim.phone("SIP/1001").set_behaviour(answer_after=0.2)
        connected: Deferred[None] = Deferred()
        server.get_bus().subscribe(EVENT_CALL_CONNECT, lambda call, args: connected.called or connected.callback(None))
        sim.caller_calls("5000", "420777123456", hangup_after=30)
        await connected.addTimeout(10, reactor)

        base = f"http://127.0.0.1:{server.get_web_service().port}"
        text = await (await treq.get(f"{base}/metrics")).text()
        lines = set(text.splitlines())
        assert 'ucs_ami_link_up{state="up"} 1.0' in lines
        assert "ucs_calls_active 1.0" in lines
        assert 'ucs_agents{status="READY"} 1.0' in lines
        assert 'ucs_sessions{kind="ws"} 1.0' in lines  # the test's session is a "ws" kind by default
        assert any(line.startswith("ucs_ami_events_total ") and float(line.split()[1]) > 10 for line in lines)
        health = json.loads(await (await treq.get(f"{base}/health")).text())
        assert health["ami"] == "up" and health["calls"] == 1 and health["agents"] == 1
    finally:
        await server.service.stopService()
