"""Bad input against the whole server: fuzzed WebSocket messages, and text that
could break an AMI action, through every entry point that reaches one."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from serverkit import start_demo, working_agent
from test_web_api import CallError, connect
from ucs.error import InvalidDataInput

METHODS = ["login", "sso", "state", "agent.changeStatus", "call.dial", "call.transfer", "config.users.add",
           "plugins.load", "nope", "", "session.info", "identifier"]


def fuzz_message(rng: random.Random, i: int) -> bytes:
    kind = i % 5
    if kind == 0:  # random bytes that are not JSON (made valid UTF-8 for a text frame)
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).decode("latin-1").encode()
    if kind == 1:  # JSON that is not a request object
        return json.dumps(rng.choice([None, 1, -1.5, "x", [], [1, 2], {"a": {"b": [None]}}, True])).encode()
    value = rng.choice([None, 0, 2**70, -1, "", "x" * rng.randrange(0, 3000), "\r\nAction: Originate",
                        "ěščřž\u0000", [], [None, {}], {"status": "AUX"}, {"reason": 5}, True, 1.5])
    if kind == 2:  # a request with wrong arguments
        return json.dumps({"id": i, "method": rng.choice(METHODS), "args": value}).encode()
    if kind == 3:  # a request with wrong id/method types or unknown keys
        return json.dumps({"id": value if not isinstance(value, (list, dict)) else i,
                           "method": value if isinstance(value, str) else 42, "colour": "red"}).encode()
    return json.dumps({"id": i, "method": "agent.changeStatus", "args": [value, value]}).encode()


@pytest_twisted.ensureDeferred
async def test_ten_thousand_fuzzed_websocket_messages(tmp_path: Path) -> None:
    server = await start_demo(tmp_path, web={"max_pending": 10_000})
    try:
        url = f"ws://127.0.0.1:{server.get_web_service().port}/ws"
        client = await connect(url)
        answers: list[dict[str, Any]] = []
        receive = client._message

        def count(payload: bytes, is_binary: bool) -> None:
            answers.append(json.loads(payload))
            receive(payload, is_binary)

        client._message = count  # type: ignore[method-assign]
        rng = random.Random(1234)
        sent = 10_000
        for i in range(sent):
            client.send_raw(fuzz_message(rng, i))
        await client.wait(lambda: True if len(answers) >= sent else None, 120)
        answers = [a for a in answers if "event" not in a]
        assert len(answers) == sent
        errors = [a["error"] for a in answers if "error" in a]
        # only a handful of fuzzed calls can succeed (session.info); every other one is refused with a reason
        assert len(errors) >= sent - 2000
        assert all(e["message"] and isinstance(e["code"], int) for e in errors)
        assert not client.closed.called
        info = await client.call("session.info")
        assert info["state"] == "CREDENTIALS"
        assert server.get_ami_client().state == "up"
    finally:
        await server.service.stopService()


CRLF = "Lunch\r\nAction: Originate\r\nChannel: SIP/1001"


@pytest_twisted.ensureDeferred
async def test_line_breaks_never_reach_an_ami_action(tmp_path: Path) -> None:
    """Every string an agent can send that ends up in an AMI action is refused with a
    reason when it holds CR or LF — through the API registry, the WebSocket and a plugin's sid."""
    server = await start_demo(tmp_path)
    try:
        reg = server.get_registry()
        agent = await working_agent(server, 1)
        written: list[bytes] = []
        transport = server.get_ami_client().protocol.transport  # type: ignore[union-attr]
        original = transport.write
        transport.write = lambda data: (written.append(data), original(data))[1]  # type: ignore[method-assign]
        attempts: list[tuple[str, list[Any]]] = [
            ("agent.changeStatus", ["AUX", CRLF]),
            ("call.dial", ["12\r\n34"]),
            ("call.transfer", ["1002\nAction: Hangup"]),
            ("call.blindTransfer", ["1002\r"]),
            ("call.setAccountCode", ["1.1", "SALES\r\nX"]),
        ]
        for method, args in attempts:
            with pytest.raises(Exception) as e:
                await reg.call(agent, method, args)
            assert str(e.value), method
        assert not any(b"Action: Originate\r\nChannel: SIP/1001" in w or b"Action: Hangup" in w for w in written)
        admin = server.get_sessions().system()
        with pytest.raises(InvalidDataInput, match="line breaks"):
            await reg.call(admin, "config.auxreasons.add", [{"name": CRLF}])
        bar = await connect(f"ws://127.0.0.1:{server.get_web_service().port}/ws")
        await bar.call("login", ["agent2", "demo-pass-2"])
        await bar.call("identifier", ["phone-1002"])
        await bar.call("provision")
        with pytest.raises(CallError) as err:
            await bar.call("agent.changeStatus", ["AUX", CRLF])
        assert err.value.error["message"]
        assert server.get_agents().get(2).reason != CRLF  # type: ignore[union-attr]
    finally:
        await server.service.stopService()

