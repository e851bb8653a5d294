"""How the simulator writes AMI: event classes, header blocks, one-time formatting.

An event is formatted once, when the PBX emits it, into the bytes every
subscribed client receives; fan-out then only compares a class bit mask and
writes the same ``bytes`` object.  Values come from the simulator's own state;
text that reached it from outside (an action header, a caller name given to the
control API) is cleaned with :func:`clean` on the way in, so a value can never
carry CR or LF into a frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ucs.sim.model import Bridge, Channel

#: Asterisk's event classes (``manager.conf`` read/write names), one bit each.
CLASSES: dict[str, int] = {
    name: 1 << i
    for i, name in enumerate(
        (
            "system",
            "call",
            "log",
            "verbose",
            "command",
            "agent",
            "user",
            "config",
            "dtmf",
            "reporting",
            "cdr",
            "dialplan",
            "originate",
            "agi",
            "cc",
            "aoc",
            "test",
            "security",
            "message",
        )
    )
}
ALL = (1 << len(CLASSES)) - 1

#: The ``Privilege`` an event is sent with, by class.
CALL = "call,all"
AGENT = "agent,all"
DIALPLAN = "dialplan,all"
SYSTEM = "system,all"
SECURITY = "security,all"
#: Responses and the events of a list a client asked for: always delivered.
DIRECT = 1 << 31

_ON = {"on", "yes", "true", "all", "1"}
_OFF = {"off", "no", "false", "0", ""}


def class_mask(text: str | None) -> int:
    """The mask for an ``Events:`` value: ``on``, ``off`` or ``system,call,agent``.

    Unknown class names are ignored, as Asterisk does.
    """
    if text is None:
        return ALL
    t = text.strip().lower()
    if t in _ON:
        return ALL
    if t in _OFF:
        return 0
    mask = 0
    for part in t.split(","):
        part = part.strip()
        if part in _ON:
            return ALL
        mask |= CLASSES.get(part, 0)
    return mask


def privilege_mask(privilege: str) -> int:
    """``call,all`` -> the bit of ``call`` (``all`` itself adds nothing)."""
    mask = 0
    for part in privilege.split(","):
        mask |= CLASSES.get(part.strip().lower(), 0)
    return mask


def clean(value: object) -> str:
    """Text from outside made safe for a header value: no CR/LF, no NUL."""
    s = value if isinstance(value, str) else str(value)
    if "\r" in s or "\n" in s or "\0" in s:
        s = s.replace("\r\n", " ").replace("\r", " ").replace("\n", " ").replace("\0", "")
    return s


class Event:
    """One emitted event: its name, its class mask and its wire bytes."""

    __slots__ = ("data", "mask", "name")

    def __init__(self, name: str, mask: int, data: bytes) -> None:
        self.name = name
        self.mask = mask
        self.data = data

    def message(self) -> dict[str, str]:
        """The event as a header dict (for tests and in-process observers)."""
        out: dict[str, str] = {}
        for line in self.data.decode("utf-8").split("\r\n"):
            if not line:
                continue
            k, _, v = line.partition(": ")
            out[k] = out[k] + "\n" + v if k in out else v
        return out

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<Event {self.name}>"


_MASKS: dict[str, int] = {}


def make_event(name: str, privilege: str, body: str) -> Event:
    """``body`` is the headers after Privilege, each ``Key: value\\r\\n``."""
    mask = _MASKS.get(privilege)
    if mask is None:
        mask = _MASKS[privilege] = privilege_mask(privilege)
    return Event(name, mask, f"Event: {name}\r\nPrivilege: {privilege}\r\n{body}\r\n".encode())


def headers(*pairs: tuple[str, object]) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in pairs)


def frame(*pairs: tuple[str, object]) -> bytes:
    """A whole frame (a response or a list item) from (name, value) pairs."""
    return ("".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n").encode("utf-8")


STATE_DESC = {0: "Down", 1: "Rsrvd", 2: "OffHook", 3: "Dialing", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}


def _cid(v: str) -> str:
    return v if v else "<unknown>"


def channel_block(ch: Channel, prefix: str = "") -> str:
    """The channel snapshot headers, in Asterisk's order, optionally prefixed."""
    p = prefix
    return (
        f"{p}Channel: {ch.name}\r\n"
        f"{p}ChannelState: {ch.state}\r\n"
        f"{p}ChannelStateDesc: {STATE_DESC[ch.state]}\r\n"
        f"{p}CallerIDNum: {_cid(ch.cid_num)}\r\n"
        f"{p}CallerIDName: {_cid(ch.cid_name)}\r\n"
        f"{p}ConnectedLineNum: {_cid(ch.conn_num)}\r\n"
        f"{p}ConnectedLineName: {_cid(ch.conn_name)}\r\n"
        f"{p}Language: en\r\n"
        f"{p}AccountCode: \r\n"
        f"{p}Context: {ch.context}\r\n"
        f"{p}Exten: {ch.exten}\r\n"
        f"{p}Priority: {ch.priority}\r\n"
        f"{p}Uniqueid: {ch.uniqueid}\r\n"
        f"{p}Linkedid: {ch.linkedid}\r\n"
    )


def bridge_block(b: Bridge, prefix: str = "") -> str:
    p = prefix
    return (
        f"{p}BridgeUniqueid: {b.id}\r\n"
        f"{p}BridgeType: basic\r\n"
        f"{p}BridgeTechnology: simple_bridge\r\n"
        f"{p}BridgeCreator: <unknown>\r\n"
        f"{p}BridgeName: <unknown>\r\n"
        f"{p}BridgeNumChannels: {len(b.channels)}\r\n"
        f"{p}BridgeVideoSourceMode: none\r\n"
    )


CAUSE_TXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    26: "Answered elsewhere",
    27: "Destination out of order",
    28: "Invalid number format (incomplete number)",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    127: "Interworking, unspecified",
}

DEVSTATE_NUM = {
    "UNKNOWN": 0,
    "NOT_INUSE": 1,
    "INUSE": 2,
    "BUSY": 3,
    "INVALID": 4,
    "UNAVAILABLE": 5,
    "RINGING": 6,
    "RINGINUSE": 7,
    "ONHOLD": 8,
}
