"""app_queue as the captures show it: members, callers, ringing, statistics."""

from __future__ import annotations

from typing import Any

from ucs.sim.dialplan import CONTINUE, WAIT
from ucs.sim.model import Channel, Leg, Member, Queue, QueueEntry
from ucs.sim.wire import AGENT, CALL, DEVSTATE_NUM, channel_block, clean


class QueueError(Exception):
    """A queue command that cannot be done; the text is Asterisk's message."""


class QueueMixin:
    """The Queue application and queue membership, mixed into :class:`Sim`."""

    queues: dict[str, Queue]
    devices: dict[str, str]
    _members_by_dev: dict[str, list[Member]]
    _kicks: set[str]

    # ----------------------------------------------------------- config

    def add_queue(self: Any, name: str, strategy: str = "ringall", timeout: float = 15, retry: float = 5) -> Queue:
        """A queue as in queues.conf: ``add_queue("support", "rrmemory", timeout=8)``.

        ``timeout`` is how long a member rings before the queue gives up on
        them; ``retry`` how long it waits before ringing again.
        """
        q = Queue(clean(name), strategy, timeout, retry)
        self.queues[q.name] = q
        self.devices[f"Queue:{q.name}_avail"] = "INUSE"  # no member yet, known since boot
        return q

    # --------------------------------------------------------- membership

    def queue_add(
        self: Any,
        queue: str,
        interface: str,
        member_name: str = "",
        *,
        penalty: int = 0,
        paused: bool = False,
        reason: str = "",
        state_interface: str = "",
    ) -> Member:
        q = self.queues.get(queue)
        if q is None:
            raise QueueError("Unable to add interface to queue: No such queue")
        if interface in q.members:
            raise QueueError("Unable to add interface: Already there")
        now = int(self.now())
        m = Member(q, clean(interface), clean(member_name), clean(state_interface), penalty, now)
        m.paused = paused
        if paused:
            m.reason = clean(reason)
            m.last_pause = now
        q.members[m.iface] = m
        m.status = DEVSTATE_NUM.get(self._dev_state(m.state_iface), 0)
        self._members_by_dev.setdefault(m.state_iface, []).append(m)
        self._set_dev(_pause_dev(m), "INUSE" if paused else "NOT_INUSE")
        self._emit("QueueMemberAdded", AGENT, m.block())
        self._update_avail(q)
        if m.available:
            self._offer(q)
        return m

    def queue_remove(self: Any, queue: str, interface: str) -> None:
        q = self.queues.get(queue)
        if q is None:
            raise QueueError("Unable to remove interface from queue: No such queue")
        m = q.members.get(interface)
        if m is None:
            raise QueueError("Unable to remove interface: Not there")
        del q.members[interface]
        q.avail.pop(m, None)
        lst = self._members_by_dev.get(m.state_iface, [])
        if m in lst:
            lst.remove(m)
        self._emit("QueueMemberRemoved", AGENT, m.block())
        self._set_dev(_pause_dev(m), "NOT_INUSE")
        self._update_avail(q)

    def queue_pause(self: Any, interface: str, paused: bool, queue: str | None = None, reason: str = "") -> list[Member]:
        if queue:
            q = self.queues.get(queue)
            members = [q.members[interface]] if q is not None and interface in q.members else []
        else:
            members = [q.members[interface] for q in self.queues.values() if interface in q.members]
        if not members:
            raise QueueError("Interface not found")
        now = int(self.now())
        for m in members:
            m.paused = paused
            m.reason = clean(reason) if paused else ""
            if paused:
                m.last_pause = now
            self._set_dev(_pause_dev(m), "INUSE" if paused else "NOT_INUSE")
            self._update_avail(m.queue)
            self._emit("QueueMemberPause", AGENT, m.block())
            if m.available:
                self._offer(m.queue)
        return members

    def queue_penalty(self: Any, interface: str, penalty: int, queue: str | None = None) -> list[Member]:
        """``QueuePenalty``: the member's penalty in ``queue``, or in every queue
        it is in (app_queue's ``set_member_value``); one ``QueueMemberPenalty``
        per member changed, even when the value stays the same.

        A negative penalty is refused (``negative_penalty_invalid`` is off by
        default, and app_queue then refuses negative values here), as are an
        unknown queue and an interface that is no member: Asterisk has one
        message for all three."""
        refused = "Invalid interface, queuename or penalty"
        if penalty < 0:
            raise QueueError(refused)
        if queue:
            q = self.queues.get(queue)
            members = [q.members[interface]] if q is not None and interface in q.members else []
        else:
            members = [q.members[interface] for q in self.queues.values() if interface in q.members]
        if not members:
            raise QueueError(refused)
        for m in members:
            m.penalty = penalty
            self._emit("QueueMemberPenalty", AGENT, m.block())
        for m in members:
            if m.available:
                self._offer(m.queue)  # a better penalty: waiting callers may ring it now
        return members

    def _dev_state(self: Any, dev: str) -> str:
        state = self.devices.get(dev)
        if state is None:
            line = self.lines.get(dev)
            state = self._line_state(line) if line is not None else "INVALID"
        return state

    def _update_avail(self: Any, q: Queue) -> None:
        self._set_dev(f"Queue:{q.name}_avail", "NOT_INUSE" if q.avail else "INUSE")

    def _device_changed(self: Any, dev: str, state: str) -> None:
        """A phone's device state changed: members using it get a new Status."""
        num = DEVSTATE_NUM.get(state, 0)
        for m in list(self._members_by_dev.get(dev, ())):
            if self.devices.get(dev, state) != state:
                break  # offered in one queue, the phone rings: that change told every member already
            if m.status != num:
                m.status = num
                self._emit("QueueMemberStatus", AGENT, m.block())
                self._update_avail(m.queue)
                if m.available:
                    self._offer(m.queue)

    def _offer(self: Any, q: Queue) -> None:
        """A member became available (its device free, unpaused, added): the
        waiting callers try it now, in the same step -- before the simulator
        reads another AMI action and whichever way it is driven (a clock step,
        an action, a test's call).

        In app_queue the device-state callback makes the member available at
        once (``device_state_cb`` -> ``update_status``; ``can_ring_entry``
        refuses only a paused, busy or wrapping-up member) and the waiting
        callers' own threads ring it when they next look (``wait_our_turn``
        every second, ``wait_a_bit`` after ``retry``), with no regard to what
        an AMI client is about to send.  Offering at once is the case a client
        must survive: a pause sent on hearing of the hangup comes too late.
        An entry still ringing or waiting out its retry is left alone, as
        :meth:`_queue_try` says.
        """
        for e in list(q.entries):
            self._queue_try(e)

    def _kick(self: Any, q: Queue) -> None:
        """Waiting callers try the members again, once the current command is done."""
        if q.name in self._kicks or not q.entries:
            return
        self._kicks.add(q.name)
        self._later(0, self._kicked, q)

    def _kicked(self: Any, q: Queue) -> None:
        self._kicks.discard(q.name)
        for e in list(q.entries):
            self._queue_try(e)

    # ------------------------------------------------------ Queue() application

    def _app_queue(self: Any, ch: Channel, data: str) -> int:
        args = data.split(",")
        q = self.queues.get(args[0])
        if q is None:
            self._varset(ch, "QUEUESTATUS", "UNKNOWN")
            return CONTINUE
        for var in ("ANSWEREDTIME", "ANSWEREDTIME_MS", "DIALEDTIME", "DIALEDTIME_MS", "QUEUEWAIT", "QUEUEWAIT_MS"):
            self._varset(ch, var, "")
        entry = QueueEntry(q, ch, self.now(), len(q.entries) + 1)
        q.entries.append(entry)
        ch.job = entry
        self._set_dev(f"Queue:{q.name}", "RINGING")
        self._chan_ev("QueueCallerJoin", ch, f"Queue: {q.name}\r\nPosition: {entry.position}\r\nCount: {len(q.entries)}\r\n", AGENT)
        self._moh_start(ch)
        timeout = args[4].strip() if len(args) > 4 else ""
        if timeout:
            entry.timeout_timer = self._later(float(timeout), self._queue_timeout, entry, chan=ch)
        self._queue_try(entry)
        return WAIT

    def _queue_try(self: Any, entry: QueueEntry) -> None:
        if entry.done or entry.agent is not None or entry.ringing or entry.chan.gone:
            return
        if entry.retry_timer is not None and entry.retry_timer.active():
            return
        q = entry.queue
        if not q.avail:
            return
        ready = [m for m in q.avail if self._member_reachable(m)]
        if not ready:
            return
        # app_queue's calc_metric puts penalty * 1000000 ahead of every
        # strategy's own order (penaltymemberslimit is 0 by default: penalties
        # always count), and ring_one rings only the best metric: the lowest
        # penalty among the members that can ring, the others only when none can.
        best = min(m.penalty for m in ready)
        if q.strategy == "ringall":
            targets = sorted((m for m in ready if m.penalty == best), key=_ring_order)
        else:
            order = list(q.members.values())
            start = q.rr_last + 1 if q.strategy == "rrmemory" else 0
            n = len(order)
            targets = []
            for i in range(n):
                m = order[(start + i) % n]
                if m.penalty == best and m in q.avail and self._member_reachable(m):
                    targets = [m]
                    q.rr_last = (start + i) % n
                    break
        if not targets:
            return
        entry.ring_started = self.now()
        self.ring_all(lambda: [self._queue_ring(entry, m) for m in targets])
        if entry.ringing:
            entry.ring_timer = self._later(q.timeout, self._queue_ring_timeout, entry, chan=entry.chan)

    def _member_reachable(self: Any, m: Member) -> bool:
        line = self.lines.get(m.iface)
        return line is not None and line.reachable and not line.trunk

    def _queue_ring(self: Any, entry: QueueEntry, m: Member) -> None:
        caller = entry.chan
        line = self.lines[m.iface]
        agent = self._line_channel(line, caller)
        agent.exten = ""
        self._varset(agent, "DIALEDPEERNUMBER", line.peer)
        leg = Leg("queue", caller, agent, line, entry, m.iface, self.now(), member=m)
        agent.leg = leg
        m.ringing = True
        entry.ringing[m] = agent
        line.channels.append(agent)
        self._update_line(line)
        agent.conn_num, agent.conn_name = caller.cid_num, caller.cid_name
        agent.exten = caller.exten
        self._emit(
            "AgentCalled",
            AGENT,
            channel_block(caller) + channel_block(agent, "Dest") + f"Queue: {entry.queue.name}\r\nInterface: {m.iface}\r\nMemberName: {m.name}\r\n",
        )
        self._emit("DialBegin", CALL, channel_block(caller) + channel_block(agent, "Dest") + f"DialString: {m.iface}\r\n")
        self._set_connected(caller, agent.cid_num, agent.cid_name)
        self._ring(leg)

    def _queue_rna(self: Any, leg: Leg) -> None:
        entry: QueueEntry = leg.owner
        m = leg.member
        assert m is not None
        ring = int(self.now() - leg.started)
        self._emit(
            "AgentRingNoAnswer",
            AGENT,
            channel_block(entry.chan)
            + channel_block(leg.chan, "Dest")
            + f"Queue: {entry.queue.name}\r\nInterface: {m.iface}\r\nMemberName: {m.name}\r\nRingTime: {ring * 1000}\r\n",
        )

    def _queue_ring_timeout(self: Any, entry: QueueEntry) -> None:
        entry.ring_timer = None
        for m, agent in list(entry.ringing.items()):
            if agent.leg is not None and not agent.leg.ended:
                self._leg_end(agent.leg, "NOANSWER", 16, rna=True)

    def _queue_leg_failed(self: Any, entry: QueueEntry, leg: Leg) -> None:
        m = leg.member
        assert m is not None
        if entry.ringing.get(m) is leg.chan:
            del entry.ringing[m]
        m.ringing = False
        if m.status == 1:
            self._update_avail(m.queue)
            self._kick_others(entry)
        if not entry.ringing and not entry.done and entry.agent is None and not entry.chan.gone:
            self._cancel(entry.ring_timer)
            entry.ring_timer = None
            entry.retry_timer = self._later(entry.queue.retry, self._queue_retry, entry, chan=entry.chan)

    def _kick_others(self: Any, entry: QueueEntry) -> None:
        for e in entry.queue.entries:
            if e is not entry and not e.ringing and e.agent is None:
                self._kick(entry.queue)
                return

    def _queue_retry(self: Any, entry: QueueEntry) -> None:
        entry.retry_timer = None
        self._queue_try(entry)

    def _queue_answered(self: Any, entry: QueueEntry, leg: Leg) -> None:
        caller = entry.chan
        q = entry.queue
        m = leg.member
        assert m is not None
        self._cancel(entry.ring_timer)
        entry.ring_timer = None
        for other_m, other in list(entry.ringing.items()):
            if other is not leg.chan and other.leg is not None and not other.leg.ended:
                other.leg.ended = True
                self._dial_end(other.leg, "CANCEL")
                other_m.ringing = False
                self._destroy(other, 26)
        entry.ringing.clear()
        m.ringing = False
        self._moh_stop(caller)
        pos = self._queue_remove_entry(entry)
        now = self.now()
        hold = int(now - entry.joined)
        self._chan_ev("QueueCallerLeave", caller, f"Queue: {q.name}\r\nPosition: {pos}\r\nCount: {len(q.entries)}\r\n", AGENT)
        self._varset(caller, "QUEUEPOSITION", str(pos))
        self._varset(caller, "QUEUEWAIT", str(hold))
        self._varset(caller, "QUEUEWAIT_MS", str(int((now - entry.joined) * 1000)))
        q.holdtime = ((q.holdtime << 2) - q.holdtime + hold) >> 2
        m.in_call = True
        entry.member = m
        entry.agent = leg.chan
        entry.connected_at = now
        self._cancel(entry.timeout_timer)
        self._emit(
            "AgentConnect",
            AGENT,
            channel_block(caller)
            + channel_block(leg.chan, "Dest")
            + f"Queue: {q.name}\r\nInterface: {m.iface}\r\nMemberName: {m.name}\r\nHoldTime: {hold}\r\nRingTime: {int(now - leg.started)}\r\n",
        )
        b = self._bridge_create()
        self._bridge_enter(b, leg.chan)
        self._bridge_enter(b, caller)

    def _queue_remove_entry(self: Any, entry: QueueEntry) -> int:
        q = entry.queue
        try:
            pos = q.entries.index(entry) + 1
            q.entries.remove(entry)
        except ValueError:
            return entry.position
        if not q.entries:
            self._set_dev(f"Queue:{q.name}", "NOT_INUSE")
        return pos

    def _queue_leave_waiting(self: Any, entry: QueueEntry, abandon: bool) -> None:
        """The caller leaves the queue before being connected (hangs up, redirected)."""
        caller = entry.chan
        q = entry.queue
        self._cancel(entry.ring_timer)
        self._cancel(entry.retry_timer)
        self._cancel(entry.timeout_timer)
        self._moh_stop(caller)
        if entry.agent is not None:
            return
        for m, agent in list(entry.ringing.items()):
            if agent.leg is not None and not agent.leg.ended:
                agent.leg.ended = True
                # Asterisk reports the cancelled dial twice here (load_mixed).
                self._dial_end(agent.leg, "CANCEL")
                self._dial_end(agent.leg, "CANCEL")
                m.ringing = False
                self._destroy(agent, 0 if agent.tech == "PJSIP" else 16)
        entry.ringing.clear()
        if entry not in q.entries:
            return
        pos = q.entries.index(entry) + 1
        if abandon:
            q.abandoned += 1
            self._chan_ev(
                "QueueCallerAbandon",
                caller,
                f"Queue: {q.name}\r\nPosition: {pos}\r\nOriginalPosition: {entry.position}\r\nHoldTime: {int(self.now() - entry.joined)}\r\n",
                AGENT,
            )
        self._queue_remove_entry(entry)
        self._chan_ev("QueueCallerLeave", caller, f"Queue: {q.name}\r\nPosition: {pos}\r\nCount: {len(q.entries)}\r\n", AGENT)
        if abandon:
            self._varset(caller, "ABANDONED", "TRUE")

    def _queue_timeout(self: Any, entry: QueueEntry) -> None:
        ch = entry.chan
        if ch.job is not entry or entry.agent is not None or ch.gone:
            return
        self._queue_leave_waiting(entry, abandon=False)
        self._varset(ch, "QUEUESTATUS", "TIMEOUT")
        self._pbx_next(ch)

    # -------------------------------------------------------- end of a queue call

    def _is_queue_agent(self: Any, ch: Channel) -> bool:
        return ch.leg is not None and ch.leg.kind == "queue"

    def _entry_of(self: Any, ch: Channel) -> QueueEntry | None:
        if isinstance(ch.job, QueueEntry):
            return ch.job
        if ch.leg is not None and ch.leg.kind == "queue":
            e = ch.leg.owner
            if e.agent is ch:
                return e
        return None

    def _queue_bridge_left(self: Any, ch: Channel) -> None:
        """A party of a queue call left its bridge: the member's call is over."""
        e = self._entry_of(ch)
        if e is not None and e.member is not None and e.member.in_call:
            self._queue_call_over(e)

    def _queue_call_over(self: Any, e: QueueEntry) -> None:
        m = e.member
        assert m is not None
        q = e.queue
        m.in_call = False
        m.calls_taken += 1
        m.last_call = int(self.now())
        q.completed += 1
        talk = int(self.now() - (e.connected_at or self.now()))
        q.talktime = ((q.talktime << 2) - q.talktime + talk) >> 2

    def _queue_complete(self: Any, e: QueueEntry, reason: str, with_dest: bool) -> None:
        """``AgentComplete``: the queue application is done with this call."""
        if e.done or e.member is None:
            return
        e.done = True
        m = e.member
        now = self.now()
        dest = channel_block(e.agent, "Dest") if with_dest and e.agent is not None and not e.agent.gone else ""
        hold = int((e.connected_at or now) - e.joined)
        talk = int(now - (e.connected_at or now))
        self._emit(
            "AgentComplete",
            AGENT,
            channel_block(e.chan)
            + dest
            + f"Queue: {e.queue.name}\r\nInterface: {m.iface}\r\nMemberName: {m.name}\r\nHoldTime: {hold}\r\nTalkTime: {talk}\r\nReason: {reason}\r\n",
        )
        if m.in_call:
            self._queue_call_over(e)

    def _queue_after_bridge(self: Any, e: QueueEntry, reason: str) -> None:
        self._queue_complete(e, reason, with_dest=False)
        ch = e.chan
        if self._mask & (1 << 11):
            self._varset(ch, "ANSWEREDTIME", str(int(self.now() - (e.connected_at or self.now()))))
            self._varset(ch, "DIALEDTIME", str(int(self.now() - e.joined)))

    def _queue_end_silently(self: Any, e: QueueEntry) -> None:
        """The caller was taken out of the queue application (Redirect, transfer)."""
        e.done = True
        if e.member is not None and e.member.in_call:
            self._queue_call_over(e)


def _ring_order(m: Member) -> int:
    """Where app_queue finds ``m`` in its members: a hash table of 37 buckets
    keyed by the interface's case-insensitive djb2 hash, walked bucket by
    bucket (the matrix's ringall captures ring SIP/1002 before SIP/1001,
    PJSIP/2001 before PJSIP/2002)."""
    h = 5381
    for c in m.iface.lower().encode():
        h = ((h * 33) & 0xFFFFFFFF) ^ c
    return abs(h - (1 << 32) if h >= 1 << 31 else h) % 37


def _pause_dev(m: Member) -> str:
    return f"Queue:{m.queue.name}_pause_{m.iface}"
