"""One node of a cluster: the election decides its role, the role decides what runs.

Installed by the container in place of the AMI client, and only when
``[cluster] enabled`` (without it nothing of :mod:`ucs.cluster` is imported).

- **owner** (it holds the election's lock): its agents are restored from the
  store -- or as the old owner told them, where that is newer
  (:mod:`ucs.cluster.handover`) --, then its AMI client runs, so its PBX model, call tracker, agents and
  bus are the truth (the take-over and the step-down, and their order, are one
  transition table, :mod:`ucs.cluster.duty`, whose outputs this node carries
  out); its bus's domain events go to the stream and its
  replica's snapshot to the bucket (:class:`~ucs.cluster.feed.OwnerFeed`), and
  it answers commands on ``ucs.<domain>.commands``: the standbys' API calls
  that are its work (:mod:`ucs.cluster.forward`).  After its first resync the
  calls still up take back what the old owner knew, and calls that ended in
  the gap get their CDR (:mod:`ucs.cluster.gap`).
- **standby** (anything else): no AMI link, its agents passive (they ask the
  owner); it follows the stream into its
  :class:`~ucs.cluster.replica.Replica` (:class:`~ucs.cluster.follower.Follower`)
  and tries the lock every ``retry_interval``.

Every node announces its directory changes and reads the others' from the
store (:mod:`ucs.cluster.dirsync`).

What the role needs from NATS is set up whenever the role or the NATS link
changes (:meth:`ClusterNode._reconcile`, one change at a time); the election
itself needs only PostgreSQL, so an owner cut off from NATS keeps the AMI
truth and its CDRs (the stream resumes, in a new term, once NATS is back).

``/health`` gets :meth:`ClusterNode.health`: the role, the PostgreSQL session
and the NATS link, the term and the stream position.

A standby's bars and Interaction Processor sessions see the owner's truth
through :class:`~ucs.cluster.mirror.Mirror` (the container's ``get_mirror()``):
each envelope applied is rebuilt into objects and told on this node's bus
(:meth:`ClusterNode.on_event`), each snapshot loaded is diffed into it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from ucs import events as ev
from ucs.api.stored_sessions import StoredSessions
from ucs.cluster.aio import AsyncioBridge
from ucs.cluster.codec import QUEUE_FIGURES, Envelope, QueueFigures, envelope
from ucs.cluster.dirsync import DirectorySync
from ucs.cluster.commands import CommandClient, CommandServer
from ucs.cluster.duty import STOPPED, Duty
from ucs.cluster.election import OWNER, Elector
from ucs.cluster.feed import OwnerFeed
from ucs.cluster.follower import Follower
from ucs.cluster.forward import COMMANDS as FORWARDED, Forwarder, OwnerWork
from ucs.cluster.gap import adopt, cdr_from_replica, needs_cdr
from ucs.cluster.handover import Departures, newest, newest_figures
from ucs.cluster.heartbeat import UNHEARD, Heartbeat, OwnerWatch
from ucs.cluster.lockconn import LockConnection, Timings, lock_key
from ucs.cluster.mirror import Mirror
from ucs.cluster.natslink import Names, NatsLink
from ucs.cluster.replica import Replica
from ucs.cluster import sessync
from ucs.cluster.stream import EventStream

if TYPE_CHECKING:
    from ucs.server import UCSServer
    from ucs.store.base import Fence

log = Logger(namespace="ucs.cluster")


def asterisk_name(server: UCSServer) -> str:
    """Which Asterisk the election is about: ``[cluster] pbx``, else ``[ami]``'s ``host:port``
    (a cluster has no demo PBX: the config refuses it)."""
    c = server.config
    return c.cluster.pbx or f"{c.ami.host.lower()}:{c.ami.port}"


class ClusterNode(Service):
    """The cluster's part of the service tree (service name ``cluster``)."""

    def __init__(self, server: UCSServer) -> None:
        self.setName("cluster")
        self._server = server
        c = server.config.cluster
        self.config = c
        self._reactor = server.get_reactor()
        self.node = c.node or socket.gethostname().split(".")[0]
        self.names = Names((c.domain or server.config.iserver.instance_domain).lower())
        timings = Timings.from_config(c)
        key = lock_key(self.names.domain, asterisk_name(server))
        url = server.config.store.url
        self.elector = Elector(lambda: LockConnection(url, key, timings, f"ucs-election {self.node}"), timings,
                               self._reactor, self._reactor, on_owner=self._changed, on_standby=self._changed,
                               name=self.node)
        self.bridge: AsyncioBridge | None = None
        self.link: NatsLink | None = None
        self.stream: EventStream | None = None
        self.commands: CommandClient | None = None
        self._command_server: CommandServer | None = None
        self.feed: OwnerFeed | None = None
        self.follower: Follower | None = None
        self._last_followed = Replica()
        self.departures = Departures()  # the logouts heard, for a take-over (ucs.cluster.handover)
        self._chain: Deferred[None] = succeed(None)
        #: Issue 20: the agent-bar sessions in the store, resumable on any node.
        self.sessions = StoredSessions(server.get_store_proxy(), server.get_sessions(), server.get_directory(),
                                       server.get_agents(), self._reactor, self.node,
                                       server.config.web.resume_window, lambda: self.elector.is_owner)
        self._retry: Any = None
        self._owner_watch: Any = None
        # issue 20 (cl-commands): the owner's work asked on a standby goes to the owner
        # (ucs.cluster.forward); the agents run on the owner only (self.duty: restore, step_down).
        self.forwarder = Forwarder(lambda: self.commands, lambda: self.elector.is_owner,
                                   lambda: self._followed().agents,
                                   server.get_directory, clock=self._reactor, takeover_wait=c.takeover_wait)
        self._serving: list[Deferred[None]] = []  # whenServing()
        self._owner_work = OwnerWork(server.get_registry, server.get_directory, server.get_agents)
        self._domain: Deferred[None] = Deferred()
        #: issue 20: the take-over and the step-down (ucs.cluster.duty); this node does its outputs.
        self.duty = Duty(self, self._reactor, c.retry_interval, name=self.node)
        self._duty_work: Deferred[None] = succeed(None)  # its outputs' work, one at a time
        self._known: dict[str, dict[str, Any]] = {}  # the old owner's calls, as followed (remember)
        #: This node, as owner, has read Asterisk's calls (its first resync is done): a term that
        #: begins after it says so (``pbx.resynced`` in its first envelopes), for the standbys
        #: holding their bars' calls until then (``Mirror._hold``).
        self._resynced = False
        self.dirsync: DirectorySync | None = None
        self.sessync: sessync.SessionSync | None = None  # logouts and ops.sessions across the nodes
        self._dir_missed = True  # until subscribed, another node's change may be missed
        #: issue 20, bars on standbys: the owner's model as objects on this node's bus.
        self.mirror: Mirror = server.get_mirror()
        #: issue 20: the owner's beats; a standby tells its owner's silence from a calm.
        self.watch = OwnerWatch(self._reactor, c.owner_silence, refollow=self._refollow,
                                position=lambda: (f.replica.term, f.replica.seq) if (f := self.follower) else None,
                                on_change=lambda old, new: self._tell_bars(self.link.state if self.link else "down"))
        self.heartbeat: Heartbeat | None = None

    # --- the service ---------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if self.duty.state == STOPPED:  # started again
            self.duty = Duty(self, self._reactor, self.config.retry_interval, name=self.node)
            if self._domain.called:
                self.duty.domain()
        self.bridge = AsyncioBridge(self._reactor)
        if not self.bridge.same_loop:
            log.warn("cluster: the reactor is not asyncio's: NATS runs on a loop in a thread of its own. "
                     "Run `twistd --reactor=asyncio ucs` (docs/cluster.md)")
        self._server.get_agents().remote = self.forwarder  # passive until this node owns the AMI link
        self.link = NatsLink(self.config.nats, f"ucs {self.node}", self.bridge, on_change=self._link_changed)
        self.stream = EventStream(self.link, self.names, max_age=self.config.stream_max_age)
        self.commands = CommandClient(self.link, self.names, self.node, self.config.request_timeout)
        self.heartbeat = Heartbeat(self.link, self.names, self.node, self._reactor, self.watch, beating=lambda: (
            (self.feed.replica.term, self.stream.acked_seq) if self.feed is not None and self.stream else None))
        self.heartbeat.start()
        log.info("cluster: node {node} of {domain}; NATS {nats}; electing the owner of the AMI link to {pbx}",
                 node=self.node, domain=self.names.domain, nats=", ".join(self.config.nats),
                 pbx=asterisk_name(self._server))
        self._connect_nats()
        self.elector.start()
        self._server.get_web_service().hub.stored = self.sessions  # issue 20
        self.sessions.start()
        ops = self._server.get_operations()  # ops.sessions lists every node's (ucs.cluster.sessync)
        ops.node, ops.role = self.node, lambda: self.role
        ops.peers = lambda me: Deferred.fromCoroutine(sessync.everyone(self.sessync, me, self.sessions.live_nodes,
                                                                       self.node))

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        await self._chain
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        await self.sessions.stop()  # issue 20
        await self.elector.stop()  # steps down first: the AMI link stops
        await self.duty.stop()  # then the agents (saved to the store for the next owner)
        await self._stop_follower()
        await self._stop_feed()
        if self.sessync is not None:
            gone, self.sessync = self.sessync, None
            await gone.stop()
        if self.link is not None:
            try:
                await self.link.close()
            except Exception as e:
                log.debug("cluster: closing NATS: {e}", e=e)
        if self.bridge is not None:
            self.bridge.close()

    def _connect_nats(self) -> None:
        self._retry = None
        if not self.running or self.link is None:
            return
        d = self.link.connect()

        def failed(f: Any) -> None:
            log.warn("cluster: NATS {nats} unreachable ({e}); trying again in {t:g} s",
                     nats=", ".join(self.config.nats), e=f.getErrorMessage() or f.type.__name__,
                     t=self.config.retry_interval * 5)
            self._tell_bars(self.link.state if self.link is not None else "down")
            if self.running:
                self._retry = self._reactor.callLater(self.config.retry_interval * 5, self._connect_nats)

        d.addErrback(failed)

    # --- the role -------------------------------------------------------------------------

    @property
    def role(self) -> str:
        """``owner``, ``standby`` or the election's state while it has no session."""
        state = self.elector.state
        return state if state in (OWNER, "standby", "claiming") else f"standby ({state})"

    @property
    def serving(self) -> bool:
        """This node answers the owner's commands: it owns the AMI link, its agents are
        restored, its term has begun and its subscription to ``ucs.<domain>.commands`` is
        made.  From then on the standbys' forwarded calls reach it; before (the claim, the
        restore), they wait for it (``[cluster] takeover_wait``, :mod:`ucs.cluster.forward`)."""
        return self._command_server is not None and self._command_server.serving

    def whenServing(self) -> Deferred[None]:
        """Fires once :attr:`serving` is true (at once if it is now)."""
        if self.serving:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._serving.append(d)
        return d

    def _link_changed(self, state: str) -> None:
        if self.feed is not None:
            self.feed.link_changed(state)
        if self.heartbeat is not None:
            self.heartbeat.link_changed(state)
        if state != "up":
            self._dir_missed = True  # issue 20: directory notices may be missed meanwhile
        elif self.follower is not None:
            follower = self.follower
            self._chain.addCallback(lambda _: Deferred.fromCoroutine(follower.catch_up(link_back=True)))
        if state == "up":
            self.sessions.logouts.catch_up()  # issue 20: the logouts made meanwhile (logs its failures)
        self._tell_bars(state)
        self._changed()

    def _tell_bars(self, state: str) -> None:
        """The bars of this node are told when its NATS link goes and comes back: on a
        standby they may show stale truth meanwhile, on the owner commands made on other
        nodes cannot arrive (its own calls, states and CDRs go on)."""
        if not self.running:
            return  # stopping: its bars are about to be told the server goes
        up = state == "up"
        unheard = up and self.watch.state == UNHEARD  # issue 20: its own link is fine, the owner silent
        # the owner's link is fine but its events are not taken (its NATS server cut off from the
        # rest of a NATS cluster: no quorum for the stream)
        unsent = up and self.feed is not None and self.feed.broken
        if unsent:
            message = ("UCS: this server's events do not reach the other UCS nodes (NATS does not take them); "
                       "calls and states here go on, but bars on other servers cannot follow them until it does.")
        elif unheard:
            message = (f"UCS: the server that holds the link to the phone system has not been heard for "
                       f"{self.config.owner_silence:g} s; what this bar shows may be out of date until it is heard again.")
        elif up:
            message = "The link to the other UCS nodes is back."
        elif self.elector.is_owner:
            message = ("UCS: this server lost its link to the other UCS nodes; calls and states "
                       "here go on, but bars on other servers cannot follow them until it is back.")
        else:
            message = ("UCS: this server lost its link to the other UCS nodes; what this bar shows "
                       "may be out of date until it is back.")
        self._server.get_web_service().hub.cluster_notice(
            {"ok": up and not unheard and not unsent, "nats": state, "owner": self.watch.state, "role": self.role,
             "node": self.node, "message": message})

    def _refollow(self) -> None:
        """The owner's beat is ahead of this replica, which stands still: follow the stream again."""
        follower = self.follower
        if follower is not None:
            self._chain.addCallback(lambda _: Deferred.fromCoroutine(follower.catch_up(link_back=True)))

    def _changed(self) -> None:
        """The role or the NATS link changed: the AMI link and the agents (:attr:`duty`),
        the rest one change at a time."""
        self.duty.role(bool(self.elector.is_owner and self.running))
        self._reconcile_soon()

    def _reconcile_soon(self) -> None:
        self._chain.addCallback(lambda _: Deferred.fromCoroutine(self._reconcile()))
        self._chain.addErrback(self._failed)

    def _failed(self, f: Any) -> None:
        log.failure("cluster: setting up the {role}'s part of NATS failed; trying again", f, role=self.role)
        if self.running:
            self._reactor.callLater(self.config.retry_interval, self._changed)

    async def _reconcile(self) -> None:
        nats = self.link is not None and self.link.nc is not None and self.link.state != "closed" and self.running
        # The term starts once the agents are restored (Duty: begin_term): from a model without them
        # the standbys' bars would show every agent logged out (their restore tells no events).
        want_feed = nats and self.elector.is_owner and self.duty.restored
        want_follower = nats and not self.elector.is_owner  # PostgreSQL away: still a standby that follows
        if self.follower is not None and not want_follower:
            await self._stop_follower()
        if self.feed is not None and not want_feed:
            await self._stop_feed()
        if self.dirsync is not None and not nats:
            old, self.dirsync = self.dirsync, None
            await old.stop()
        if self.sessync is not None and not nats:
            gone, self.sessync = self.sessync, None
            await gone.stop()
        if nats and self.sessync is None and self.link is not None:
            sync = self._session_sync()
            await sync.start()
            self.sessync = sync
        if nats and self.dirsync is None:
            assert self.link is not None
            dirsync = DirectorySync(self.link, self.names, self._server.get_bus(), self._server.get_directory(),
                                    self.node, self._reactor)
            await dirsync.start()
            self.dirsync = dirsync
        if nats and self._dir_missed and self.dirsync is not None and self.link is not None \
                and self.link.state == "up" and self._domain.called:
            self._dir_missed = False
            await self.dirsync.catch_up()
        if want_feed and self.feed is None:
            assert self.stream is not None and self.link is not None
            await self.stream.ensure()  # also: the first snapshot says the stream's last sequence
            feed = OwnerFeed(self._server.get_bus(), self.stream, self._reactor, self.node,
                             snapshot_interval=self.config.snapshot_interval, initial=self._current_state,
                             encode=self.mirror.wire_subject)
            feed.on_broken = lambda broken: self._tell_bars(self.link.state if self.link is not None else "down")
            feed.start()
            self.feed = feed
            try:
                self._command_server = CommandServer(self.link, self.names, self._command)
                await self._command_server.serve()
                self._owner_watch = await self.stream.watch_snapshots(feed.heard_snapshot)
            except BaseException:
                await self._stop_feed()  # all or nothing: the next attempt starts it again
                raise
            waiting, self._serving = self._serving, []
            for d in waiting:
                d.callback(None)
        if want_follower and self.follower is None:
            assert self.stream is not None
            await self.stream.ensure()
            follower = Follower(self.stream, clock=self._reactor, on_event=self.on_event,
                                on_reload=lambda: self.mirror.load(follower.replica))
            self.follower = follower
            try:
                await follower.start()
            except BaseException:
                await self._stop_follower()
                raise
            if not self.elector.is_owner:
                self.mirror.start(follower.replica)  # bars on this standby see the owner's model

    async def _stop_feed(self) -> None:
        feed, self.feed = self.feed, None
        if feed is not None:
            feed.stop()
        watch, self._owner_watch = self._owner_watch, None
        if watch is not None and self.stream is not None:
            try:
                await self.stream.unfollow(watch)
            except Exception as e:
                log.debug("cluster: unsubscribing the snapshots: {e}", e=e)
        server, self._command_server = self._command_server, None
        if server is not None:
            try:
                await server.stop()
            except Exception as e:
                log.debug("cluster: unsubscribing the commands: {e}", e=e)

    async def _stop_follower(self) -> None:
        follower, self.follower = self.follower, None
        if follower is not None:
            self._last_followed = follower.replica
            await follower.stop()

    def _followed(self) -> Replica:
        """The owner's model as this node last followed it: while it takes the link over (the
        claim's wait, the agents' restore) nobody publishes, and who works where is still what
        the last owner said -- not "nobody", which would send resumed bars back to log in."""
        if self.follower is not None:
            return self.follower.replica
        return self._last_followed

    # --- the owner's duty: the agents, then the AMI link (issue 20, ucs.cluster.duty) ----------

    def domain_started(self) -> None:
        """The container loaded the directory and built the registry (``ucs.domain.Domain.start``):
        standbys' API calls may be forwarded, and the agents may start if this node owns the link."""
        self._server.get_registry().forward = self.forwarder
        if not self._domain.called:
            self._domain.callback(None)
        self.duty.domain()
        if self.running:
            self._changed()  # the directory may now be read again (DirectorySync.catch_up)

    def _after(self, work: Callable[[], Coroutine[Any, Any, None]], what: str) -> None:
        """``work`` once the duty's work before it is over: a step-down saves the agents before
        the next take-over restores them, and a take-over's AMI start is decided before a step-down."""
        self._duty_work.addCallback(lambda _: Deferred.fromCoroutine(work()))
        self._duty_work.addErrback(lambda f: log.failure("cluster: {what} failed", f, what=what))

    def remember(self) -> None:
        """(Duty output, at the election.) What the old owner told of its calls (this node's replica
        as a standby): for the calls' CDRs across the gap (ucs.cluster.gap), once Asterisk has been
        read again."""
        self._known = dict(self.follower.replica.calls) if self.follower is not None else {}

    def restore(self) -> None:
        """(Duty output.) The agents from the store, before the AMI link; then ``restored`` or ``failed``."""
        self._after(self._restore, "taking over")

    async def _restore(self) -> None:
        agents = self._server.get_agents()
        agents.remote = None
        try:
            # restored from the store, as after a restart -- or as the old owner told them after
            # its last save (ucs.cluster.handover)
            await agents.start(newer=lambda stored: newest(stored, self._followed().agents, self.departures.gone),
                               newer_figures=lambda stored: newest_figures(stored, self._followed().agents,
                                                                           self.departures.last),
                               fence=self.elector.fence)  # its writes refused once another node took over
        except Exception:
            # The store failed: no AMI link without the agents; the take-over is tried again.
            log.failure("cluster: the agents could not be restored; taking over again in {t:g} s",
                        t=self.config.retry_interval)
            try:
                await agents.stop()
            except Exception as e:
                log.debug("cluster: stopping the agents after a failed restore: {e}", e=e)
            agents.forget()
            agents.remote = self.forwarder
            self.duty.restore_ended(False)
        else:
            self.duty.restore_ended(True)

    def begin_term(self) -> None:
        """(Duty output.) The feed may start now: its term begins with the agents restored."""
        self._reconcile_soon()

    def take_link(self) -> None:
        """(Duty output.) Supervision's figures read again, then the AMI link."""
        self._after(self._take_link, "taking over")

    async def _take_link(self) -> None:
        await self._recount(self.elector.fence)  # its rows refused once another node took over
        if self.feed is not None:  # the term began before the figures were read: told now
            for figures in self._queue_figures():
                self.feed.restate(QUEUE_FIGURES, figures)
        if not self.duty.restored:
            return  # stepped down meanwhile (its step_down comes next): no AMI link
        ami = self._server.get_ami_client()
        if not ami.running:
            self._resynced = False
            known = self._known
            synced = self._server.get_pbx_link().whenSynced()
            # issue 20: the bars read this node's own model from now on; the mirrored calls wait
            # for its resync, which may come before the feed starts (Mirror.stop).
            self.mirror.stop()
            ami.startService()  # its resync makes the agents reconcile their memberships
            synced.addCallback(lambda _: self._after_resync(known))
            synced.addErrback(lambda f: log.failure("cluster: the calls across the take-over", f))
        log.info("cluster: node {node} owns the AMI link; {n} agents restored", node=self.node,
                 n=len(self._server.get_agents().all()))

    def stop_link(self) -> None:
        """(Duty output.) Stepping down stops the AMI link at once: before the election's session
        closes, as the election requires (its ``on_standby`` comes first)."""
        self._resynced = False
        ami = self._server.get_ami_client()
        if ami.running:
            ami.stopService()

    def step_down(self) -> None:
        """(Duty output.) The agents saved and forgotten; then ``down``."""
        self._after(self._step_down, "stepping down")

    async def _step_down(self) -> None:
        try:
            agents = self._server.get_agents()
            agents.remote = self.forwarder
            if agents.running:
                await agents.stop()  # saves them: the next owner restores them from the store
            supervision = self._server.get_supervision()
            if supervision.running:
                await supervision.stop()  # the figures counted so far, saved while they are this node's
            agents.forget()
            await self._recount()
            log.info("cluster: node {node} no longer owns the AMI link; its agents are the owner's", node=self.node)
        finally:
            self.duty.down()

    def _restate(self) -> None:
        """The agents as they are now, told to this term without a bus event (``OwnerFeed.restate``)."""
        if self.feed is not None and self.duty.restored:
            for agent in self._server.get_agents().all():
                self.feed.restate(ev.EVENT_AGENT_STATUS, agent)

    def _after_resync(self, known: dict[str, dict[str, Any]]) -> None:
        """The first resync as owner: calls still up take back what the old owner knew; calls
        that ended unseen get their CDR from the replica (:mod:`ucs.cluster.gap`)."""
        if not self.duty.restored:
            return
        self._resynced = True
        # The agents' queues as Asterisk has them (restored before it was read): once reconciled.
        self._server.get_agents().settled().addCallback(lambda _: self._restate())
        if not known:
            return
        tracker = self._server.get_call_tracker()
        live = {c.uniqueid: c for c in tracker.active_calls()}
        for uniqueid, call in live.items():
            if uniqueid in known:
                adopt(call, known[uniqueid], self._reactor.seconds())
                tracker.touch(call)  # the bars and the new term's standbys see its whole journey
        gone = [call for uniqueid, call in known.items() if uniqueid not in live]
        if gone:
            d = Deferred.fromCoroutine(self._gap_cdrs(gone))
            d.addErrback(lambda f: log.failure("cluster: CDRs of the calls that ended during the take-over", f))

    async def _gap_cdrs(self, gone: list[dict[str, Any]]) -> None:
        store, writer = self._server.get_store(), self._server.get_cdr_writer()
        now = self._reactor.seconds()
        for call in gone:
            if not needs_cdr(call):
                continue  # a supervisor's monitoring, or part of another call: no CDR of its own
            if await store.get_cdr(call["uniqueid"]) is not None:
                continue  # the old owner wrote it before it died
            log.info("cluster: call {uniqueid} ended while no node owned the AMI link; its CDR is written "
                     "from what the old owner told", uniqueid=call["uniqueid"])
            writer.add(cdr_from_replica(call, now))

    async def _recount(self, fence: Fence | None = None) -> None:
        """Supervision's figures start again from the store with the agents this node has now
        (the owner's restored ones, or none): a standby counts nobody's time, so it never
        writes figures over the owner's, and a new owner adds to what is stored -- under
        ``fence``, its ownership's term."""
        supervision = self._server.get_supervision()
        if supervision.running:
            await supervision.stop()
        await supervision.start(fence=fence)

    # --- seams --------------------------------------------------------------------------------

    def _session_sync(self) -> sessync.SessionSync:
        assert self.link is not None
        return sessync.SessionSync(self.link, self.names, self.node, self.sessions.logouts,
                                   self._server.get_operations().who, lambda: self.role, self.config.request_timeout)

    def call_changed_quietly(self, call: Any) -> None:
        """The owner's call changed without a bus event (``DomainPublisher.unpublished``):
        the standbys' bars hear it too (issue 20)."""
        if self.feed is not None:
            self.feed.quiet(call)

    def on_event(self, e: Envelope) -> None:
        """A standby heard the owner's event (applied to its replica already): its objects,
        then its bus -- so its hub, ``state`` and Interaction Processor tell it."""
        self.departures.heard(e)
        self.mirror.apply(e)

    def _command(self, method: str, args: list[Any], node: str) -> Any:
        """The owner's answer to a command from ``node`` (a peer on NATS: the node that sent it
        has checked its user's rights in its own registry first): a standby's API call or its
        agents' request (:mod:`ucs.cluster.forward`), ``cluster.ping``, and
        ``agents.changeStatus(user_id, status, reason)`` carried out by the owner's agents."""
        if method in FORWARDED:  # issue 20: a standby's API call, or its agents' requests
            return self._owner_work.handle(method, args)
        if method == "cluster.ping":
            return {"node": self.node, "role": self.role, "term": self.feed.replica.term if self.feed else ""}
        if method == "agents.changeStatus":
            return Deferred.fromCoroutine(self._change_status(args))
        raise LookupError(f"{method!r} is not a command the owner answers; it answers 'cluster.ping' and "
                          "'agents.changeStatus'")

    async def _change_status(self, args: list[Any]) -> dict[str, Any]:
        if not (2 <= len(args) <= 3 and isinstance(args[0], int) and all(isinstance(a, str) for a in args[1:])):
            raise ValueError("agents.changeStatus takes [user_id, status, reason?]: an integer and strings")
        agent = await self._server.get_agents().change_status(args[0], args[1], args[2] if len(args) > 2 else "")
        return {"id": agent.id, "status": agent.status.name, "reason": agent.reason}

    def _current_state(self) -> Iterator[Envelope]:
        """The owner's model as envelopes: what a new term starts from."""
        s = self._server
        items: list[tuple[str, Any, dict[str, Any]]] = []
        items += [(ev.EVENT_DEVICE_CHANGED, d, {}) for d in s.get_pbx().devices.values()]
        for q in s.get_pbx().queues.values():
            items += [(ev.EVENT_MEMBER_CHANGED, m, {}) for m in q.members.values()]
            items.append((ev.EVENT_QUEUE_WAITING, q, {"waiting": len(q.callers)}))
        items += [(ev.EVENT_CALL_CHANGE, c, {}) for c in s.get_call_tracker().active_calls()]
        items += [(ev.EVENT_AGENT_STATUS, a, {}) for a in s.get_agents().all()]
        items += [(QUEUE_FIGURES, f, {}) for f in self._queue_figures()]
        if self._resynced:  # the calls above are Asterisk's: a standby holding its bars' may let go
            items.append((ev.EVENT_PBX_RESYNCED, None, {}))
        for name, subject, args in items:
            e = envelope(name, subject, args, node=self.node, encode=self.mirror.wire_subject)
            if e is not None:
                yield e

    def _queue_figures(self) -> list[QueueFigures]:
        """Each queue's figures of the day as supervision has them (read from the store when this
        node took over): a new term's standbys start from them, not from the store at their own
        start (their wallboards would lag until one of the queue's calls ended)."""
        supervision = self._server.get_supervision()
        if not supervision.running:
            return []
        today = supervision.days.day(self._reactor.seconds())
        return [QueueFigures(q.asterisk_name, today, supervision.intervals.day_total("queue", q.asterisk_name, today))
                for q in self._server.get_directory().queues.values()]

    # --- health ---------------------------------------------------------------------------------

    def replica(self) -> Replica | None:
        """The model this node keeps of the owner's events (its own when owner)."""
        if self.feed is not None:
            return self.feed.replica
        return self.follower.replica if self.follower is not None else None

    def health(self) -> dict[str, Any]:
        replica = self.replica()
        return {
            "node": self.node, "domain": self.names.domain, "role": self.role,
            "postgresql": self.elector.link, "nats": self.link.state if self.link is not None else "down",
            "term": replica.term if replica is not None else "",
            "seq": (self.stream.acked_seq if self.feed is not None and self.stream is not None
                    else replica.seq if replica is not None else 0),
            "lost": self.stream.lost if self.stream is not None else 0,
            "conflict": self.feed.conflict if self.feed is not None else "",
            **self.watch.health(),
        }
