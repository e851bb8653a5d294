"""The lab's pieces for tests: the Asterisk (its CLI), sipp phones, the real UCS, agent bars.

:class:`Lab` is the Asterisk the session fixture started (``conftest.py``);
:class:`Phones` starts sipp processes (each phone on its own loopback address,
port 5060, as the lab's ``sip.conf``/``pjsip.conf`` expect) and kills them all
at the end; :func:`start_ucs` is the real :class:`~ucs.server.UCSServer`
connected to that Asterisk with the lab's users, lines and queues in its
directory; :class:`Bar` is an agent bar on the real WebSocket that keeps
every event it got, in order.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import attrs
from autobahn.twisted.websocket import WebSocketClientProtocol
from serverkit import open_websocket
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.utils import getProcessOutputAndValue
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure

from ucs.config import Config
from ucs.server import UCSServer

# -- the Asterisk ----------------------------------------------------------------------------


@attrs.define
class Member:
    """A queue member as ``queue show`` prints it."""

    interface: str
    paused: bool
    reason: str


@attrs.define
class Lab:
    """The running lab Asterisk: where it listens and its CLI (``asterisk -rx``)."""

    program: Path
    conf: Path
    run: Path
    ami_port: int
    sip_port: int
    pjsip_port: int
    http_port: int
    chan_sip: bool
    scenarios: Path

    def _argv(self, command: str) -> list[str]:
        return [str(self.program), "-C", str(self.conf), "-rx", command]

    def cli(self, command: str, timeout: float = 10) -> str:
        """Run one CLI command (blocking: for fixtures)."""
        done = subprocess.run(self._argv(command), capture_output=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"asterisk -rx {command!r} failed ({done.returncode}): {done.stderr.decode()!r}")
        return done.stdout.decode(errors="replace")

    async def acli(self, command: str) -> str:
        """Run one CLI command without blocking the reactor (for tests)."""
        argv = self._argv(command)
        out, err, code = await getProcessOutputAndValue(argv[0], argv[1:], env=os.environ)
        if code != 0:
            raise RuntimeError(f"asterisk -rx {command!r} failed ({code}): {err.decode()!r}")
        return str(out.decode(errors="replace"))

    async def queue_members(self, queue: str) -> dict[str, Member]:
        """``queue show QUEUE``'s members, by interface, with their paused state and reason."""
        return parse_members(await self.acli(f"queue show {queue}"))

    async def channels(self) -> list[str]:
        """The channels ``core show channels concise`` lists."""
        out = await self.acli("core show channels concise")
        return [line.split("!", 1)[0] for line in out.splitlines() if "!" in line]

    def console_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.run / "console.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no console.log)"

    def reset(self) -> None:
        """No channels and no queue members, whatever the last test left."""
        self.cli("channel request hangup all")
        for queue in ("support", "sales"):
            for member in parse_members(self.cli(f"queue show {queue}")):
                self.cli(f"queue remove member {member} from {queue}")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MEMBER = re.compile(r"^\s+(?:(?P<iface>[A-Za-z]+/\S+)|.*?\((?P<named>[A-Za-z]+/[^) ]+)(?: from [^)]*)?\)) (?P<rest>.*)$")
_PAUSED = re.compile(r"\(paused(?::(?P<reason>[^)]*?))?(?: was \d+ secs? ago)?\)")


def parse_members(text: str) -> dict[str, Member]:
    """The members of ``queue show``'s output (Asterisk 20: ``Name (SIP/1001) (ringinuse
    disabled) (dynamic) (paused:Lunch was 3 secs ago) (Not in use) has taken …``, the
    interface alone when the member has no name of its own; colours stripped)."""
    out: dict[str, Member] = {}
    in_members = False
    for line in _ANSI.sub("", text).splitlines():
        stripped = line.strip()
        if stripped.startswith("Members:"):
            in_members = True
            continue
        if stripped.startswith(("Callers:", "No Callers", "No Members")):
            in_members = False
            continue
        m = _MEMBER.match(line) if in_members else None
        if m is None:
            continue
        iface = m.group("iface") or m.group("named")
        p = _PAUSED.search(m.group("rest"))
        out[iface] = Member(iface, p is not None, (p.group("reason") or "") if p else "")
    return out


# -- sipp phones -----------------------------------------------------------------------------


@attrs.frozen
class Phone:
    """One of the lab's phones: its device, extension, loopback address and Asterisk port."""

    device: str
    number: str
    ip: str
    port: int
    username: str


def phones_of(lab: Lab, driver: str) -> dict[str, Phone]:
    """Phones ``a``, ``b``, ``c`` of a driver: ``sip`` (SIP/1001-1003 at 127.0.0.11-13) or
    ``pj`` (PJSIP/2001-2003 at 127.0.0.31-33), with the user who logs in on each."""
    if driver == "sip":
        return {k: Phone(f"SIP/{1000 + i}", str(1000 + i), f"127.0.0.{10 + i}", lab.sip_port, f"agent{i}")
                for i, k in enumerate("abc", 1)}
    return {k: Phone(f"PJSIP/{2000 + i}", str(2000 + i), f"127.0.0.{30 + i}", lab.pjsip_port, f"agent{3 + i}")
            for i, k in enumerate("abc", 1)}


CARRIER_IP = "127.0.0.20"
CUSTOMER = "420777123456"


class _Sipp(ProcessProtocol):
    def __init__(self, name: str) -> None:
        self.name = name
        self.waiters: list[defer.Deferred[int | None]] = []
        self.code: int | None = None
        self.running = True

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        self.code = getattr(reason.value, "exitCode", None)
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.callback(self.code)


class Sipp:
    """One sipp process (a phone or a caller); :attr:`ended` fires with its exit code."""

    def __init__(self, proto: _Sipp, log: Path) -> None:
        self._proto = proto
        self.log = log

    @property
    def name(self) -> str:
        return self._proto.name

    @property
    def running(self) -> bool:
        return self._proto.running

    async def done(self, timeout: float = 30) -> int | None:
        """Waits for the process to end (the scenario played out)."""
        if not self._proto.running:
            return self._proto.code
        d: defer.Deferred[int | None] = defer.Deferred()
        self._proto.waiters.append(d)
        d.addTimeout(timeout, reactor)
        try:
            return await d
        except defer.TimeoutError:
            raise AssertionError(f"sipp {self.name} still running after {timeout:g} s; see {self.log}") from None

    def kill(self) -> None:
        self.signal("KILL")

    def signal(self, name: str) -> None:
        """``STOP`` freezes the phone (its RTP stops, the call stays up), ``CONT`` wakes it."""
        if self._proto.running and self._proto.transport is not None:
            self._proto.transport.signalProcess(getattr(signal, f"SIG{name}"))


class Phones:
    """sipp processes for one test; each phone or caller binds port 5060 of its own address."""

    def __init__(self, lab: Lab, tmp: Path) -> None:
        self.lab = lab
        self.tmp = tmp
        self.started: list[Sipp] = []

    def start(self, scenario: str, ip: str, port: int, *args: str, name: str = "", local_port: int = 5060) -> Sipp:
        """``sipp -sf SCENARIO -i IP -p 5060 -m 1 … 127.0.0.1:PORT``, its screen in ``NAME.log``."""
        name = name or f"{scenario}-{ip}"
        log = self.tmp / f"{name}-{len(self.started)}.log"
        argv = ["sipp", "-sf", str(self.lab.scenarios / f"{scenario}.xml"), "-i", ip, "-p", str(local_port),
                "-m", "1", "-nostdin", "-aa", *args, f"127.0.0.1:{port}"]
        proto = _Sipp(name)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            reactor.spawnProcess(proto, "sipp", argv, env=os.environ, path=str(self.tmp),  # type: ignore[attr-defined]
                                 childFDs={0: null, 1: fd, 2: fd})
        finally:
            os.close(fd)
            os.close(null)
        sipp = Sipp(proto, log)
        self.started.append(sipp)
        return sipp

    def phone(self, phone: Phone, scenario: str = "uas_answer") -> Sipp:
        """The phone waits for a call and plays ``scenario`` (answer, busy, decline, no answer)."""
        return self.start(scenario, phone.ip, phone.port, name=f"{phone.number}-{scenario}")

    def dial(self, phone: Phone, number: str, talk_ms: int = 60000) -> Sipp:
        """The phone dials ``number``; it hangs up ``talk_ms`` after the answer unless hung up first."""
        return self.start("uac_ext", phone.ip, phone.port, "-s", number, "-key", "caller", phone.number,
                          "-d", str(talk_ms), name=f"{phone.number}-dials-{number}")

    def customer(self, number: str, talk_ms: int) -> Sipp:
        """The customer (420777123456) calls ``number`` through the carrier; hangs up
        ``talk_ms`` after Asterisk answered unless hung up first."""
        return self.start("uac_call", CARRIER_IP, self.lab.sip_port, "-s", number, "-d", str(talk_ms),
                          name=f"customer-{number}")

    def carrier(self, scenario: str) -> Sipp:
        """The carrier receiving an outgoing call: ``uas_answer`` or ``uas_silent`` (no reply at all)."""
        return self.start(scenario, CARRIER_IP, self.lab.sip_port, name=f"carrier-{scenario}")

    async def kill_all(self) -> None:
        for sipp in self.started:
            sipp.kill()
        for sipp in self.started:
            if sipp.running:
                await sipp.done(timeout=10)


# -- agent bars ------------------------------------------------------------------------------


class _BarProtocol(WebSocketClientProtocol):
    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.client._message(self, payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.client._closed()


class BarError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


class Bar:
    """An agent bar on the real WebSocket: every event it got is kept in :attr:`events`,
    in order, so a test can look at the whole sequence afterwards."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proto: _BarProtocol | None = None
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._replies: dict[int, dict[str, Any]] = {}
        self._waiters: list[tuple[Callable[[], Any], defer.Deferred[Any]]] = []
        self._next = 0
        self.opened: defer.Deferred[None] = defer.Deferred()

    def _message(self, proto: _BarProtocol, payload: bytes) -> None:
        msg = json.loads(payload)
        if msg.get("event") == "hello" and not self.opened.called:
            self.proto = proto
            self.opened.callback(None)
            return
        if "event" in msg:
            self.events.append((msg["event"], msg.get("data") or {}))
        elif msg.get("id") is not None:
            self._replies[msg["id"]] = msg
        self._check()

    def _closed(self) -> None:
        if not self.opened.called:
            self.opened.errback(ConnectionError(f"{self.name}: closed before hello"))

    def _check(self) -> None:
        for item in list(self._waiters):
            found = item[0]()
            if found is not None and item in self._waiters:
                self._waiters.remove(item)
                item[1].callback(found)

    def wait(self, test: Callable[[], Any], timeout: float, what: str) -> defer.Deferred[Any]:
        found = test()
        if found is not None:
            return defer.succeed(found)
        d: defer.Deferred[Any] = defer.Deferred()
        entry = (test, d)
        self._waiters.append(entry)

        def timed_out(f: Failure) -> Failure:
            if entry in self._waiters:
                self._waiters.remove(entry)
            if f.check(defer.TimeoutError, defer.CancelledError):
                raise AssertionError(f"{self.name}: no {what} within {timeout:g} s; events: {self.names()}")
            return f

        d.addTimeout(timeout, reactor)
        d.addErrback(timed_out)
        return d

    async def call(self, method: str, *args: Any, timeout: float = 30) -> Any:
        """Calls an API method; raises :class:`BarError` with the server's error."""
        assert self.proto is not None
        self._next += 1
        rid = self._next
        msg: dict[str, Any] = {"id": rid, "method": method}
        if args:
            msg["args"] = list(args)
        self.proto.sendMessage(json.dumps(msg).encode())
        reply: dict[str, Any] = await self.wait(lambda: self._replies.pop(rid, None), timeout, f"reply to {method}")
        if "error" in reply:
            raise BarError(reply["error"])
        return reply.get("result")

    async def event(self, name: str, timeout: float = 30, nth: int = 1,
                    where: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        """The ``nth`` event ``name`` (matching ``where``) this bar got, waiting for it if need be."""
        def find() -> dict[str, Any] | None:
            seen = [d for n, d in self.events if n == name and (where is None or where(d))]
            return seen[nth - 1] if len(seen) >= nth else None

        found: dict[str, Any] = await self.wait(find, timeout, f"{name} #{nth}")
        return found

    def names(self, prefix: str = "") -> list[str]:
        return [n for n, _ in self.events if n.startswith(prefix)]

    def call_events(self) -> list[tuple[str, dict[str, Any]]]:
        return [(n, d) for n, d in self.events if n.startswith("call.")]

    def statuses(self) -> list[tuple[str, str]]:
        """(status, reason) of every ``agent.status`` event, in order."""
        return [(d["status"], d.get("reason", "")) for n, d in self.events if n == "agent.status"]

    def close(self) -> None:
        if self.proto is not None:
            self.proto.sendClose(1000)


async def open_bar(url: str, name: str) -> Bar:
    bar = Bar(name)
    await open_websocket(url, _BarProtocol, bar)
    return bar


# -- UCS -------------------------------------------------------------------------------------

AUX_REASONS = ("Lunch", "Break", "Meeting", "Training")
#: Short after-call work, so that a flow sees the agent go back to READY.
ACW_SECONDS = 2.0


def lab_config(lab: Lab, tmp: Path) -> Config:
    return Config().replace(
        ami={"host": "127.0.0.1", "port": lab.ami_port, "username": "ucs", "secret": "ucslab", "ping_interval": 0},
        calls={"trunks": ["SIP/carrier*"]},
        store={"url": f"sqlite:///{tmp / 'ucs.db'}"},
        web={"port": 0},
        plugins={"directory": str(tmp / "plugins")},
        auth={"admin_password": "lab-admin"},
        agents={"acw_seconds": ACW_SECONDS, "initial_status": "ready"},
    )


async def seed(server: UCSServer, lab: Lab) -> None:
    """The lab's queues, reasons, lines (SIP/1001-1003, PJSIP/2001-2003) and one user on each
    (``agent1``-``agent6``, password ``lab``), each in both queues."""
    directory = server.get_directory()
    queues = [await directory.add("queues", {"asterisk_name": n, "name": n.title(), "type": 1})
              for n in ("support", "sales")]
    for reason in AUX_REASONS:
        await directory.add("auxreasons", {"name": reason})
    for driver in ("sip", "pj"):
        for phone in phones_of(lab, driver).values():
            line = await directory.add("lines", {"device": phone.device, "name": f"Desk phone {phone.number}",
                                                 "identifiers": [f"phone-{phone.number}", phone.ip],
                                                 "auto_answer": "none"})
            await directory.add("users", {
                "username": phone.username, "password": "lab-pass", "firstname": "Agent",
                "lastname": phone.number, "lines": [line.id], "locale": "en",
                "queues": {str(q.id): {"priorities": 0} for q in queues},
            })


class LabUCS:
    """The real UCS on the lab's Asterisk, and the agent bars a test opened; what UCS
    logged at warning level or above is kept in :attr:`warnings` (an action Asterisk
    refused shows up there)."""

    def __init__(self, server: UCSServer, lab: Lab) -> None:
        self.server = server
        self.lab = lab
        self.bars: list[Bar] = []
        self.warnings: list[str] = []
        self._observer = cast(ILogObserver, self._log)
        globalLogPublisher.addObserver(self._observer)

    def _log(self, event: dict[str, Any]) -> None:
        level = event.get("log_level")
        if level is not None and level >= LogLevel.warn:
            self.warnings.append(f"{event.get('log_namespace')}: {formatEvent(event)}")

    async def agent(self, phone: Phone, status: str = "READY", reason: str = "") -> Bar:
        """A bar with ``phone``'s user logged in and the phone paired; the agent in
        ``status`` (with ``reason``), its queue memberships confirmed by Asterisk."""
        bar = await open_bar(self.server.get_web_service().ws_url, phone.username)
        self.bars.append(bar)
        await bar.call("login", phone.username, "lab-pass")
        await bar.call("identifier", f"phone-{phone.number}")
        await bar.call("provision")
        await bar.event("agent.status", where=lambda d: d["status"] == "READY")
        if status != "READY":
            await bar.call("agent.changeStatus", status, reason)
            await bar.event("agent.status", where=lambda d: d["status"] == status)
        await self.until(lambda: all(phone.device in q.members for q in self.queues()),
                         f"{phone.device} a member of support and sales")
        return bar

    def queues(self) -> list[Any]:
        pbx = self.server.get_pbx()
        return [pbx.queues[n] for n in ("support", "sales") if n in pbx.queues]

    async def until(self, test: Callable[[], Any], what: str, timeout: float = 15) -> None:
        """Polls UCS's own state (every 20 ms) until ``test`` holds."""
        deadline = reactor.seconds() + timeout  # type: ignore[attr-defined]
        while not test():
            if reactor.seconds() > deadline:  # type: ignore[attr-defined]
                raise AssertionError(f"not within {timeout:g} s: {what}")
            await task.deferLater(reactor, 0.02, lambda: None)

    async def cdr(self, uniqueid: str) -> dict[str, Any]:
        """The CDR UCS stored for the call ``uniqueid`` (waits for the writer)."""
        writer = self.server.get_cdr_writer()
        await self.until(lambda: writer.written or writer.pending, f"a CDR for {uniqueid}")
        await writer.flushed()
        cdr = await self.server.get_store().get_cdr(uniqueid)
        assert cdr is not None, f"no CDR stored for {uniqueid}"
        return cdr

    async def stop(self) -> None:
        for bar in self.bars:
            # Shown with a failing test's output: what each bar got.
            print(f"{bar.name}: " + ", ".join(
                f"{n}({d.get('state')},{d.get('cause')})" if n.startswith("call.") else
                f"{n}({d.get('status', '')})" for n, d in bar.events if n.startswith(("call.", "agent.status"))))
            bar.close()
        for line in self.warnings:
            print(f"UCS logged: {line}")
        try:
            await self.server.service.stopService()
        finally:
            globalLogPublisher.removeObserver(self._observer)


async def start_ucs(lab: Lab, tmp: Path) -> LabUCS:
    """UCS started on the lab (its AMI link logged in and resynced), the directory seeded."""
    server = UCSServer(lab_config(lab, tmp), reactor)
    server.service.startService()
    await server.service.whenStarted()
    ucs = LabUCS(server, lab)
    await seed(server, lab)
    link, pbx = server.get_pbx_link(), server.get_pbx()
    try:
        # QueueStatus and the peer lists of the first resync applied: the queues and phones are known.
        await ucs.until(lambda: link.up and {"support", "sales"} <= set(pbx.queues) and "PJSIP/2001" in pbx.devices,
                        f"UCS logged in to Asterisk's AMI on port {lab.ami_port} and resynced")
    except AssertionError:
        await server.service.stopService()
        raise
    return ucs
