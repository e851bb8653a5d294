"""The container: builds every UCS component once and hands each the others.

Like Synapse's ``HomeServer``: ``UCSServer(config, reactor)`` owns the config
and the reactor, builds each component the first time its ``get_*`` method is
called, and assembles the service tree in :attr:`UCSServer.service`. A
component takes the container (or the few things it needs from it) in its
constructor; nothing is a module-level singleton.

This module is the container only: which component gets which others, and
who hears what in which order (:meth:`UCSServer._wire`).  What the container
uses but is not its job lives beside it: running the service tree
(:mod:`ucs.lifecycle`, :class:`UCSService`, re-exported here), the domain's
start and stop (:mod:`ucs.domain`), what is served -- the API registry's
methods and the web service's resources (:mod:`ucs.endpoints`) --, what a
cluster's standbys are wired with (:mod:`ucs.standbys`), the store's service
and its stand-in until it opens (:mod:`ucs.store.service`), the AMI client
built from ``[ami]`` (:mod:`ucs.pbx.connection`) and the demo's simulated PBX
(:mod:`ucs.demo_pbx`).

Start-up order (see :class:`UCSService`):

1. the store opens (``[store] url``) and migrates its schema;
2. the domain (:mod:`ucs.domain`): the directory loads (with the demo's users in
   demo mode, and the first superuser), shared data, the agents as they were;
3. the simulated PBX in demo mode; the AMI client, which logs in and resyncs
   the PBX model (the call tracker, the agents and the bus follow the model);
4. the web server (agent bar, ``/metrics``, ``/health``) and the Interaction
   Processor on it; last the plugins, which find everything running.

Stop runs the other way: plugins stop first, queued CDRs get a bounded chance
to reach the store, then the store closes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ucs import demo, endpoints, iserver, standbys
from ucs.agents.history import CallHistory
from ucs.agents.service import Agents
from ucs.ami.client import AMIClient
from ucs.api import operations as operations_api
from ucs.api import remember as remember_api
from ucs.api.auth import Auth
from ucs.api.registry import Registry
from ucs.api.session import SessionManager
from ucs.api.state import StateBuilder
from ucs.bus import EventBus
from ucs.calls import calllog, recording_api
from ucs.calls.cdr import CDRWriter
from ucs.calls.control import CallControl
from ucs.calls.control_xfer import TransferKeys
from ucs.calls.numbers import DeviceClassifier, NumberNormalizer
from ucs.calls.publisher import DomainPublisher
from ucs.calls.tracker import CallTracker
from ucs.config import Config, ConfigError
from ucs.demo_pbx import SOFTPHONE_DEVICE, SOFTPHONE_SECRET, build_demo_pbx
from ucs.directory.directory import Directory
from ucs.domain import Domain
from ucs.events import EVENT_CALL_HANGUP
from ucs.lifecycle import Lifecycle, UCSService
from ucs.lookup.calls import CallerLookup
from ucs.lookup.parties import PartyFiller
from ucs.lookup.service import LookupService
from ucs.lookup.sources import build_sources
from ucs.metrics import Metrics
from ucs.pbx.connection import build_ami_client
from ucs.pbx.link import PBXLink
from ucs.pbx.pbx import PBX
from ucs.plugins import api as plugins_api
from ucs.plugins.facade import PluginContext
from ucs.plugins.host import PluginHost
from ucs.plugins.shared import SharedData
from ucs.store import Store, StoreError
from ucs.store.locks import NODE_PREFIX, holder_id
from ucs.store.service import StoreProxy, StoreService
from ucs.supervisor.service import Supervision
from ucs.web.options import WebOptions
from ucs.web.service import WebService

__all__ = ["UCSServer", "UCSService"]  # UCSService lives in ucs.lifecycle

log = Logger(namespace="ucs.server")


class UCSServer:
    """Builds UCS's components once; ``service`` is what twistd runs.

    ``on_fatal(message)`` is called when UCS cannot start (the store cannot be
    opened, ...): ``twistd ucs`` stops the process with an error status; the
    default only logs.  ``demo_pbx``: in demo mode, the simulated PBX service to
    use (a ``ucs.sim.service.SimService``, e.g. on a test's clock) instead of one
    built from ``[demo]``.
    """

    def __init__(self, config: Config, reactor: Any, on_fatal: Callable[[str], None] | None = None,
                 *, demo_pbx: Any = None) -> None:
        self.config = config
        self._given_demo_pbx = demo_pbx
        self._reactor = reactor
        self._on_fatal = on_fatal
        self._service: UCSService | None = None
        self._store_service: StoreService | None = None
        self._bus: EventBus | None = None
        self._pbx: PBX | None = None
        self._publisher: DomainPublisher | None = None
        self._caller_lookup: CallerLookup | None = None
        self._parties: PartyFiller | None = None
        self._tracker: CallTracker | None = None
        self._cdr_writer: CDRWriter | None = None
        self._link: PBXLink | None = None
        self._ami: AMIClient | None = None
        #: Set by the demo PBX: where and how the AMI client reaches it.
        self._demo_address: Callable[[], tuple[str, int]] | None = None
        self._demo_pbx: Any = None
        self._directory: Directory | None = None
        self._sessions: SessionManager | None = None
        self._agents: Agents | None = None
        self._history: CallHistory | None = None
        self._supervision: Supervision | None = None
        self._control: CallControl | None = None
        self._recording_links: recording_api.RecordingLinks | None = None
        self._state: StateBuilder | None = None
        self._auth: Auth | None = None
        self._remember: remember_api.RememberTokens | None = None
        self._registry: Registry | None = None
        self._shared: SharedData | None = None
        self._lookups: LookupService | None = None
        self._plugins: PluginHost | None = None
        self._web: WebService | None = None
        self._iserver: Any = None
        self._metrics: Metrics | None = None
        #: The domain's start and stop (ucs.domain): the writer's lock, the bars awaited.
        self._domain = Domain(self)
        self._operations: operations_api.Operations | None = None
        #: The cluster node (``ucs.cluster.node.ClusterNode``) with ``[cluster] enabled``, else ``None``.
        self._cluster: Any = None
        # issue 20 (bars on standbys, ucs.cluster.mirror): with [cluster] only.
        self._mirror: Any = None
        self._view_bus: EventBus | None = None

    # --- the service tree -----------------------------------------------------------

    @property
    def service(self) -> UCSService:
        """The root service (built on first use): start it to start UCS."""
        if self._service is None:
            self._service = UCSService(self)
            self._build_services(self._service)
        return self._service

    def _build_services(self, root: MultiService) -> None:
        """Add every child service to ``root``, in start order (the store always first)."""
        self.get_store_service().setServiceParent(root)
        Lifecycle("domain", self._domain.start, self._domain.stop).setServiceParent(root)
        if self.config.demo.enabled:
            self._build_demo_pbx(root)
        if self.config.cluster.enabled:  # issue 20: the election decides whether the AMI link runs
            from ucs.cluster.node import ClusterNode

            self._cluster = ClusterNode(self)
            self._cluster.setServiceParent(root)
        else:
            self.get_ami_client().setServiceParent(root)
        self.get_web_service().setServiceParent(root)
        self._iserver = iserver.install(self, root)
        self.get_plugin_host().setServiceParent(root)  # last: plugins start when all else runs

    def _build_demo_pbx(self, root: MultiService) -> None:
        """The simulated PBX (``ucs.sim``), started before the AMI client, which
        then connects to it instead of ``[ami]`` (:mod:`ucs.demo_pbx` builds it)."""
        svc = self._given_demo_pbx
        if svc is None:
            svc = build_demo_pbx(self.config, self._reactor)
        svc.setName("demo-pbx")
        svc.setServiceParent(root)
        self._demo_pbx = svc
        self._demo_address = svc.address
        if self._given_demo_pbx is None and getattr(svc, "webrtc", None) is not None:
            Lifecycle("demo-softphone", self._seed_softphone, _nothing).setServiceParent(root)

    async def _seed_softphone(self) -> None:
        """The demo's WebRTC line and agent, now that the simulated PBX's SIP WebSocket
        listens (or not: a port in use leaves the demo without them, logged)."""
        webrtc = self._demo_pbx.webrtc
        if webrtc is None:
            return
        await demo.seed_softphone(self.get_directory(), webrtc.url, SOFTPHONE_DEVICE,
                                  SOFTPHONE_DEVICE.partition("/")[2], SOFTPHONE_SECRET)

    def get_demo_pbx(self) -> Any:
        """The simulated PBX in demo mode, else ``None``."""
        self.service  # noqa: B018 - builds the tree, which builds the demo PBX
        return self._demo_pbx

    # --- who hears what ------------------------------------------------------------------

    def _wire(self) -> None:
        """Who hears the PBX model and the call tracker, and in which order.

        The only place where observers are subscribed: constructors subscribe to
        nothing.  Each getter of an observer calls this once it built it, so the
        lists hold the components built so far, always in this order.  Each list is
        called in order for every fact: an observer sees what the ones before it
        did with it.

        The PBX model (Asterisk's view, fed by the AMI link) tells:

        1. the publisher: members, devices, waiting callers, restarts onto the bus;
        2. the call tracker, which turns channels and bridges into calls (and tells
           its own list, below, before the model's next observer hears the fact);
        3. the agents: their phones' queue memberships and pauses;
        4. call control, after the tracker: its checks see the calls updated;
        5. supervision: who spies on whom (ChanSpy), for the team view.

        The call tracker tells:

        0. the parties: the caller's and connected party's line, user, group (directory);
        1. caller lookup: a name found at once is in the call's first event;
        2. the publisher: the call's events on the bus (plugins, the Interaction
           Processor, metrics, the agent bar's call-level events);
           and, in the same place, the agent bar's hub: it hears the bus, and the
           publisher tells it the changes that put nothing on the bus (a phone that
           rings or leaves inside a call that goes on: its bar's view changes), so
           it hears each change once.  Before the agents, deliberately: a bar is
           told its call ended before the ACW status that ending causes;
        3. the CDR writer: ended calls to the store;
        4. the agents: ACW, statistics, the status hooks;
        5. call control: what it waits for (a hang-up, a transfer) is confirmed last,
           so the reply to a request comes after the events it caused.

        The hub tells the login service (``Auth.session_expired``) of an agent bar that
        went away for good, so that its agent stops taking calls.
        """
        control = self._control.observer if self._control is not None else None
        hub = self._web.hub if self._web is not None else None
        if self._pbx is not None:
            self._pbx.observers = _present(self._publisher, self._tracker, self._agents, control, self._supervision)
        if self._tracker is not None:
            self._tracker.observers = _present(self._parties, self._caller_lookup, self._publisher, self._cdr_writer,
                                               self._agents, control)
        if self._publisher is not None:
            self._publisher.unpublished = hub.call_changed_quietly if hub is not None else None
            if self.config.cluster.enabled:  # issue 20: the owner's feed sends them to the standbys' bars
                self._publisher.unpublished = functools.partial(standbys.quiet_change, self,
                                                                self._publisher.unpublished)
        if self._mirror is not None:  # issue 20: a standby's bars hear the owner's quiet changes
            self._mirror.on_quiet = hub.call_changed_quietly if hub is not None else None
            if hub is not None:  # and a new owner's bars keep the calls handed over until its resync
                hub.holding = self._mirror.holding
        if self._mirror is not None and self._supervision is not None:
            standbys.wire_supervision(self, self._mirror, self._supervision)
        if hub is not None:
            # A bar that went away and did not come back: its agent stops taking calls.
            hub.session_expired = self._auth.session_expired if self._auth is not None else None

    # --- components -------------------------------------------------------------------

    def get_reactor(self) -> Any:
        return self._reactor

    def get_config(self) -> Config:
        return self.config

    def get_store_service(self) -> StoreService:
        if self._store_service is None:
            self._store_service = StoreService(self.config, self._reactor, observe=self.get_metrics().observe_store)
        return self._store_service

    def get_store(self) -> Store:
        """The open store; raises :class:`StoreError` before it has opened (use :meth:`when_store_open`)."""
        store = self.get_store_service().store
        if store is None:
            raise StoreError("the store is not open yet; wait for UCSServer.when_store_open()")
        return store

    def when_store_open(self) -> Deferred[Store]:
        """Fires with the store once it is open."""
        return self.get_store_service().when_open()

    def get_bus(self) -> EventBus:
        """The events bus every domain fact is published on."""
        if self._bus is None:
            self._bus = EventBus()
            calllog.subscribe(self._bus)
        return self._bus

    # --- issue 20, bars on standbys (ucs.standbys): what bars and IP sessions read ----------

    def get_mirror(self) -> Any:
        """A standby's copy of the owner's model as objects (``ucs.cluster.mirror.Mirror``);
        ``None`` without ``[cluster]``."""
        if self._mirror is None and self.config.cluster.enabled:
            self._mirror = standbys.build_mirror(self)
            standbys.tell_quiet_agents(self)
            self._wire()
        return self._mirror

    def get_view_bus(self) -> EventBus:
        """What the bars, ``state`` and the Interaction Processor hear: the bus; with
        ``[cluster]`` a bus that repeats it and, on a standby, also carries the owner's
        events (the mirror's) -- which plugins, CDRs, history and statistics, on the bus
        itself, never hear: the owner acts on them once."""
        if not self.config.cluster.enabled:
            return self.get_bus()
        if self._view_bus is None:
            self._view_bus = standbys.view_bus(self.get_bus())
        return self._view_bus

    def get_readers(self) -> tuple[Any, Any, Any]:
        """The agents, the call tracker and the PBX model as bars read them: with ``[cluster]``
        role-aware views (the owner's model on a standby), else the live ones."""
        mirror = self.get_mirror()
        if mirror is None:
            return self.get_agents(), self.get_call_tracker(), self.get_pbx()
        return standbys.readers(self.get_agents(), self.get_call_tracker(), self.get_pbx(), mirror)

    def get_pbx(self) -> PBX:
        """The PBX model: Asterisk's view, fed by the AMI client's events (its observers: :meth:`_wire`)."""
        if self._pbx is None:
            self._pbx = PBX(self._reactor)
        return self._pbx

    def get_publisher(self) -> DomainPublisher:
        """Puts the PBX model's and the tracker's facts on the bus (one for both)."""
        if self._publisher is None:
            self._publisher = DomainPublisher(self.get_bus())
            self._wire()
        return self._publisher

    def get_call_tracker(self) -> CallTracker:
        """The call tracker, fed by the PBX model (its observers: :meth:`_wire`)."""
        if self._tracker is None:
            c = self.config.calls
            self._tracker = CallTracker(
                self.get_pbx(),
                self._reactor,
                DeviceClassifier(c.trunks, c.lines),
                NumberNormalizer(c.country_code, c.dial_prefix),
            )
            self.get_publisher()
            self.get_cdr_writer()
            self.get_parties()
            self._wire()
        return self._tracker

    def get_parties(self) -> PartyFiller:
        """Fills calls' ``caller_*``/``connected_*`` line, user and group (a tracker observer)."""
        if self._parties is None:
            self._parties = PartyFiller(self.get_directory(), self._user_on_line)
            self._wire()
        return self._parties

    def _user_on_line(self, device: str) -> Any:
        agent = self._agents.by_device(device) if self._agents is not None else None
        return agent.user if agent is not None else None

    def get_cdr_writer(self) -> CDRWriter:
        if self._cdr_writer is None:
            self._cdr_writer = CDRWriter(self.get_store_proxy(), self._reactor)
            self._wire()
        return self._cdr_writer

    def get_store_proxy(self) -> Any:
        """The store for components built before it opens: each call waits for it."""
        return StoreProxy(self.when_store_open)

    def get_directory(self) -> Directory:
        if self._directory is None:
            store = self.get_store_proxy()
            self._directory = Directory(store, self.get_bus(), audit=store)
        return self._directory

    def get_sessions(self) -> SessionManager:
        if self._sessions is None:
            self._sessions = SessionManager(self._reactor)
        return self._sessions

    def get_agents(self) -> Agents:
        """The agents: statuses carried out on the PBX, ACW, statistics."""
        if self._agents is None:
            a = self.config.agents
            self._agents = Agents(
                self.get_directory(), self.get_ami_client(), self.get_pbx(), self.get_call_tracker(),
                self.get_bus(), self.get_store_proxy(), self._reactor,
                acw_seconds=a.acw_seconds, timezone=a.timezone, initial_status=a.initial_status.upper(),
                initial_reason=a.initial_reason if a.initial_status == "aux" else "",
                session_expiry=a.session_expiry, session_expiry_reason=a.session_expiry_reason,
                reactor=self._reactor, hook_timeout=a.hook_timeout, confirm_timeout=a.confirm_timeout,
                acw_extend_step=a.acw_extend_step, acw_max_seconds=a.acw_max_seconds,
            )
            self._wire()
        return self._agents

    def get_call_history(self) -> CallHistory:
        """The agents' recent calls (from the CDRs) and missed-call pushes."""
        if self._history is None:
            self._history = CallHistory(self.get_directory(), self.get_agents(), self.get_store_proxy(),
                                        self.get_cdr_writer(), self.get_bus(), self._reactor)
            self.get_bus().subscribe(EVENT_CALL_HANGUP, self._history.call_hung_up)
        return self._history
    def get_supervision(self) -> Supervision:
        """The wallboard, the team view's pushes, the statistics by interval (issue 17)."""
        if self._supervision is None:
            from ucs.api import scope

            agents, tracker, pbx = self.get_readers()  # issue 20: the owner's model on a standby
            self._supervision = Supervision(
                self.get_directory(), agents, tracker, pbx, self.get_bus(),
                self.get_store_proxy(), self._reactor, self.config.supervisor, scope,
                timezone=self.config.agents.timezone, view_bus=self.get_view_bus(), own_agents=self.get_agents())
            self._wire()
        return self._supervision

    def get_call_control(self) -> CallControl:
        if self._control is None:
            self._control = CallControl(
                self.get_ami_client(), self.get_pbx(), self.get_call_tracker(), self.get_bus(), self._reactor,
                directory=self.get_directory(), store=self.get_store_proxy(), cdrs=self.get_cdr_writer(),
                keys=TransferKeys(swap=self.config.calls.atxfer_swap, threeway=self.config.calls.atxfer_threeway),
            )
            r = self.config.recording
            self._control.record_directory, self._control.record_format = r.directory, r.format
            self._control.record_options = r.options
            self._wire()
        return self._control

    def get_recording_links(self) -> recording_api.RecordingLinks:
        """Links to recordings (``recording.url``, ``GET /recording/<ticket>``)."""
        if self._recording_links is None:
            r = self.config.recording
            self._recording_links = recording_api.RecordingLinks(
                self._reactor, r.local_directory or r.directory, r.link_lifetime)
        return self._recording_links

    def get_state(self) -> StateBuilder:
        if self._state is None:
            agents, tracker, pbx = self.get_readers()  # issue 20: the owner's model on a standby
            self._state = StateBuilder(self.get_directory(), agents, tracker, pbx, self._reactor,
                                       bus=self.get_view_bus())
        return self._state

    def get_auth(self) -> Auth:
        if self._auth is None:
            config = self.config.auth
            if self.config.demo.enabled and not config.sso_secret:
                # README gives the demo's SSO secret, as it gives its passwords.
                config = attrs.evolve(config, sso_secret=demo.SSO_SECRET)
            agents, _, pbx = self.get_readers()  # issue 20: a working agent's phone, from the owner
            self._auth = Auth(self.get_directory(), self.get_sessions(), agents, self._reactor,
                              config, self.get_state(),
                              registered_at=lambda ip: [d.name for d in pbx.devices.values() if d.address == ip])
            self._wire()
        return self._auth

    def get_remember(self) -> remember_api.RememberTokens:
        """Remembered logins (the agent bar's "remember me"): tokens, never the password."""
        if self._remember is None:
            self._remember = remember_api.RememberTokens(self.get_store_proxy(), self.get_directory(),
                                                         self.get_auth(), self._reactor)
        return self._remember

    def get_shared(self) -> SharedData:
        """Shared data (seed 000 ``ucs.shared``), persisted, with plugins' change hooks."""
        if self._shared is None:
            self._shared = SharedData(self.get_store_proxy(), self.get_bus())
        return self._shared

    def get_lookups(self) -> LookupService:
        """Caller lookup sources ([lookup]) and the plugins' lookup transformer."""
        if self._lookups is None:
            cfg = self.config.lookup
            base = Path(self.config.source).parent if self.config.source else None
            try:
                sources = build_sources(cfg.sources, reactor=self._reactor, base=base)
            except ValueError as e:
                raise ConfigError(f"{self.config.source or 'config'}: lookup.{e}",
                                  source=self.config.source or "config", key="lookup.sources") from None
            self._lookups = LookupService(sources)
            self.get_caller_lookup()
        return self._lookups

    def get_caller_lookup(self) -> CallerLookup:
        """Fills a new call's caller name from the lookup sources (a tracker observer)."""
        if self._caller_lookup is None:
            cfg = self.config.lookup
            self._caller_lookup = CallerLookup(self.get_lookups(), self.get_bus(), self._reactor,
                                               directions=cfg.directions, normalized=cfg.normalized)
            self._wire()
        return self._caller_lookup

    def get_plugin_host(self) -> PluginHost:
        if self._plugins is None:
            context = PluginContext(
                self._reactor, bus=self.get_bus(), registry=self.get_registry(), sessions=self.get_sessions(),
                directory=self.get_directory(), agents=self.get_agents(), call_control=self.get_call_control(),
                shared=self.get_shared(), lookups=self.get_lookups(), budget=self.config.plugins.hook_budget,
                observe_hook=self.get_metrics().observe_hook,
            )
            p = self.config.plugins
            self._plugins = PluginHost(context, p.directory, classes=p.classes, packages=p.packages)
            plugins_api.register(self.get_registry(), self._plugins, self.get_shared())
        return self._plugins

    def get_web_service(self) -> WebService:
        """The agent bar's WebSocket API, operator.js and the demo CRM page."""
        if self._web is None:
            self._web = WebService(  # issue 20: the view bus (the owner's events on a standby)
                self.get_registry(), self.get_sessions(), self.get_view_bus(), self.get_state(), self._reactor,
                WebOptions.from_config(self.config.web), health=self._health,
            )
            endpoints.mount(self._web, self)
            self._wire()
        return self._web

    def get_metrics(self) -> Metrics:
        """This server's Prometheus registry, served at ``/metrics``."""
        if self._metrics is None:
            self._metrics = Metrics()
            self._metrics.watch(self)
        return self._metrics

    def get_cluster(self) -> Any:
        """The cluster node (``[cluster] enabled``), else ``None``."""
        self.service  # noqa: B018 - builds the tree, which builds it
        return self._cluster

    def get_iserver(self) -> Any:
        """The Interaction Processor service (seed 003), or ``None`` when disabled."""
        self.service  # noqa: B018 - builds the tree, which installs it
        return self._iserver

    def _health(self) -> dict[str, Any]:
        ami = self._ami.state if self._ami is not None else "down"
        return {"ami": ami, "pbx_synced": bool(self._link and self._link.resyncs),
                "calls": len(self._tracker.active_calls()) if self._tracker else 0,
                "agents": len(self._agents.all()) if self._agents else 0,
                "sessions": len(self._sessions) if self._sessions else 0,
                **({"cluster": self._cluster.health()} if self._cluster is not None else {})}

    def get_registry(self) -> Registry:
        """Every API method, for the agent bar, the Interaction Processor and plugins."""
        if self._registry is None:
            self._registry = Registry()
            endpoints.register_api(self._registry, self)
        return self._registry

    def get_operations(self) -> operations_api.Operations:
        """Who is logged in, forced logouts, the AMI link's state; what a directory
        change does to the sessions (issue 19)."""
        if self._operations is None:
            self._operations = operations_api.Operations(
                self.get_sessions(), self.get_agents(), self.get_directory(), self.get_store_proxy(),
                self.get_ami_client(), self.get_pbx_link(), self._reactor,
                node=holder_id(NODE_PREFIX.rstrip(":")), address=self._ami_address)
        return self._operations

    def get_pbx_link(self) -> PBXLink:
        """What the AMI client tells about Asterisk: events and resyncs into the model."""
        if self._link is None:
            self.get_call_tracker()  # the model's first observers are there before any event
            self._link = PBXLink(self.get_pbx(), self.config.ami.filters, clock=self._reactor)
        return self._link

    def get_ami_client(self) -> AMIClient:
        """The AMI client, built once from ``[ami]`` (or the demo PBX's address)."""
        if self._ami is None:
            self._ami = build_ami_client(self.config, self._reactor, self.get_pbx_link(), self._ami_address)
        return self._ami

    async def _flush_cdrs(self, timeout: float = 10.0) -> None:
        """Give queued CDRs a bounded chance to reach the store before it closes."""
        writer = self._cdr_writer
        if writer is None or not writer.pending:
            return
        d = writer.flushed()
        d.addTimeout(timeout, self._reactor)
        try:
            await d
        except Exception:
            log.error("{n} CDRs could not be written before shutdown", n=len(writer.pending))
        writer.stop()

    def _ami_address(self) -> tuple[str, int]:
        """Where the AMI client connects; asked at every attempt, because the
        demo PBX only knows its port once it listens."""
        if self._demo_address is not None:
            return self._demo_address()
        return self.config.ami.host, self.config.ami.port

    # --- start-up ----------------------------------------------------------------------

    def _fatal(self, failure: Failure) -> None:
        if failure.check(StoreError):
            message = str(failure.value)
        else:
            log.failure("UCS cannot start", failure)
            message = f"UCS cannot start: {failure.getErrorMessage()}"
        log.critical("{message}", message=message)
        if self._on_fatal is not None:
            self._on_fatal(message)


def _present(*observers: Any) -> list[Any]:
    """The observers built so far, in the order given."""
    return [o for o in observers if o is not None]


async def _nothing() -> None:
    """A :class:`Lifecycle` with nothing to undo on stop."""
