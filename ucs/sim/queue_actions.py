"""app_queue's AMI actions on the simulated PBX: QueueAdd, QueueRemove,
QueuePause, QueuePenalty, QueueStatus and QueueSummary, with Asterisk 20's answers.

Mixed into :class:`ucs.sim.actions.Actions`; the queues themselves are in
:mod:`ucs.sim.queues`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ucs.sim.respond import ActionMessage, Handlers, true_value

if TYPE_CHECKING:  # pragma: no cover
    from ucs.sim.model import Queue
    from ucs.sim.server import AMISession


class QueueActions(Handlers):
    """The queue actions."""

    def _queues(self, m: ActionMessage) -> list[Queue]:
        """The queues an action asks about: the one its ``Queue`` names, or all."""
        only = m.get("queue")
        return [q for q in self.sim.queues.values() if not only or q.name == only]

    def a_queueadd(self, s: AMISession, m: ActionMessage) -> bytes:
        queue, iface = m.get("queue"), m.get("interface")
        if not queue:
            return self.error(m, "'Queue' not specified.")
        if not iface:
            return self.error(m, "'Interface' not specified.")
        # manager_add_queue_member: sscanf("%30d"); no number or a negative one is 0, never an error
        penalty = max(_scan_int(m.get("penalty") or "") or 0, 0)
        self.sim.queue_add(
            queue,
            iface,
            m.get("membername") or "",
            penalty=penalty,
            paused=true_value(m.get("paused")),
            reason=m.get("reason") or "",
            state_interface=m.get("stateinterface") or "",
        )
        return self.ok(m, "Added interface to queue")

    def a_queueremove(self, s: AMISession, m: ActionMessage) -> bytes:
        queue, iface = m.get("queue"), m.get("interface")
        if not queue or not iface:
            return self.error(m, "Need 'Queue' and 'Interface' parameters.")
        self.sim.queue_remove(queue, iface)
        return self.ok(m, "Removed interface from queue")

    def a_queuepause(self, s: AMISession, m: ActionMessage) -> bytes:
        iface, paused = m.get("interface"), m.get("paused")
        if not iface:
            return self.error(m, "Need 'Interface' parameter.")
        if paused is None or paused == "":
            return self.error(m, "Need 'Paused' parameter.")
        p = true_value(paused)
        self.sim.queue_pause(iface, p, m.get("queue") or None, m.get("reason") or "")
        return self.ok(m, "Interface paused successfully" if p else "Interface unpaused successfully")

    def a_queuepenalty(self, s: AMISession, m: ActionMessage) -> bytes:
        """app_queue's ``manager_queue_member_penalty``: ``Queue`` optional (then
        every queue the interface is in); ``Penalty`` read as C's ``atoi`` does
        ("abc" is 0)."""
        iface, penalty = m.get("interface"), m.get("penalty")
        if not iface or not penalty:
            return self.error(m, "Need 'Interface' and 'Penalty' parameters.")
        self.sim.queue_penalty(iface, _atoi(penalty), m.get("queue") or None)
        return self.ok(m, "Interface penalty set successfully")

    def a_queuestatus(self, s: AMISession, m: ActionMessage) -> bytes:
        member = m.get("member")
        aid = self.aid_line(m)
        items: list[str] = []
        now = self.sim.now()
        for q in self._queues(m):
            items.append(
                f"Event: QueueParams\r\nQueue: {q.name}\r\nMax: 0\r\nStrategy: {q.strategy}\r\nCalls: {len(q.entries)}\r\n"
                f"Holdtime: {q.holdtime}\r\nTalkTime: {q.talktime}\r\nCompleted: {q.completed}\r\nAbandoned: {q.abandoned}\r\n"
                f"ServiceLevel: 0\r\nServicelevelPerf: 0.0\r\nServicelevelPerf2: 0.0\r\nWeight: 0\r\n{aid}\r\n"
            )
            for mem in q.members.values():
                if member and mem.iface != member and mem.name != member:
                    continue
                items.append(
                    f"Event: QueueMember\r\nQueue: {q.name}\r\nName: {mem.name}\r\nLocation: {mem.iface}\r\n"
                    f"StateInterface: {mem.state_iface}\r\nMembership: dynamic\r\nPenalty: {mem.penalty}\r\n"
                    f"CallsTaken: {mem.calls_taken}\r\nLastCall: {mem.last_call}\r\nLastPause: {mem.last_pause}\r\n"
                    f"LoginTime: {mem.login_time}\r\nInCall: {1 if mem.in_call else 0}\r\nStatus: {mem.status}\r\n"
                    f"Paused: {1 if mem.paused else 0}\r\nPausedReason: {mem.reason}\r\nWrapuptime: 0\r\n{aid}\r\n"
                )
            for pos, e in enumerate(q.entries, 1):
                c = e.chan
                items.append(
                    f"Event: QueueEntry\r\nQueue: {q.name}\r\nPosition: {pos}\r\nChannel: {c.name}\r\nUniqueid: {c.uniqueid}\r\n"
                    f"CallerIDNum: {c.cid_num or 'unknown'}\r\nCallerIDName: {c.cid_name or 'unknown'}\r\n"
                    f"ConnectedLineNum: {c.conn_num or 'unknown'}\r\nConnectedLineName: {c.conn_name or 'unknown'}\r\n"
                    f"Wait: {int(now - e.joined)}\r\nPriority: 0\r\n{aid}\r\n"
                )
        return self.event_list(m, "Queue status will follow", "QueueStatusComplete", items)

    def a_queuesummary(self, s: AMISession, m: ActionMessage) -> bytes:
        aid = self.aid_line(m)
        items: list[str] = []
        now = self.sim.now()
        for q in self._queues(m):
            logged = len(q.members)
            avail = sum(1 for mem in q.members.values() if not mem.paused and mem.status in (0, 1))
            longest = max((int(now - e.joined) for e in q.entries), default=0)
            items.append(
                f"Event: QueueSummary\r\nQueue: {q.name}\r\nLoggedIn: {logged}\r\nAvailable: {avail}\r\n"
                f"Callers: {len(q.entries)}\r\nHoldTime: {q.holdtime}\r\nTalkTime: {q.talktime}\r\n"
                f"LongestHoldTime: {longest}\r\n{aid}\r\n"
            )
        return self.event_list(m, "Queue summary will follow", "QueueSummaryComplete", items)


def _scan_int(text: str) -> int | None:
    """C's ``sscanf(text, "%d")``: optional blanks and sign, then digits up to the first
    other character; ``None`` when there are none."""
    match = re.match(r"\s*([+-]?\d+)", text)
    return int(match.group(1)) if match else None


def _atoi(text: str) -> int:
    """C's ``atoi``: as :func:`_scan_int`, 0 when there is no number."""
    return _scan_int(text) or 0
