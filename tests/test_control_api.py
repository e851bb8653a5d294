"""The call-control API methods through the registry, with a session, against the simulated PBX."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from test_control_stack import ALICE, BOB, Stack, started

from ucs.api.registry import Registry
from ucs.api.session import Session
from ucs.calls.call import CallState, Cause
from ucs.calls.control_api import register
from ucs.constants import SessionState
from ucs.directory.model import Line, User
from ucs.error import InvalidDataInput, InvalidState, PermissionDenied

METHODS = {
    "call.dial", "call.answer", "call.hangup", "call.tribute", "call.unhold", "call.mute", "call.transfer",
    "call.finishTransfer", "call.blindTransfer", "call.setAccountCode", "cdr.metadata",
}


class Lines:
    """The part of the directory the API reads for ``line``."""

    def __init__(self) -> None:
        self.lines = {1: ALICE, 2: BOB, 9: Line(9, "SIP/1003", "Carol's desk")}
        self.queues: dict[int, Any] = {}
        self.callreasons: dict[int, Any] = {}

    def line_by_device(self, device: str) -> Line | None:
        return next((ln for ln in self.lines.values() if ln.device == device), None)

    def queues_of(self, user: Any) -> list[Any]:
        return []


def session(line: Line | None = ALICE, state: SessionState = SessionState.READY, **user: Any) -> Session:
    return Session("s1", user=User(7, "alice", displayname="Alice Agent", lines=[1, 2], **user), state=state, line=line)


async def api_stack() -> tuple[Stack, Registry]:
    s = await started(directory=Lines())
    registry = Registry()
    register(registry, s.control)
    return s, registry


@pytest_twisted.ensureDeferred
async def test_the_methods_and_their_rules() -> None:
    s, api = await api_stack()
    try:
        assert METHODS <= set(api.names())
        for name in METHODS:
            described = api.get(name).describe()
            assert described["role"] == "agent" and described["states"] == ["READY"], name
        me = session()
        with pytest.raises(InvalidState, match="call.hangup is allowed in READY; this session is in DEVICE"):
            await api.call(session(state=SessionState.DEVICE), "call.hangup")
        with pytest.raises(PermissionDenied):
            await api.call(Session("anon", state=SessionState.READY, line=ALICE), "call.mute")
        with pytest.raises(InvalidState, match="no phone is paired with this session"):
            await api.call(session(line=None), "call.tribute")
        with pytest.raises(InvalidState, match="there is no call on SIP/1001"):
            await api.call(me, "call.hangup")
        with pytest.raises(InvalidDataInput) as e:
            await api.call(me, "call.dial", ["not a number"])
        assert list(e.value.message) == ["number"]
        with pytest.raises(InvalidDataInput) as e:
            await api.call(me, "call.blindTransfer", {"number": "12ab"})
        assert list(e.value.message) == ["number"]
        with pytest.raises(InvalidDataInput) as e:
            await api.call(me, "call.dial", {"number": "1003", "queue": "later"})
        assert list(e.value.message) == ["queue"]
        with pytest.raises(InvalidDataInput, match="line 9 is not one of your lines"):
            await api.call(me, "call.dial", {"number": "1003", "line": 9})
        with pytest.raises(InvalidDataInput) as e:
            await api.call(me, "call.setAccountCode", ["1.2"])
        assert list(e.value.message) == ["accountCode"]
        with pytest.raises(InvalidDataInput) as e:
            await api.call(me, "cdr.metadata", ["1.2", "not an object"])
        assert list(e.value.message) == ["metadata"]
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_a_call_handled_through_the_api() -> None:
    s, api = await api_stack()
    try:
        me = session()

        def call(name: str, args: Any = None) -> Any:
            return s.settle(api.call(me, name, args))  # type: ignore[arg-type]

        # Click-to-dial from the second of my lines, with metadata; the CallerID is my name.
        out = await call("call.dial", {"number": "0420 777 987 654", "line": 2, "data": {"crm": "X-1"}})
        assert out["caller_number"] == "1002" and out["caller_name"] == "Alice Agent" and out["data"] == {"crm": "X-1"}
        await s.advance(1.5)
        with pytest.raises(InvalidState, match="there is no call on SIP/1001"):
            await call("call.hangup")
        bob = Session("s2", user=User(8, "bob"), state=SessionState.READY, line=BOB)
        assert (await s.settle(api.call(bob, "call.hangup")))["uniqueid"] == out["uniqueid"]

        incoming = await s.incoming()
        assert (await call("call.tribute"))["state"] == CallState.HELD
        assert (await call("call.unhold"))["state"] == CallState.CONNECTED
        assert (await call("call.mute"))["connected_muted"] is True
        assert (await call("call.mute"))["connected_muted"] is False
        answer = await call("call.setAccountCode", [incoming.uniqueid, "Sales", None, False])
        assert answer == {"uniqueid": incoming.uniqueid, "account_code": "Sales"}
        assert (await call("cdr.metadata", [incoming.uniqueid, {"k": 1}]))["metadata"] == {"k": 1}
        await call("call.transfer")
        assert s.control.ops["SIP/1001"].state == "parked"
        await call("call.dial", ["1003"])
        await s.advance(1.5)
        assert (await call("call.finishTransfer"))["uniqueid"] == incoming.uniqueid
        assert incoming.connected_channel.startswith("SIP/1003-")
        carol = Session("s3", user=User(9, "carol"), state=SessionState.READY, line=Line(3, "SIP/1003"))
        await s.settle(api.call(carol, "call.blindTransfer", ["1002"]))
        await s.advance(1.5)
        assert incoming.connected_channel.startswith("SIP/1002-")
        await s.settle(api.call(bob, "call.hangup"))
        await s.advance(0.5)
        done = s.ended.calls[incoming.uniqueid]
        assert done.account_code == "Sales" and done.data == {"k": 1}
        assert s.leg(done, "SIP/1001").cause == Cause.TRANSFER and s.leg(done, "SIP/1003").cause == Cause.TRANSFER
        assert done.cause == Cause.CALLED_HUNG_UP
    finally:
        await s.stop()
