"""nats-py's asyncio beside Twisted: which loop it runs on, and the two ways across.

The decision (issue 20): **a cluster node runs on Twisted's asyncio reactor**,
``twistd --reactor=asyncio ucs`` (docs/cluster.md).  UCS's own fan-out bench
at 2,000 bars gives the same p99, memory and idle CPU on it as on epoll, and
nats-py then runs on the reactor's own loop: a NATS message is handled on the
reactor thread, in the same turn, with no hand-off (publish→consume p50 0.3 ms,
request/reply 0.34 ms measured here).  Without ``[cluster]`` nothing changes:
any reactor, and nothing of asyncio is used.

Under another reactor (the test suite's, or an operator who forgot the option)
the bridge still works: it starts an asyncio loop in a thread of its own and
crosses with ``run_coroutine_threadsafe`` one way and ``callFromThread`` the
other -- correct, a little slower, and logged as a warning by the node.

Either way the rest of UCS sees Deferreds: :meth:`AsyncioBridge.run` runs a
coroutine function on the loop and gives a Deferred fired on the reactor
thread; :meth:`AsyncioBridge.callback` wraps a reactor-side function as the
``async`` callback nats-py wants.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future as ThreadFuture
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

T = TypeVar("T")


def reactor_loop(reactor: Any) -> asyncio.AbstractEventLoop | None:
    """The asyncio loop ``reactor`` runs on (``AsyncioSelectorReactor``), else ``None``."""
    loop = getattr(reactor, "_asyncioEventloop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


class AsyncioBridge:
    """Runs nats-py's coroutines for code on the reactor thread."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        loop = reactor_loop(reactor)
        #: ``True`` when the loop is the reactor's (no thread, no hand-off).
        self.same_loop = loop is not None
        self._thread: threading.Thread | None = None
        if loop is None:
            loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=loop.run_forever, name="ucs-nats-loop", daemon=True)
            self._thread.start()
        self.loop: asyncio.AbstractEventLoop = loop

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> Deferred[T]:
        """``await fn(*args, **kwargs)`` on the loop; fires (on the reactor thread) with its result."""
        if self.same_loop:
            return Deferred.fromFuture(asyncio.ensure_future(fn(*args, **kwargs), loop=self.loop))

        async def call() -> T:
            return await fn(*args, **kwargs)

        d: Deferred[T] = Deferred()
        future: ThreadFuture[T] = asyncio.run_coroutine_threadsafe(call(), self.loop)

        def done(f: ThreadFuture[T]) -> None:
            self._reactor.callFromThread(_fire, d, f)

        future.add_done_callback(done)
        return d

    def callback(self, fn: Callable[[Any], Any]) -> Callable[[Any], Awaitable[None]]:
        """An ``async`` callback for nats-py that runs ``fn(message)`` on the reactor thread, in order."""
        if self.same_loop:
            async def direct(msg: Any) -> None:
                fn(msg)

            return direct

        async def across(msg: Any) -> None:
            self._reactor.callFromThread(fn, msg)

        return across

    def to_reactor(self, fn: Callable[..., Any], *args: Any) -> None:
        """From the loop: call ``fn(*args)`` on the reactor thread."""
        if self.same_loop:
            fn(*args)
        else:
            self._reactor.callFromThread(fn, *args)

    def to_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """From the reactor thread: call ``fn(*args)`` on the loop (soon, in order)."""
        if self.same_loop:  # no wake-up of the loop's selector needed: this is its thread
            self.loop.call_soon(fn, *args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        """Stop the loop's own thread (none when it is the reactor's)."""
        if self._thread is not None:
            async def cancel_all() -> None:
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            try:
                asyncio.run_coroutine_threadsafe(cancel_all(), self.loop).result(5)
            except Exception:  # noqa: S110 - closing anyway
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self._thread = None
            self.loop.close()


def _fire(d: Deferred[T], future: ThreadFuture[T]) -> None:
    exc = future.exception() if not future.cancelled() else asyncio.CancelledError()
    if exc is not None:
        d.errback(Failure(exc))
    else:
        d.callback(future.result())
