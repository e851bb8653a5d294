"""Commands from any node to the AMI owner: NATS request/reply on ``ucs.<domain>.commands``.

Only the owner subscribes (while it is the owner), so a request reaches the
node that can act on Asterisk, whichever node the agent's bar is on.  The
request is ``{"v": 1, "method": ..., "args": [...], "node": ...}``; the reply
``{"v": 1, "ok": true, "result": ...}`` or ``{"v": 1, "ok": false, "error":
{"code", "message"}}``.  Nobody subscribed (no owner: the election is
between owners, or NATS is partitioned) fails at once with :class:`NoOwner`
(NATS's "no responders"); an owner that does not answer within
``[cluster] request_timeout`` with :class:`OwnerTimeout`.  Nothing here tries
again: which failures may be retried depends on the command (the forwarder,
:mod:`ucs.cluster.forward`, rides out a take-over on :class:`NoOwner` only).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ucs.cluster.codec import jsonable
from ucs.cluster.natslink import NatsLink, Names

log = Logger(namespace="ucs.cluster")

VERSION = 1


class CommandError(Exception):
    """A command to the owner failed; ``code`` says how (``no-owner``, ``timeout``, or the owner's code)."""

    code = "failed"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NoOwner(CommandError):
    code = "no-owner"


class OwnerTimeout(CommandError):
    code = "timeout"


#: ``handler(method, args, node)``: the owner's answer (or a Deferred of it); raising
#: an exception with a ``code`` attribute (UCS's API errors have one) replies with it.
Handler = Callable[[str, list[Any], str], Any]


class CommandServer:
    """The owner's side: answers requests with ``handler`` while :meth:`serve` runs."""

    def __init__(self, link: NatsLink, names: Names, handler: Handler) -> None:
        self.link = link
        self.names = names
        self.handler = handler
        self._sub: Any = None

    @property
    def serving(self) -> bool:
        """The subscription is made: requests reach :attr:`handler`."""
        return self._sub is not None

    def serve(self) -> Deferred[None]:
        """Subscribe; fires once the NATS server has the subscription (requests reach it)."""
        cb = self.link.bridge.callback(self._request)
        nc = self.link.nc

        async def subscribe() -> Any:
            sub = await nc.subscribe(self.names.commands, cb=cb)
            await nc.flush()
            return sub

        def subscribed(sub: Any) -> None:
            self._sub = sub

        return self.link.bridge.run(subscribe).addCallback(subscribed)

    def stop(self) -> Deferred[None]:
        sub, self._sub = self._sub, None
        if sub is None:
            done: Deferred[None] = Deferred()
            done.callback(None)
            return done
        nc = self.link.nc

        async def unsubscribe() -> None:
            await sub.unsubscribe()
            if nc is not None and nc.is_connected:
                await nc.flush()

        return self.link.bridge.run(unsubscribe)

    def _request(self, msg: Any) -> None:
        try:
            request = json.loads(msg.data)
            if not isinstance(request, dict) or request.get("v") != VERSION or not isinstance(
                    request.get("method"), str):
                raise ValueError(f"a command is {{\"v\": {VERSION}, \"method\": NAME, \"args\": [...]}}")
            args = request.get("args", [])
            if not isinstance(args, list):
                raise ValueError("a command's args are a JSON list")
        except ValueError as e:
            self._reply(msg, {"v": VERSION, "ok": False, "error": {"code": "bad-request", "message": str(e)}})
            return
        d = maybeDeferred(self.handler, request["method"], args, str(request.get("node", "")))
        d.addCallbacks(lambda result: self._reply(msg, {"v": VERSION, "ok": True, "result": jsonable(result)}),
                       lambda f: self._reply(msg, {"v": VERSION, "ok": False, "error": _error(f)}))

    def _reply(self, msg: Any, reply: dict[str, Any]) -> None:
        if msg.reply:
            d = self.link.bridge.run(msg.respond, json.dumps(reply).encode())
            d.addErrback(lambda f: log.warn("cluster: a command's reply was lost: {e}", e=f.getErrorMessage()))


def _error(f: Failure) -> dict[str, Any]:
    return {"code": str(getattr(f.value, "code", "failed")), "message": f.getErrorMessage()}


class CommandClient:
    """Any node's side: :meth:`request` a method of the owner."""

    def __init__(self, link: NatsLink, names: Names, node: str, timeout: float) -> None:
        self.link = link
        self.names = names
        self.node = node
        self.timeout = timeout

    def request(self, method: str, *args: Any) -> Deferred[Any]:
        """The owner's result, or :class:`CommandError` (:class:`NoOwner`, :class:`OwnerTimeout`)."""
        data = json.dumps({"v": VERSION, "method": method, "args": jsonable(list(args)), "node": self.node}).encode()
        return self.link.bridge.run(self._request, method, data)

    async def _request(self, method: str, data: bytes) -> Any:
        import nats.errors

        if self.link.nc is None or not self.link.nc.is_connected:
            raise NoOwner(f"{method}: this node is not connected to NATS, so it cannot reach the AMI owner of "
                          f"{self.names.domain}; see /health")
        try:
            msg = await self.link.nc.request(self.names.commands, data, timeout=self.timeout)
        except nats.errors.NoRespondersError:
            raise NoOwner(f"{method}: no node owns the AMI link of {self.names.domain} now (nobody answers on "
                          f"{self.names.commands}); the election is between owners or the owner is cut off "
                          "from NATS: try again in a few seconds, and see each node's /health") from None
        except nats.errors.TimeoutError:
            raise OwnerTimeout(f"{method}: the AMI owner of {self.names.domain} did not answer within "
                               f"{self.timeout:g} s ([cluster] request_timeout)") from None
        reply = json.loads(msg.data)
        if not reply.get("ok"):
            error = reply.get("error") or {}
            raise CommandError(f"{method}: {error.get('message', 'failed')}", str(error.get("code", "failed")))
        return reply.get("result")
