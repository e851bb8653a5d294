"""Issue 18, the softphone: a WebRTC line in the directory, and its SIP account given only
to the agent paired with it, over the bar's authenticated socket, never in a page, an
answer to anyone else, or a log.

The whole server in demo mode over a real WebSocket (tests/test_web_api.py's client).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_web_api import CallError, Client, connect, server, settle, ws_url  # noqa: F401 - fixture
from twisted.logger import formatEvent, globalLogPublisher

from ucs import demo
from ucs.error import InvalidDataInput
from ucs.server import UCSServer

SECRET = "s3cret-Web-Pass"
WEBRTC = {"device": "PJSIP/webrtc1", "name": "Browser", "identifiers": ["browser-1"], "kind": "webrtc",
          "ws_url": "ws://127.0.0.1:8088/ws", "sip_username": "webrtc1", "sip_password": SECRET}


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """Every log event of the test, formatted, with its fields' reprs."""
    seen: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        seen.append(formatEvent(event) + " " + " ".join(repr(v) for v in event.values()))
        failure = event.get("log_failure")
        if failure is not None:
            seen.append(failure.getTraceback())

    globalLogPublisher.addObserver(observe)
    yield seen
    globalLogPublisher.removeObserver(observe)


async def webrtc_line(server: UCSServer, *usernames: str) -> int:
    d = server.get_directory()
    line = await d.add("lines", dict(WEBRTC))
    for name in usernames:
        user = d.user_by_username(name)
        assert user is not None
        await d.edit("users", user.id, {"lines": [*user.lines, line.id]})
    return int(line.id)


async def bar(server: UCSServer, i: int, identifier: str) -> Client:
    c = await connect(ws_url(server))
    await c.call("login", list(demo.user_of(i)))
    await c.call("identifier", [identifier])
    await c.call("provision")
    return c


@pytest_twisted.ensureDeferred
async def test_only_the_paired_agent_gets_the_account_and_nothing_logs_it(server: UCSServer,
                                                                         logged: list[str]) -> None:
    line_id = await webrtc_line(server, demo.user_of(1)[0], demo.user_of(2)[0])
    agent1 = await bar(server, 1, "browser-1")
    # The line as every page and answer shows it: its kind, WebSocket and endpoint, no account.
    (device,) = [d for d in await agent1.call("devices.list") if d["id"] == line_id]
    assert device == {"id": line_id, "device": "PJSIP/webrtc1", "name": "Browser", "identifiers": ["browser-1"],
                      "auto_answer": "none", "kind": "webrtc", "ws_url": "ws://127.0.0.1:8088/ws",
                      "endpoint": "webrtc1", "has_credentials": True}
    state = await agent1.call("state")
    assert state["device"]["kind"] == "webrtc"
    account = await agent1.call("softphone.credentials")
    assert account == {"line_id": line_id, "device": "PJSIP/webrtc1", "endpoint": "webrtc1",
                       "ws_url": "ws://127.0.0.1:8088/ws", "uri": "sip:webrtc1@127.0.0.1",
                       "username": "webrtc1", "password": SECRET}
    # A second tab of the same agent is the same phone's bar.
    tab = await connect(ws_url(server))
    await tab.call("login", list(demo.user_of(1)))
    assert (await tab.call("softphone.credentials"))["password"] == SECRET

    # Agent 2 may pair with that line too, but works on its own phone: refused.
    agent2 = await bar(server, 2, demo.line_of(2)[1])
    with pytest.raises(CallError) as e:
        await agent2.call("softphone.credentials")
    assert e.value.error["error"] == "invalid_state"
    # Not logged in, or logged in without a phone: refused by the registry's states.
    anon = await connect(ws_url(server))
    with pytest.raises(CallError) as e:
        await anon.call("softphone.credentials")
    assert e.value.error["error"] == "permission_denied"
    agent3 = await connect(ws_url(server))
    await agent3.call("login", list(demo.user_of(3)))
    with pytest.raises(CallError) as e:
        await agent3.call("softphone.credentials")
    assert e.value.error["error"] == "invalid_state"
    # Other kinds of session (the Interaction Processor, plugins) never get it.
    auth_session = next(s for s in agent1_sessions(server) if s.kind == "ws")
    auth_session.kind = "iserver"
    try:
        with pytest.raises(CallError) as e:
            await agent1.call("softphone.credentials")
        assert e.value.error["error"] == "permission_denied"
    finally:
        auth_session.kind = "ws"

    # The directory's own answers (a supervisor's config.lines.*) never carry it either.
    line = server.get_directory().lines[line_id]
    assert "sip_password" not in json.dumps(line.to_dict()) and SECRET not in repr(line)
    await settle(server, agent1, agent2, tab, anon, agent3)
    for c in (agent2, anon, agent3):
        assert SECRET not in json.dumps([c.inbox, c.replies, c.anonymous])
    assert any("logged in" in entry for entry in logged)  # the log was watched
    assert not [entry for entry in logged if SECRET in entry]
    for c in (agent1, agent2, tab, anon, agent3):
        c.close()


def agent1_sessions(server: UCSServer) -> list[Any]:
    user = server.get_directory().user_by_username(demo.user_of(1)[0])
    assert user is not None
    return list(server.get_web_service().hub.sessions.of_user(user.id))


@pytest_twisted.ensureDeferred
async def test_a_webrtc_line_is_a_pjsip_endpoint_with_a_websocket_url(server: UCSServer,
                                                                     logged: list[str]) -> None:
    d = server.get_directory()
    with pytest.raises(InvalidDataInput) as e:
        await d.add("lines", {**WEBRTC, "device": "SIP/1099"})
    assert "PJSIP" in e.value.args[0]["device"]
    with pytest.raises(InvalidDataInput) as e:
        await d.add("lines", {**WEBRTC, "ws_url": ""})
    assert "ws_url" in e.value.args[0]
    with pytest.raises(InvalidDataInput) as e:
        await d.add("lines", {**WEBRTC, "ws_url": "http://127.0.0.1:8088/ws", "kind": "sip"})
    assert set(e.value.args[0]) == {"ws_url", "kind"}
    line = await d.add("lines", WEBRTC)
    assert (line.kind, line.endpoint, line.sip_username) == ("webrtc", "webrtc1", "webrtc1")
    # Kept across a restart: the store has the account (the WebRTC client needs it in clear).
    await d.load()
    again = d.lines[line.id]
    assert (again.kind, again.ws_url, again.sip_password) == ("webrtc", WEBRTC["ws_url"], SECRET)
    # An ordinary phone shows only its kind.
    phone = await d.add("lines", {"device": "PJSIP/2001"})
    assert phone.to_dict()["kind"] == "phone" and "ws_url" not in phone.to_dict()
    assert not [entry for entry in logged if SECRET in entry]


@pytest_twisted.ensureDeferred
async def test_the_demo_page_may_connect_to_the_webrtc_lines_websockets(server: UCSServer) -> None:
    from twisted.internet import reactor
    from twisted.web.client import Agent, readBody

    base = server.get_web_service().url.rstrip("/")

    async def get(path: str) -> tuple[str, bytes]:
        response = await Agent(reactor).request(b"GET", (base + path).encode())
        body = await readBody(response)
        (csp,) = response.headers.getRawHeaders(b"content-security-policy") or [b""]
        return csp.decode(), body

    csp, _ = await get("/demo/")
    assert "connect-src 'self';" in csp
    await server.get_directory().add("lines", WEBRTC)
    await server.get_directory().add("lines", {**WEBRTC, "device": "PJSIP/webrtc2", "identifiers": [],
                                               "ws_url": "wss://pbx.example.com:8089/ws"})
    for path in ("/demo/", "/demo/index.html"):
        csp, _ = await get(path)
        assert "connect-src 'self' ws://127.0.0.1:8088/ws wss://pbx.example.com:8089/ws;" in csp, csp
    # The bar's vendored SIP library is served next to it.
    _, body = await get("/operator/vendor/jssip-3.13.8.min.js")
    assert b"var JsSIP=" in body[:200]
