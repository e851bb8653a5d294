"""Where ``ucs-admin`` makes its changes: through a running UCS, or in the store.

Both offer the same few calls (``list``, ``add``, ``edit``, ``delete``,
``import_files``, ``audit``), with entities as the API gives them (``to_dict``);
an import is applied all or nothing, every file in one transaction
(``config.importAll`` in API mode):

- :class:`ApiAdmin`: the agent bar's WebSocket (``[web] ws_path``), logged in as
  a superuser; UCS validates, applies live and audits (source ``api``).
- :class:`DirectAdmin`: the store itself, while no UCS runs on it; the
  directory's own validation, audited with source ``ucs-admin``.  It holds the
  store's ``admin`` lock meanwhile (:mod:`ucs.store.locks`), so a UCS starting
  then refuses to start until it is done.

:func:`open_admin` picks one: a UCS that holds its lock in the store means the
API, else the store.
"""

from __future__ import annotations

import getpass
import json
from pathlib import PurePath
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString

from ucs.config import Config
from ucs.directory.csvio import ImportRefused, apply_import
from ucs.directory.directory import Directory
from ucs.error import UCSError
from ucs.store import Store, open_store
from ucs.store.locks import ADMIN_LOCK, NODE_PREFIX, LockHeld, WriterLock, running_nodes


class AdminError(Exception):
    """What ``ucs-admin`` prints before exiting with status 1; ``fields`` names the bad fields."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


def _sorted(entities: Any) -> list[dict[str, Any]]:
    return sorted(entities, key=lambda e: e["id"])


class DirectAdmin:
    mode = "direct"

    def __init__(self, store: Store, directory: Directory, lock: WriterLock, actor: str, reactor: Any) -> None:
        self.store = store
        self.directory = directory
        self._lock = lock
        self._actor = actor
        self._reactor = reactor

    async def list(self, kind: str) -> list[dict[str, Any]]:
        table = self.directory.table(kind)
        if kind == "users":
            return _sorted(self.directory.user_dict(u) for u in table.values())
        return _sorted(e.to_dict() for e in table.values())

    async def _do(self, call: Any) -> dict[str, Any]:
        try:
            entity = await call
        except UCSError as e:
            raise AdminError(str(e), {str(k): str(v) for k, v in e.message.items()}
                             if isinstance(e.message, dict) else None) from None
        if entity is None:
            return {}
        return self.directory.user_dict(entity) if hasattr(entity, "username") else dict(entity.to_dict())

    async def add(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        return await self._do(self.directory.add(kind, data, actor=self._actor, source="ucs-admin"))

    async def edit(self, kind: str, entity_id: int, data: dict[str, Any]) -> dict[str, Any]:
        return await self._do(self.directory.edit(kind, entity_id, data, actor=self._actor, source="ucs-admin"))

    async def delete(self, kind: str, entity_id: int) -> dict[str, Any]:
        await self._do(self.directory.delete(kind, entity_id, actor=self._actor, source="ucs-admin"))
        return {"id": entity_id, "deleted": True}

    async def import_files(self, files: dict[str, tuple[str, str]]) -> int:
        """Every file in one transaction (:func:`apply_import`); the number of changes made."""
        try:
            done, _ = await apply_import(self.directory, files, self._reactor, actor=self._actor, source="ucs-admin")
        except ImportRefused as e:
            raise AdminError(f"{len(e.problems)} row(s) refused; nothing was changed",
                             {f"{p.file}:{p.line}: {p.column}": p.message for p in e.problems}) from None
        except UCSError as e:
            raise AdminError(str(e)) from None
        return len(done)

    async def audit(self, filters: dict[str, Any], limit: int, before_id: int | None) -> dict[str, Any]:
        entries = await self.store.audit_list(limit=limit, before_id=before_id, **filters)
        return {"entries": entries, "next": entries[-1]["id"] if len(entries) == limit else None}

    async def close(self) -> None:
        try:
            await self._lock.release()
        finally:
            await self.store.close()


class _Protocol(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.client.proto = self

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.client.received(json.loads(payload))

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self.factory.client.closed(f"{code} {reason or ''}".strip())


class ApiAdmin:
    """The API of a running UCS over its WebSocket, one request at a time."""

    mode = "api"

    def __init__(self, url: str) -> None:
        self.url = url
        self.proto: _Protocol | None = None
        self._hello: Deferred[None] = Deferred()
        self._pending: dict[int, Deferred[Any]] = {}
        self._next = 0
        self._gone = ""

    # wiring

    def received(self, msg: dict[str, Any]) -> None:
        if msg.get("event") == "hello" and not self._hello.called:
            self._hello.callback(None)
            return
        d = self._pending.pop(msg["id"], None) if "id" in msg and msg["id"] is not None else None
        if d is None:
            return  # an event, or an error about nothing we sent
        if "error" in msg:
            error = msg["error"] or {}
            d.errback(AdminError(error.get("message", "refused"), error.get("fields")))
        else:
            d.callback(msg.get("result"))

    def closed(self, why: str) -> None:
        self._gone = why or "closed"
        failure = AdminError(f"UCS at {self.url} closed the connection ({self._gone})")
        if not self._hello.called:
            self._hello.errback(failure)
        pending, self._pending = self._pending, {}
        for d in pending.values():
            d.errback(failure)

    async def connect(self, reactor: Any) -> None:
        factory = WebSocketClientFactory(self.url)
        factory.protocol = _Protocol
        factory.client = self  # type: ignore[attr-defined]
        host, port = factory.host, factory.port
        kind = "tls" if factory.isSecure else "tcp"
        try:
            await clientFromString(reactor, f"{kind}:{host}:{port}:timeout=10").connect(factory)
        except Exception as e:
            raise AdminError(f"cannot reach UCS at {self.url}: {e}") from None
        await self._hello

    async def login(self, username: str, password: str) -> None:
        await self.call("login", [username, password])

    def call(self, method: str, args: Any = None) -> Deferred[Any]:
        if self.proto is None or self._gone:
            raise AdminError(f"not connected to UCS at {self.url}")
        self._next += 1
        d: Deferred[Any] = Deferred()
        self._pending[self._next] = d
        msg: dict[str, Any] = {"id": self._next, "method": method}
        if args is not None:
            msg["args"] = args
        self.proto.sendMessage(json.dumps(msg).encode())
        return d

    async def list(self, kind: str) -> list[dict[str, Any]]:
        return _sorted(await self.call(f"config.{kind}.list"))

    async def add(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(f"config.{kind}.add", [data])
        return result

    async def edit(self, kind: str, entity_id: int, data: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(f"config.{kind}.edit", [{**data, "id": entity_id}])
        return result

    async def delete(self, kind: str, entity_id: int) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(f"config.{kind}.delete", [entity_id])
        return result

    async def import_files(self, files: dict[str, tuple[str, str]]) -> int:
        """Every file through ``config.importAll``: one transaction on the server; the number of changes made."""
        report = await self.call("config.importAll", {"files": [
            {"kind": kind, "csv": text, "file": PurePath(path).name or f"{kind}.csv"}
            for kind, (path, text) in files.items()], "dry_run": False})
        return sum(len(f["added"]) + len(f["changed"]) for f in report["files"])

    async def audit(self, filters: dict[str, Any], limit: int, before_id: int | None) -> dict[str, Any]:
        args: dict[str, Any] = {"filters": filters, "limit": limit}
        if before_id is not None:
            args["before_id"] = before_id
        result: dict[str, Any] = await self.call("audit.list", args)
        return result

    async def close(self) -> None:
        if self.proto is not None and not self._gone:
            self.proto.sendClose(1000)


def web_url(config: Config) -> str:
    """The WebSocket URL of the UCS ``config`` describes."""
    w = config.web
    host = w.listen if w.listen not in ("0.0.0.0", "::", "") else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'wss' if w.tls_cert else 'ws'}://{host}:{w.port}{w.ws_path}"


async def open_admin(config: Config, reactor: Any, *, mode: str = "auto", url: str | None = None,
                     username: str = "admin", password: str | None = None, actor: str | None = None) -> Any:
    """An :class:`ApiAdmin` (logged in) or a :class:`DirectAdmin` (holding the lock).

    ``mode``: ``api``, ``direct`` or ``auto`` (the API when a UCS runs on the store)."""
    store = None
    if mode != "api":
        store = await open_store(config.store.url, reactor, pool_size=1, clock=reactor)
        nodes = await running_nodes(store)
        if mode == "auto":
            mode = "api" if nodes else "direct"
        if mode == "api":
            await store.close()
            url = url or next((n["url"] for n in nodes.values() if n.get("url")), None)
    if mode == "api":
        api = ApiAdmin(url or web_url(config))
        await api.connect(reactor)
        try:
            if password is None:
                password = config.auth.admin_password or getpass.getpass(f"password of {username} on {api.url}: ")
            await api.login(username, password)
        except BaseException:
            await api.close()
            raise
        return api
    assert store is not None
    lock = WriterLock(store, reactor, ADMIN_LOCK, lambda name: name.startswith(NODE_PREFIX))
    try:
        await lock.take()
    except LockHeld as e:
        await store.close()
        raise AdminError(f"{e}; UCS runs on this store: use its API (leave out --direct), or stop it") from None
    directory = Directory(store, audit=store)
    await directory.load()
    return DirectAdmin(store, directory, lock, actor or getpass.getuser(), reactor)
