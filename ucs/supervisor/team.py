"""The team view and monitoring: what a supervisor sees of each agent, and ChanSpy.

A row per user the supervisor supervises (:mod:`ucs.api.scope`), logged in or not:
status, reason, since when and for how long, the phone, and the call on it now
(number, direction, queue, duration, held) as that phone sees it
(:func:`ucs.calls.view.phone_view`, the rule of the agent bar's own calls).

Monitoring rings the supervisor's phone with an ``Originate`` to the application
``ChanSpy(<the agent's channel>,<options>)`` (apps/app_chanspy.c): ``qE`` listens
(quietly: no beep, no channel name spoken), ``qwE`` whispers to the agent, ``qBE``
barges in (both parties hear the supervisor); ``E`` ends the supervisor's call when
the agent's channel hangs up.
"""

from __future__ import annotations

from typing import Any

from ucs.ami.errors import AMIError
from ucs.calls.view import phone_view, primary
from ucs.constants import AgentStatus, CallState
from ucs.error import InvalidDataInput, InvalidState, PBXError

#: ChanSpy's options for each way of monitoring.
SPY_OPTIONS = {"listen": "qE", "whisper": "qwE", "barge": "qBE"}


def call_summary(view: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    """The part of a phone's view of its call the team view shows."""
    if view is None:
        return None
    since = view.get("answered_at") or view.get("ringing_since") or view.get("created") or now
    return {
        "uniqueid": view.get("uniqueid"), "number": view.get("number") or "", "name": view.get("name")
        or view.get("caller_name") or "", "direction": view.get("direction"), "queue": view.get("queue"),
        "state": view.get("state"), "held": view.get("state") == CallState.HELD,
        "since": since, "duration": max(0, int(now - since)),
    }


def spies_of(pbx: Any, device: str, requested: dict[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """Who spies on the channels of ``device`` now, as Asterisk said (``ChanSpyStart``):
    the spying phone, its channel and, when UCS asked for it, who and how."""
    out = []
    for ch in pbx.channels_of_device(device):
        for uid in sorted(ch.spied_by):
            spyer = pbx.channels.get(uid)
            if spyer is None:
                continue  # hung up without a ChanSpyStop (a reconnect in between)
            by, mode = requested.get(spyer.device, ("", ""))
            out.append({"device": spyer.device, "channel": spyer.name, "by": by or None, "mode": mode or None})
    return out


def agent_row(user: Any, agent: Any, tracker: Any, now: float, pbx: Any = None,
              requested: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """One user of the team view (``agent``: the logged-in agent, or ``None``); with
    ``pbx``, who monitors the agent's phone (``monitored``).  On a cluster's standby the
    agent is the owner's (:class:`ucs.cluster.mirror.MirrorAgent`) and says it itself: the
    owner alone hears Asterisk's ``ChanSpyStart``."""
    row: dict[str, Any] = {"id": user.id, "username": user.username, "displayname": user.name,
                           "logged_in": agent is not None}
    if agent is None:
        row.update(status=AgentStatus.OFFLINE.name, reason="", since=None, in_status=0, device=None, call=None,
                   calls=0, monitored=[])
        return row
    device = agent.line.device
    views = [v for v in (phone_view(c, device, now) for c in tracker.calls_of_device(device) if c.monitoring is None)
             if v is not None]  # a supervisor's monitoring session is not a call of theirs
    told = getattr(agent, "monitored", None)  # a cluster's standby: as the owner said (issue 20)
    row.update(status=agent.status.name, reason=agent.reason, since=agent.since,
               in_status=max(0, int(now - agent.since)), device=device,
               call=call_summary(primary(views), now), calls=len(views),
               monitored=list(told) if isinstance(told, list) else
               spies_of(pbx, device, requested or {}) if pbx is not None else [])
    return row


def spy_channel(agent: Any, tracker: Any) -> str:
    """The channel of the agent's phone in its current call (answered first)."""
    device = agent.line.device
    legs = [leg for call in tracker.calls_of_device(device) if call.monitoring is None for leg in call.legs.values()
            if leg.device == device and leg.ended is None]
    legs.sort(key=lambda leg: (leg.answered is None, -leg.created))
    if not legs:
        raise InvalidState(f"{agent.user.username} has no call to monitor on {device}")
    return str(legs[0].channel)


async def monitor(ami: Any, supervisor_device: str | None, agent: Any, tracker: Any, mode: str,
                  caller_id: str = "", by: str = "") -> dict[str, Any]:
    """Ring ``supervisor_device`` into the agent's call, as ``mode`` says.  The tracker is
    told first: the supervisor's phone's call is a monitoring session by ``by``, not a call
    (:mod:`ucs.calls.spying`)."""
    options = SPY_OPTIONS.get(mode)
    if options is None:
        raise InvalidDataInput({"mode": f"{mode!r}: give listen, whisper or barge"})
    if not supervisor_device:
        raise InvalidState("monitoring rings your phone: pair one first (identifier, then supervisor.start)")
    if agent.line.device == supervisor_device:
        raise InvalidState("you cannot monitor the call of your own phone")
    channel = spy_channel(agent, tracker)
    headers = {
        "Channel": supervisor_device, "Application": "ChanSpy", "Data": f"{channel},{options}",
        "CallerID": caller_id or f"{mode} <{agent.line.device.partition('/')[2]}>",
        "Timeout": 30000, "Async": "true",
    }
    tracker.expect_spy(supervisor_device, mode, by, channel)
    try:
        await ami.sendAction("Originate", headers)
    except AMIError as e:  # Asterisk's message, or the link is down
        tracker.forget_spy(supervisor_device)
        raise PBXError(f"monitoring {agent.user.username}: Asterisk refused the Originate: {e}") from None
    return {"mode": mode, "agent": agent.user.id, "channel": channel, "phone": supervisor_device,
            "options": options}
