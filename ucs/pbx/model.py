"""What Asterisk told us exists: channels, bridges, devices, queues, members.

Plain attrs classes with slots.  They hold facts only; who changes them and
when is :class:`ucs.pbx.pbx.PBX`'s business.
"""

from __future__ import annotations

import attrs

#: Asterisk's channel state numbers (``ChannelState``), as named by Asterisk.
CHANNEL_STATES = {
    0: "Down", 1: "Rsrvd", 2: "OffHook", 3: "Dialing", 4: "Ring",
    5: "Ringing", 6: "Up", 7: "Busy", 8: "Dialing Offhook", 9: "Pre-ring",
}
STATE_UP = 6

#: Queue member ``Status`` numbers (AST_DEVICE_*), as Asterisk names them.
MEMBER_STATUSES = {
    0: "UNKNOWN", 1: "NOT_INUSE", 2: "INUSE", 3: "BUSY", 4: "INVALID",
    5: "UNAVAILABLE", 6: "RINGING", 7: "RINGINUSE", 8: "ONHOLD",
}


def device_of(channel_name: str) -> str:
    """``SIP/1001-0000000a`` → ``SIP/1001``; ``Local/1003@internal-00000002;1`` →
    ``Local/1003@internal``.  A name without the unique suffix is returned as is."""
    base, sep, suffix = channel_name.rpartition("-")
    if not sep or not base or "/" not in base:
        return channel_name
    return base


@attrs.define(eq=False)
class Channel:
    name: str
    uniqueid: str
    linkedid: str
    device: str
    created: float
    state: int = 0
    caller_num: str = ""
    caller_name: str = ""
    connected_num: str = ""
    connected_name: str = ""
    context: str = ""
    exten: str = ""
    application: str = ""
    bridge: str | None = None
    on_hold: bool = False
    muted_in: bool = False
    muted_out: bool = False
    #: A MixMonitor records the channel (``MixMonitorStart`` until
    #: ``MixMonitorStop`` or the hangup; Asterisk sends no event at the hangup).
    recording: bool = False
    hangup_requested: bool = False
    answered: float | None = None
    #: Known only from another channel's event (a ``DestChannel``), never from
    #: one of its own: a log filtered by its author (FreePBX's ``EventMask``)
    #: never shows its hangup either.
    phantom: bool = False
    #: ChanSpy on this channel now (``ChanSpyStart`` until ``ChanSpyStop``): the
    #: spying channels' Uniqueids.
    spied_by: set[str] = attrs.Factory(set)

    @property
    def state_desc(self) -> str:
        return CHANNEL_STATES.get(self.state, str(self.state))

    @property
    def is_local(self) -> bool:
        return self.name.startswith("Local/")

    def to_dict(self) -> dict[str, object]:
        return {
            "channel": self.name, "uniqueid": self.uniqueid, "linkedid": self.linkedid,
            "device": self.device, "state": self.state_desc, "caller_number": self.caller_num,
            "caller_name": self.caller_name, "connected_number": self.connected_num,
            "connected_name": self.connected_name, "bridge": self.bridge, "hold": self.on_hold,
            "muted": self.muted_in, "recording": self.recording, "created": self.created,
        }


@attrs.define(eq=False)
class Bridge:
    uniqueid: str
    type: str = "basic"
    #: Uniqueids of the channels in the bridge, in the order they entered.
    channels: list[str] = attrs.Factory(list)


@attrs.define(eq=False)
class Device:
    """A line or trunk as Asterisk knows it (a chan_sip peer or PJSIP endpoint)."""

    name: str
    state: str = "UNKNOWN"
    registration: str = "Unknown"
    address: str | None = None
    port: int | None = None
    dynamic: bool = False
    user_agent: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "device": self.name, "state": self.state, "registration": self.registration,
            "address": self.address, "port": self.port, "dynamic": self.dynamic,
            "user_agent": self.user_agent,
        }


@attrs.define(eq=False)
class Member:
    queue: str
    interface: str
    name: str = ""
    state_interface: str = ""
    membership: str = "dynamic"
    penalty: int = 0
    status: int = 0
    paused: bool = False
    paused_reason: str = ""
    in_call: bool = False
    calls_taken: int = 0
    last_call: int = 0
    login_time: int = 0

    @property
    def status_name(self) -> str:
        return MEMBER_STATUSES.get(self.status, str(self.status))

    def to_dict(self) -> dict[str, object]:
        return {
            "queue": self.queue, "interface": self.interface, "name": self.name,
            "status": self.status_name, "paused": self.paused, "paused_reason": self.paused_reason,
            "in_call": self.in_call, "calls_taken": self.calls_taken, "penalty": self.penalty,
        }


@attrs.define(eq=False)
class QueueCaller:
    uniqueid: str
    channel: str
    position: int
    joined: float
    caller_num: str = ""
    caller_name: str = ""


@attrs.define(eq=False)
class Queue:
    name: str
    strategy: str = ""
    members: dict[str, Member] = attrs.Factory(dict)
    callers: dict[str, QueueCaller] = attrs.Factory(dict)
    completed: int = 0
    abandoned: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "queue": self.name, "strategy": self.strategy,
            "members": [m.to_dict() for m in self.members.values()],
            "waiting": len(self.callers),
        }
