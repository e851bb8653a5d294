"""Running the center: who is logged in, a forced logout, the AMI link, and what a
directory change does to the people working (issue 19).

API methods, superusers only (the registry refuses anyone else, on every entry
point):

- ``ops.sessions``: every user logged in on this UCS -- through an agent bar or
  the Interaction Processor, or working as an agent whose bar is away (a bar
  that did not come back yet, an agent restored after a restart) -- with their
  role, agent status, phone, since when, and each session's kind, address,
  state and node (the UCS process it is connected to); in a cluster every
  node's (issue 20, :mod:`ucs.cluster.sessync`), and the nodes that did not
  answer;
- ``ops.logout(user_id)``: logs a user out for good, audited first (kind
  ``sessions``, action ``logout``): every session ends (each bar is told why and
  goes back to the login form) and the agent is logged out (QueueRemove in every
  queue, OFFLINE recorded).  A call in progress on the phone goes on: Asterisk
  keeps it, the agent just stops getting queue calls;
- ``ops.ami``: the AMI link's state (``up``, ``connecting``, ``down``), since
  when, the address, Asterisk's version (``CoreSettings``, asked once per
  link), why the last login failed, when and why the link was last lost, and the
  last resync's time and result (``ok``, or ``incomplete`` naming the lists that
  could not be read).

The plugins have theirs (``plugins.list/load/unload``, :mod:`ucs.plugins.api`).

Live changes (:meth:`Operations.start` subscribes to the directory's events;
the agents service does its part, :mod:`ucs.agents.reconcile`): a user deleted
is logged out like ``ops.logout`` (reason ``user deleted``); a line deleted
under a working agent unpairs it -- the agents service logs the agent out of
its queues (reason ``line deleted``) and here every session on that line goes
back to choosing a phone (the bar says why and asks for one).  A password
changed by an administrator ends nothing: the agent may be on a call, and
remembered logins are revoked by the change already (:mod:`ucs.api.remember`);
to throw someone out, use ``ops.logout``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ucs.api import logouts
from ucs.api.registry import Param, Registry
from ucs.api.session import Session, SessionManager, role_of
from ucs.constants import Role, SessionState
from ucs.directory.directory import Directory
from ucs.error import InvalidDataInput, NotFound
from ucs.events import EVENT_CONFIG_CHANGE, EVENT_USER_CHANGE

#: Why a session was ended (``session.closed``'s reason; the hub words the message).
USER_DELETED = "user deleted"
FORCED = "logged out by an administrator"
_PEOPLE = logouts.PEOPLE


class AgentsView(Protocol):
    """What operations need of the agents service (:class:`ucs.agents.service.Agents`)."""

    def get(self, user_id: int) -> Any: ...
    def all(self) -> list[Any]: ...
    async def logout(self, user_id: int, reason: str = "") -> None: ...


class AMIView(Protocol):
    """The AMI client (:class:`ucs.ami.client.AMIClient`)."""

    stateSince: float
    lastFailure: Any

    @property
    def state(self) -> str: ...
    @property
    def protocol(self) -> Any: ...

    def sendAction(self, action: str, headers: Any = ..., *, timeout: float | None = None) -> Deferred[Any]: ...


class AuditLog(Protocol):
    def audit_write(self, entries: list[dict[str, Any]]) -> Deferred[None]: ...


class Operations:
    log = Logger()

    def __init__(self, sessions: SessionManager, agents: AgentsView, directory: Directory, audit: AuditLog,
                 ami: AMIView, link: Any, clock: Any, *, node: str, address: Any = None) -> None:
        self._sessions = sessions
        self._agents = agents
        self._directory = directory
        self._audit = audit
        self._ami = ami
        self._link = link
        self._clock = clock
        #: This UCS process (``ucs:<host>:<pid>``, its writer's lock in the store).
        self.node = node
        self._address = address
        self._version: str | None = None
        self._version_of: Any = None  # the AMI connection the version was asked on
        self._bus: Any = None
        #: Issue 20, set by a cluster node: ``peers(me)`` fires with every other node's
        #: :meth:`who` (``{node: {"role", "users"}}``) and the nodes that did not answer.
        self.peers: Callable[[int | None], Deferred[tuple[dict[str, dict[str, Any]], list[str]]]] | None = None
        #: This node's role in a cluster (``None``: one UCS alone).
        self.role: Callable[[], str] | None = None

    # -- live changes ---------------------------------------------------------------------

    def start(self, bus: Any) -> None:
        """Follow the directory's changes (the container calls this once the agents run)."""
        if self._bus is None:
            self._bus = bus
            bus.subscribe(EVENT_USER_CHANGE, self._user_changed)
            bus.subscribe(EVENT_CONFIG_CHANGE, self._config_changed)

    def stop(self) -> None:
        if self._bus is not None:
            self._bus.unsubscribe(EVENT_USER_CHANGE, self._user_changed)
            self._bus.unsubscribe(EVENT_CONFIG_CHANGE, self._config_changed)
            self._bus = None

    def _user_changed(self, user: Any, args: dict[str, Any]) -> None:
        if args.get("action") == "delete":
            # The agents service logs the agent out (its queues, OFFLINE); the sessions end here.
            # Every node hears of the deletion itself (the directory's sync): not announced.
            ended = self._end_sessions(user.id, USER_DELETED, announce=False)
            if ended:
                self.log.info("user {user} deleted: {n} session(s) ended", user=user.username, n=ended)

    def _config_changed(self, entity: Any, args: dict[str, Any]) -> None:
        if args.get("kind") != "lines" or args.get("action") != "delete":
            return
        # The agents service logs its agent out of the queues ("line deleted"); every
        # session paired with the line goes back to choosing a phone, so the bar asks
        # for another (its state is refused outside READY: it says why and asks).
        for session in list(self._sessions):
            line = session.line
            if line is not None and (line is entity or line.id == getattr(entity, "id", None)):
                session.line, session.state = None, SessionState.IDENTIFY
                self.log.info("line {device} deleted: {user}'s session back to choosing a phone",
                              device=line.device, user=session.user.username if session.user else "-")

    def _end_sessions(self, user_id: int, reason: str, *, announce: bool = True) -> int:
        return logouts.end(self._sessions, user_id, logouts.FORCED, reason, announce=announce)

    # -- who is logged in ---------------------------------------------------------------------

    def who(self, me: int | None = None) -> list[dict[str, Any]]:
        """One row per user logged in (a session, or an agent at work), by user name;
        ``you`` marks the row of user ``me`` (the caller)."""
        rows: dict[int, dict[str, Any]] = {}

        def row(user: Any) -> dict[str, Any]:
            found = rows.get(user.id)
            if found is None:
                found = rows[user.id] = {
                    "user_id": user.id, "username": user.username, "displayname": user.name,
                    "role": role_of(user).name.lower(), "status": None, "reason": "", "status_since": None,
                    "line": None, "since": None, "sessions": [], "you": user.id == me}
            return found

        for session in self._sessions:
            if session.user is None or session.kind not in _PEOPLE:
                continue
            r = row(session.user)
            since = session.data.get("logged_in", session.created)
            r["sessions"].append({"kind": session.kind, "address": session.address, "state": session.state.value,
                                  "node": self.node, "since": since,
                                  "line": session.line.device if session.line is not None else None})
            r["since"] = since if r["since"] is None else min(r["since"], since)
        for agent in self._agents.all():
            r = row(agent.user)
            r["status"], r["reason"], r["status_since"] = agent.status.name, agent.reason or "", agent.since
            r["line"] = {"id": agent.line.id, "device": agent.line.device, "name": agent.line.name}
            r["since"] = agent.logged_in if r["since"] is None else min(r["since"], agent.logged_in)
        for r in rows.values():
            if r["line"] is None:
                paired = next((s["line"] for s in r["sessions"] if s["line"]), None)
                line = self._directory.line_by_device(paired) if paired else None
                if line is not None:
                    r["line"] = {"id": line.id, "device": line.device, "name": line.name}
        return sorted(rows.values(), key=lambda r: r["username"].lower())

    async def everyone(self, me: int | None = None) -> dict[str, Any]:
        """``ops.sessions``: :meth:`who` of every node -- one UCS alone: this one; a cluster
        (issue 20): each node answers for its own sessions, the owner for the agents, and a
        node that did not answer in time is named in ``missing``."""
        nodes = [{"node": self.node, "role": self.role() if self.role is not None else None}]
        if self.peers is None:
            return {"users": self.who(me), "nodes": nodes, "missing": []}
        answers, missing = await self.peers(me)
        nodes += [{"node": node, "role": answer.get("role")} for node, answer in sorted(answers.items())]
        return {"users": merge([self.who(me), *(a.get("users") or [] for a in answers.values())], me),
                "nodes": nodes, "missing": sorted(missing)}

    async def _elsewhere(self, user_id: int) -> bool:
        """Has ``user_id`` a session on another node (a cluster)?"""
        if self.peers is None:
            return False
        answers, _ = await self.peers(None)
        return any(r.get("user_id") == user_id and r.get("sessions")
                   for a in answers.values() for r in a.get("users") or [])

    async def force_logout(self, actor: str, user_id: int) -> dict[str, Any]:
        """Log ``user_id`` out for good: audited first (an administrator's act never goes
        unrecorded; if the audit cannot be written nothing is done), then every session
        ends and the agent, if working, is logged out of its queues."""
        user = self._directory.users.get(user_id)
        if user is None:
            raise NotFound(f"user {user_id} does not exist")
        agent = self._agents.get(user_id)
        sessions = [s for s in self._sessions.of_user(user_id) if s.kind in _PEOPLE]
        if agent is None and not sessions and not await self._elsewhere(user_id):
            raise NotFound(f"{user.username} is not logged in; nothing to log out")
        if actor == user.username:
            raise InvalidDataInput({"user_id": f"{user_id} is you; log yourself out with logout"})
        before = {"username": user.username, "sessions": len(sessions),
                  "status": agent.status.name if agent is not None else None,
                  "line": agent.line.device if agent is not None else None}
        await self._audit.audit_write([{"actor": actor, "source": "api", "kind": "sessions", "action": "logout",
                                        "entity_id": str(user_id), "before": before, "after": None}])
        ended = self._end_sessions(user_id, FORCED)
        if self._agents.get(user_id) is not None:
            try:
                await self._agents.logout(user_id, FORCED)
            except NotFound:
                pass  # logged out meanwhile (by the agent, a deletion): that is what was asked
        self.log.info("{actor} logged {user} out ({n} session(s), agent: {agent})", actor=actor, user=user.username,
                      n=ended, agent=before["status"] or "no")
        return {"user_id": user_id, "username": user.username, "sessions": ended, "agent": agent is not None}

    # -- the AMI link ----------------------------------------------------------------------------

    async def ami_state(self) -> dict[str, Any]:
        ami = self._ami
        protocol = ami.protocol
        if ami.state == "up" and protocol is not None and protocol is not self._version_of:
            try:
                msg = await ami.sendAction("CoreSettings", timeout=5)
                self._version = str(msg.get("AsteriskVersion") or "") or None
                self._version_of = protocol
            except Exception as e:
                self.log.info("ops.ami: CoreSettings failed: {why}", why=str(e) or repr(e))
        failure = ami.lastFailure
        address = None
        if self._address is not None:
            host, port = self._address()
            address = f"{host}:{port}"
        return {
            "state": ami.state, "since": ami.stateSince, "address": address, "version": self._version,
            "last_failure": failure.getErrorMessage() if failure is not None else None,
            "resyncs": getattr(self._link, "resyncs", 0), "events": getattr(self._link, "events", 0),
            "last_resync": getattr(self._link, "last_resync", None),
            "last_lost": getattr(self._link, "last_lost", None), "node": self.node,
        }


def merge(answers: list[list[dict[str, Any]]], me: int | None) -> list[dict[str, Any]]:
    """The nodes' :meth:`Operations.who` rows as one row per user: the sessions of every
    node, the agent's status and phone from the node whose agents run it (the owner)."""
    rows: dict[int, dict[str, Any]] = {}
    for answer in answers:
        for r in answer:
            found = rows.get(r["user_id"])
            if found is None:
                rows[r["user_id"]] = {**r, "sessions": list(r["sessions"]), "you": r["user_id"] == me}
                continue
            found["sessions"] += r["sessions"]
            if r.get("status") is not None:  # the agent's node: its status and phone win
                for key in ("status", "reason", "status_since", "line"):
                    found[key] = r.get(key)
            elif found.get("line") is None:
                found["line"] = r.get("line")
            if r.get("since") is not None:
                found["since"] = r["since"] if found.get("since") is None else min(found["since"], r["since"])
    for r in rows.values():
        r["sessions"].sort(key=lambda s: (str(s.get("node")), s.get("since") or 0))
    return sorted(rows.values(), key=lambda r: str(r["username"]).lower())


def _positive(v: int) -> int:
    if v < 1:
        raise ValueError(f"{v} is not a user id; give a positive integer")
    return v


def register(registry: Registry, ops: Operations) -> None:
    async def sessions(session: Session) -> dict[str, Any]:
        return await ops.everyone(session.user_id)

    async def logout(session: Session, user_id: int) -> dict[str, Any]:
        actor = session.user.username if session.user is not None else "anonymous"
        return await ops.force_logout(actor, user_id)

    async def ami(session: Session) -> dict[str, Any]:
        return await ops.ami_state()

    registry.add("ops.sessions", sessions, role=Role.SUPERUSER,
                 doc="Who is logged in on every node: user, role, agent status, phone, since when, sessions and "
                     "their node; the nodes that answered, and those that did not.")
    registry.add("ops.logout", logout, [Param("user_id", int, check=_positive, doc="the user's id")],
                 role=Role.SUPERUSER,
                 doc="Log a user out for good (audited): sessions ended with the reason, agent out of its queues.")
    registry.add("ops.ami", ami, role=Role.SUPERUSER,
                 doc="The AMI link: state, since when, Asterisk's version, the last resync's time and result.")
