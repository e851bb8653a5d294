"""Constants of the UCS API, as plugins import them (``from constants import AGENT_AUX``).

Agent statuses are integers (seed 000: the status hook gets ``status: int``)
whose ``.name`` is what the agent bar shows (``READY``, ``AUX`` …).
"""

from __future__ import annotations

import enum

from ucs.calls.call import INCOMING, INTERNAL, OUTGOING, CallState, Cause


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
