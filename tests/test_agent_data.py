"""What an agent sends (issue 14, points 3 and 12 and the deep-nesting one), each attack
over a real socket against the whole server: the agent bar's WebSocket (``/ws``) and
the Interaction Processor's (``/iserver``).

- Numbers JSON cannot carry (NaN, Infinity, 1e400) and unpaired surrogates are refused
  in the frame, whatever the method; one that reached a call anyway (a plugin put it
  there) costs that CDR its metadata, never the CDRs behind it, on SQLite and
  PostgreSQL, and the bars still hear of the call.
- A call's metadata is capped (size and depth); a reply too large for a WebSocket
  message is an error reply, an event too large reaches the bar without the call's data
  and with a flag saying so.
- Deeply nested JSON is a bad frame (400), not a RecursionError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from serverkit import start_demo
from test_iserver import connect as ix_connect
from test_iserver import prepare
from test_web_api import DID_1001, CallError, Client, call_on, connect, ready_agent, until, ws_url

from ucs import events as ev
from ucs.api.registry import Param
from ucs.calls.accountcode import MAX_METADATA_BYTES, MAX_METADATA_DEPTH
from ucs.constants import Role
from ucs.server import UCSServer


async def raw_reply(c: Client, rid: int, frame: bytes) -> dict[str, Any]:
    """Send ``frame`` as it is; the reply with ``rid`` (or the anonymous one, for a frame
    whose id cannot be read)."""
    before = len(c.anonymous)
    c.send_raw(frame)
    reply: dict[str, Any] = await c.wait(
        lambda: c.replies.pop(rid, None) or (c.anonymous[before] if len(c.anonymous) > before else None))
    return reply


async def ringing_at_1001(server: UCSServer, bar: Client) -> str:
    sim = server.get_demo_pbx().sim
    sim.dialplan.add("from-carrier", DID_1001, [("Dial", "SIP/1001,30,tT")])
    sim.caller_calls(DID_1001, "420777123456", "Customer")
    ring = await bar.event("call.ringing")
    uid: str = ring["data"]["uniqueid"]
    return uid


# -- point 3: values JSON cannot carry --------------------------------------------------------


BAD_VALUES = {
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "1e400": "1e400",
    '"\\ud800"': "surrogate",
}


@pytest_twisted.ensureDeferred
async def test_values_json_cannot_carry_are_refused_in_every_frame_on_ws(tmp_path: Path) -> None:
    """``call.dial`` with ``data: {"z": NaN}`` (the filed attack) and the same values in
    other methods' arguments: a 400 naming the value, no call is placed, nothing stored."""
    server = await start_demo(tmp_path)
    try:
        bar = await ready_agent(server, 1)
        rid = 100
        for literal, named in BAD_VALUES.items():
            for method, args in (("call.dial", f'["1002", null, null, {{"z": {literal}}}]'),
                                 ("cdr.metadata", f'["1.1", {{"score": [1, {literal}]}}]'),
                                 ("agent.changeStatus", f'["AUX", {literal}]'),
                                 ("session.options", f'{{"autologout": {literal}}}')):
                rid += 1
                frame = f'{{"id": {rid}, "method": "{method}", "args": {args}}}'.encode()
                reply = await raw_reply(bar, rid, frame)
                assert "error" in reply, (method, literal, reply)
                error = reply["error"]
                assert error["code"] == 400 and error["error"] == "invalid_frame", (method, literal, error)
                assert named in error["message"], error["message"]
        assert "finite" in error["message"] or "surrogate" in error["message"]
        await until(lambda: True)  # give an Originate, had one been sent, its turn
        assert not server.get_call_tracker().calls_of_device("SIP/1001")
        assert bar.events() == []  # no call.new, no call.ringing: nothing was dialled
        assert (await bar.call("session.info"))["state"] == "READY"  # the connection lives on
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_values_json_cannot_carry_are_refused_on_iserver(tmp_path: Path) -> None:
    server = await start_demo(tmp_path)
    c = await ix_connect(server)
    try:
        assert (await prepare(c, "agent1", "demo-pass-1", device="phone-1001"))["result"] == "success"
        for literal, named in BAD_VALUES.items():
            c.raw(f'{{"command": "call.dial", "data": {{"number": "1002", "data": {{"z": {literal}}}}}}}')
            reply = await c.wait(lambda m: m.get("result") == "failure" and not m.get("_taken"))
            assert reply["failure"]["code"] == "malformed_json", reply
            assert named in reply["failure"]["message"]
        assert not server.get_call_tracker().calls_of_device("SIP/1001")
    finally:
        c.dropConnection(abort=True)
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_cdr_the_store_refuses_is_stored_without_its_metadata_and_the_others_follow(
        tmp_path: Path, store_url: str) -> None:
    """A NaN a plugin put in a call's data: before, the store refused the CDR, the writer
    took that for an outage and retried it for ever with every later CDR queued behind
    it, and no bar heard the call end.  Now the CDR is stored without the metadata
    (which says why), the next call's CDR is stored, and the bar gets its hang-up."""
    server = await start_demo(tmp_path, store={"url": store_url})
    try:
        bar = await ready_agent(server, 1)
        writer = server.get_cdr_writer()
        sim = server.get_demo_pbx().sim
        uid = await ringing_at_1001(server, bar)
        await bar.call("call.answer")
        await bar.event("call.connect")
        call = call_on(server, "SIP/1001")
        call.data["score"] = float("nan")  # what a plugin may do; no agent can any more
        call.data["crm"] = "X-1"
        sim.trunk().hangup()
        hangup = await bar.event("call.hangup")
        assert hangup["data"]["uniqueid"] == uid
        assert hangup["data"]["data"] == {} and "not JSON" in hangup["data"]["dataDropped"]

        second = await ringing_at_1001(server, bar)
        await bar.call("call.hangup")
        await bar.event("call.hangup")
        await until(lambda: not writer.pending, timeout=10)
        assert writer.failures == 0 and writer.refused == 1
        store = await server.when_store_open()
        cdr = await store.get_cdr(uid)
        assert cdr is not None and cdr["metadata"] is None and cdr["cause"] is not None
        assert "cannot be stored as JSON" in cdr["data"]["metadata_refused"] and "data" not in cdr["data"]
        assert cdr["journey"]  # the rest of the call is kept
        assert await store.get_cdr(second) is not None
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_value_the_database_itself_refuses_costs_only_the_metadata(store: Any) -> None:
    """A refusal by the database (not by UCS's own checks) is told apart from the
    database being away: an unpaired surrogate in a CDR's metadata."""
    from twisted.internet import reactor

    from ucs.calls.cdr import CDRWriter
    from ucs.store.errors import StoreRefused

    bad = {"uniqueid": "1.1", "cause": 3, "created": 1.0, "metadata": {"x": "\ud800"},
           "journey": [], "data": {"uniqueid": "1.1", "data": {"x": "\ud800"}}}
    with pytest.raises(StoreRefused, match="the database refused it: .*surrogates not allowed"):
        await store.save_cdr(bad)
    writer = CDRWriter(store, reactor, retry=60)
    writer.pending.extend([bad, {"uniqueid": "1.2", "cause": 3, "created": 2.0}])
    writer._next()
    await writer.flushed()
    assert writer.failures == 0 and writer.written == 2 and writer.refused == 1
    saved = await store.get_cdr("1.1")
    assert saved["metadata"] is None and "surrogate" in saved["data"]["metadata_refused"]
    assert await store.get_cdr("1.2") is not None


# -- point 12: metadata grown past what a message can carry ---------------------------------------


@pytest_twisted.ensureDeferred
async def test_metadata_is_capped_and_the_call_owners_replies_never_vanish(tmp_path: Path) -> None:
    """Metadata grown 8 KB at a time: before, past 1 MiB the owner's ``state`` and
    ``call.hangup`` replies (and the growing ``cdr.metadata``'s own) never came."""
    server = await start_demo(tmp_path)
    try:
        bar = await ready_agent(server, 1)
        uid = await ringing_at_1001(server, bar)
        accepted = 0
        refused: dict[str, Any] | None = None
        for i in range(200):
            try:
                await bar.call("cdr.metadata", [uid, {f"k{i}": "x" * 8000}])
                accepted += 1
            except CallError as e:
                refused = e.error
                break
        assert refused is not None and refused["code"] == 400
        assert f"{MAX_METADATA_BYTES} bytes" in refused["message"]
        assert 0 < accepted <= MAX_METADATA_BYTES // 8000
        deep: Any = "leaf"
        for _ in range(MAX_METADATA_DEPTH + 1):
            deep = {"d": deep}
        with pytest.raises(CallError) as too_deep:
            await bar.call("cdr.metadata", [uid, {"deep": deep}])
        assert f"{MAX_METADATA_DEPTH} levels" in too_deep.value.error["message"]
        state = await bar.call("state")
        assert len(state["call"]["data"]) == accepted
        assert (await bar.call("call.hangup"))["uniqueid"] == uid
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_reply_too_large_is_an_error_and_an_event_too_large_loses_only_the_data(tmp_path: Path) -> None:
    """What a plugin may still make too large for one WebSocket message (``[web]
    max_frame_size``): the reply says so instead of never coming; a call event comes
    without the call's data and with ``dataDropped``."""
    server = await start_demo(tmp_path, web={"max_frame_size": 256 * 1024})
    try:
        server.get_registry().add("big", lambda s: "x" * 300_000, role=Role.ANONYMOUS)
        server.get_registry().add("echo", lambda s, x: x, [Param("x", dict)], role=Role.ANONYMOUS)
        bar = await ready_agent(server, 1)
        with pytest.raises(CallError) as e:
            await bar.call("big")
        assert e.value.error["error"] == "reply_too_large" and "262144" in e.value.error["message"]
        assert await bar.call("echo", [{"still": "here"}]) == {"still": "here"}

        uid = await ringing_at_1001(server, bar)
        call = call_on(server, "SIP/1001")
        call.data["blob"] = "y" * 300_000
        server.get_bus().publish(ev.EVENT_CALL_CHANGE, call)
        change = await bar.wait(lambda: next((m for m in bar.inbox if "dataDropped" in m["data"]), None))
        assert change["event"] == "call.change"
        assert change["data"]["uniqueid"] == uid and change["data"]["data"] == {}
        assert "262144" in change["data"]["dataDropped"]

        ix = await ix_connect(server)
        try:
            await prepare(ix, "agent2", "demo-pass-2")
            ix.raw(json.dumps({"command": "big"}))
            reply = await ix.reply("big")
            assert reply["result"] == "failure" and reply["failure"]["code"] == "reply_too_large"
        finally:
            ix.dropConnection(abort=True)
    finally:
        await server.service.stopService()


# -- low: deep nesting --------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_deeply_nested_json_is_a_bad_frame_on_ws_and_iserver(tmp_path: Path) -> None:
    server = await start_demo(tmp_path)
    try:
        bar = await connect(ws_url(server))
        # The refusal carries the request's id where it can be read at all (not past
        # Python's own recursion limit), so the client matches it with its call.
        for rid, frame in ((-1, b"[" * 30_000 + b"]" * 30_000),
                           (-1, b'{"id": 1, "method": "echo", "args": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
                           (2, b'{"id": 2, "method": "echo", "args": ' + b"[" * 40 + b"]" * 40 + b"}")):
            reply = await raw_reply(bar, rid, frame)
            assert reply["id"] == (None if rid == -1 else rid), reply
            assert reply["error"]["code"] == 400, reply
            assert "nested deeper than" in reply["error"]["message"]
        assert (await bar.call("session.info"))["state"] == "CREDENTIALS"

        ix = await ix_connect(server)
        try:
            ix.raw(b"[" * 30_000 + b"]" * 30_000)
            reply = await ix.wait(lambda m: m.get("result") == "failure")
            assert reply["failure"]["code"] == "malformed_json"
            assert "nested deeper than" in reply["failure"]["message"]
            assert (await ix.request("getCapabilities"))["result"] == "success"
        finally:
            ix.dropConnection(abort=True)
    finally:
        await server.service.stopService()
