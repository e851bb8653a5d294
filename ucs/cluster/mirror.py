"""A standby's live model, rebuilt from the owner's envelopes, told on the bars' bus.

Why this design (issue 20, "bars on standbys"): everything that serves a bar or
an Interaction Processor client -- the hub's per-phone call views
(:mod:`ucs.web.callview`), ``state`` (:class:`ucs.api.state.StateBuilder`), the
login that finds a working agent's phone (:class:`ucs.api.auth.Auth`), the
Interaction Processor (:mod:`ucs.iserver`), the supervisor's team view
(:mod:`ucs.supervisor`) -- hears the *bus* and reads *domain
objects* (``Call`` with its legs, agents with their user and line, the PBX
model's devices and queues).  Teaching each of them a second input (envelopes,
dicts) would mean two code paths per view, and the owner and a standby would
drift apart.  Instead the standby turns each envelope back into the same kind of
object the owner's bus carried (a real :class:`~ucs.calls.call.Call` with its
legs, :class:`MirrorAgent` with the directory's own user and line, real
:class:`~ucs.pbx.model.Device` and :class:`~ucs.pbx.model.Queue`) and publishes
the same event name with the same args on the node's *view bus*
(``UCSServer.get_view_bus()``: it repeats the node's own bus, and only the hub,
``state``, the Interaction Processor and the team view's pushes hear it).  Those
stay unchanged, so the owner and a standby produce the same frames by
construction, and the tests compare them (tests/test_cluster_bars.py).  Plugins,
CDRs, the agents' history and the statistics stay on the node's own bus and
never hear the mirror: the owner alone acts on a fact, once.

For that the envelopes carry what the views need beyond seed 002's Call object:
each leg's Dial status, whether it asked to hang up, was picked up or
transferred; the call's origin leg, hold parties and hold time; the journey's raw
steps; an agent's ACW deadline; a queue's waiting callers (:func:`wire_subject`,
used by the owner's feed: schema version 2 of :mod:`ucs.cluster.codec`).  Version 3
adds what the supervisor's views need: an agent's raw figures, so that
:meth:`MirrorAgent.to_dict` counts them up to the moment asked as the owner's
``Agent.stats_now`` does, and who monitors it (:meth:`Mirror.wire_subject`: only the
owner hears Asterisk's ChanSpy events); ``agent.quiet`` tells an agent's change that put
no event on the owner's bus (:mod:`ucs.cluster.quiet`), ``queue.figures`` a queue's
figures of the day for the wallboard -- neither is a bus event, so the mirror hands
them to the team view and the wallboard (``on_agent_quiet``, ``on_queue_figures``).

What reads the model asks the role-aware views (:class:`AgentsView`,
:class:`TrackerView`, :class:`PBXView`): while the node is a standby
(``Mirror.active``) they answer from the mirror, once it owns the AMI link from
its own live model.  Everything else (log-in, status changes, call control)
goes to the live objects as before.  On a take-over (:meth:`Mirror.stop`) the
calls the bars were shown wait for the new owner's resync; those Asterisk no
longer has end on the bars then (they ended while no node held the link).

A snapshot load (a late start, a new owner's term) is a diff against what the
bars were shown (:meth:`Mirror.load`): calls that vanished end on the bars
(``call.hangup``), new or changed calls are told as ``call.change`` (each
phone's view turns it into ringing / connect / hold as the live events would),
agents that changed get ``agent.status`` / ``agent.login`` / ``agent.logout``,
queues ``queue.waiting``.

Per node by design: the ``now`` of each frame (the node's clock) and what is
computed from it (a journey step's ``Duration``, a team row's ``in_status``); a
session's ``sid``.  The call's ``uniqueid`` and ``id``, an agent's ``since``,
the legs' times are the owner's.

The changes of a call that put no event on the owner's bus (a phone that starts
ringing or leaves inside a call that goes on: ``DomainPublisher.unpublished``) go
as ``call.quiet`` envelopes and reach the hub as they do on the owner
(``Hub.call_changed_quietly``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ucs import events as ev
from ucs.agents.agent import Agent
from ucs.agents.persist import state_doc
from ucs.bus import EventBus
from ucs.calls.call import Call, CallState, Cause, JourneyStep, Leg
from ucs.agents.stats import AgentStats, Days, QueueStats, accrue
from ucs.cluster.codec import (AGENT_QUIET, AGENTS, CALL_QUIET, CALLS, DEVICES, QUEUES, STATS, Envelope,
                               QueueFigures, jsonable)
from ucs.cluster.replica import Replica
from ucs.constants import AgentStatus
from ucs.pbx.model import MEMBER_STATUSES, Device, Member, Queue, QueueCaller

# -- what the owner sends: the subjects with what the views need --------------------------------

#: What an agent's subject carries beyond seed 002's User object (not shown to clients).
AGENT_EXTRA = ("acw_until", "stored", "figures", "monitored")
_LEG_EXTRA = ("dial_status", "hangup_requested", "gone_order", "transferred", "picked_up")


def call_to_wire(call: Call) -> dict[str, Any]:
    """Seed 002's Call object plus what a phone's view of it needs (see the module docstring)."""
    d = call.to_dict()
    d["legs"] = [dict(leg.to_dict(), **{k: getattr(leg, k) for k in _LEG_EXTRA}) for leg in call.legs.values()]
    d["journey"] = [[s.device, s.device_type, s.description, s.start, s.end] for s in call.journey]
    d.update(origin=call.origin, held_since=call.held_since, hold_parties=sorted(call.hold_parties),
             recording=call.recording, merged_into=call.merged_into)
    if call.monitors:  # not the bars' (to_dict), but the CDR's: a new owner's CDR keeps them
        d["monitors"] = [dict(m) for m in call.monitors]
    return d


def call_from_wire(d: dict[str, Any]) -> Call:
    """The :class:`Call` :func:`call_to_wire` describes (enough for every view of it)."""
    simple = {f.name for f in attrs.fields(Call)} - {"state", "cause", "legs", "journey", "hold_parties"}
    call = Call(**{k: d[k] for k in simple if k in d})
    call.state = CallState(d.get("state", 0))
    call.cause = Cause(d.get("cause", 0))
    call.hold_parties = frozenset(d.get("hold_parties") or ())
    call.journey = [JourneyStep(*step) for step in d.get("journey") or ()]
    for raw in d.get("legs") or ():
        leg = Leg(raw["uniqueid"], raw["channel"], raw["device"], raw["type"], raw["created"],
                  number=raw.get("number", ""), name=raw.get("name", ""), answered=raw.get("answered"),
                  ended=raw.get("ended"), cause=Cause(raw.get("cause", 0)),
                  **{k: raw[k] for k in _LEG_EXTRA if k in raw})
        call.legs[leg.uniqueid] = leg
    return call


def wire_subject(subject: Any) -> Any:
    """A bus event's subject as the owner's feed sends it (``OwnerFeed(encode=...)``)."""
    if isinstance(subject, Call):
        return call_to_wire(subject)
    if isinstance(subject, Agent):
        # acw_until: the bars' wrap-up countdown; stored: what a new owner restores if it is newer
        # than the store's (ucs.cluster.handover); figures: the raw figures, so that a standby adds
        # the time since (MirrorAgent.to_dict) as the owner's Agent.stats_now does
        # (as_of: when, as stored's, for a new owner to tell the newer figures)
        stored = state_doc(subject)
        figures = {"stats": subject.stats.to_doc(), "accrued_until": subject.accrued_until, "busy": subject.busy,
                   "as_of": stored["as_of"]}
        return dict(jsonable(subject.to_dict()), acw_until=subject.acw_until, stored=stored, figures=figures)
    if isinstance(subject, Queue):
        return dict(jsonable(subject.to_dict()), callers=[attrs.asdict(c) for c in subject.callers.values()])
    return jsonable(subject)


# -- a standby's objects --------------------------------------------------------------------------


class MirrorAgent:
    """An agent as the owner told it: the attributes the hub, ``state``, log-in, the
    Interaction Processor and the team view read, the directory's own :class:`User` and
    :class:`Line`; its figures counted up to now (``clock``) from the owner's raw ones."""

    def __init__(self, user: Any, line: Any, d: dict[str, Any], clock: Any = None,
                 member_of: Callable[[int, str], Member | None] | None = None, days: Days | None = None) -> None:
        self.user = user
        self.line = line
        self.clock = clock
        #: The agents' days (``[agents] timezone``): the owner resets the figures at midnight
        #: with no event, so the standby starts the new day itself.
        self.days = days
        #: The phone's membership of a queue (directory id) as the owner's members say now.
        self.member_of = member_of
        self.update(d)

    def update(self, d: dict[str, Any]) -> None:
        self._dict = d
        self.status = AgentStatus[d.get("status", "OFFLINE")]
        self.reason: str = d.get("reason") or ""
        self.since: float | None = d.get("since")
        self.logged_in: float | None = d.get("logged_in")
        self.acw_until: float | None = d.get("acw_until")
        self.suspended: set[int] = set(d.get("suspended") or ())
        #: Who monitors the agent's phone, as the owner's team view says it (its ``monitored``):
        #: the owner alone hears Asterisk's ChanSpy events.
        monitored = d.get("monitored")
        self.monitored: list[dict[str, Any]] = list(monitored) if isinstance(monitored, list) else []
        figures = d.get("figures")
        self._figures: dict[str, Any] | None = figures if isinstance(figures, dict) else None

    @property
    def busy(self) -> bool:
        """The phone rings or talks, as the owner last told (it tells each change: ``agent.quiet``)."""
        return bool(self._figures and self._figures.get("busy"))

    @property
    def id(self) -> int:
        return int(self.user.id)

    @property
    def username(self) -> str:
        return str(self.user.username)

    @property
    def device(self) -> str:
        return str(self.line.device)

    def wrapup_view(self) -> dict[str, Any] | None:
        view = self._dict.get("wrapup")
        return view if isinstance(view, dict) else None

    def stats_now(self) -> AgentStats | None:
        """The figures as they are this instant: the owner's raw ones plus the time since it
        accrued them, in the status it told (what ``Agent.stats_now`` does on the owner);
        ``None`` from an owner that sends none."""
        f = self._figures
        if f is None or not isinstance(f.get("stats"), dict):
            return None
        stats = AgentStats.from_doc(f["stats"])
        since, now = f.get("accrued_until"), self.clock.seconds() if self.clock is not None else None
        if not isinstance(since, (int, float)) or now is None:
            return stats
        if self.days is not None and stats.day and self.days.day(now) > stats.day:
            # past the midnight the owner's figures were of: a new day, counted from its start
            stats = AgentStats(day=self.days.day(now))
            since = max(since, self.days.start_of_day(now))
        if now > since:
            accrue(stats, self.status, self.reason, self.busy, self.suspended, now - since)
        return stats

    def to_dict(self) -> dict[str, Any]:
        """Seed 002's User object as the owner last sent it, its figures counted up to now and
        its queues' memberships as the owner's members are now (as ``Agent.to_dict`` does)."""
        d = {k: v for k, v in self._dict.items() if k not in AGENT_EXTRA}
        stats = self.stats_now()
        if stats is not None:
            d.update(stats.to_dict())
        queues = d.get("queues")
        if isinstance(queues, dict):
            d["queues"] = {qid: self._queue(int(qid), q, stats) for qid, q in queues.items()}
        return d

    def _queue(self, queue_id: int, q: dict[str, Any], stats: AgentStats | None) -> dict[str, Any]:
        q = dict(q)
        if stats is not None:
            q.update((stats.queues.get(queue_id) or QueueStats()).to_dict())
        if self.member_of is not None:
            m = self.member_of(queue_id, self.line.device)
            q.update(member=m is not None, paused=bool(m and m.paused),
                     paused_reason=m.paused_reason if m is not None else "")
        return q

    def __repr__(self) -> str:
        return f"<MirrorAgent {self.user.id} {self.user.username}: {self.status.name}>"


_MEMBER_STATUS = {name: code for code, name in MEMBER_STATUSES.items()}

#: Seconds a standby holds the calls its bars were shown, at another owner's first term, if
#: that owner's ``pbx.resynced`` never comes (its resync failed, or came before the snapshot
#: this node loaded): then each is told as the new owner has it, or ended.
HOLD_LIMIT = 10.0


def _member(d: dict[str, Any]) -> Member:
    return Member(d["queue"], d["interface"], name=d.get("name", ""), penalty=d.get("penalty", 0),
                  status=_MEMBER_STATUS.get(d.get("status", ""), 0), paused=bool(d.get("paused")),
                  paused_reason=d.get("paused_reason", ""), in_call=bool(d.get("in_call")),
                  calls_taken=d.get("calls_taken", 0))


def _device(d: dict[str, Any]) -> Device:
    return Device(d["device"], d.get("state", "UNKNOWN"), d.get("registration", "Unknown"), d.get("address"),
                  d.get("port"), bool(d.get("dynamic")), d.get("user_agent", ""))


class Mirror:
    """The owner's calls, agents, devices and queues as live objects on a standby, each
    change published on the standby's bus as the owner's bus published it."""

    def __init__(self, bus: EventBus, directory: Any, clock: Any, tracker: Any = None,
                 days: Days | None = None) -> None:
        self.bus = bus
        self.clock = clock
        #: The agents' days, for their figures past midnight (:class:`MirrorAgent`).
        self.days = days
        #: This node's own call tracker: after a take-over, which shown calls Asterisk still has.
        self.tracker = tracker
        self._handed: dict[str, Call] = {}
        #: A standby's, at another owner's first term: the calls its bars were shown, held as
        #: shown while the new owner rebuilds them from Asterisk (:meth:`_hold`), and those of
        #: them the new owner has told since (rebuilt: told whole at its resync's end).
        self._held: dict[str, Call] = {}
        self._rebuilt: set[str] = set()
        self._release_call: Any = None
        #: Whose term the mirror follows (the node's name in it): another's is a take-over.
        self._owner = ""
        self.directory = directory
        #: A standby's: readers use the mirror (the role-aware views).  Off on the owner.
        self.active = False
        self.calls: dict[str, Call] = {}
        self.agents: dict[int, MirrorAgent] = {}
        #: Agents by their phone, and each agent's phone as indexed (the team view asks per leg).
        self._by_device: dict[str, MirrorAgent] = {}
        self._device_of: dict[int, str] = {}
        self.devices: dict[str, Device] = {}
        self.queues: dict[str, Queue] = {}
        #: The hub's ``call_changed_quietly`` (set by the container): a change of the owner's call
        #: that put no event on its bus, told to this node's bars the same way.
        self.on_quiet: Callable[[Call], Any] | None = None
        #: The team view's (set by the container): an agent changed without an agent event
        #: (``agent.quiet``: its figures, who monitors it; or a snapshot said so).
        self.on_agent_quiet: Callable[[MirrorAgent], Any] | None = None
        #: The wallboard's (set by the container): a queue's figures of the day, as the owner counted them.
        self.on_queue_figures: Callable[[QueueFigures], Any] | None = None
        #: On the owner (set by the container): who monitors the agent of a phone, for its envelopes
        #: (:meth:`wire_subject`; ``Supervision.monitored_of``).
        self.monitored_of: Callable[[str], list[dict[str, Any]]] | None = None

    def wire_subject(self, subject: Any) -> Any:
        """What the owner's feed sends (:func:`wire_subject`), an agent with who monitors it."""
        d = wire_subject(subject)
        if isinstance(subject, Agent) and self.monitored_of is not None:
            d["monitored"] = self.monitored_of(subject.line.device)
        return d

    # -- readers (the tracker's, the agents' and the PBX model's questions) --

    def active_calls(self) -> list[Call]:
        return list(self.calls.values())

    def calls_of_device(self, device: str) -> list[Call]:
        return [c for c in self.calls.values() if any(leg.device == device and leg.ended is None
                                                      for leg in c.legs.values())]

    def call_of(self, uniqueid: str) -> Call | None:
        call = self.calls.get(uniqueid)
        if call is not None:
            return call
        return next((c for c in self.calls.values() if uniqueid in c.legs), None)

    def get(self, user_id: int) -> MirrorAgent | None:
        return self.agents.get(user_id)

    def all(self) -> list[MirrorAgent]:
        return list(self.agents.values())

    def by_device(self, device: str) -> MirrorAgent | None:
        return self._by_device.get(device)

    def _member_of(self, queue_id: int, device: str) -> Member | None:
        q = self.directory.queues.get(queue_id)
        mq = self.queues.get(q.asterisk_name) if q is not None else None
        return mq.members.get(device) if mq is not None else None

    def _put(self, agent: MirrorAgent) -> None:
        self.agents[agent.id] = agent
        old = self._device_of.get(agent.id)
        if old is not None and old != agent.line.device and self._by_device.get(old) is agent:
            del self._by_device[old]
        self._device_of[agent.id] = agent.line.device
        self._by_device[agent.line.device] = agent

    def _drop(self, user_id: int) -> MirrorAgent | None:
        agent = self.agents.pop(user_id, None)
        device = self._device_of.pop(user_id, None)
        if device is not None and self._by_device.get(device) is agent:
            del self._by_device[device]
        return agent

    # -- the stream --

    def apply(self, e: Envelope) -> None:
        """One envelope the standby applied to its replica: the object, then the bus."""
        if not self.active:
            return
        self._follows(e.term)  # the new owner's first events may come before its snapshot's news
        if e.category == CALLS:
            self._call(e)
        elif e.category == AGENTS:
            self._agent(e)
        elif e.category == QUEUES:
            self._queue(e)
        elif e.category == STATS:
            if isinstance(e.subject, dict) and self.on_queue_figures is not None:
                s = e.subject
                self.on_queue_figures(QueueFigures(str(s.get("queue", e.key)), str(s.get("day", "")),
                                                   dict(s.get("figures") or {})))
        elif e.category == DEVICES and isinstance(e.subject, dict):
            self.devices[e.key] = _device(e.subject)
            self.bus.publish(e.event, self.devices[e.key], **e.args)
        elif e.event == ev.EVENT_PBX_RESTARTED:
            for uid in list(self.calls):
                self._end(uid)
            self.bus.publish(e.event, None, **e.args)
        elif e.event == ev.EVENT_PBX_RESYNCED:
            self.bus.publish(e.event, None, **e.args)
            if self._held:
                self._release_soon(0)  # the new owner has read Asterisk's calls

    def _call(self, e: Envelope) -> None:
        if e.event == ev.EVENT_ACCOUNT_CODE:
            call = self.calls.get(e.key)
            if call is not None:
                call.account_code = e.args.get("account_code", "")
            self.bus.publish(e.event, e.key, **e.args)
            return
        if not isinstance(e.subject, dict):
            return
        call = call_from_wire(e.subject)
        if e.key in self._held:
            if e.event != ev.EVENT_CALL_HANGUP:
                self.calls[e.key] = call  # a step of the new owner's rebuild: not shown yet
                self._rebuilt.add(e.key)
                return
            del self._held[e.key]  # it ended: told now, as ever
            self._rebuilt.discard(e.key)
        if e.event == CALL_QUIET:
            self.calls[e.key] = call
            if self.on_quiet is not None:
                self.on_quiet(call)
            return
        if e.event == ev.EVENT_CALL_HANGUP:
            self.calls.pop(e.key, None)
        else:
            self.calls[e.key] = call
        self.bus.publish(e.event, call, **e.args)

    def _end(self, uid: str) -> None:
        call = self.calls.pop(uid, None)
        if call is None:
            return
        # It ended while this node did not hear (between two snapshots): now, as far as it knows.
        now = self.clock.seconds()
        call.disconnected = call.disconnected or now
        for leg in call.legs.values():
            leg.ended = leg.ended or now
        self.bus.publish(ev.EVENT_CALL_HANGUP, call)

    def _agent_of(self, d: dict[str, Any]) -> MirrorAgent | None:
        user = self.directory.users.get(d.get("id"))
        if user is None:
            return None  # not in this node's directory (yet): nothing it could show
        line_d = d.get("line") or {}
        line = self.directory.lines.get(line_d.get("id")) or self.directory.line_by_device(d.get("device", ""))
        if line is None:
            return None
        agent = self.agents.get(user.id)
        if agent is None:
            agent = MirrorAgent(user, line, d, self.clock, self._member_of, self.days)
        else:
            agent.user, agent.line = user, line
            agent.update(d)
        return agent

    def _agent(self, e: Envelope) -> None:
        if not isinstance(e.subject, dict):
            return
        agent = self._agent_of(e.subject)
        if agent is None:
            return
        args = dict(e.args)
        for k in ("status", "previous"):  # IntEnums travel as numbers: the owner's bus had the enum
            if isinstance(args.get(k), int) and not isinstance(args[k], bool):
                args[k] = AgentStatus(args[k])
        if e.event == ev.EVENT_AGENT_LOGOUT:
            self._drop(agent.id)
        else:
            self._put(agent)
        if e.event == AGENT_QUIET:  # no bus event on the owner: none here either
            if self.on_agent_quiet is not None:
                self.on_agent_quiet(agent)
            return
        if e.event == ev.EVENT_AGENT_LOGIN:
            args.pop("session", None)  # the owner's session object: nothing of this node's
        elif e.event == ev.EVENT_AGENT_DEVICE:
            args["line"] = agent.line if args.get("line") is not None else None
        self.bus.publish(e.event, agent, **args)

    def _queue(self, e: Envelope) -> None:
        if e.event == ev.EVENT_QUEUE_WAITING:
            q = self._queue_named(e.key)
            if isinstance(e.subject, dict):
                q.strategy = e.subject.get("strategy", q.strategy)
                q.callers = {c["uniqueid"]: QueueCaller(**c) for c in e.subject.get("callers") or ()}
            self.bus.publish(e.event, q, **e.args)
            return
        if not isinstance(e.subject, dict):
            return
        member = _member(e.subject)
        q = self._queue_named(member.queue)
        if e.event == ev.EVENT_MEMBER_REMOVED:
            q.members.pop(member.interface, None)
        else:
            q.members[member.interface] = member
        args = {k: v for k, v in e.args.items() if k != "previous"}
        self.bus.publish(e.event, member, **args)

    def _queue_named(self, name: str) -> Queue:
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = Queue(name)
        return q

    # -- snapshots and roles --

    def load(self, replica: Replica) -> None:
        """The replica was (re)loaded from a snapshot: make the objects -- and so the bars --
        what it says.  Calls gone end, new and changed ones are told, agents too."""
        if not self.active:
            return
        r = replica
        self._follows(r.term)
        for uid in [u for u in self.calls if u not in r.calls and u not in self._held]:
            self._end(uid)
        for uid, d in r.calls.items():
            old = self.calls.get(uid)
            new = call_from_wire(d)
            if uid in self._held:
                self.calls[uid] = new  # a step of the new owner's rebuild: not shown yet
                self._rebuilt.add(uid)
            elif old is None or call_to_wire(old) != call_to_wire(new):
                self.calls[uid] = new
                self.bus.publish(ev.EVENT_CALL_CHANGE, new)
        for uid_s, d in r.agents.items():
            before = self.agents.get(int(uid_s))
            previous = (before.status.name, before.reason) if before is not None else None
            watched = before.monitored if before is not None else []
            agent = self._agent_of(d)
            if agent is None:
                continue
            self._put(agent)
            if agent.monitored != watched and self.on_agent_quiet is not None:
                self.on_agent_quiet(agent)
            if previous is None:
                self.bus.publish(ev.EVENT_AGENT_LOGIN, agent)
            if previous != (agent.status.name, agent.reason):
                self.bus.publish(ev.EVENT_AGENT_STATUS, agent, status=agent.status, reason=agent.reason,
                                 previous=AgentStatus[previous[0] if previous else "OFFLINE"],
                                 previous_reason=previous[1] if previous else "")
        for gone in [u for u in self.agents if str(u) not in r.agents]:
            agent = self._drop(gone)
            assert agent is not None
            self.bus.publish(ev.EVENT_AGENT_LOGOUT, agent, reason="")
        self.devices = {k: _device(d) for k, d in r.devices.items()}
        queues: dict[str, Queue] = {}
        for d in r.members.values():
            m = _member(d)
            queues.setdefault(m.queue, Queue(m.queue)).members[m.interface] = m
        for name, q in self.queues.items():
            if name in queues:
                queues[name].callers = q.callers
        self.queues = queues
        for name in r.waiting:
            self.bus.publish(ev.EVENT_QUEUE_WAITING, self._queue_named(name), waiting=r.waiting[name])
        if self.on_queue_figures is not None:
            for name, f in r.figures.items():
                self.on_queue_figures(QueueFigures(name, str(f.get("day", "")), dict(f.get("figures") or {})))

    def start(self, replica: Replica) -> None:
        """The node follows the owner (a standby): readers use the mirror from now on."""
        self.active = True
        self.load(replica)

    def stop(self) -> None:
        """The node owns the AMI link now (or stops): its own model answers.  The calls its
        bars were shown are kept aside until its resync says which of them Asterisk still
        has (:meth:`_settle`): the others ended while no node listened, and end on the bars."""
        if self.active and self.calls:
            if not self._handed:
                self.bus.subscribe(ev.EVENT_PBX_RESYNCED, self._resynced)
            self._handed.update(self.calls)
        self._held.clear()
        self._rebuilt.clear()
        if self._release_call is not None and self._release_call.active():
            self._release_call.cancel()
        self._release_call = None
        self._owner = ""
        self.active = False
        self.calls.clear()
        self.agents.clear()
        self._by_device.clear()
        self._device_of.clear()
        self.devices.clear()
        self.queues.clear()

    def _follows(self, term: str) -> None:
        """The term of what this node applies now: another owner's (a take-over) holds the calls
        the bars were shown (:meth:`_hold`)."""
        owner = term.rsplit(":", 2)[0] if term.count(":") >= 2 else ""
        if not owner or owner == self._owner:
            return
        if self._owner and self.calls:
            self._hold()  # another owner's first term: it has not read Asterisk's calls yet
        self._owner = owner

    def _hold(self) -> None:
        """A standby's bars keep the calls they were shown while a new owner rebuilds them: its
        first term starts before it has read Asterisk (no calls), and its resync then tells each
        call as the events would, one channel at a time -- first the caller's alone -- which each
        phone's view would take for the call's end on that phone: a hang-up, then a new connect,
        on a call that never stopped (issue 20, ``test_cluster_rolling_kill_bar``).  Released at
        the new owner's ``pbx.resynced`` (or after :data:`HOLD_LIMIT`, if it never comes)."""
        self._held.update(self.calls)
        self._release_soon(HOLD_LIMIT)

    def _release_soon(self, delay: float) -> None:
        if self._release_call is not None and self._release_call.active():
            self._release_call.cancel()
        self._release_call = self.clock.callLater(delay, self._release)

    def _release(self) -> None:
        """The new owner's resync is done: each held call it rebuilt is told whole; one it did
        not ended while no node listened, and ends on the bars."""
        self._release_call = None
        held, self._held = self._held, {}
        rebuilt, self._rebuilt = self._rebuilt, set()
        if not self.active:
            return
        for uid in held:
            if uid in rebuilt and uid in self.calls:
                self.bus.publish(ev.EVENT_CALL_CHANGE, self.calls[uid])
            elif uid in self.calls:
                self._end(uid)

    def _resynced(self, subject: Any, args: dict[str, Any]) -> None:
        self.bus.unsubscribe(ev.EVENT_PBX_RESYNCED, self._resynced)
        self.clock.callLater(0, self._settle)  # once every observer of the resync has run

    def holding(self, uniqueid: str) -> bool:
        """Whether the bars keep what they were shown of call ``uniqueid``: a call handed over
        at a take-over, until the resync is done.  The resync rebuilds it as the events would,
        one channel at a time -- first the caller's alone, not yet the agent's -- and each
        phone's view would take the first step for the call's end on that phone: a hang-up,
        then a new connect, on a call that never stopped (the hub asks, :attr:`Hub.holding`)."""
        return uniqueid in self._handed or uniqueid in self._held

    def _settle(self) -> None:
        handed, self._handed = self._handed, {}
        if self.active:
            return  # a standby again: the mirror tells the owner's truth
        live = {c.uniqueid: c for c in self.tracker.active_calls()} if self.tracker is not None else {}
        for uid, call in handed.items():
            if uid not in live:
                self.calls[uid] = call
                self._end(uid)  # on this node's bars only (the view bus): no CDR, no plugin
            else:  # the call as rebuilt (with what the old owner knew: ``gap.adopt``), held till now
                self.bus.publish(ev.EVENT_CALL_CHANGE, live[uid])


# -- the role-aware views the container gives the readers ----------------------------------------


class AgentsView:
    """The agents as :class:`~ucs.api.state.StateBuilder`, log-in and the Interaction Processor
    read them: the owner's (the mirror) on a standby, this node's own otherwise.  Anything
    else (log in, change status) goes to this node's :class:`~ucs.agents.service.Agents`."""

    def __init__(self, live: Any, mirror: Mirror) -> None:
        self._live = live
        self._mirror = mirror

    def get(self, user_id: int) -> Any:
        return self._mirror.get(user_id) if self._mirror.active else self._live.get(user_id)

    def all(self) -> list[Any]:
        return self._mirror.all() if self._mirror.active else list(self._live.all())

    def by_device(self, device: str) -> Any:
        return self._mirror.by_device(device) if self._mirror.active else self._live.by_device(device)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._live, name)


class TrackerView:
    """The calls as the readers ask the :class:`~ucs.calls.tracker.CallTracker`: the owner's on a standby."""

    def __init__(self, live: Any, mirror: Mirror) -> None:
        self._live = live
        self._mirror = mirror

    def active_calls(self) -> list[Call]:
        return self._mirror.active_calls() if self._mirror.active else list(self._live.active_calls())

    def calls_of_device(self, device: str) -> list[Call]:
        return self._mirror.calls_of_device(device) if self._mirror.active else list(
            self._live.calls_of_device(device))

    def call_of(self, uniqueid: str) -> Call | None:
        if self._mirror.active:
            return self._mirror.call_of(uniqueid)
        call: Call | None = self._live.call_of(uniqueid)
        return call

    def __getattr__(self, name: str) -> Any:
        return getattr(self._live, name)


class PBXView:
    """Devices and queues as the readers ask the PBX model: the owner's on a standby."""

    def __init__(self, live: Any, mirror: Mirror) -> None:
        self._live = live
        self._mirror = mirror

    @property
    def devices(self) -> dict[str, Device]:
        return self._mirror.devices if self._mirror.active else self._live.devices  # type: ignore[no-any-return]

    @property
    def queues(self) -> dict[str, Queue]:
        return self._mirror.queues if self._mirror.active else self._live.queues  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._live, name)
