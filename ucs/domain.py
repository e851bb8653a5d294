"""The domain's start and stop: what runs after the store opens and before the AMI link.

The ``domain`` :class:`~ucs.lifecycle.Lifecycle` of the service tree
(``UCSServer._build_services``).  Its start: this UCS takes its writer's lock
in the store (and refuses to start while ``ucs-admin`` writes the store
directly, :mod:`ucs.store.locks`); the directory loads, with the demo's users
in demo mode, and the first superuser; shared data; the API registry; the
agents as they were, whose bars must come back (on a single node: in a
cluster, the node that owns the AMI link starts them); supervision; the
operations.  Its stop runs the other way.

Why a module of its own (issue 15): the order of that start and stop, and what
it holds meanwhile (the writer's lock, the bars awaited), is one piece of
logic; the container (:mod:`ucs.server`) builds the components it starts, and
stays the one place that says which component gets which others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from ucs import demo
from ucs.store.locks import ADMIN_LOCK, NODE_PREFIX, WriterLock, holder_id

if TYPE_CHECKING:
    from ucs.server import UCSServer

#: The container's: the lines logged at the domain's start keep its namespace.
log = Logger(namespace="ucs.server")


class Domain:
    """The start and stop of the ``domain`` lifecycle, on the components of ``server``."""

    def __init__(self, server: UCSServer) -> None:
        self._server = server
        self._writer_lock: WriterLock | None = None
        #: The agents restored at start, waiting for their bars (``Auth.expect_bars``).
        self._bars_back: Any = None

    async def start(self) -> None:
        """After the store opens, before the AMI link: the directory, the demo's
        users, the first admin, the agents as they were.  First this UCS takes its
        writer's lock in the store, and refuses to start while ``ucs-admin`` writes
        the store directly (:mod:`ucs.store.locks`)."""
        server, config = self._server, self._server.config
        self._writer_lock = WriterLock(server.get_store(), server.get_reactor(), holder_id(NODE_PREFIX.rstrip(":")),
                                       lambda name: name == ADMIN_LOCK, self._advertised)
        await self._writer_lock.take()
        directory = server.get_directory()
        await directory.load()
        if config.demo.enabled:
            await demo.seed(directory, config.demo.phones)
        password = config.auth.admin_password or (demo.ADMIN_PASSWORD if config.demo.enabled else "")
        admin, generated = await directory.ensure_admin(password)
        if generated:
            log.warn("created the superuser {name!r} with password {password!r}: change it "
                     "(config.users.edit) or set auth.admin_password", name=admin.username, password=generated)
        await server.get_shared().load()
        server.get_registry()
        cluster = server.get_cluster()
        if cluster is None:  # issue 20: in a cluster, the agents run on the AMI owner only
            agents = server.get_agents()
            await agents.start()
            if agents.all():  # their bars' sessions were the stopped process's: they must come back
                self._bars_back = server.get_auth().expect_bars([a.user.id for a in agents.all()],
                                                                config.web.resume_window)
        await server.get_supervision().start()
        if cluster is not None:  # issue 20: it starts them when this node owns the AMI link
            cluster.domain_started()
        server.get_operations().start(server.get_bus())  # after the agents: they log out, then sessions end

    def _advertised(self) -> dict[str, Any]:
        """What this UCS tells ``ucs-admin`` in its lock: where its API is."""
        web = self._server._web
        return {"url": web.ws_url if web is not None and web.running else None}

    async def stop(self) -> None:
        """The start undone, of what was built (nothing is built to be stopped)."""
        server = self._server
        if self._bars_back is not None and self._bars_back.active():
            self._bars_back.cancel()
        if server._operations is not None:
            server._operations.stop()
        if self._writer_lock is not None:
            lock, self._writer_lock = self._writer_lock, None
            await lock.release()
        if server._supervision is not None and server._supervision.running:
            await server._supervision.stop()
        if server._agents is not None and (server._cluster is None or server._agents.running):  # issue 20
            await server._agents.stop()
        if server._lookups is not None:
            await server._lookups.close()
