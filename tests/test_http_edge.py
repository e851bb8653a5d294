"""The HTTP edge under attack (issue 14): big bodies, odd methods and paths, headers.

The whole server runs in demo mode in this process (``tests/serverkit.py``); an
attacker's client runs in a worker thread on a plain blocking socket, sending a
body from one reused 64 KiB buffer, so the process's memory (``VmRSS``) and open
descriptors (``/proc/self/fd``) are the server's own.  Before the fix a body to
``/ws`` or ``/iserver`` was read whole into memory and the request never finished
(memory and a descriptor held for ever); a body anywhere else was spooled to a
temporary file and answered only once all of it had arrived.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
from serverkit import start_demo, until
from twisted.internet import defer, threads
from twisted.logger import formatEvent, globalLogPublisher

from ucs.server import UCSServer

MiB = 1024 * 1024
BODY = 20 * MiB


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UCSServer]:
    tmp_path = tmp_path_factory.mktemp("edge")
    srv = pytest_twisted.blockon(defer.ensureDeferred(start_demo(tmp_path)))
    yield srv
    pytest_twisted.blockon(srv.service.stopService())


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """Everything logged while the test runs, formatted, with any traceback."""
    lines: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        lines.append(str(formatEvent(event)) + str(event.get("log_failure", "")))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


@attrs.define
class Answer:
    status: int
    head: str
    body: bytes
    sent: int  # body bytes the client got out before the answer (or the close)
    seconds: float


def attack(port: int, request_head: bytes, body: int = 0, *, chunked: bool = False,
           deadline: float = 20.0, head_only: bool = False) -> Answer:
    """Send ``request_head`` and up to ``body`` bytes of body, reading whatever comes
    back between writes; stop sending once an answer starts, stop reading when the
    server closes (or, ``head_only``, once the response's head is in).  Blocking: run
    it in a thread."""
    start = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(deadline)
    chunk = b"A" * (64 * 1024)
    piece = (b"%x\r\n" % len(chunk)) + chunk + b"\r\n" if chunked else chunk
    received = b""
    sent = 0
    try:
        s.sendall(request_head)
        while sent < body and not received:
            if select.select([s], [], [], 0)[0]:
                break
            try:
                s.sendall(piece)
            except OSError:  # reset or closed under us: what was answered is in the buffer
                break
            sent += len(chunk)
        while time.monotonic() - start < deadline:
            try:
                data = s.recv(65536)
            except OSError:
                break
            if not data:
                break
            received += data
            if head_only and b"\r\n\r\n" in received:
                break
    finally:
        s.close()
    head, _, rest = received.partition(b"\r\n\r\n")
    status = int(head.split()[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return Answer(status, head.decode("latin-1"), rest, sent, time.monotonic() - start)


def rss() -> int:
    """This process's resident memory, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def deleted_files() -> list[str]:
    """Open descriptors of this process on files already deleted (temporary files)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith("(deleted)"):
            out.append(target)
    return out


def head(method: str, path: str, length: int | None = BODY, chunked: bool = False) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


# -- bodies --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path,status", [("/ws", 405), ("/iserver", 405), ("/demo/", 413), ("/health", 413)])
@pytest_twisted.ensureDeferred
async def test_a_20_mib_post_is_refused_before_its_body_is_read(server: UCSServer, path: str, status: int) -> None:
    port = server.get_web_service().port
    before_rss, before_files = rss(), deleted_files()
    answers = [await threads.deferToThread(attack, port, head("POST", path), BODY) for _ in range(3)]
    for a in answers:
        assert a.status == status, a.head
        assert a.sent < BODY / 2, f"the answer came only after {a.sent} of {BODY} bytes"
        assert a.seconds < 5  # answered and closed by the server, not left to the client's deadline
    assert "Connection: close" in answers[0].head
    if status == 405:
        assert "Allow: GET" in answers[0].head and b"WebSocket endpoint" in answers[0].body
    else:
        assert b"at most 4096 bytes" in answers[0].body
    # Nothing kept: no temporary file, no 60 MiB more memory.
    await until(lambda: deleted_files() == before_files)
    assert rss() - before_rss < 8 * MiB


@pytest_twisted.ensureDeferred
async def test_a_chunked_body_is_cut_off_at_the_limit(server: UCSServer) -> None:
    port = server.get_web_service().port
    before = rss()
    a = await threads.deferToThread(attack, port, head("POST", "/demo/", chunked=True), BODY, chunked=True)
    assert a.status == 413 and b"over 4096 bytes" in a.body
    assert a.sent < BODY / 2 and a.seconds < 5
    assert rss() - before < 8 * MiB


@pytest.mark.parametrize("method,path", [("POST", "/ws"), ("PUT", "/iserver"), ("DELETE", "/ws"),
                                         ("POST", "//ws"), ("POST", "/%77s"), ("POST", "/ws?x=1"),
                                         ("OPTIONS", "/ws/")])
@pytest_twisted.ensureDeferred
async def test_a_websocket_endpoint_answers_other_methods_at_once_and_closes(
        server: UCSServer, method: str, path: str) -> None:
    """Without a body too, and however the path is spelt: autobahn never finished such
    a request, so each held a descriptor until the client went away."""
    port = server.get_web_service().port
    a = await threads.deferToThread(attack, port, head(method, path, length=0), deadline=5)
    assert a.status == 405, a.head
    assert a.seconds < 3  # answered and closed by the server, not left to the client's deadline


@pytest_twisted.ensureDeferred
async def test_a_small_body_where_one_fits_is_still_served(server: UCSServer) -> None:
    a = await threads.deferToThread(attack, server.get_web_service().port,
                                    head("GET", "/health", length=10) + b"0123456789", deadline=5)
    assert a.status == 200


# -- odd paths and headers -------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_nul_byte_in_a_file_name_is_a_404_without_a_traceback(server: UCSServer,
                                                                       logged: list[str]) -> None:
    port = server.get_web_service().port
    for path in ("/demo/%00", "/operator/a%00b.js", "/demo/%00/x"):
        a = await threads.deferToThread(attack, port, head("GET", path, length=None), deadline=3)
        assert a.status == 404, (path, a.head)
    assert not [line for line in logged if "Traceback" in line or "null byte" in line]


@pytest_twisted.ensureDeferred
async def test_no_response_names_twisted_and_only_the_demo_page_forbids_framing(server: UCSServer) -> None:
    port = server.get_web_service().port
    answers = {}
    for path in ("/demo/", "/demo/demo.js", "/operator/operator.js", "/health", "/nowhere", "/ws"):
        answers[path] = await threads.deferToThread(attack, port, head("GET", path, length=None), deadline=3)
    for path, a in answers.items():
        assert "server:" not in a.head.lower(), (path, a.head)
        assert "twisted" not in a.head.lower(), (path, a.head)
    demo = answers["/demo/"].head.lower()
    assert "content-security-policy: default-src 'self'; script-src 'self';" in demo
    assert "frame-ancestors 'none'" in demo and "x-frame-options: deny" in demo
    bar = answers["/operator/operator.js"].head.lower()
    assert answers["/operator/operator.js"].status == 200
    assert "content-security-policy" not in bar and "x-frame-options" not in bar  # CRMs embed it


# -- origins ---------------------------------------------------------------------------------------


def upgrade(path: str, host: str, origin: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode("ascii")


@pytest.mark.parametrize("path", ["/ws", "/iserver"])
@pytest_twisted.ensureDeferred
async def test_a_page_under_a_rebound_name_cannot_open_the_websocket(server: UCSServer, path: str) -> None:
    """DNS rebinding: ``rebind.example`` resolved to UCS for a moment, so the page
    there and its WebSocket share an origin and a ``Host`` — which used to be enough."""
    port = server.get_web_service().port
    for host in (f"rebind.example:{port}", "rebind.example"):
        a = await threads.deferToThread(attack, port, upgrade(path, host, f"http://{host}"), deadline=3,
                                        head_only=True)
        assert a.status == 403, (host, a.head)
    # UCS's own pages under an address or localhost still may.
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        a = await threads.deferToThread(attack, port, upgrade(path, host, f"http://{host}"), deadline=3,
                                        head_only=True)
        assert a.status == 101, (host, a.head)
