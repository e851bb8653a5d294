"""The calls of a simulated WebRTC line as plain state: one :class:`Dialog` per
INVITE, in either direction, and where it is in its life.

The INVITE transaction and the dialog it makes are kept together: over a
WebSocket (a reliable transport) nothing is retransmitted, so what matters is
which messages may come next.  Each direction's life is one transition table;
:mod:`ucs.sim.webrtc` feeds a dialog what was sent and received, and does
what the new state calls for (answer the channel, send the ACK, hang up).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

#: The simulator calls the browser (a queue or an internal call to the line).
#: (state, what happened) -> new state.
OUTGOING: dict[tuple[str, str], str] = {
    ("calling", "1xx"): "proceeding",
    ("calling", "180"): "ringing",
    ("proceeding", "180"): "ringing",
    ("calling", "2xx"): "confirmed",
    ("proceeding", "2xx"): "confirmed",
    ("ringing", "2xx"): "confirmed",
    ("calling", "error"): "ended",
    ("proceeding", "error"): "ended",
    ("ringing", "error"): "ended",
    ("calling", "cancel"): "cancelling",
    ("proceeding", "cancel"): "cancelling",
    ("ringing", "cancel"): "cancelling",
    ("cancelling", "error"): "ended",  # the 487 to the cancelled INVITE
    ("cancelling", "2xx"): "hanging-up",  # answered as we cancelled: ACK then BYE
    ("confirmed", "bye-received"): "ended",
    ("confirmed", "bye-sent"): "hanging-up",
    ("hanging-up", "bye-answered"): "ended",
    ("hanging-up", "bye-received"): "ended",  # both sides hung up at once
}

#: The browser calls out (a call placed from the softphone).
INCOMING: dict[tuple[str, str], str] = {
    ("trying", "180"): "ringing",
    ("trying", "2xx"): "answered",
    ("ringing", "2xx"): "answered",
    ("trying", "error"): "ended",
    ("ringing", "error"): "ended",
    ("trying", "cancel"): "ended",
    ("ringing", "cancel"): "ended",
    ("answered", "ack"): "confirmed",
    ("answered", "bye-received"): "ended",
    ("confirmed", "bye-received"): "ended",
    ("answered", "bye-sent"): "hanging-up",
    ("confirmed", "bye-sent"): "hanging-up",
    ("hanging-up", "bye-answered"): "ended",
    ("hanging-up", "bye-received"): "ended",
}


class DialogError(Exception):
    """A message the dialog's state does not allow."""


def token(n: int = 10) -> str:
    return secrets.token_hex(n)


def branch() -> str:
    return "z9hG4bK" + token(8)


@dataclass
class Dialog:
    """One call between the simulator and a browser, from the INVITE to the end."""

    outgoing: bool
    call_id: str
    local_tag: str
    #: The browser's SIP URI (its REGISTER contact) the requests go to.
    remote_target: str
    local_uri: str
    remote_uri: str
    remote_tag: str = ""
    state: str = ""
    #: The CSeq of the INVITE, and the next one of our own requests.
    invite_cseq: int = 1
    local_cseq: int = 1
    invite_branch: str = ""
    #: The browser's INVITE (an incoming call): what the final response answers.
    invite: Any = None
    #: The simulator's channel of the call, and the aiortc peer of its media.
    channel: Any = None
    leg: Any = None
    peer: Any = None
    on_hold: bool = False
    #: The browser's WebSocket the dialog's messages go over.
    connection: Any = None
    #: An incoming call's channel was answered before aiortc had the SDP answer.
    up_pending: bool = False
    #: The SDP the simulator answers with (an incoming call), once aiortc has it.
    answer_sdp: str | None = None
    history: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.state:
            self.state = "calling" if self.outgoing else "trying"

    def fire(self, what: str) -> str:
        """Move on after ``what`` (``"180"``, ``"2xx"``, ``"error"``, ``"cancel"``, ``"ack"``,
        ``"bye-sent"``, ``"bye-received"``, ``"bye-answered"``); the new state."""
        table = OUTGOING if self.outgoing else INCOMING
        new = table.get((self.state, what))
        if new is None:
            raise DialogError(f"{what} in state {self.state} of call {self.call_id}")
        self.history.append(f"{self.state} --{what}--> {new}")
        self.state = new
        return new

    def drop(self, why: str) -> None:
        """The call is over whatever its state: its WebSocket closed, its media failed,
        or the simulator's channel went before the INVITE was even sent."""
        self.history.append(f"{self.state} --{why}--> ended")
        self.state = "ended"

    def may(self, what: str) -> bool:
        return (self.state, what) in (OUTGOING if self.outgoing else INCOMING)

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    @property
    def established(self) -> bool:
        return self.state in ("confirmed", "answered")

    def next_cseq(self) -> int:
        self.local_cseq += 1
        return self.local_cseq
