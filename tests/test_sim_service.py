"""The simulator as a service (what the demo embeds) and as ``python -m ucs.sim``."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest_twisted
from twisted.internet import reactor

from ucs.sim.__main__ import main
from ucs.sim.service import SimService
from ucs.sim.testing import AMITestClient

ROOT = Path(__file__).resolve().parents[1]


@pytest_twisted.ensureDeferred
async def test_service_listens_and_tells_where_and_how() -> None:
    svc = SimService(port=0, phones=6, call_rate=0, reactor=reactor)
    svc.startService()
    try:
        host, port = svc.address()
        assert host == "127.0.0.1" and port > 0
        from twisted.internet import protocol

        c: AMITestClient = await protocol.ClientCreator(reactor, AMITestClient).connectTCP(host, port)
        user, secret = svc.credentials
        resp = await c.login(user, secret)
        assert resp["Message"] == "Authentication accepted"
        await c.action("SIPpeers")
        await c.barrier()
        peers = [m["ObjectName"] for m in c.events("PeerEntry")]
        assert peers == ["1001", "1002", "1003", "1004", "1005", "1006", "carrier"]
        assert svc.demo is None
    finally:
        await svc.stopService()
    await c.closed


def test_main_refuses_bad_arguments_with_a_reason(capsys: object) -> None:
    assert main(["--port", "70000"]) == 2
    assert main(["--demo", "--rate", "0"]) == 2
    assert main(["--phones", "0"]) == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "--port 70000" in err and "--rate 0" in err and "--phones 0" in err


def test_python_m_ucs_sim_serves_the_lab_with_demo_callers() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ucs.sim", "--port", "0", "--demo", "--rate", "600", "--add-members"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = None
        for line in proc.stdout:
            m = re.search(r"AMI on 127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "the simulator logs where its AMI listens"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"Action: Login\r\nActionID: 1\r\nUsername: ucs\r\nSecret: ucslab\r\n\r\n")
            data = b""
            while b"Event: Newchannel" not in data:
                chunk = s.recv(65536)
                assert chunk, "the link closed before any call came"
                data += chunk
        assert data.startswith(b"Asterisk Call Manager/9.0.0\r\nResponse: Success\r\nActionID: 1\r\n")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
