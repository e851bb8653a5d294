"""A private NATS server (with JetStream) a test can really stop and start.

The shared server on 127.0.0.1:4222 carries the rest of the suite and must
never be stopped; a test that needs NATS to go away gets a server of its own:
``nats-server -js`` on 127.0.0.1 and a free port, its JetStream files in a
fresh directory (kept across a stop and a start, as a real server's are).
Needs the ``nats-server`` binary (``$UCS_NATS_SERVER`` or on ``PATH``); without
it the test fails, as the cluster tests do without NATS.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server this test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NatsServer:
    def __init__(self) -> None:
        self.binary = os.environ.get("UCS_NATS_SERVER") or shutil.which("nats-server") or ""
        self.dir = Path(tempfile.mkdtemp(prefix="ucs-nats-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Blocking (a second at most): start it and wait until it accepts connections."""
        log = open(self.dir / "nats.log", "ab")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen([self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd",
                                      str(self.dir / "js")], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nats-server did not listen on {self.port}:\n{(self.dir / 'nats.log').read_text()}")

    def stop(self) -> None:
        """Blocking: stop it (SIGTERM to the process this started), wait for it to exit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    server = NatsServer()
    if not server.binary:
        pytest.fail("nats-server not found (install it, or set UCS_NATS_SERVER): the cluster tests need it",
                    pytrace=False)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)
