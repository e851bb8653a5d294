"""The PBX model's queue events: callers waiting, agents rung, members.

Why a module of its own: the queue half of the AMI traffic (``QueueCaller*``,
``Agent*``, ``QueueMember*`` and their Asterisk 11 names) changes only
:attr:`PBXState.queues` and reads channels, so it is one collaborator,
:class:`QueueEvents`, that :class:`ucs.pbx.pbx.PBX` builds once and puts in
its dispatch table (bound methods: no extra call per event).  The resync
(``resync.py``) applies ``QueueStatus`` members through
:meth:`QueueEvents.member_update`, as if Asterisk had sent them as events.
"""

from __future__ import annotations

import attrs

from ucs.ami.message import Message
from ucs.pbx.model import Channel, Member, Queue, QueueCaller
from ucs.pbx.state import Handler, PBXState, flag_field, int_field

#: Member's fields in the order its __init__ takes them.
_MEMBER_FIELDS = tuple(a.name for a in attrs.fields(Member))


class QueueEvents:
    def __init__(self, pbx: PBXState) -> None:
        self._pbx = pbx
        # Bound once: these run for every queue event.
        self._emit = pbx._emit
        self._chan = pbx._chan
        self._ensure = pbx._ensure
        self._queue = pbx._queue
        self._abandoned: set[str] = set()

    def handlers(self) -> dict[str, Handler]:
        """This group's part of the model's dispatch table."""
        return {
            "QueueCallerJoin": self.caller_join,
            "Join": self.caller_join,
            "QueueCallerLeave": self.caller_leave,
            "Leave": self.caller_leave,
            "QueueCallerAbandon": self.caller_abandon,
            "AgentCalled": self.agent_called,
            "AgentRingNoAnswer": self.agent_ring_no_answer,
            "AgentConnect": self.agent_connect,
            "AgentComplete": self.agent_complete,
            "QueueMemberAdded": self.member_added,
            "QueueMemberStatus": self.member_update,
            "QueueMemberPause": self.member_update,
            "QueueMemberPaused": self.member_update,
            "QueueMemberPenalty": self.member_update,
            "QueueMemberRinginuse": self.member_update,
            "QueueMemberRemoved": self.member_removed,
        }

    # -- callers ----------------------------------------------------------------

    def caller_join(self, msg: Message) -> None:
        name = msg.get("Queue")
        ch = self._ensure(msg)
        if not name or ch is None:
            return
        q = self._queue(name)
        q.callers[ch.uniqueid] = QueueCaller(
            ch.uniqueid, ch.name, int_field(msg.get("Position"), len(q.callers) + 1),
            self._pbx._clock.seconds(), ch.caller_num, ch.caller_name,
        )
        self._emit("queue_caller_joined", q, ch)

    def caller_abandon(self, msg: Message) -> None:
        uid = msg.get("Uniqueid")
        if uid:
            self._abandoned.add(uid)

    def caller_leave(self, msg: Message) -> None:
        name = msg.get("Queue")
        ch = self._chan(msg)
        q = self._pbx.queues.get(name or "")
        if q is None or ch is None:
            return
        if q.callers.pop(ch.uniqueid, None) is None:
            return
        abandoned = ch.uniqueid in self._abandoned
        self._abandoned.discard(ch.uniqueid)
        if abandoned:
            q.abandoned += 1
        for i, caller in enumerate(sorted(q.callers.values(), key=lambda c: c.position)):
            caller.position = i + 1
        self._emit("queue_caller_left", q, ch, abandoned)

    # -- agents rung ----------------------------------------------------------------

    def _agent_event(self, msg: Message) -> tuple[Queue, str, Channel | None, Channel | None] | None:
        name = msg.get("Queue")
        if not name:
            return None
        iface = msg.get("Interface") or msg.get("Member") or msg.get("AgentCalled") or ""
        caller = self._chan(msg)
        agent = self._chan(msg, "DestUniqueid", "DestChannel")
        if agent is None and msg.get("DestUniqueid") and msg.get("DestChannel"):
            agent = self._ensure(msg, "Dest")
        if agent is None and msg.get("BridgedChannel"):
            agent = self._pbx.channels.get(msg["BridgedChannel"])
        return self._queue(name), iface, caller, agent

    def agent_called(self, msg: Message) -> None:
        found = self._agent_event(msg)
        if found:
            self._emit("agent_called", *found)

    def agent_ring_no_answer(self, msg: Message) -> None:
        found = self._agent_event(msg)
        if found:
            self._emit("agent_ring_no_answer", *found)

    def agent_connect(self, msg: Message) -> None:
        found = self._agent_event(msg)
        if found:
            self._emit("agent_connected", *found, msg)

    def agent_complete(self, msg: Message) -> None:
        found = self._agent_event(msg)
        if found:
            found[0].completed += 1
            self._emit("agent_completed", *found, msg)

    # -- members ----------------------------------------------------------------

    @staticmethod
    def _apply_member(m: Member, msg: Message) -> None:
        g = msg.get
        if "MemberName" in msg or "Name" in msg:
            m.name = g("MemberName") or g("Name") or m.name
        if "StateInterface" in msg:
            m.state_interface = g("StateInterface") or m.state_interface
        if "Membership" in msg:
            m.membership = g("Membership") or m.membership
        if "Penalty" in msg:
            m.penalty = int_field(g("Penalty"), m.penalty)
        if "Status" in msg:
            m.status = int_field(g("Status"), m.status)
        if "Paused" in msg:
            m.paused = flag_field(g("Paused"))
            m.paused_reason = (g("PausedReason") or g("Reason") or "") if m.paused else ""
        if "InCall" in msg:
            m.in_call = flag_field(g("InCall"))
        if "CallsTaken" in msg:
            m.calls_taken = int_field(g("CallsTaken"), m.calls_taken)
        if "LastCall" in msg:
            m.last_call = int_field(g("LastCall"), m.last_call)
        if "LoginTime" in msg:
            m.login_time = int_field(g("LoginTime"), m.login_time)

    def member_added(self, msg: Message) -> None:
        name = msg.get("Queue")
        iface = msg.get("Interface") or msg.get("Location")
        if not name or not iface:
            return
        q = self._queue(name)
        existing = q.members.get(iface)
        if existing is not None:
            self.member_update(msg)
            return
        m = q.members[iface] = Member(name, iface)
        self._apply_member(m, msg)
        self._emit("member_added", m)

    def member_update(self, msg: Message) -> None:
        name = msg.get("Queue")
        iface = msg.get("Interface") or msg.get("Location")
        if not name or not iface:
            return
        q = self._queue(name)
        m = q.members.get(iface)
        if m is None:
            self.member_added(msg)
            return
        previous = Member(*map(m.__getattribute__, _MEMBER_FIELDS))  # attrs.evolve(m), without its checks
        self._apply_member(m, msg)
        if previous != m:
            self._emit("member_changed", m, previous)

    def member_removed(self, msg: Message) -> None:
        q = self._pbx.queues.get(msg.get("Queue", ""))
        iface = msg.get("Interface") or msg.get("Location") or ""
        m = q.members.pop(iface, None) if q else None
        if m is not None:
            self._apply_member(m, msg)
            self._emit("member_removed", m)
