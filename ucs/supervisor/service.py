"""The supervisor service: the queue wallboard, the statistics by interval and the
live pushes of the team view and the wallboard.

Fed by the bus only (``call.hangup``, ``agent.*``, ``queue.waiting``, every ``call.*``
for the pushes); it reads the PBX model (waiting callers), the agents service
(statuses) and the directory (who is in which queue).  What it counts:

* per queue, on ``call.hangup`` of a call that went through it (``Call.queue``):
  ``offered``; ``answered`` (an agent answered) with ``waittime`` (entering the
  queue → answered) and ``talktime`` (answered → end), ``answered_in_sl`` when the
  wait was at most ``[supervisor] service_level_seconds``; otherwise ``abandoned``
  with ``abandonwait``;
* per agent: ``answered`` and ``talktime`` of the queue calls their phone answered
  (not a colleague's consultation while the customer waited, unless it became theirs:
  :meth:`ucs.agents.service.Agents.consultation`), and the time in READY, AUX and ACW
  (``readytime``, ``auxtime``, ``acwtime``), split at the 15-minute boundaries
  (:mod:`ucs.supervisor.intervals`).

The rows are written to the store (table ``stats``, migration 3) every
``save_interval`` seconds and on stop, and today's are read back on start; a cluster's
owner writes them under its ownership's term (``start(fence=)``: a demoted owner's late rows
are refused, said once).  On a cluster's standby (issue 20) nothing is counted: its
wallboard shows the queues' figures of the day as the owner tells them through the stream
(``told_queue``), and its team view who monitors an agent as the owner's agent envelopes
say (``monitored_of`` on the owner; :mod:`ucs.cluster.mirror`).
Sessions that asked for the wallboard or the team view are pushed its changes,
coalesced for ``PUSH_DELAY`` seconds (well within the one second a wall screen may lag).
"""

from __future__ import annotations

import datetime
import hmac
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ucs import events as ev
from ucs.agents.stats import Days
from ucs.calls.call import Call
from ucs.config.callcenter import SupervisorConfig
from ucs.constants import AgentStatus, Role
from ucs.pbx.observer import PBXObserver
from ucs.error import InvalidDataInput, PermissionDenied
from ucs.store.base import Fence
from ucs.store.errors import Fenced
from ucs.supervisor.intervals import FIGURES, Intervals, rollup
from ucs.supervisor.team import agent_row, spies_of

PUSH_DELAY = 0.1
#: The longest span one export covers.
MAX_DAYS = 366

_TIME_FIGURE = {AgentStatus.READY: "readytime", AgentStatus.AUX: "auxtime", AgentStatus.ACW: "acwtime"}


def _avg(total: float, n: float) -> int:
    return int(round(total / n)) if n else 0


class ScopeRule(Protocol):
    """The scope rule (:mod:`ucs.api.scope`, given by the container: it is a layer above)."""

    def supervises(self, boss: Any, user: Any) -> bool: ...
    def supervised_queues(self, user: Any) -> set[int]: ...


class Supervision(PBXObserver):
    """Also an observer of the PBX model (last): who spies on whom (``spy_changed``)."""

    log = Logger()

    def __init__(self, directory: Any, agents: Any, tracker: Any, pbx: Any, bus: Any, store: Any,
                 clock: IReactorTime, config: SupervisorConfig, scope: ScopeRule, *, timezone: str = "UTC",
                 view_bus: Any = None, own_agents: Any = None) -> None:
        self._scope = scope
        #: Whose time this node counts: its own agents.  ``agents`` is what the views read, on a
        #: cluster's standby the owner's (issue 20): counting those would write over the owner's.
        self._own_agents = own_agents if own_agents is not None else agents
        #: What the pushes (team view, wallboard) follow: the bus, or with ``[cluster]`` the
        #: bus the bars hear (a standby's carries the owner's events: issue 20).  The
        #: statistics are counted from the bus itself: a standby never counts the owner's.
        self._view_bus = view_bus if view_bus is not None else bus
        self._directory = directory
        self._agents = agents
        self._tracker = tracker
        self._pbx = pbx
        self._bus = bus
        self._store = store
        self._clock = clock
        self.config = config
        self.days = Days(timezone)
        self.intervals = Intervals(self.days)
        #: Agents' status and since when it is counted: user id → (status, since).
        self._counting: dict[int, tuple[AgentStatus, float]] = {}
        self._board_sessions: dict[str, Any] = {}
        self._team_sessions: dict[str, Any] = {}
        self._board_due: Any = None
        self._team_due: Any = None
        self._team_changed: set[int] = set()
        self._save_call: Any = None
        #: The monitoring UCS asked for, by the supervisor's phone: (username, mode).
        self.requested: dict[str, tuple[str, str]] = {}
        self.running = False
        # -- issue 20, a cluster (set by the container; ``None`` without ``[cluster]``) --
        #: The owner's: an agent's monitoring changed (ChanSpy), for the standbys' team views.
        self.on_spies: Callable[[Any], Any] | None = None
        #: The owner's: a queue's figures of the day changed (queue, day, totals), for the
        #: standbys' wallboards.
        self.on_queue_figures: Callable[[str, str, dict[str, float]], Any] | None = None
        #: A standby's: each queue's figures of the day as the owner last told them (queue →
        #: (day, totals)); they replace what this node read from the store at start.
        self._told: dict[str, tuple[str, dict[str, float]]] = {}
        #: Phones Asterisk said were spied on, maybe still (``monitored_of`` looks no further).
        self._spied: set[str] = set()
        #: The term of the AMI link's ownership the rows are written under (a cluster's owner:
        #: :meth:`start`); ``None``: not fenced (a single node, a standby, which counts nothing).
        self.fence: Fence | None = None
        #: The store refused :attr:`fence` (another node owns the link): nothing more is
        #: written until :meth:`start` is given a term again.
        self.fenced: Fenced | None = None

    # -- life --------------------------------------------------------------------------------

    async def start(self, *, fence: Fence | None = None) -> None:
        """Read today's rows and count from them.

        ``fence`` (issue 20, a cluster node that took the AMI link over): the term its ownership
        began with; every row is written under it, and refused once another node took the link
        over -- a demoted owner's last save cannot replace rows the new owner read and counts on
        from (:class:`ucs.store.base.Fence`)."""
        self._told.clear()  # (re)started from the store: a new owner's figures, or a standby's
        self.fence, self.fenced = fence, None
        # Only the store's rows: what this node counted before (an owner demoted, its last save
        # refused) is not the truth any more.
        self.intervals = Intervals(self.days)
        today = self.days.day(self._clock.seconds())
        for kind in FIGURES:
            rows = await self._store.stats_read(kind, today, today)
            self.intervals.load((kind, s, d, slot, f) for s, d, slot, f in rows)
        now = self._clock.seconds()
        for agent in self._own_agents.all():
            self._counting[agent.user.id] = (agent.status, max(now, agent.since))
        self._bus.subscribe_all(self._on_event)
        self._view_bus.subscribe_all(self.views_changed)
        self.running = True
        self._save_call = self._clock.callLater(self.config.save_interval, self._periodic)

    async def stop(self) -> None:
        self.running = False
        self._bus.unsubscribe_all(self._on_event)
        self._view_bus.unsubscribe_all(self.views_changed)
        for call in (self._save_call, self._board_due, self._team_due):
            if call is not None and call.active():
                call.cancel()
        self._save_call = self._board_due = self._team_due = None
        await self.save()

    def _periodic(self) -> None:
        self._save_call = None
        d = self._spawn_save()
        if self.running:
            self._save_call = self._clock.callLater(self.config.save_interval, self._periodic)
        return d

    def _spawn_save(self) -> Any:
        from twisted.internet.defer import Deferred

        d = Deferred.fromCoroutine(self.save())
        d.addErrback(lambda f: self.log.failure("supervisor: statistics not saved", f))
        return d

    async def save(self) -> None:
        """Count the agents' time up to now and write the changed intervals."""
        now = self._clock.seconds()
        for uid, (status, since) in list(self._counting.items()):
            self._count_time(uid, status, since, now)
            self._counting[uid] = (status, now)
        rows = self.intervals.dirty()
        fence = self.fence
        if rows and self.fenced is None:
            try:
                if fence is None:
                    await self._store.stats_write(rows)
                else:
                    await self._store.stats_write(rows, fence=fence)
            except Fenced as e:
                if fence is self.fence and self.fenced is None:  # not started again meanwhile
                    self.fenced = e
                    self.log.warn("supervisor: this node no longer owns the AMI link ({why}): {n} interval "
                                  "rows not written, nor any more until it owns the link again -- the new "
                                  "owner's are kept", why=e, n=len(rows))
        yesterday = (datetime.date.fromisoformat(self.days.day(now)) - datetime.timedelta(days=1)).isoformat()
        self.intervals.forget_before(yesterday)

    # -- counting ------------------------------------------------------------------------------

    def _count_time(self, uid: int, status: AgentStatus, since: float, until: float) -> None:
        figure = _TIME_FIGURE.get(status)
        if figure is not None and until > since:
            self.intervals.add_span("agent", str(uid), figure, since, until)

    def _on_event(self, name: str, subject: Any, args: dict[str, Any]) -> None:
        """The statistics: agents' time by status, queues' calls."""
        now = self._clock.seconds()
        if name.startswith("agent."):
            uid = getattr(getattr(subject, "user", None), "id", None)
            if uid is None:
                return
            if name == ev.EVENT_AGENT_STATUS or name == ev.EVENT_AGENT_LOGIN:
                previous = self._counting.get(uid)
                if previous is not None:
                    self._count_time(uid, previous[0], previous[1], now)
                self._counting[uid] = (subject.status, now)
            elif name == ev.EVENT_AGENT_LOGOUT:
                previous = self._counting.pop(uid, None)
                if previous is not None:
                    self._count_time(uid, previous[0], previous[1], now)
        elif name == ev.EVENT_CALL_HANGUP and isinstance(subject, Call):
            self._count_call(subject, now)

    def views_changed(self, name: str, subject: Any, args: dict[str, Any]) -> None:
        """The pushes: whose team row and which wallboards change."""
        if name.startswith("agent."):
            uid = getattr(getattr(subject, "user", None), "id", None)
            if uid is None:
                return
            self._team_changed.add(uid)
            self._schedule()
        elif name.startswith("call.") and isinstance(subject, Call):
            for leg in subject.legs.values():
                agent = self._agents.by_device(leg.device) if leg.device else None
                if agent is not None:
                    self._team_changed.add(agent.user.id)
            self._schedule()
        elif name.startswith("queue."):
            self._schedule()

    def _count_call(self, call: Call, now: float) -> None:
        if not call.queue:
            return
        q = call.queue
        entered = next((s.start for s in call.journey if s.device == f"Queue:{q}"), call.created)
        at = call.disconnected or now
        self.intervals.add("queue", q, "offered", 1, at)
        answered = call.connected  # an agent (or a transfer target) answered it
        if answered is not None:
            wait = max(0.0, answered - entered)
            self.intervals.add("queue", q, "answered", 1, at)
            self.intervals.add("queue", q, "waittime", wait, at)
            self.intervals.add("queue", q, "talktime", max(0.0, at - answered), at)
            if wait <= self.config.service_level_seconds:
                self.intervals.add("queue", q, "answered_in_sl", 1, at)
        else:
            self.intervals.add("queue", q, "abandoned", 1, at)
            self.intervals.add("queue", q, "abandonwait", max(0.0, at - entered), at)
        if self.on_queue_figures is not None:
            today = self.days.day(now)
            self.on_queue_figures(q, today, self.intervals.day_total("queue", q, today))
        for leg in call.legs.values():
            agent = self._agents.by_device(leg.device) if leg.device else None
            if agent is not None and leg.answered is not None and not self._own_agents.consultation(call, leg):
                end = leg.ended or at
                self.intervals.add("agent", str(agent.user.id), "answered", 1, at)
                self.intervals.add("agent", str(agent.user.id), "talktime", max(0.0, end - leg.answered), at)

    # -- monitoring --------------------------------------------------------------------------

    def monitoring(self, device: str, username: str, mode: str) -> None:
        """UCS rang ``device`` into ChanSpy for ``username`` (told in ``monitored`` once Asterisk spies)."""
        self.requested[device] = (username, mode)

    def spy_changed(self, spyee: Any, spyer: Any, started: bool) -> None:
        if spyee.device:
            self._spied.add(spyee.device)
        agent = self._agents.by_device(spyee.device) if spyee.device else None
        if agent is not None:
            self._team_changed.add(agent.user.id)
            self._schedule()
            if self.on_spies is not None:
                self.on_spies(agent)

    def monitored_of(self, device: str) -> list[dict[str, Any]]:
        """Who monitors the phone ``device`` now, as this node's PBX model says (the owner's
        team view; its agent envelopes carry it to the standbys: issue 20).  Each agent
        envelope asks: only the phones spied on are looked for among the channels."""
        if device not in self._spied:
            return []
        found = spies_of(self._pbx, device, self.requested)
        if not found:
            self._spied.discard(device)
        return found

    # -- what a standby is told (issue 20) ----------------------------------------------------

    def told_agent(self, user_id: int) -> None:
        """The owner's agent changed without an agent event (its figures, who monitors it):
        its team row is pushed again."""
        self._team_changed.add(user_id)
        self._schedule()

    def told_queue(self, queue: str, day: str, totals: dict[str, float]) -> None:
        """The owner's figures of the day of ``queue``: the wallboard shows them."""
        self._told[queue] = (day, dict(totals))
        self._schedule()

    def _day_total(self, queue: str, day: str) -> dict[str, float]:
        told = self._told.get(queue)
        if told is not None and told[0] == day:
            return dict(told[1])
        return self.intervals.day_total("queue", queue, day)

    # -- the wallboard -------------------------------------------------------------------------

    def queues_for(self, session: Any) -> list[Any]:
        """The directory queues a session's wallboard shows: every one for a superuser or
        the token, else those the supervisor supervises."""
        user = getattr(session, "user", None)
        queues = sorted(self._directory.queues.values(), key=lambda q: q.id)
        if session.data.get("wallboard_token") or (user is not None and user.superuser):
            return queues
        if user is None:
            return []
        mine = self._scope.supervised_queues(user)
        return [q for q in queues if q.id in mine]

    def queue_figures(self, queue: Any) -> dict[str, Any]:
        now = self._clock.seconds()
        today = self.days.day(now)
        name = queue.asterisk_name
        t = self._day_total(name, today)
        pq = self._pbx.queues.get(name)
        callers = list(pq.callers.values()) if pq is not None else []
        oldest = min((c.joined for c in callers), default=None)
        counts = {"ready": 0, "on_call": 0, "acw": 0, "not_ready": 0}
        for agent in self._agents.all():
            if queue.id not in agent.user.queues:
                continue
            if agent.busy:
                counts["on_call"] += 1
            elif agent.status == AgentStatus.READY:
                counts["ready"] += 1
            elif agent.status == AgentStatus.ACW:
                counts["acw"] += 1
            elif agent.status == AgentStatus.AUX:
                counts["not_ready"] += 1
        answered, abandoned = int(t.get("answered", 0)), int(t.get("abandoned", 0))
        handled = answered + abandoned
        return {
            "queue_id": queue.id, "name": queue.name, "asterisk_name": name,
            "waiting": len(callers), "longest_since": oldest,
            "longest_wait": int(now - oldest) if oldest is not None else 0,
            **counts,
            "answered": answered, "abandoned": abandoned,
            "service_level": round(100.0 * t.get("answered_in_sl", 0) / handled, 1) if handled else None,
            "service_level_seconds": self.config.service_level_seconds,
            "average_handle": _avg(t.get("talktime", 0), answered),
            "average_wait": _avg(t.get("waittime", 0), answered),
        }

    def board(self, session: Any) -> dict[str, Any]:
        return {"now": self._clock.seconds(), "day": self.days.day(self._clock.seconds()),
                "queues": [self.queue_figures(q) for q in self.queues_for(session)]}

    def open_board(self, session: Any, token: str | None) -> dict[str, Any]:
        """Check the session may see the wallboard (a supervisor, or the token) and push it its changes."""
        if token:
            secret = self.config.wallboard_token
            if not secret or not hmac.compare_digest(secret.encode(), token.encode()):
                raise PermissionDenied("wallboard: the token is not the configured [supervisor] wallboard_token")
            session.data["wallboard_token"] = True
        elif session.role < Role.SUPERVISOR:
            raise PermissionDenied("wallboard: log in as a supervisor, or give the wallboard token")
        self._board_sessions[session.sid] = session
        return self.board(session)

    # -- the team view ------------------------------------------------------------------------

    def team(self, session: Any) -> list[dict[str, Any]]:
        me = session.user
        now = self._clock.seconds()
        users = [u for u in sorted(self._directory.users.values(), key=lambda u: u.id)
                 if u.id != me.id and (me.superuser or self._scope.supervises(me, u)) and u.queues]
        return [agent_row(u, self._agents.get(u.id), self._tracker, now, self._pbx, self.requested) for u in users]

    def open_team(self, session: Any) -> list[dict[str, Any]]:
        self._team_sessions[session.sid] = session
        return self.team(session)

    # -- pushes --------------------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._board_sessions and self._board_due is None:
            self._board_due = self._clock.callLater(PUSH_DELAY, self._push_board)
        if self._team_sessions and self._team_changed and self._team_due is None:
            self._team_due = self._clock.callLater(PUSH_DELAY, self._push_team)

    def _live(self, sessions: dict[str, Any]) -> list[Any]:
        for sid in [sid for sid, s in sessions.items() if s.closed or s.push is None]:
            del sessions[sid]
        return list(sessions.values())

    def _push_board(self) -> None:
        self._board_due = None
        boards: dict[tuple[int, ...], dict[str, Any]] = {}  # one board per set of queues, for every screen
        for session in self._live(self._board_sessions):
            if not session.data.get("wallboard_token") and session.role < Role.SUPERVISOR:
                continue  # logged out (or in as someone else) since
            queues = self.queues_for(session)
            key = tuple(q.id for q in queues)
            if key not in boards:
                now = self._clock.seconds()
                boards[key] = {"now": now, "day": self.days.day(now), "queues": [self.queue_figures(q) for q in queues]}
            session.push("wallboard", boards[key])

    def _push_team(self) -> None:
        self._team_due = None
        changed, self._team_changed = self._team_changed, set()
        now = self._clock.seconds()
        rows: dict[int, dict[str, Any] | None] = {}
        for session in self._live(self._team_sessions):
            me = session.user
            if me is None or session.role < Role.SUPERVISOR:
                continue
            for uid in sorted(changed):
                if uid not in rows:
                    user = self._directory.users.get(uid)
                    rows[uid] = (agent_row(user, self._agents.get(uid), self._tracker, now, self._pbx, self.requested)
                                if user is not None else None)
                row = rows[uid]
                user = self._directory.users.get(uid)
                if row is None or user is None or uid == me.id or not (me.superuser or self._scope.supervises(me, user)):
                    continue
                session.push("team.agent", row)

    # -- statistics export --------------------------------------------------------------------

    async def export(self, session: Any, kind: str, first: str, last: str, interval: str) -> dict[str, Any]:
        """Rows of ``kind`` (``agent`` or ``queue``) from ``first`` to ``last`` by ``interval``,
        only the subjects in the session's scope; today's as counted so far."""
        if kind not in FIGURES:
            raise InvalidDataInput({"kind": f"{kind!r}: give agent or queue"})
        for field, value in (("from", first), ("to", last)):
            try:
                datetime.date.fromisoformat(value)
            except ValueError:
                raise InvalidDataInput({field: f"{value!r} is not a date; give YYYY-MM-DD"}) from None
        if datetime.date.fromisoformat(last) < datetime.date.fromisoformat(first):
            raise InvalidDataInput({"to": f"{last} is before {first}"})
        if (datetime.date.fromisoformat(last) - datetime.date.fromisoformat(first)).days > MAX_DAYS:
            raise InvalidDataInput({"to": f"at most {MAX_DAYS} days at a time"})
        if interval not in ("15", "30", "60", "day"):
            raise InvalidDataInput({"interval": f"{interval!r}: give 15, 30, 60 or day"})
        await self.save()  # today's figures up to now, in the store
        raw = await self._store.stats_read(kind, first, last)
        allowed = self._allowed_subjects(session, kind)
        raw = [r for r in raw if allowed is None or r[0] in allowed]
        columns = FIGURES[kind]
        names = self._names(kind)
        rows = []
        for subject, day, start, figures in rollup(raw, interval):
            rows.append({"day": day, "interval": start, kind: subject, "name": names.get(subject, ""),
                         **{c: round(figures.get(c, 0), 1) if c.endswith("time") or c.endswith("wait")
                            else int(figures.get(c, 0)) for c in columns}})
        header = ["day", "interval", kind, "name", *columns]
        lines = [",".join(header)] + [",".join(_csv(r[h]) for h in header) for r in rows]
        return {"columns": header, "rows": rows, "csv": "\r\n".join(lines) + "\r\n"}

    def _allowed_subjects(self, session: Any, kind: str) -> set[str] | None:
        me = session.user
        if me is None or me.superuser:
            return None
        if kind == "queue":
            mine = self._scope.supervised_queues(me)
            return {q.asterisk_name for q in self._directory.queues.values() if q.id in mine}
        return {str(u.id) for u in self._directory.users.values() if self._scope.supervises(me, u)}

    def _names(self, kind: str) -> dict[str, str]:
        if kind == "queue":
            return {q.asterisk_name: q.name for q in self._directory.queues.values()}
        return {str(u.id): u.username for u in self._directory.users.values()}


def _csv(value: Any) -> str:
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@"):  # no formula in a spreadsheet
        text = "'" + text
    if any(c in text for c in ',"\r\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text
