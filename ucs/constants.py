"""Constants of the UCS API, as plugins import them (``from constants import AGENT_AUX``).

Agent statuses are integers (seed 000: the status hook gets ``status: int``)
whose ``.name`` is what the agent bar shows (``READY``, ``AUX`` …).

The shared vocabulary of every layer: this module imports nothing from UCS
(``ucs.calls.call`` re-exports the call enums from here).
"""

from __future__ import annotations

import enum


class Cause(enum.IntEnum):
    """Seed 002's hang-up cause, from the point of view of the caller's leg."""

    NOT_SET = -1
    UNKNOWN = 0
    BUSY = 1
    INVALID_NUMBER = 2
    CALLER_HUNG_UP = 3
    CALLED_HUNG_UP = 4
    REJECTED = 5
    UNAVAILABLE = 6
    PICKUP = 7
    TRANSFER = 8


class CallState(enum.IntEnum):
    NEW = 0
    DIALING = 1
    RINGING = 2
    CONNECTED = 3
    SUSPENDED = 4
    HELD = 5


INCOMING, OUTGOING, INTERNAL = "INCOMING", "OUTGOING", "INTERNAL"


class AgentStatus(enum.IntEnum):
    OFFLINE = 0
    READY = 1
    AUX = 2
    ACW = 3


AGENT_OFFLINE = AgentStatus.OFFLINE
AGENT_READY = AgentStatus.READY
AGENT_AUX = AgentStatus.AUX
AGENT_ACW = AgentStatus.ACW
AGENT_STATE_ENUM = AgentStatus


class SessionState(str, enum.Enum):
    """Where an agent bar session is (seed 002, "Component control")."""

    CREDENTIALS = "CREDENTIALS"
    IDENTIFY = "IDENTIFY"
    DEVICE = "DEVICE"
    READY = "READY"


class Role(enum.IntEnum):
    """Who may call a method: each role may do what the ones below it may."""

    ANONYMOUS = 0
    AGENT = 1
    SUPERVISOR = 2
    SUPERUSER = 3


QUEUE_OUTGOING = 0
QUEUE_INCOMING = 1

CALL_DIRECTION_INCOMING = INCOMING
CALL_DIRECTION_OUTGOING = OUTGOING
CALL_DIRECTION_INTERNAL = INTERNAL

CALL_STATE_NEW = CallState.NEW
CALL_STATE_DIALING = CallState.DIALING
CALL_STATE_RINGING = CallState.RINGING
CALL_STATE_CONNECTED = CallState.CONNECTED
CALL_STATE_SUSPENDED = CallState.SUSPENDED
CALL_STATE_HELD = CallState.HELD

CAUSE_NOT_SET = Cause.NOT_SET
CAUSE_UNKNOWN = Cause.UNKNOWN
CAUSE_BUSY = Cause.BUSY
CAUSE_INVALID_NUMBER = Cause.INVALID_NUMBER
CAUSE_CALLER_HUNG_UP = Cause.CALLER_HUNG_UP
CAUSE_CALLED_HUNG_UP = Cause.CALLED_HUNG_UP
CAUSE_REJECTED = Cause.REJECTED
CAUSE_UNAVAILABLE = Cause.UNAVAILABLE
CAUSE_PICKUP = Cause.PICKUP
CAUSE_TRANSFER = Cause.TRANSFER
