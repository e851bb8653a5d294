"""``[web] backlog``: the web port's listen backlog is the configured one.

The whole server runs in demo mode (``tests/serverkit.py``) and the kernel is asked
what it listens with: for a listening TCP socket ``ss -ltn`` shows the backlog as
its Send-Q (inet_diag's ``idiag_wqueue``). ``/proc/net/tcp`` does not carry it (its
tx_queue of a LISTEN socket is 0) and there is no ``getsockopt`` for it, so without
``ss`` (iproute2) those tests are skipped. Above ``net.core.somaxconn`` the kernel
uses somaxconn, and UCS says so at start.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from serverkit import start_demo
from twisted.internet import threads
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from ucs.config import Config, ConfigError, parse_config
from ucs.web.options import WebOptions, somaxconn

SS = shutil.which("ss")
needs_ss = pytest.mark.skipif(
    SS is None or not sys.platform.startswith("linux"),
    reason="needs Linux and `ss` (iproute2) to read a listening socket's backlog; "
    "/proc/net/tcp does not carry it",
)


def listen_backlog(port: int) -> int:
    """The backlog of the socket listening on TCP ``port``: Send-Q in ``ss -ltn``. Blocking."""
    assert SS is not None
    out = subprocess.run([SS, "-ltnH", f"sport = :{port}"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert len(rows) == 1, f"ss -ltn sport = :{port} found {rows!r}"
    state, _recv_q, send_q = rows[0][:3]
    assert state == "LISTEN", rows
    return int(send_q)


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """What :class:`ucs.web.service.WebService` logs at warn level or above while the test runs."""
    events: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        level = event.get("log_level")
        if "WebService" in event.get("log_namespace", "") and level is not None and level >= LogLevel.warn:
            events.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


def test_default_is_1024() -> None:
    assert Config().web.backlog == 1024
    assert WebOptions().backlog == 1024
    assert WebOptions.from_config(Config().replace(web={"backlog": 300}).web).backlog == 300


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[web]\nbacklog = 0", "bad.toml: web.backlog: 0 is out of range; use an integer 1-65535"),
        ("[web]\nbacklog = 65536", "bad.toml: web.backlog: 65536 is out of range; use an integer 1-65535"),
        ("[web]\nbacklog = '1024'", "bad.toml: web.backlog: '1024' is a string; use an integer 1-65535"),
    ],
)
def test_bad_backlog_is_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(text, "bad.toml")
    assert str(e.value) == message
    assert e.value.key == "web.backlog"


def test_web_options_refuse_a_bad_backlog() -> None:
    with pytest.raises(ValueError, match="backlog 0 is out of range"):
        WebOptions(backlog=0)


def test_somaxconn_reads_the_kernel_cap(tmp_path: Path) -> None:
    (tmp_path / "somaxconn").write_text("4096\n")
    assert somaxconn(str(tmp_path / "somaxconn")) == 4096
    assert somaxconn(str(tmp_path / "missing")) is None


@needs_ss
@pytest_twisted.ensureDeferred
async def test_the_web_port_listens_with_the_configured_backlog(tmp_path: Path, warnings: list[str]) -> None:
    cap = somaxconn()
    if cap is not None and cap < 300:
        pytest.skip(f"net.core.somaxconn is {cap}, below the 300 this test configures")
    server = await start_demo(tmp_path, web={"backlog": 300})
    try:
        port = server.get_web_service().port
        assert await threads.deferToThread(listen_backlog, port) == 300
    finally:
        await server.service.stopService()
    assert not [w for w in warnings if "backlog" in w]


@needs_ss
@pytest_twisted.ensureDeferred
async def test_above_somaxconn_the_kernel_uses_somaxconn_and_ucs_warns(tmp_path: Path, warnings: list[str]) -> None:
    cap = somaxconn()
    if cap is None or cap >= 65535:
        pytest.skip(f"net.core.somaxconn is {cap}: no backlog UCS accepts is above it")
    server = await start_demo(tmp_path, web={"backlog": cap + 1})
    try:
        port = server.get_web_service().port
        assert await threads.deferToThread(listen_backlog, port) == cap
    finally:
        await server.service.stopService()
    [warning] = [w for w in warnings if "backlog" in w]
    assert f"web.backlog {cap + 1} is above the kernel's net.core.somaxconn ({cap}" in warning
    assert f"the kernel will use {cap}" in warning
