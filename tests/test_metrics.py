"""/metrics and /health of the whole server tell an operator what is going on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from serverkit import start_demo, working_agent, write_plugin
from test_web_api import until
from ucs.ami.errors import AMIActionError
from ucs.events import EVENT_CALL_CONNECT
from ucs.server import UCSServer


async def agent_answers_a_caller(server: UCSServer, hangup_after: float) -> None:
    """Demo agent 1 working; a caller to the support queue, answered by its phone."""
    await working_agent(server, 1)
    sim = server.get_demo_pbx().sim
    sim.phone("SIP/1001").set_behaviour(answer_after=0.2)
    connected: Deferred[None] = Deferred()
    server.get_bus().subscribe(EVENT_CALL_CONNECT, lambda call, args: connected.called or connected.callback(None))
    sim.caller_calls("5000", "420777123456", hangup_after=hangup_after)
    await connected.addTimeout(10, reactor)


@pytest_twisted.ensureDeferred
async def test_metrics_and_health_follow_a_call(tmp_path: Path) -> None:
    server = await start_demo(tmp_path)
    try:
        await agent_answers_a_caller(server, hangup_after=30)

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


HOOKED = '''
UCS_PLUGIN = "Hooked"


class Hooked:
    def __init__(self, ucs):
        self.ucs = ucs
        ucs.addCallback("call.connect", self.connected)

    def connected(self, call, args):
        self.ucs.log.info("connected")

    def stop(self):
        pass
'''


def samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric's lines in the exposition text."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            out[key[len(name):]] = float(value)
    return out


@pytest_twisted.ensureDeferred
async def test_metrics_time_the_store_and_plugin_hooks_and_count_failed_ami_actions(tmp_path: Path) -> None:
    write_plugin(tmp_path, "hooked", HOOKED)
    server = await start_demo(tmp_path)
    try:
        await agent_answers_a_caller(server, hangup_after=0.5)
        writer = server.get_cdr_writer()
        await until(lambda: writer.written >= 1, 10)  # the caller hangs up after 0.5 s; its CDR is then written
        assert writer.written == 1
        # Asterisk refuses a hangup of a channel it does not have: that is a failed action.
        with pytest.raises(AMIActionError):
            await server.get_ami_client().sendAction("Hangup", {"Channel": "SIP/9999-00000000"})

        base = f"http://127.0.0.1:{server.get_web_service().port}"
        text = await (await treq.get(f"{base}/metrics")).text()
        saved = samples(text, "ucs_store_seconds_count")
        assert saved['{operation="save_cdr",outcome="ok"}'] >= 1
        assert samples(text, "ucs_store_seconds_sum")['{operation="save_cdr",outcome="ok"}'] > 0
        hooks = samples(text, "ucs_plugin_hook_seconds_count")
        assert hooks['{hook="callback for call.connect",plugin="hooked"}'] == 1
        failed = samples(text, "ucs_ami_actions_failed_total")
        assert failed['{action="Hangup",reason="error"}'] == 1
        assert samples(text, "ucs_ami_actions_total")[""] >= 1
    finally:
        await server.service.stopService()
