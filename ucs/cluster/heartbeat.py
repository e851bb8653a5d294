"""The owner's heartbeat: a standby tells an owner's silence from a calm (issue 20).

A standby that hears no events cannot tell a quiet contact center from an owner
cut off from NATS (its own link fine), nor from a stream consumer of the same
term that stopped delivering.  So the owner says it is alive: every
:data:`BEAT_EVERY` second it publishes on ``ucs.<domain>.owner`` (core NATS, not
the stream: a lost beat is replaced by the next one)
``{"v": 1, "node", "term", "seq"}`` -- its term and the last sequence the stream
acknowledged.

A standby's :class:`OwnerWatch` (a transition table, driven by beats and by the
clock) then knows:

- **the owner unheard**: no beat for ``[cluster] owner_silence`` seconds while
  this node's own NATS link is up.  ``/health`` says ``owner: "unheard"`` and
  since when; the node tells its bars (``Hub.cluster_notice``), and tells them
  again when the owner is heard.  (While its own link is down the node's NATS
  notice already says so; the watch waits, and gives the owner a whole
  ``owner_silence`` once the link is back.)
- **the stream stuck**: the beat says a sequence (or a term) the replica has not
  reached, and the replica has not moved for ``owner_silence``: the node follows
  the stream again (``refollow``: ``Follower.catch_up(link_back=True)``) and
  logs it.

:class:`Heartbeat` is the wire: the beacon on the owner, the subscription and
the watch's clock on every node.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ucs.cluster.natslink import Names, NatsLink

log = Logger(namespace="ucs.cluster")

VERSION = 1
#: How often the owner beats (seconds); ``owner_silence`` must be longer.
BEAT_EVERY = 1.0

#: The watch's states: ``waiting`` (not sure yet: just started, the link just came back),
#: ``heard``, ``unheard``, ``self`` (this node is the owner: nobody to listen to).
WAITING, HEARD, UNHEARD, SELF = "waiting", "heard", "unheard", "self"

#: (state, input) -> next state.  Inputs: ``beat`` (another node's beat), ``silence`` (no
#: beat for ``owner_silence`` while the link is up), ``link`` (this node's link came back:
#: listen afresh), ``owner``/``standby`` (this node's role).  A pair not listed changes nothing.
TRANSITIONS: dict[tuple[str, str], str] = {
    (WAITING, "beat"): HEARD,
    (WAITING, "silence"): UNHEARD,
    (WAITING, "owner"): SELF,
    (HEARD, "silence"): UNHEARD,
    (HEARD, "link"): WAITING,
    (HEARD, "owner"): SELF,
    (UNHEARD, "beat"): HEARD,
    (UNHEARD, "owner"): SELF,
    (SELF, "standby"): WAITING,
}

#: Changes the bars are told of: the owner went silent, or is heard again.
TOLD = {(WAITING, UNHEARD), (HEARD, UNHEARD), (UNHEARD, HEARD), (UNHEARD, SELF)}


def subject(names: Names) -> str:
    return f"ucs.{names.slug}.owner"


def encode(node: str, term: str, seq: int) -> bytes:
    return json.dumps({"v": VERSION, "node": node, "term": term, "seq": seq}).encode()


def decode(data: bytes) -> tuple[str, str, int]:
    """``(node, term, seq)`` of a beat; :class:`ValueError` saying what was wrong."""
    try:
        beat = json.loads(data)
    except ValueError as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(beat, dict) or beat.get("v") != VERSION:
        raise ValueError(f"version {beat.get('v') if isinstance(beat, dict) else None!r}, not {VERSION}")
    node, term, seq = beat.get("node"), beat.get("term"), beat.get("seq")
    if not isinstance(node, str) or not isinstance(term, str) or not isinstance(seq, int):
        raise ValueError(f"node {node!r}, term {term!r}, seq {seq!r}: strings and an integer expected")
    return node, term, seq


class OwnerWatch:
    """A standby's view of the owner's beats, on a clock (no wire: :class:`Heartbeat` feeds it).

    ``position()`` is what the node's replica follows, ``(term, seq)``, or ``None`` with no
    follower; ``refollow()`` follows the stream again; ``on_change(old, new)`` is called on the
    transitions in :data:`TOLD`.
    """

    def __init__(self, clock: IReactorTime, silence: float, *,
                 position: Callable[[], tuple[str, int] | None] = lambda: None,
                 refollow: Callable[[], Any] = lambda: None,
                 on_change: Callable[[str, str], Any] = lambda old, new: None) -> None:
        self.clock = clock
        self.silence = silence
        self.position = position
        self.refollow = refollow
        self.on_change = on_change
        self.state = WAITING
        #: The last beat heard: who, and when (the clock's seconds); ``since`` the state began.
        self.owner = ""
        self.heard_at: float | None = None
        self.since = clock.seconds()
        self._last: tuple[str, int] = ("", 0)  # the owner's position in its last beat
        self._stuck_since: float | None = None
        self._stuck_at: tuple[str, int] | None = None
        #: How many times the stream was followed again because the replica stood still.
        self.refollowed = 0

    def _input(self, what: str) -> None:
        old = self.state
        new = TRANSITIONS.get((old, what), old)
        if new == old:
            return
        self.state, self.since = new, self.clock.seconds()
        if what == "silence":
            log.warn("cluster: the owner of the AMI link{who} has not been heard for {t:g} s while this node's "
                     "NATS link is up; its bars are told", who=f" ({self.owner})" if self.owner else "",
                     t=self.silence)
        elif old == UNHEARD and new == HEARD:
            log.info("cluster: the owner of the AMI link ({who}) is heard again", who=self.owner)
        if (old, new) in TOLD:
            self.on_change(old, new)

    def beat(self, node: str, term: str, seq: int) -> None:
        self.owner, self.heard_at, self._last = node, self.clock.seconds(), (term, seq)
        self._input("beat")

    def link_back(self) -> None:
        """This node's NATS link is up again: the owner gets a whole ``silence`` to be heard."""
        self.since = self.clock.seconds()
        self._input("link")
        self._stuck_since = None

    def role(self, owner: bool) -> None:
        self._input("owner" if owner else "standby")

    def tick(self, link_up: bool) -> None:
        """Every :data:`BEAT_EVERY`: silence long enough?  the replica behind and standing still?"""
        if self.state == SELF or not link_up:
            return
        now = self.clock.seconds()
        last = self.heard_at if self.heard_at is not None and self.heard_at > self.since else self.since
        if self.state != UNHEARD and now - last >= self.silence:
            self._input("silence")
        self._check_stuck(now)

    def _check_stuck(self, now: float) -> None:
        at = self.position()
        term, seq = self._last
        behind = at is not None and self.state == HEARD and (at[0] != term or at[1] < seq)
        if not behind:
            self._stuck_since = self._stuck_at = None
            return
        if at != self._stuck_at or self._stuck_since is None:
            self._stuck_since, self._stuck_at = now, at  # it moved (or just fell behind): wait
            return
        if now - self._stuck_since >= self.silence:
            assert at is not None
            log.warn("cluster: the owner {owner} is at {term} sequence {seq}, this node's replica has stood at "
                     "{at_term} sequence {at_seq} for {t:g} s; following the stream again", owner=self.owner,
                     term=term, seq=seq, at_term=at[0], at_seq=at[1], t=now - self._stuck_since)
            self.refollowed += 1
            self._stuck_since = now  # once per ``silence`` at most
            self.refollow()

    def health(self) -> dict[str, Any]:
        return {"owner": self.state, "owner_node": self.owner, "owner_heard_at": self.heard_at,
                "owner_since": self.since}


class Heartbeat:
    """The beats on NATS: published while ``beating()`` gives ``(term, seq)`` (this node owns the
    link and its feed runs), heard otherwise; the watch's clock.  Subscribes by itself once the
    link has a connection (and again on a new one)."""

    def __init__(self, link: NatsLink, names: Names, node: str, clock: IReactorTime, watch: OwnerWatch, *,
                 beating: Callable[[], tuple[str, int] | None]) -> None:
        self.link = link
        self.names = names
        self.node = node
        self.watch = watch
        self.beating = beating
        self._loop = LoopingCall(self._tick)
        self._loop.clock = clock
        self._sub: Any = None
        self._sub_nc: Any = None
        self._subscribing = False
        self.sent = 0

    def start(self) -> None:
        self._loop.start(BEAT_EVERY, now=True)

    def stop(self) -> Any:
        if self._loop.running:
            self._loop.stop()
        sub, self._sub, self._sub_nc = self._sub, None, None
        if sub is None:
            return None

        async def unsubscribe() -> None:
            try:
                await sub.unsubscribe()
            except Exception as e:  # NATS closed already: the subscription went with it
                log.debug("cluster: unsubscribing the owner's beats: {e}", e=e)

        return self.link.bridge.run(unsubscribe)

    def link_changed(self, state: str) -> None:
        if state == "up":
            self.watch.link_back()

    def _tick(self) -> None:
        nc = self.link.nc
        up = nc is not None and self.link.state == "up"
        if up and self._sub_nc is not nc and not self._subscribing:
            self._subscribe(nc)
        mine = self.beating()
        self.watch.role(mine is not None)
        if mine is None:
            self.watch.tick(up)
        elif up and nc.is_connected:  # not buffered while away: an old beat would lie
            d = self.link.bridge.run(nc.publish, subject(self.names), encode(self.node, *mine))
            d.addCallbacks(self._sent, lambda f: log.debug("cluster: a beat not sent: {e}", e=f.getErrorMessage()))

    def _sent(self, _: Any) -> None:
        self.sent += 1

    def _subscribe(self, nc: Any) -> None:
        self._subscribing = True
        cb = self.link.bridge.callback(self._heard)

        async def subscribe() -> Any:
            return await nc.subscribe(subject(self.names), cb=cb)

        def subscribed(sub: Any) -> None:
            self._sub, self._sub_nc = sub, nc
            self.watch.link_back()  # listening from now on: the owner gets a whole silence

        d = self.link.bridge.run(subscribe)
        d.addCallbacks(subscribed, lambda f: log.warn("cluster: hearing the owner's beats: {e}",
                                                      e=f.getErrorMessage()))
        d.addBoth(lambda _: setattr(self, "_subscribing", False))

    def _heard(self, msg: Any) -> None:
        try:
            node, term, seq = decode(msg.data)
        except ValueError as e:
            log.warn("cluster: an owner's beat was not understood ({e}); ignored", e=e)
            return
        if node != self.node and self.beating() is None:
            self.watch.beat(node, term, seq)
