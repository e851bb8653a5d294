"""Record new AMI captures on the lab's real Asterisk, the way the matrix was recorded.

    ASTERISK_PREFIX=/opt/asterisk .venv/bin/python tests/lab/record.py FLOW DRIVER OUTDIR

writes ``OUTDIR/DRIVER_FLOW.ami`` (every byte Asterisk sent, from the banner on, CRLF as
on the wire) and ``OUTDIR/DRIVER_FLOW.actions`` (what this client sent, ActionIDs
``lab-N``), for ``tests/data/ami-captures`` (add the flow's row to its README and its
conclusions to ``expected.json``).  The Asterisk, its configuration and the sipp phones
are the lab tests' own (``conftest.py``, ``labkit.py``); the client here is a plain TCP
connection, so the recording has no UCS in it: the actions are the ones UCS sends.

Flows (``sip`` and ``pj`` drivers, phones a and c of ``labkit.phones_of``):

- ``atxfer_caller_hangs_up_consulting``: a support call answered by a; ``Setvar
  TRANSFER_EXTEN`` + ``Atxfer`` to c; c answers; the customer hangs up while a and c
  talk; 3 s later a's channel is hung up via AMI.
- ``atxfer_caller_hangs_up_ringing``: the same, but c never answers: the customer hangs
  up while c rings.
- ``pickup``: the customer calls a's extension directly (``from-carrier``); a rings and does
  not answer; 2 s later c dials ``**`` + a's extension (``PickupChan``, the lab's
  ``[internal]``) and takes the call; the customer hangs up 4 s after c picked it up.
- ``click_to_dial_not_found``: ``Originate`` (as UCS's click-to-dial) rings a, which
  answers; the number goes out through the carrier, which answers ``404 Not Found``
  (``uas_notfound``): the Dial fails and Asterisk hangs a up.
- ``record_call``: a support call answered by a; ``MixMonitor`` on a's channel exactly as
  UCS sends it (``ucs.calls.recording``: ``File`` absolute, ``Options: i(UCS_MIXMON_ID)``);
  2 s later ``StopMixMonitor`` with the ``MixMonitorID`` it answered; the customer hangs up.
- ``chanspy_listen``: a support call answered by a; UCS's ``Originate`` of phone b (the
  supervisor, ``ucs.supervisor.team.monitor``) to ``ChanSpy(<a's channel>,qE)``; b answers;
  the customer hangs up (``E``: ChanSpy ends, b's channel hangs up).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent.parent)]

from conftest import _start_asterisk, _stop_asterisk  # noqa: E402
from labkit import Lab, Phones, phones_of  # noqa: E402
from twisted.internet import defer, protocol, reactor, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol  # noqa: E402

from ucs.ami.message import AMIParser  # noqa: E402


class Recorder(protocol.Protocol):
    """Keeps every byte; parses them to wait on responses and events."""

    def __init__(self) -> None:
        self.raw = bytearray()
        self.messages: list[dict[str, str]] = []
        self.sent: list[str] = []
        self._parser = AMIParser()
        self._waiters: list[tuple[Callable[[dict[str, str]], bool], defer.Deferred[dict[str, str]]]] = []
        self._next = 0

    def dataReceived(self, data: bytes) -> None:
        self.raw += data
        for message in self._parser.feed(data):
            msg = dict(message)
            self.messages.append(msg)
            for item in list(self._waiters):
                if item[0](msg):
                    self._waiters.remove(item)
                    item[1].callback(msg)

    def when(self, test: Callable[[dict[str, str]], bool], timeout: float = 30) -> defer.Deferred[dict[str, str]]:
        for msg in self.messages:
            if test(msg):
                return defer.succeed(msg)
        d: defer.Deferred[dict[str, str]] = defer.Deferred()
        self._waiters.append((test, d))

        def timed_out(f: Any) -> Any:
            f.trap(defer.TimeoutError)
            raise RuntimeError(f"not within {timeout:g} s: {getattr(test, 'what', test)}; last: {self.messages[-3:]}")

        return d.addTimeout(timeout, reactor).addErrback(timed_out)

    def action(self, name: str, **headers: str) -> defer.Deferred[dict[str, str]]:
        self._next += 1
        aid = f"lab-{self._next}"
        text = f"Action: {name}\r\nActionID: {aid}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.sent.append(text)
        self.transport.write(text.encode())  # type: ignore[union-attr]
        return self.when(lambda m: m.get("ActionID") == aid and "Response" in m)


def event(name: str, **match: str) -> Callable[[dict[str, str]], bool]:
    def test(m: dict[str, str]) -> bool:
        return m.get("Event") == name and all(m.get(k, "").startswith(v) for k, v in match.items())
    test.what = f"{name} {match}"  # type: ignore[attr-defined]
    return test


async def atxfer_caller_hangs_up(lab: Lab, phones: Phones, rec: Recorder, driver: str, answered: bool) -> None:
    p = phones_of(lab, driver)
    a, c = p["a"], p["c"]
    await rec.action("QueueAdd", Queue="support", Interface=a.device, MemberName=f"Agent {a.number}", Paused="false")
    phones.phone(a)
    phones.phone(c, "uas_answer" if answered else "uas_noanswer")
    await task.deferLater(reactor, 0.5, lambda: None)
    # Answered by Asterisk at once; a rings 1.5 s; the consultation starts a second later and
    # c (if it answers) rings 1.5 s more: the customer hangs up 7 s after the answer.
    phones.customer("5000", talk_ms=7000)
    entered = await rec.when(event("BridgeEnter", Channel=f"{a.device}-"))
    channel = entered["Channel"]
    await task.deferLater(reactor, 1, lambda: None)
    await rec.action("Setvar", Channel=channel, Variable="TRANSFER_EXTEN", Value=c.number)
    await rec.action("Atxfer", Channel=channel, Exten=c.number, Context="internal")
    if answered:
        await rec.when(event("BridgeEnter", Channel=f"{c.device}-"))
    await rec.when(event("Hangup", Channel="SIP/carrier-"))
    if answered:
        await task.deferLater(reactor, 3, lambda: None)
        await rec.action("Hangup", Channel=channel, Cause="16")
    await rec.when(event("Hangup", Channel=channel))
    await rec.when(event("Hangup", Channel=f"{c.device}-"))
    await task.deferLater(reactor, 1, lambda: None)
    await rec.action("QueueRemove", Queue="support", Interface=a.device)


async def pickup(lab: Lab, phones: Phones, rec: Recorder, driver: str) -> None:
    p = phones_of(lab, driver)
    a, c = p["a"], p["c"]
    phones.phone(a, "uas_noanswer")
    await task.deferLater(reactor, 0.5, lambda: None)
    phones.customer(a.number, talk_ms=4000)
    await rec.when(event("Newchannel", Channel=f"{a.device}-"))
    await task.deferLater(reactor, 2, lambda: None)
    phones.dial(c, "**" + a.number, talk_ms=60000)
    await rec.when(event("Pickup"))
    await rec.when(event("Hangup", Channel="SIP/carrier-"))
    await rec.when(event("Hangup", Channel=f"{c.device}-"))
    await task.deferLater(reactor, 1, lambda: None)


async def click_to_dial_not_found(lab: Lab, phones: Phones, rec: Recorder, driver: str) -> None:
    a = phones_of(lab, driver)["a"]
    phones.phone(a)
    phones.carrier("uas_notfound")
    await task.deferLater(reactor, 0.5, lambda: None)
    await rec.action("Originate", Channel=a.device, Context="internal", Exten="0420777987654", Priority="1",
                     CallerID=f'"Agent {a.number}" <{a.number}>', Timeout="20000", Async="true")
    await rec.when(event("DialEnd", Channel=f"{a.device}-"))
    await rec.when(event("Hangup", Channel=f"{a.device}-"))
    await task.deferLater(reactor, 1, lambda: None)


async def record_call(lab: Lab, phones: Phones, rec: Recorder, driver: str) -> None:
    a = phones_of(lab, driver)["a"]
    await rec.action("QueueAdd", Queue="support", Interface=a.device, MemberName=f"Agent {a.number}", Paused="false")
    phones.phone(a)
    await task.deferLater(reactor, 0.5, lambda: None)
    # Answered by Asterisk at once; a rings ~1.5 s; recorded from 1 s after a answers for 2 s.
    phones.customer("5000", talk_ms=7000)
    entered = await rec.when(event("BridgeEnter", Channel=f"{a.device}-"))
    channel = entered["Channel"]
    customer = await rec.when(event("Newchannel", Channel="SIP/carrier-"))
    await task.deferLater(reactor, 1, lambda: None)
    # As ucs.calls.recording._start_recording names and asks for it (record_options "").
    directory = lab.run / "recordings"
    name = f"ucs-{customer['Uniqueid']}-{entered['Uniqueid']}-1.wav".replace("/", "_")
    reply = await rec.action("MixMonitor", Channel=channel, File=f"{directory}/{name}", Options="i(UCS_MIXMON_ID)")
    await rec.when(event("MixMonitorStart", Channel=channel))
    await task.deferLater(reactor, 2, lambda: None)
    await rec.action("StopMixMonitor", Channel=channel, MixMonitorID=reply.get("MixMonitorID", ""))
    await rec.when(event("MixMonitorStop", Channel=channel))
    await rec.when(event("Hangup", Channel="SIP/carrier-"))
    await rec.when(event("Hangup", Channel=channel))
    await task.deferLater(reactor, 1, lambda: None)
    await rec.action("QueueRemove", Queue="support", Interface=a.device)


async def chanspy_listen(lab: Lab, phones: Phones, rec: Recorder, driver: str) -> None:
    p = phones_of(lab, driver)
    a, b = p["a"], p["b"]
    await rec.action("QueueAdd", Queue="support", Interface=a.device, MemberName=f"Agent {a.number}", Paused="false")
    phones.phone(a)
    phones.phone(b)  # the supervisor's phone answers the Originate
    await task.deferLater(reactor, 0.5, lambda: None)
    phones.customer("5000", talk_ms=8000)
    entered = await rec.when(event("BridgeEnter", Channel=f"{a.device}-"))
    channel = entered["Channel"]
    await task.deferLater(reactor, 1, lambda: None)
    # As ucs.supervisor.team.monitor sends it (mode listen).
    await rec.action("Originate", Channel=b.device, Application="ChanSpy", Data=f"{channel},qE",
                     CallerID=f"listen <{a.number}>", Timeout="30000", Async="true")
    await rec.when(event("ChanSpyStart"))
    await rec.when(event("Hangup", Channel="SIP/carrier-"))
    await rec.when(event("Hangup", Channel=channel))
    await rec.when(event("Hangup", Channel=f"{b.device}-"))
    await task.deferLater(reactor, 1, lambda: None)
    await rec.action("QueueRemove", Queue="support", Interface=a.device)


FLOWS: dict[str, Callable[..., Any]] = {
    "click_to_dial_not_found": click_to_dial_not_found,
    "pickup": pickup,
    "record_call": record_call,
    "chanspy_listen": chanspy_listen,
    "atxfer_caller_hangs_up_consulting": lambda *a: atxfer_caller_hangs_up(*a, answered=True),
    "atxfer_caller_hangs_up_ringing": lambda *a: atxfer_caller_hangs_up(*a, answered=False),
}


async def record(flow: str, driver: str, out: Path) -> None:
    run = Path(tempfile.mkdtemp(prefix="ucs-record-"))
    lab, proc = _start_asterisk(run)
    phones = Phones(lab, run)
    try:
        rec = Recorder()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", lab.ami_port), rec)
        await rec.action("Login", Username="ucs", Secret="ucslab", Events="on")
        await rec.when(event("FullyBooted"))
        await FLOWS[flow](lab, phones, rec, driver)
        await rec.action("Logoff")
        await task.deferLater(reactor, 0.5, lambda: None)
        name = f"{driver}_{flow}"
        (out / f"{name}.ami").write_bytes(bytes(rec.raw))
        (out / f"{name}.actions").write_bytes("".join(rec.sent).encode())
        print(f"{out / name}.ami: {len(rec.raw)} bytes, {len(rec.messages)} messages")
    finally:
        await phones.kill_all()
        _stop_asterisk(lab, proc)


def main() -> None:
    flow, driver, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    if flow not in FLOWS or driver not in ("sip", "pj"):
        raise SystemExit(f"usage: record.py {{{','.join(FLOWS)}}} {{sip,pj}} OUTDIR")
    out.mkdir(parents=True, exist_ok=True)
    task.react(lambda _: defer.ensureDeferred(record(flow, driver, out)))


if __name__ == "__main__":
    main()
