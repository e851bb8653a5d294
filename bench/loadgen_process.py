"""``bench/loadgen.py`` as a child process of a Twisted program: commands go in on
its stdin, and each answer is one line on its stdout, its first word naming it.

Used by ``bench/fanout.py`` and by ``tests/test_faults_storm.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol

LOADGEN = Path(__file__).resolve().parent / "loadgen.py"


class LoadGenProcess(ProcessProtocol):
    """The load generator's answers, waited for by their first word (``ready``,
    ``dumped``, ``status``, ``reconnected``); other lines are kept in ``lines``
    and, with ``echo``, printed as they come."""

    #: How errors name the process.
    label = "the load generator"

    def __init__(self, reactor: Any, echo: bool = False) -> None:
        self.reactor = reactor
        self.echo = echo
        self.lines: list[str] = []
        self.stderr = b""
        self._buffer = b""
        self._waiting: dict[str, list[Deferred[str]]] = {}
        self.ended: Deferred[None] = Deferred()

    @classmethod
    def spawn(cls, reactor: Any, port: int, agents: int, secret: str, extra: Sequence[str] = (),
              echo: bool = False) -> LoadGenProcess:
        """Start ``loadgen.py`` for ``agents`` clients of the UCS on ``port``."""
        return cls.run(reactor, LOADGEN, ["--port", str(port), "--agents", str(agents), "--secret", secret, *extra],
                       echo)

    @classmethod
    def run(cls, reactor: Any, script: Path, args: Sequence[str], echo: bool = False) -> Any:
        """Start ``script`` with ``args`` under this interpreter, talking to an instance of ``cls``."""
        proto = cls(reactor, echo)
        argv = [sys.executable, str(script), *args]
        reactor.spawnProcess(proto, sys.executable, argv, env=os.environ.copy(),
                             childFDs={0: "w", 1: "r", 2: "r"})
        return proto

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace")
            word, _, rest = line.partition(" ")
            waiters = self._waiting.pop(word, [])
            for d in waiters:
                d.callback(rest)
            if not waiters:
                self.lines.append(line)
                if self.echo:
                    print(f"  [loadgen] {line}", flush=True)

    def errReceived(self, data: bytes) -> None:
        self.stderr = (self.stderr + data)[-20_000:]
        if self.echo:
            sys.stderr.write(data.decode(errors="replace"))

    def expect(self, word: str, timeout: float | None = None) -> Deferred[str]:
        """The rest of the next line that starts with ``word``."""
        d: Deferred[str] = Deferred()
        self._waiting.setdefault(word, []).append(d)
        if timeout is not None:
            d.addTimeout(timeout, self.reactor)
        return d

    def command(self, text: str) -> None:
        assert self.transport is not None
        self.transport.write(text.encode() + b"\n")

    async def quit(self, timeout: float = 30) -> None:
        if self.transport is not None and not self.ended.called:
            self.command("quit")
            self.transport.closeStdin()
            await self.ended.addTimeout(timeout, self.reactor)

    def processEnded(self, reason: Any) -> None:
        waiting, self._waiting = self._waiting, {}
        for ds in waiting.values():
            for d in ds:
                d.errback(RuntimeError(f"{self.label} ended: {self.stderr.decode(errors='replace')[-2000:]}"))
        self.ended.callback(None)
