"""A user's sessions across the nodes (issue 20): logouts reach every node, and
``ops.sessions`` hears every node.

**Logouts.** A logout, an administrator's forced logout or a supervisor's
``agents.logout`` ends the user's sessions on the node it is made on
(:func:`ucs.api.logouts.end`), which then says so on
``ucs.<domain>.sessions.ended`` -- ``{"v": 1, "node", "user_id", "how",
"reason", "id", "at"}``, plain NATS.  Every other node ends that user's sessions the same
way (its bars get the message one UCS gives: "logged out in another window",
"You were logged out by an administrator.", back to choosing a phone; a login
closes the user's tabs with ``autologout``), and its
stored rows go with them (:mod:`ucs.api.stored_sessions`).  The logout is also
written to the store (:mod:`ucs.api.stored_logouts`): a node away from NATS
then, which misses the notice, reads it at its next sessions heartbeat (or when
its link comes back) and carries it out on its sessions logged in before it --
once, by the logout's ``id``, whichever way it arrives first.

**Who is logged in.** ``ops.sessions`` on any node asks every node on
``ucs.<domain>.sessions.who`` (one publish with a reply inbox; each node
answers for its own sessions, the owner also for the agents) and gathers the
answers until every node it expects has answered or ``[cluster]
request_timeout`` has passed.  The nodes expected are those whose sessions
heartbeat in the store is fresh (:meth:`ucs.api.stored_sessions.StoredSessions.live_nodes`):
one that does not answer in time is named in the reply's ``missing``.

Why ask the nodes rather than read the sessions table: the table holds only
what a resume needs of the agent bars logged in (no Interaction Processor
clients, no addresses, no bars not logged in yet), and keeps a dead node's rows
until the owner expires them -- it would list people as connected to a node
that is gone, and could not tell a silent node from one with nobody on it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from ucs.cluster.natslink import Names, NatsLink, read_notice

log = Logger(namespace="ucs.cluster")

VERSION = 1
HOWS = ("logout", "forced", "unpaired", "elsewhere")
#: What a logout notice and a sessions request must be (said when one is not).
ENDED = (f'{{"v": {VERSION}, "node": "...", "user_id": an integer, "how": one of {", ".join(HOWS)}, '
         f'"reason": a string or null, "id": a string (optional), "at": a number (optional)}}')
WHO = f'{{"v": {VERSION}, "node": "...", "me": a user id or null}}, with a reply subject'
ANSWER = f'{{"v": {VERSION}, "node": "...", "role": "...", "users": [...]}}'


def subjects(names: Names) -> tuple[str, str]:
    """The logout notices' subject and the who-is-logged-in requests'."""
    return f"ucs.{names.slug}.sessions.ended", f"ucs.{names.slug}.sessions.who"


def _check_ended(notice: dict[str, Any]) -> None:
    user_id, how, reason = notice["user_id"], notice["how"], notice.get("reason") or ""
    if not isinstance(user_id, int) or how not in HOWS or not isinstance(reason, str):
        raise ValueError(f"user_id {user_id!r}, how {how!r}, reason {reason!r}")
    lid, at = notice.get("id"), notice.get("at")
    if (lid is not None and not isinstance(lid, str)) or (at is not None and not isinstance(at, (int, float))):
        raise ValueError(f"id {lid!r}, at {at!r}")


def _check_who(request: dict[str, Any]) -> None:
    me = request.get("me")
    if me is not None and not isinstance(me, int):
        raise ValueError(f"me {me!r}")


def _check_answer(answer: dict[str, Any]) -> None:
    node, users = answer["node"], answer["users"]
    if not isinstance(node, str) or not isinstance(users, list):
        raise ValueError(f"node {node!r}, users of type {type(users).__name__}")


class LogoutsLike(Protocol):
    """The node's :class:`ucs.api.stored_logouts.StoredLogouts`."""

    told: list[Callable[[dict[str, Any]], None]]

    def heard(self, notice: dict[str, Any]) -> int: ...


class SessionSync:
    """One node's part.  ``logouts`` tells it this node's logouts (``told``) and carries
    out another node's (``heard``), ``who(me)`` lists this node's users (``ops.sessions``'
    rows), ``role()`` says what this node is."""

    def __init__(self, link: NatsLink, names: Names, node: str, logouts: LogoutsLike,
                 who: Callable[[int | None], list[dict[str, Any]]], role: Callable[[], str],
                 timeout: float) -> None:
        self.link = link
        self.names = names
        self.node = node
        self._logouts = logouts
        self._who = who
        self._role = role
        self.timeout = timeout
        self.ended_subject, self.who_subject = subjects(names)
        self._subs: list[Any] = []
        #: Logouts carried out for other nodes (for tests and /health).
        self.applied = 0

    def start(self) -> Deferred[None]:
        """Tell the others this node's logouts and hear theirs; fires once subscribed."""
        ended, who = self.link.bridge.callback(self._heard_ended), self.link.bridge.callback(self._heard_who)
        nc = self.link.nc

        async def subscribe() -> list[Any]:
            subs = [await nc.subscribe(self.ended_subject, cb=ended), await nc.subscribe(self.who_subject, cb=who)]
            await nc.flush()
            return subs

        def subscribed(subs: list[Any]) -> None:
            self._subs = subs
            self._logouts.told.append(self._local)

        return self.link.bridge.run(subscribe).addCallback(subscribed)

    def stop(self) -> Deferred[None]:
        if self._local in self._logouts.told:
            self._logouts.told.remove(self._local)
        subs, self._subs = self._subs, []

        async def unsubscribe() -> None:
            for sub in subs:
                try:
                    await sub.unsubscribe()
                except Exception as e:  # NATS closed already: the subscription went with it
                    log.debug("cluster: unsubscribing the sessions' subjects: {e}", e=e)

        if self.link.bridge.loop.is_closed():
            return succeed(None)  # the node stopped: its loop, and the subscriptions, are gone
        return self.link.bridge.run(unsubscribe)

    # --- logouts ----------------------------------------------------------------------------

    def _local(self, logout: dict[str, Any]) -> None:
        user_id = logout["user_id"]
        data = json.dumps({"v": VERSION, "node": self.node, "user_id": user_id, "how": logout["how"],
                           "reason": logout["reason"], "id": logout["id"], "at": logout["at"]}).encode()
        nc = self.link.nc
        if nc is None or not nc.is_connected or self.link.bridge.loop.is_closed():
            log.warn("cluster: the logout of user {user} was not told to the other nodes: NATS is away; they "
                     "read it from the store at their next sessions heartbeat", user=user_id)
            return
        d = self.link.bridge.run(nc.publish, self.ended_subject, data)
        d.addErrback(lambda f: log.warn("cluster: the logout of user {user} was not told to the other nodes: {e}",
                                        user=user_id, e=f.getErrorMessage()))

    def _heard_ended(self, msg: Any) -> None:
        notice = read_notice(msg.data, VERSION, self.node, what="a logout notice", accepted=ENDED,
                             check=_check_ended)
        if notice is None:
            return
        user_id, how = notice["user_id"], notice["how"]
        self.applied += 1
        n = self._logouts.heard(notice)
        if n:
            log.info("cluster: user {user} logged out on node {node} ({how}): {n} session(s) here ended",
                     user=user_id, node=notice.get("node"), how=how, n=n)

    # --- who is logged in -------------------------------------------------------------------

    def _heard_who(self, msg: Any) -> None:
        request = read_notice(msg.data, VERSION, self.node, what="a sessions request", accepted=WHO,
                              check=_check_who)
        if request is None or not msg.reply:
            return  # the asking node answers for itself
        me = request.get("me")
        reply = json.dumps({"v": VERSION, "node": self.node, "role": self._role(), "users": self._who(me)}).encode()
        d = self.link.bridge.run(msg.respond, reply)
        d.addErrback(lambda f: log.warn("cluster: a sessions answer was lost: {e}", e=f.getErrorMessage()))

    def gather(self, me: int | None, expected: set[str]) -> Deferred[dict[str, dict[str, Any]]]:
        """Every other node's answer (``{node: {"role", "users"}}``): until each of
        ``expected`` has answered, or :attr:`timeout`."""
        data = json.dumps({"v": VERSION, "node": self.node, "me": me}).encode()
        return self.link.bridge.run(self._gather, data, set(expected) - {self.node})

    async def _gather(self, data: bytes, expected: set[str]) -> dict[str, dict[str, Any]]:
        nc = self.link.nc
        if nc is None or not nc.is_connected:
            return {}
        answers: dict[str, dict[str, Any]] = {}
        complete = asyncio.Event()

        async def heard(msg: Any) -> None:
            answer = read_notice(msg.data, VERSION, self.node, what="a sessions answer", accepted=ANSWER,
                                 check=_check_answer)
            if answer is None:
                return
            answers[answer["node"]] = {"role": answer.get("role"), "users": answer["users"]}
            if expected <= answers.keys():
                complete.set()

        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, cb=heard)
        try:
            await nc.publish(self.who_subject, data, reply=inbox)
            if expected:
                try:
                    await asyncio.wait_for(complete.wait(), self.timeout)
                except asyncio.TimeoutError:
                    pass
            else:  # nobody known alive: whoever answers within a moment
                await asyncio.sleep(min(self.timeout, 0.2))
        finally:
            try:
                await sub.unsubscribe()
            except Exception as e:
                log.debug("cluster: unsubscribing a sessions inbox: {e}", e=e)
        return dict(answers)


async def everyone(sync: SessionSync | None, me: int | None, live_nodes: Callable[[], Awaitable[list[str]]],
                   node: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The other nodes' answers and the nodes expected that did not answer (all of them
    while this node has no NATS link)."""
    try:
        expected = set(await live_nodes()) - {node}
    except Exception as e:
        log.warn("cluster: the live nodes could not be read from the store ({e}); listing who answers", e=e)
        expected = set()
    if sync is None:
        return {}, sorted(expected)
    try:
        answers = await sync.gather(me, expected)
    except Exception as e:  # NATS went away meanwhile: nobody's answer, every node named
        log.warn("cluster: asking the other nodes who is logged in failed: {e}", e=e)
        answers = {}
    return answers, sorted(expected - answers.keys())
