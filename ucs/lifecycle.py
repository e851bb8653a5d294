"""How UCS starts and stops: the root of its service tree, and its start-up log.

Split out of ``ucs.server`` (issue 15): the container builds the components
and says which services the tree holds, in which order
(``UCSServer._build_services``); running that tree -- the store opened before
anything else starts, each service awaited in turn, the GC tuned once start-up
is done, the reverse order on stop with queued CDRs flushed before the store
closes -- is here.  :class:`UCSService` is still importable from ``ucs.server``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.logger import Logger

import ucs
from ucs.config import Config

if TYPE_CHECKING:
    from ucs.server import UCSServer

#: The namespace these messages always had (JSON logs show it; filters may name it).
log = Logger(namespace="ucs.server")

#: The cyclic GC's thresholds once UCS runs.  With the default (700, 10, 10)
#: objects that live a moment longer than usual (a message in flight, a call's
#: Deferreds) are promoted to the oldest generation, which then grows by a
#: quarter every few seconds under load and is walked whole: a pause of 0.3 s
#: at 5,000 sessions, several times a minute.  Young collections every 10,000
#: allocations let those objects die young; the old generation is looked at
#: after 100 middle collections at the earliest (bench/README.md: measured).
GC_THRESHOLDS = (10_000, 10, 100)


class UCSService(MultiService):
    """The root of UCS's service tree: the store first, then everything else."""

    def __init__(self, server: UCSServer) -> None:
        super().__init__()
        self.setName("ucs")
        self._server = server
        self._starting: Deferred[None] | None = None

    def startService(self) -> None:
        Service.startService(self)
        log_startup(self._server.config)
        self._starting = Deferred.fromCoroutine(self._start())
        self._starting.addErrback(self._server._fatal)

    def whenStarted(self) -> Deferred[None]:
        """Fires once every service has started (at once if that is done);
        call it after :meth:`startService`."""
        if self._starting is None:
            raise RuntimeError("UCSService.whenStarted() before startService()")
        d: Deferred[None] = Deferred()

        def tell(result: Any) -> Any:
            d.callback(None)
            return result

        self._starting.addBoth(tell)
        return d

    async def _start(self) -> None:
        store_service = self.getServiceNamed("store")
        store_service.startService()
        await store_service.when_open()
        for svc in self:
            if not self.running:  # stopped while the store was opening
                return
            if svc is not store_service and not svc.running:
                started = svc.startService()
                if isinstance(started, Deferred):
                    await started  # e.g. the directory and agents, before the AMI link
        log.info("UCS started")
        gc.collect()  # what start-up built (directory, modules) lives on: no collection walks it again
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        store_service = self.getServiceNamed("store")
        others = [s for s in reversed(list(self)) if s is not store_service and s.running]
        await DeferredList([maybeDeferred(s.stopService) for s in others], consumeErrors=True)
        await self._server._flush_cdrs()
        if store_service.running:
            await store_service.stopService()


class Lifecycle(Service):
    """A service made of an ``async`` start and stop."""

    def __init__(self, name: str, start: Callable[[], Any], stop: Callable[[], Any]) -> None:
        self.setName(name)
        self._start = start
        self._stop = stop

    def startService(self) -> Deferred[None]:  # type: ignore[override]
        super().startService()
        return Deferred.fromCoroutine(self._start())

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return Deferred.fromCoroutine(self._stop())


def log_startup(c: Config) -> None:
    """What UCS is about to run with: version, config, store, AMI and web addresses."""
    log.info("UCS {version} starting; config: {source}", version=ucs.__version__,
             source=c.source or "built-in defaults")
    log.info("store: {url}", url=_redacted_store_url(c.store.url))
    if c.demo.enabled:
        log.info("AMI: the simulated PBX (demo mode, {rate:g} calls/min, {phones} phones)",
                 rate=c.demo.call_rate, phones=c.demo.phones)
    else:
        log.info("AMI: connecting to {host}:{port} as {user} ({auth} login){when}",
                 host=c.ami.host, port=c.ami.port, user=c.ami.username, auth=c.ami.auth,
                 when=" while this node is the cluster's elected owner" if c.cluster.enabled else "")
        if not c.ami.secret:
            log.warn("ami.secret is empty: Asterisk will refuse the login; set the manager.conf "
                     "user's secret in the config")
    scheme = "https" if c.web.tls_cert else "http"
    host = f"[{c.web.listen}]" if ":" in c.web.listen else c.web.listen
    log.info("web: {url} (agent bar {url}operator/operator-v4.0.0.js, demo CRM page {url}demo/)",
             url=f"{scheme}://{host}:{c.web.port}/")


def _redacted_store_url(url: str) -> str:
    from ucs.store.url import redact

    return redact(url)
