"""The node's NATS connection, and the names everything has on it.

One connection per node (nats-py reconnects it by itself once it was up);
:attr:`NatsLink.state` is what ``/health`` shows: ``up``, ``down`` (never
connected, or lost and reconnecting) or ``closed``.

The names come from the instance domain (seed 003's ``instance-domain``), so
that several contact centers can share one NATS: ``cc.example.com`` gives the
subjects ``ucs.cc_example_com.events.calls`` (``.agents``, ``.queues``,
``.devices``, ``.pbx``), the stream ``UCS_cc_example_com_EVENTS``, the bucket
``ucs_cc_example_com`` (key ``snapshot``: the snapshot's manifest), the object store
``ucs_cc_example_com_snapshots`` (its body) and ``ucs.cc_example_com.commands``.
Dots become ``_`` because a dot separates subject tokens and is not allowed in
stream or bucket names.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ucs.cluster.aio import AsyncioBridge

log = Logger(namespace="ucs.cluster")


@attrs.frozen
class Names:
    """Every NATS name of one instance domain."""

    domain: str

    @property
    def slug(self) -> str:
        return self.domain.lower().replace(".", "_")

    @property
    def stream(self) -> str:
        return f"UCS_{self.slug}_EVENTS"

    def events(self, category: str) -> str:
        return f"ucs.{self.slug}.events.{category}"

    @property
    def all_events(self) -> str:
        return f"ucs.{self.slug}.events.>"

    @property
    def bucket(self) -> str:
        return f"ucs_{self.slug}"

    @property
    def snapshots(self) -> str:
        """The object store that holds the snapshot's body (:mod:`ucs.cluster.stream`)."""
        return f"ucs_{self.slug}_snapshots"

    @property
    def snapshot_subject(self) -> str:
        """Where the bucket's ``snapshot`` key is published (KV puts are messages on it)."""
        return f"$KV.{self.bucket}.snapshot"

    @property
    def commands(self) -> str:
        return f"ucs.{self.slug}.commands"


def read_notice(data: bytes, version: int, node: str, *, what: str, accepted: str,
                check: Callable[[dict[str, Any]], object] = lambda notice: None) -> dict[str, Any] | None:
    """Another node's notice in ``data``: a JSON object of ``version`` that ``check``
    accepts (``check`` raises ``ValueError``, ``KeyError`` or ``TypeError`` if not).

    ``None`` for a notice of this ``node`` (each node hears its own) and for one not
    understood, which is logged -- what was wrong and what is ``accepted`` -- because a
    node of another version, or a stranger on the subject, must not stop this one: the
    notice is ignored, and the warning says why nothing was done."""
    try:
        notice = json.loads(data)
        if not isinstance(notice, dict):
            raise ValueError(f"a JSON {type(notice).__name__}, not an object")
        if notice.get("v") != version:
            raise ValueError(f"version {notice.get('v')!r}, not {version}")
        check(notice)
    except KeyError as e:
        _not_understood(what, f"no {e.args[0]!r}", accepted)
        return None
    except (ValueError, TypeError) as e:  # a UnicodeDecodeError or a JSONDecodeError is a ValueError
        _not_understood(what, str(e), accepted)
        return None
    if notice.get("node") == node:
        return None
    return notice


def _not_understood(what: str, wrong: str, accepted: str) -> None:
    log.warn("cluster: {what} was not understood ({wrong}); ignored. Accepted: {accepted}",
             what=what, wrong=wrong, accepted=accepted)


class NatsLink:
    """One nats-py connection, used from the reactor thread through ``bridge``."""

    def __init__(self, servers: tuple[str, ...] | list[str], name: str, bridge: AsyncioBridge,
                 on_change: Callable[[str], Any] = lambda state: None) -> None:
        self.servers = list(servers)
        self.name = name
        self.bridge = bridge
        self.on_change = on_change
        self.state = "down"
        self.nc: Any = None
        self.js: Any = None

    def connect(self) -> Deferred[None]:
        """One attempt to connect (fails with nats-py's error when no server answers);
        once up, nats-py reconnects by itself and :attr:`state` follows."""
        return self.bridge.run(self._connect)

    async def _connect(self) -> None:
        import nats

        def told(state: str) -> Callable[[], Any]:
            async def cb(*_: Any) -> None:
                self.bridge.to_reactor(self._set, state)

            return cb

        async def error(e: Exception) -> None:
            log.debug("NATS: {e}", e=e)

        nc = await nats.connect(servers=self.servers, name=self.name, connect_timeout=2,
                                reconnect_time_wait=1, max_reconnect_attempts=-1, allow_reconnect=True,
                                disconnected_cb=told("down"), reconnected_cb=told("up"),
                                closed_cb=told("closed"), error_cb=error)
        self.nc, self.js = nc, nc.jetstream()
        self.bridge.to_reactor(self._set, "up")

    def _set(self, state: str) -> None:
        if state != self.state:
            log.info("NATS link {name}: {old} -> {new}", name=self.name, old=self.state, new=state)
            self.state = state
            self.on_change(state)

    def close(self) -> Deferred[None]:
        nc, self.nc = self.nc, None
        if nc is None:
            d: Deferred[None] = Deferred()
            d.callback(None)
            return d
        return self.bridge.run(nc.close)
