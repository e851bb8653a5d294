"""The container: builds every UCS component once and hands each the others.

Like Synapse's ``HomeServer``: ``UCSServer(config, reactor)`` owns the config
and the reactor, builds each component the first time its ``get_*`` method is
called, and assembles the service tree in :attr:`UCSServer.service`. A
component takes the container (or the few things it needs from it) in its
constructor; nothing is a module-level singleton.

Start-up order (see :class:`UCSService`):

1. the store opens (``[store] url``) and migrates its schema;
2. then every other child service starts, in the order added: the simulated
   PBX first in demo mode, then the AMI client, then the web servers.

Stop runs the other way: the other services stop (and their Deferreds are
waited for), then the store closes.

Where the rest gets wired (see the ``HOOK`` comments below): the AMI client,
the PBX model and the call tracker are built by :meth:`get_ami_client`,
:meth:`get_pbx` and :meth:`get_call_tracker`, and their services added in
:meth:`_build_services`; in demo mode :meth:`_build_demo_pbx` adds the
simulated PBX and says where the AMI client must connect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

import ucs
from ucs.config import Config
from ucs.store import Store, StoreError, open_store

log = Logger(namespace="ucs.server")


class StoreService(Service):
    """Opens the store when started, closes it when stopped."""

    def __init__(self, config: Config, reactor: Any) -> None:
        self.setName("store")
        self._config = config
        self._reactor = reactor
        self.store: Store | None = None
        self._opening: Deferred[Store] | None = None
        self._waiters: list[Deferred[Store]] = []
        self._failure: Failure | None = None

    def startService(self) -> None:
        super().startService()
        self._opening = open_store(self._config.store.url, self._reactor, pool_size=self._config.store.pool_size)
        self._opening.addCallbacks(self._opened, self._failed)

    def _opened(self, store: Store) -> None:
        self.store = store
        log.info("store open: {url} (schema version {v})", url=str(store.url), v=store.schema_version)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(store)

    def _failed(self, failure: Failure) -> None:
        self._failure = failure
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.errback(failure)

    def when_open(self) -> Deferred[Store]:
        """Fires with the open :class:`Store` (at once if it is open already)."""
        d: Deferred[Store] = Deferred()
        if self.store is not None:
            d.callback(self.store)
        elif self._failure is not None:
            d.errback(self._failure)
        else:
            self._waiters.append(d)
        return d

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        if self._opening is not None and self.store is None and self._failure is None:
            try:
                await self.when_open()
            except Exception:
                return
        store, self.store = self.store, None
        if store is not None:
            await store.close()
            log.info("store closed: {url}", url=str(store.url))


class UCSService(MultiService):
    """The root of UCS's service tree: the store first, then everything else."""

    def __init__(self, server: UCSServer) -> None:
        super().__init__()
        self.setName("ucs")
        self._server = server
        self._starting: Deferred[None] | None = None

    def startService(self) -> None:
        Service.startService(self)
        self._server._log_startup()
        self._starting = Deferred.fromCoroutine(self._start())
        self._starting.addErrback(self._server._fatal)

    async def _start(self) -> None:
        store_service = self.getServiceNamed("store")
        store_service.startService()
        await store_service.when_open()
        for svc in self:
            if not self.running:  # stopped while the store was opening
                return
            if svc is not store_service and not svc.running:
                svc.startService()
        log.info("UCS started")

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        store_service = self.getServiceNamed("store")
        others = [s for s in reversed(list(self)) if s is not store_service and s.running]
        await DeferredList([maybeDeferred(s.stopService) for s in others], consumeErrors=True)
        if store_service.running:
            await store_service.stopService()


class UCSServer:
    """Builds UCS's components once; ``service`` is what twistd runs.

    ``on_fatal(message)`` is called when UCS cannot start (the store cannot be
    opened, ...): ``twistd ucs`` stops the process with an error status; the
    default only logs.
    """

    def __init__(self, config: Config, reactor: Any, on_fatal: Callable[[str], None] | None = None) -> None:
        self.config = config
        self._reactor = reactor
        self._on_fatal = on_fatal
        self._service: UCSService | None = None
        self._store_service: StoreService | None = None

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
        if self.config.demo.enabled:
            self._build_demo_pbx(root)
        # HOOK (lead): add the AMI client's service here (a ClientService logging in
        # with [ami]; in demo mode pointed at the simulated PBX), then the web and
        # Interaction Processor servers. The PBX model and call tracker are plain
        # objects fed by the AMI client's events: build them in get_pbx() and
        # get_call_tracker(); CDRs go to self.get_store() when calls end.

    def _build_demo_pbx(self, root: MultiService) -> None:
        """HOOK (sim): add the simulated PBX's service to ``root``.

        It must listen for AMI on 127.0.0.1 (``[demo] port``, 0 for any free
        port), simulate ``[demo] phones`` phones and ``[demo] call_rate``
        callers per minute, and tell the AMI client where to connect (host,
        port, username, secret) instead of ``[ami]``. Not wired yet: ``ucs.sim``
        is being written (start-up logs a warning meanwhile).
        """

    # --- components -------------------------------------------------------------------

    def get_reactor(self) -> Any:
        return self._reactor

    def get_config(self) -> Config:
        return self.config

    def get_store_service(self) -> StoreService:
        if self._store_service is None:
            self._store_service = StoreService(self.config, self._reactor)
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

    def get_ami_client(self) -> Any:
        """HOOK (lead): the AMI client, built once from ``[ami]`` (or the demo PBX's address)."""
        raise NotImplementedError("UCSServer.get_ami_client: the AMI client is not wired into the container yet")

    def get_pbx(self) -> Any:
        """HOOK (lead): the PBX model (ucs.pbx), fed by the AMI client's events."""
        raise NotImplementedError("UCSServer.get_pbx: the PBX model is not wired into the container yet")

    def get_call_tracker(self) -> Any:
        """HOOK (lead): the call tracker (ucs.calls), fed by the PBX model; saves CDRs to the store."""
        raise NotImplementedError("UCSServer.get_call_tracker: the call tracker is not wired into the container yet")

    # --- start-up ----------------------------------------------------------------------

    def _log_startup(self) -> None:
        c = self.config
        log.info("UCS {version} starting; config: {source}", version=ucs.__version__,
                 source=c.source or "built-in defaults")
        log.info("store: {url}", url=_redacted_store_url(c.store.url))
        if c.demo.enabled:
            log.info("AMI: the simulated PBX (demo mode, {rate:g} calls/min, {phones} phones)",
                     rate=c.demo.call_rate, phones=c.demo.phones)
            log.warn("demo mode: the simulated PBX (ucs.sim) is not wired into the server yet")
        else:
            log.info("AMI: connecting to {host}:{port} as {user} ({auth} login)",
                     host=c.ami.host, port=c.ami.port, user=c.ami.username, auth=c.ami.auth)
        scheme = "https" if c.web.tls_cert else "http"
        host = f"[{c.web.listen}]" if ":" in c.web.listen else c.web.listen
        log.info("web: {url} (agent bar, Interaction Processor at {path})",
                 url=f"{scheme}://{host}:{c.web.port}/", path=c.iserver.path)

    def _fatal(self, failure: Failure) -> None:
        if failure.check(StoreError):
            message = str(failure.value)
        else:
            log.failure("UCS cannot start", failure)
            message = f"UCS cannot start: {failure.getErrorMessage()}"
        log.critical("{message}", message=message)
        if self._on_fatal is not None:
            self._on_fatal(message)


def _redacted_store_url(url: str) -> str:
    from ucs.store.url import redact

    return redact(url)
