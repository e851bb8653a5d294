"""CDR parity under load (issue 13): calls with random outcomes into both queues,
then one CDR per call, none left open, every agent where the PBX says it is.

    .venv/bin/python bench/cdr_parity.py                       # 300 calls at 5/s, the simulator
    .venv/bin/python bench/cdr_parity.py --calls 20 --rate 10 --agents 6 --json out.json
    .venv/bin/python bench/cdr_parity.py --store postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/cdr_parity.py --asterisk 127.0.0.1:5038 --sip 127.0.0.1:5060 \\
        --master-csv RUN_DIR/log/cdr-custom/Master.csv          # a real lab Asterisk (tests/lab/asterisk)

The whole ``UCSServer`` runs in this process (demo mode: ``ucs.sim`` inside, no
demo callers) with a store (SQLite in a temporary directory unless ``--store``),
``--agents`` users ``bench1..`` with phones ``SIP/100001..`` in both queues,
``support`` (5000, rrmemory, member timeout 8 s) and ``sales`` (5001, ringall).
Their agent bars are real WebSockets held by ``bench/loadgen.py`` in its own
process (SSO login, pairing, ``provision``: READY, UCS adds the phone to both
queues).  Then ``--calls`` calls arrive (Poisson, ``--rate`` a second, seeded by
``--seed``), each with an outcome drawn from :data:`OUTCOMES`.  The bench plays
the phones itself: it watches the simulator's events in process and answers,
declines or lets ring each call as its outcome says, so every outcome is made
on purpose rather than left to per-phone behaviour.

At the end it prints (and with ``--json`` writes) the verdict:

* one CDR per call, matched by the caller's uniqueid (the call's Linkedid); a
  CDR that carries a leg of another call, or a CDR of no generated call, is a
  duplicate or an extra;
* no call left open in UCS's tracker, no CDR without an end;
* each CDR against what really happened on the PBX (answered or not, by which
  phone, who hung up: cause 3 when the caller did, 4 when the agent did), with
  the AMI events UCS got for every call that differs;
* every logged-in agent's UCS status against the PBX's ``QueueStatus`` (asked on
  a separate AMI connection): member of both queues, paused exactly when the
  status says so, with its reason;
* the latency from an AMI event reaching UCS to the agent-bar frame it caused
  arriving at the client (the load generator's clock, same machine), and UCS's
  own part of it (event in → frame handed to the socket), as ``fanout.py``
  measures them.

Exit status 1 when parity does not hold.  Nothing in ``ucs/`` is changed.
"""

from __future__ import annotations

import argparse
import array
import csv
import json
import os
import random
import shutil
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import protocol, reactor

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from loadgen_process import LoadGenProcess  # noqa: E402
from timing import pct, run_on_reactor, sleep  # noqa: E402
from ucs.agents.transitions import target  # noqa: E402
from ucs.config import Config  # noqa: E402
from ucs.constants import AgentStatus  # noqa: E402
from ucs.directory.directory import _from_doc  # noqa: E402
from ucs.server import UCSServer  # noqa: E402
from ucs.sim.testing import AMITestClient  # noqa: E402
from ucs.web.connection import Connection  # noqa: E402

SSO_SECRET = "cdr-parity-secret"
FIRST_DEVICE = 100000
NUMBERS = {"5000": "support", "5001": "sales"}
CALLER_HUNG_UP, CALLED_HUNG_UP = 3, 4

#: Outcome → weight.  What each one does is in :class:`SimPhones`'s docstring.
OUTCOMES = {"answered": 30, "agent_hangup": 20, "busy": 10, "decline": 10, "no_answer": 10, "abandon": 20}

#: The AMI events kept per call (by Linkedid) to show a divergent call's sequence.
TRACE = frozenset({
    "Newchannel", "QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentCalled", "AgentRingNoAnswer",
    "AgentConnect", "AgentComplete", "DialBegin", "DialEnd", "BridgeEnter", "BridgeLeave", "HangupRequest",
    "SoftHangupRequest", "Hangup",
})




# -- the plan ---------------------------------------------------------------------------------


@dataclass
class PlannedCall:
    """One caller: what the bench will make happen, then what did."""

    n: int
    at: float  # seconds after the first call
    exten: str
    outcome: str
    hangup_by: str  # "caller" | "agent": who ends the conversation if there is one
    talk: float
    patience: float
    ring_for: float  # how long a phone rings before it answers or declines
    uniqueid: str = ""
    #: While true, a ring of this call is its first round (busy / decline / no answer).
    first_round: bool = True
    rung: list[str] = field(default_factory=list)  # uniqueids of the agent legs rung
    statuses: list[str] = field(default_factory=list)  # DialEnd statuses, in order
    answered_by: str | None = None
    agent_channel: str = ""
    hung_up_by: str | None = None
    ended: bool = False

    @property
    def queue(self) -> str:
        return NUMBERS[self.exten]


def plan(calls: int, rate: float, seed: int, even: bool = False) -> list[PlannedCall]:
    """``calls`` arrivals at ``rate`` a second (Poisson, or evenly spaced), each an
    outcome drawn from :data:`OUTCOMES`; the same seed gives the same plan."""
    rng = random.Random(seed)
    names, weights = list(OUTCOMES), list(OUTCOMES.values())
    out: list[PlannedCall] = []
    t = 0.0
    for n in range(calls):
        outcome = rng.choices(names, weights)[0]
        exten = rng.choice(list(NUMBERS))
        if outcome == "answered":
            hangup_by = "caller"
        elif outcome == "agent_hangup":
            hangup_by = "agent"
        else:
            hangup_by = rng.choice(("caller", "agent"))
        if outcome == "abandon":
            patience = rng.uniform(0.5, 5.0)
        elif outcome == "no_answer" and NUMBERS[exten] == "sales":
            patience = rng.uniform(2.0, 6.0)  # ringall: everyone rings; the caller gives up while it rings
        else:
            patience = 90.0  # only if no agent comes free in time
        out.append(PlannedCall(n, t, exten, outcome, hangup_by, talk=rng.uniform(1.0, 5.0), patience=patience,
                               ring_for=rng.uniform(0.3, 1.5)))
        t += 1 / rate if even else rng.expovariate(rate)
    return out


# -- the simulator's phones, played per call ---------------------------------------------------------


class SimPhones:
    """Makes each call's outcome happen on ``ucs.sim`` and notes what did.

    Every ring of a planned call (``DialBegin`` to a bench phone, seen in process
    before the phone gets the INVITE) is decided by the call's outcome:

    * ``answered`` / ``agent_hangup``: the phone answers after ``ring_for``; the
      caller (``caller_calls(hangup_after=talk)``) or the agent (the bench sends
      the phone's BYE ``talk`` s after ``AgentConnect``) ends the conversation;
    * ``busy``: the phones rung first are busy (``set_behaviour(busy=True)`` for
      that INVITE: 486 at once; when the ring's event was held behind an AMI
      action the INVITE has gone already, and the phone ``reject()``\ s it after
      0.1 s instead: the same 486); the queue rings on and the next ring answers;
    * ``decline``: the phones rung first decline after ``ring_for`` (603 through
      ``Phone.decline`` when the simulator has it, else ``Phone.reject()``, which
      is 486 Busy Here); the next ring answers;
    * ``no_answer``: in ``support`` the first ring rings out (member timeout
      8 s) and the next member answers; in ``sales`` (ringall) nobody answers and
      the caller gives up after 2–6 s;
    * ``abandon``: nobody answers; the caller gives up after 0.5–5 s, waiting or
      ringing.

    The first round ends with the first ``DialEnd`` of the call that is not an
    answer.  What happened (rings, statuses, who answered, who hung up first,
    the caller's ``Hangup``) is noted from the same events.
    """

    def __init__(self, sim: Any, clock: Any) -> None:
        self.sim = sim
        self.clock = clock
        self.calls: dict[str, PlannedCall] = {}
        self.by_leg: dict[str, PlannedCall] = {}
        self.busy_phones: set[str] = set()
        self._placing: PlannedCall | None = None
        #: Busy rings made by ``reject()`` because the ring's event came after the INVITE.
        self.busy_by_reject = 0
        #: (device, the call it rang first, the call it rang besides) when a phone rang for two calls at once.
        self.double_rings: list[tuple[str, str, str]] = []
        self.decline_code = "603 (Phone.decline)" if hasattr(_phone_class(), "decline") else "486 (Phone.reject)"
        self.sub = sim.subscribe(self._event)

    def place(self, call: PlannedCall) -> None:
        hangup_after = call.talk if call.hangup_by == "caller" else None
        # The queue may ring a free phone before caller_calls returns: the call is
        # known from its Newchannel on (see _event), not from the channel returned.
        self._placing = call
        try:
            ch = self.sim.caller_calls(call.exten, f"420{600000000 + call.n}", f"Caller {call.n}",
                                       hangup_after=hangup_after, abandon_after=call.patience)
        finally:
            self._placing = None
        call.uniqueid = ch.uniqueid
        self.calls[ch.uniqueid] = call

    def stop(self) -> None:
        self.sub.cancel()

    def _event(self, ev: Any) -> None:
        name = ev.name
        if name == "Newchannel" and self._placing is not None:
            m = ev.message()
            if m.get("Channel", "").startswith("SIP/carrier") and m["Uniqueid"] not in self.calls:
                self._placing.uniqueid = m["Uniqueid"]
                self.calls[m["Uniqueid"]] = self._placing
            return
        if name not in ("DialBegin", "DialEnd", "AgentConnect", "HangupRequest", "Hangup"):
            return
        m = ev.message()
        call = self.calls.get(m.get("Uniqueid", ""))
        if name == "HangupRequest" or name == "Hangup":
            if call is None:
                call = self.by_leg.get(m.get("Uniqueid", ""))
                who = "agent"
            else:
                who = "caller"
            if call is None:
                return
            if call.answered_by is not None and call.hung_up_by is None and \
                    (who == "caller" or m.get("Channel") == call.agent_channel):
                call.hung_up_by = who
            if name == "Hangup" and who == "caller":
                call.ended = True
            return
        if call is None or not m.get("DestChannel", "").startswith("SIP/1"):
            return
        device = m["DestChannel"].rsplit("-", 1)[0]
        dest = m["DestChannel"]
        if name == "DialBegin":
            call.rung.append(m["DestUniqueid"])
            self.by_leg[m["DestUniqueid"]] = call
            self._ring(call, device, dest)
        elif name == "DialEnd":
            status = m.get("DialStatus", "")
            call.statuses.append(status)
            if device in self.busy_phones:
                self.busy_phones.discard(device)
                self.sim.phone(device).set_behaviour()
            if status != "ANSWER":
                call.first_round = False
        elif name == "AgentConnect":
            call.answered_by = m.get("Interface", device)
            call.agent_channel = dest
            if call.hangup_by == "agent":
                self.clock.callLater(call.talk, self._agent_hangs_up, device, dest)

    def _ring(self, call: PlannedCall, device: str, dest: str) -> None:
        outcome = call.outcome
        if outcome == "abandon" or (outcome == "no_answer" and (call.first_round or call.queue == "sales")):
            return  # rings until the member timeout or the caller gives up
        if call.first_round and outcome == "busy":
            self.busy_phones.add(device)
            self.sim.phone(device).set_behaviour(busy=True)  # read by the INVITE that follows this event
            # ...unless the ring came while the simulator answered an AMI action: its
            # events are held until the response is out, and the INVITE has gone.  Then
            # the phone answers 486 itself, as a busy phone would.
            self.clock.callLater(0.1, self._busy_late, device, dest)
            return
        act = self._decline if call.first_round and outcome == "decline" else self._answer
        self.clock.callLater(call.ring_for, act, device, dest)

    def _still_ringing(self, device: str, dest: str) -> Any:
        """The phone if ``dest`` is the call ringing on it now.  ``Phone.answer()`` and
        ``reject()`` act on the phone's first ringing call; when the simulator rings
        one phone for two calls at once, the second cannot be reached and rings out
        (counted in :attr:`double_rings`)."""
        phone = self.sim.phone(device)
        ringing = phone.ringing
        if ringing is not None and ringing.name == dest:
            return phone
        ch = self.sim.find_channel(dest)
        if ch is not None and not ch.gone and ringing is not None:
            self.double_rings.append((device, ringing.name, dest))
        return None

    def _answer(self, device: str, dest: str) -> None:
        phone = self._still_ringing(device, dest)
        if phone is not None:
            phone.answer()

    def _decline(self, device: str, dest: str) -> None:
        phone = self._still_ringing(device, dest)
        if phone is not None:
            decline = getattr(phone, "decline", None)
            decline() if decline is not None else phone.reject()

    def _busy_late(self, device: str, dest: str) -> None:
        phone = self._still_ringing(device, dest)
        if phone is not None:
            self.busy_by_reject += 1
            phone.reject()

    def _agent_hangs_up(self, device: str, dest: str) -> None:
        ch = self.sim.find_channel(dest)
        if ch is not None and not ch.gone:
            self.sim.phone(device).hangup(ch)

    def open_calls(self) -> int:
        return sum(1 for c in self.calls.values() if not c.ended)


def _phone_class() -> Any:
    from ucs.sim.pbx import Phone

    return Phone


# -- a real Asterisk: sipp phones and callers, Master.csv ------------------------------------------------


class SippCallers:
    """Callers and phones for ``--asterisk``: sipp processes of the lab
    (``tests/lab/asterisk/sipp``); run against Asterisk 20.21 (bench/README.md).

    A real PBX is not steered per call: each phone plays one scenario for the
    whole run (``--phones``: answer, busy, decline, noanswer, cycled over the
    devices), and each caller is ``uac_call.xml`` through the carrier
    (127.0.0.20) with ``-d`` = its whole time in the call (the lab dialplan
    answers before ``Queue``): it abandons unless a phone answers in time, and
    always hangs up itself (the lab's phones wait for the BYE), so every CDR's
    expected cause is 3.  What happened is read from ``Master.csv``."""

    def __init__(self, sipp: str, scenarios: Path, sip: str, devices: list[str], behaviours: list[str],
                 pjsip: str | None) -> None:
        self.sipp, self.scenarios, self.sip, self.pjsip = sipp, scenarios, sip, pjsip
        self.procs: list[Any] = []
        self.callers = 0
        self.port = 5061
        for i, device in enumerate(devices):
            tech, _, number = device.partition("/")
            ip = f"127.0.0.{11 + int(number) % 1000 - 1}" if tech == "SIP" else f"127.0.0.{31 + int(number) % 1000 - 1}"
            target_addr = self.sip if tech == "SIP" else (self.pjsip or self.sip)
            scen = f"uas_{behaviours[i % len(behaviours)]}.xml"
            self._spawn(["-sf", str(scenarios / scen), "-i", ip, "-p", "5060", "-m", "100000", target_addr])

    def _spawn(self, args: list[str], proto: protocol.ProcessProtocol | None = None) -> None:
        argv = [self.sipp, *args, "-nostdin"]
        self.procs.append(reactor.spawnProcess(proto or protocol.ProcessProtocol(), self.sipp, argv,
                                               env=os.environ.copy()))

    def place(self, call: PlannedCall) -> None:
        self.port = 5061 + (self.port - 5060) % 2000
        total = call.patience if call.outcome in ("abandon", "no_answer") else 8.0 + call.talk
        self.callers += 1
        # Each sipp caller binds its own RTP ports too: left to its default, callers
        # that overlap collide there (errno 98) and never send their INVITE.
        media = 20000 + 4 * ((self.port - 5061) % 2000)
        self._spawn(["-sf", str(self.scenarios / "uac_call.xml"), "-i", "127.0.0.20", "-p", str(self.port),
                     "-mp", str(media), "-s", call.exten, "-m", "1", "-d", str(int(total * 1000)), self.sip],
                    _Ended(self))

    def open_calls(self) -> int:
        """Callers whose sipp has not ended yet."""
        return self.callers

    def stop(self) -> None:
        for p in self.procs:
            try:
                p.signalProcess("TERM")
            except Exception:
                pass


class _Ended(protocol.ProcessProtocol):
    def __init__(self, owner: SippCallers) -> None:
        self.owner = owner

    def processEnded(self, reason: Any) -> None:
        self.owner.callers -= 1


def master_csv_truth(path: Path, offset: int) -> dict[str, dict[str, Any]]:
    """Calls from the carrier in ``Master.csv`` after byte ``offset`` (the lab's
    mapping: clid, src, dst, dcontext, channel, dstchannel, lastapp, start, answer,
    end, duration, billsec, disposition, uniqueid, linkedid), by linkedid: answered
    by which phone (a row ANSWERED with a phone as dstchannel), the rows."""
    calls: dict[str, dict[str, Any]] = {}
    with open(path, newline="") as f:
        f.seek(offset)
        for row in csv.reader(f):
            if len(row) < 15:
                continue
            channel, dstchannel, disposition, linkedid = row[4], row[5], row[12], row[14]
            if not channel.startswith("SIP/carrier"):
                continue
            c = calls.setdefault(linkedid, {"answered_by": None, "rows": [], "queue": {"5000": "support",
                                                                                       "5001": "sales"}.get(row[2])})
            c["rows"].append(row)
            if disposition == "ANSWERED" and dstchannel and not dstchannel.startswith("Local/"):
                c["answered_by"] = dstchannel.rsplit("-", 1)[0]
    return calls


# -- the latency: AMI event in → frame at the client ---------------------------------------------------


class Frames:
    """Every event frame UCS hands to an agent bar while recording, with the time
    the AMI event that caused it reached UCS (``PBXLink.eventReceived`` wrapped on
    the instance: ``time.time()`` before the model sees the event) and a CRC of its
    bytes; frames not caused by an AMI event are not kept.  The link wrapper also
    keeps the traced events of every call by Linkedid."""

    def __init__(self, link: Any) -> None:
        self.recording = False
        self.origin: float | None = None
        self.trace: dict[str, list[str]] = {}
        self._t0 = time.time()
        frames = self
        original_send = Connection.send
        self._restore = original_send

        def send(conn: Connection, out: Any, key: str | None = None) -> None:
            if frames.recording and frames.origin is not None and conn.open and out.data.startswith(b'{"event":'):
                logs = conn.__dict__.get("_parity")
                if logs is None:
                    logs = conn.__dict__["_parity"] = (array.array("d"), array.array("L"), array.array("d"))
                logs[0].append(frames.origin)
                logs[1].append(zlib.crc32(out.data))
                logs[2].append(time.time())
            original_send(conn, out, key)

        Connection.send = send  # type: ignore[method-assign,assignment]
        received = link.eventReceived

        def event_received(message: Any) -> None:
            frames.origin = time.time()
            name = message.get("Event")
            if name in TRACE:
                linkedid = message.get("Linkedid", "")
                extra = " ".join(f"{k}={message[k]}" for k in ("DialStatus", "Cause", "Interface", "DestChannel")
                                 if k in message)
                frames.trace.setdefault(linkedid, []).append(
                    f"{frames.origin - frames._t0:9.3f} {name} {message.get('Channel', '')} {extra}".rstrip())
            try:
                received(message)
            finally:
                frames.origin = None

        link.eventReceived = event_received

    def uninstall(self) -> None:
        Connection.send = self._restore  # type: ignore[method-assign]

    def latencies(self, connections: list[Any], client: dict[str, Any]) -> tuple[list[float], list[float], int]:
        """(AMI event → arrival, AMI event → handed to the socket, frames sent but not
        seen at the client), in ms, matching each connection's frames to its
        client's by CRC in order."""
        end_to_end: list[float] = []
        in_ucs: list[float] = []
        lost = 0
        for conn in connections:
            logs = conn.__dict__.get("_parity")
            user = conn.session.user.username if conn.session is not None and conn.session.user else None
            if logs is None or user is None or user not in client:
                continue
            got_t, got_crc, _names = client[user]
            where: dict[int, list[int]] = {}
            for j, c in enumerate(got_crc):
                where.setdefault(c, []).append(j)
            for t_in, crc, t_out in zip(*logs):
                js = where.get(crc)
                if not js:
                    lost += 1
                    continue
                j = js.pop(0)
                end_to_end.append((got_t[j] - t_in) * 1000)
                in_ucs.append((t_out - t_in) * 1000)
        return end_to_end, in_ucs, lost


# -- the directory ------------------------------------------------------------------------------------


async def add_agents(server: UCSServer, devices: list[str]) -> None:
    """Users ``bench1..`` with a line each (identifier ``bench-phone-I``), in both
    queues, written into the directory's tables (no password hash: the bars log in
    by SSO; not persisted, as in ``fanout.py``)."""
    directory = server.get_directory()
    qids = []
    for label, name in (("Support", "support"), ("Sales", "sales")):
        q = directory.queue_by_asterisk_name(name)
        if q is None:
            q = await directory.add("queues", {"name": label, "asterisk_name": name, "type": 1})
        qids.append(q.id)
    lid = max(directory.lines, default=0) + 1
    uid = max(directory.users, default=0) + 1
    for i, device in enumerate(devices, 1):
        directory.lines[lid] = _from_doc("lines", {"id": lid, "device": device, "name": f"Bench phone {i}",
                                                   "identifiers": [f"bench-phone-{i}"], "auto_answer": "sip-notify"})
        directory.users[uid] = _from_doc("users", {
            "id": uid, "username": f"bench{i}", "password_hash": "", "firstname": "Bench", "lastname": str(i),
            "lines": [lid], "queues": {q: {"priority": 0} for q in qids}, "locale": "en"})
        lid += 1
        uid += 1
    directory._next_id["lines"] = max(directory._next_id["lines"], lid)
    directory._next_id["users"] = max(directory._next_id["users"], uid)


# -- the checks ---------------------------------------------------------------------------------------


async def queue_status(host: str, port: int, user: str, secret: str) -> dict[tuple[str, str], dict[str, str]]:
    """The PBX's own view of the queue members: ``QueueStatus`` on a connection
    of the bench's own, ``(queue, interface) → QueueMember`` event."""
    client: AMITestClient = await protocol.ClientCreator(reactor, AMITestClient).connectTCP(host, port)
    try:
        reply = await client.login(user, secret, events="off")
        if reply.get("Response") != "Success":
            raise RuntimeError(f"AMI login for QueueStatus refused: {reply}")
        done = client.wait_for(lambda m: m.get("Event") == "QueueStatusComplete")
        await client.action("QueueStatus", ActionID="parity-qs")
        await done
        members = {}
        for m in client.events("QueueMember"):
            members[(m["Queue"], m.get("StateInterface") or m.get("Interface") or m.get("Location", ""))] = m
        return members
    finally:
        client.transport.loseConnection()


def check_agents(server: UCSServer, members: dict[tuple[str, str], dict[str, str]]) -> list[str]:
    """Each logged-in agent's status, per queue, against the PBX's member."""
    problems = []
    for agent in server.get_agents().all():
        if not agent.username.startswith("bench"):
            continue
        if agent.status != AgentStatus.READY:
            problems.append(f"{agent.username} ({agent.device}) is {agent.status.name} {agent.reason!r} at the end")
        for q, _membership in server.get_directory().queues_of(agent.user):
            name = q.asterisk_name
            want = target(agent.status, agent.reason, q.id in agent.suspended)
            m = members.get((name, agent.device))
            paused = m is not None and m.get("Paused") == "1"
            reason = (m or {}).get("PausedReason", "")
            ok = (m is None) if not want.present else (
                m is not None and paused == want.paused and (not want.paused or reason == want.reason))
            if not ok:
                seen = "not a member" if m is None else (f"paused ({reason})" if paused else "not paused")
                problems.append(f"{agent.username} {agent.status.name}: UCS wants {name} {want.describe()}, "
                                f"the PBX has it {seen}")
    return problems


def compare(truth: dict[str, dict[str, Any]], cdrs: list[dict[str, Any]], trace: dict[str, list[str]],
            planned: dict[str, PlannedCall]) -> dict[str, Any]:
    """Each call's CDR against what happened.  ``truth``: caller uniqueid →
    ``answered_by`` (device or None), ``cause`` expected, ``legs`` (agent legs
    rung), ``queue``."""
    by_uid = {c["uniqueid"]: c for c in cdrs}
    leg_owner: dict[str, list[str]] = {}
    for c in cdrs:
        for leg in (c.get("data") or {}).get("legs", []):
            leg_owner.setdefault(leg["uniqueid"], []).append(c["uniqueid"])
    missing, mismatches, duplicated = [], [], []
    causes: Counter[str] = Counter()
    for uid, t in truth.items():
        cdr = by_uid.get(uid)
        if cdr is None:
            missing.append(uid)
            continue
        causes[f"{t['label']} -> cause {cdr['cause']}"] += 1
        wrong = []
        if cdr["cause"] != t["cause"]:
            wrong.append(f"cause {cdr['cause']}, expected {t['cause']}")
        if (cdr["connected"] is not None) != (t["answered_by"] is not None):
            wrong.append(f"connected {cdr['connected']}, expected {'a time' if t['answered_by'] else None}")
        if t["answered_by"] is not None and cdr["answered_by"] != t["answered_by"]:
            wrong.append(f"answered_by {cdr['answered_by']!r}, expected {t['answered_by']!r}")
        if cdr["disconnected"] is None:
            wrong.append("no end (disconnected is None)")
        if t["queue"] and cdr["queue"] != t["queue"]:
            wrong.append(f"queue {cdr['queue']!r}, expected {t['queue']!r}")
        for leg in t["legs"]:
            owners = leg_owner.get(leg, [])
            if owners != [uid]:
                wrong.append(f"agent leg {leg} is in the CDRs {owners}, expected only this call's")
                duplicated.append(leg)
        if wrong:
            p = planned.get(uid)
            mismatches.append({
                "uniqueid": uid, "call": p.n if p else None, "outcome": p.outcome if p else t["label"],
                "what_happened": t["label"], "problems": wrong,
                "stored": {k: cdr[k] for k in ("cause", "connected", "disconnected", "answered_by", "queue")},
                "journey": [s.get("Description") for s in cdr.get("journey") or []],
                "ami": trace.get(uid, []),
            })
    extra = [c["uniqueid"] for c in cdrs if c["uniqueid"] not in truth]
    return {"missing": missing, "mismatches": mismatches, "extra": extra, "duplicated_legs": duplicated,
            "causes": dict(sorted(causes.items()))}


def sim_truth(calls: list[PlannedCall]) -> dict[str, dict[str, Any]]:
    truth = {}
    for c in calls:
        if not c.uniqueid:
            continue
        failed = sorted({s for s in c.statuses if s not in ("ANSWER", "CANCEL")})
        before = f" after {'+'.join(failed)}" if failed else ""
        if c.answered_by is not None:
            label = f"answered{before}, {c.hung_up_by or '?'} hung up"
            cause = CALLED_HUNG_UP if c.hung_up_by == "agent" else CALLER_HUNG_UP
        else:
            label = f"not answered{before}"
            cause = CALLER_HUNG_UP
        truth[c.uniqueid] = {"answered_by": c.answered_by, "cause": cause, "legs": list(c.rung), "queue": c.queue,
                             "label": label}
    return truth


# -- the run ------------------------------------------------------------------------------------------


async def run(opts: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="ucs-cdr-parity-"))
    store = opts.store or f"sqlite:///{tmp / 'ucs.db'}"
    real = opts.asterisk is not None
    sections: dict[str, Any] = {
        "store": {"url": store}, "web": {"port": 0}, "plugins": {"directory": str(tmp / "plugins")},
        "auth": {"sso_secret": SSO_SECRET, "sso_window": 3600.0}, "agents": {"acw_seconds": opts.acw, "initial_status": "ready"},  # the agents take calls at once
    }
    if real:
        host, _, port = opts.asterisk.rpartition(":")
        sections["ami"] = {"host": host, "port": int(port), "username": opts.ami_user, "secret": opts.ami_secret}
        devices = opts.devices.split(",")
    else:
        sections["demo"] = {"enabled": True, "call_rate": 0, "phones": 1}
        devices = [f"SIP/{FIRST_DEVICE + i}" for i in range(1, opts.agents + 1)]
    server = UCSServer(Config().replace(**sections), reactor)
    driver: Any
    if real:
        ami_addr = (sections["ami"]["host"], sections["ami"]["port"], opts.ami_user, opts.ami_secret)
        master = Path(opts.master_csv)
        offset = master.stat().st_size if master.exists() else 0
    else:
        sim = server.get_demo_pbx().sim
        for i, device in enumerate(devices, 1):
            sim.add_line(device, f"Bench {i}", f"10.1.{i >> 8}.{i & 255}")
        svc = server.get_demo_pbx()
    frames = Frames(server.get_pbx_link())
    result: dict[str, Any] = {"calls": opts.calls, "rate": opts.rate, "seed": opts.seed, "agents": len(devices),
                              "store": store.split("://")[0], "pbx": "asterisk" if real else "ucs.sim",
                              "acw_s": opts.acw}
    server.service.startService()
    starting = server.service._starting
    assert starting is not None
    await starting
    if not server.get_pbx_link().resyncs:
        await server.get_pbx_link().whenSynced()
    if not real:
        host, port_ = svc.address()
        ami_addr = (host, port_, *svc.credentials)
    await add_agents(server, devices)
    web_port = server.get_web_service().port
    lg = LoadGenProcess.spawn(reactor, web_port, len(devices), SSO_SECRET, ["--concurrency", "20"], echo=False)
    print(f"UCS up (web port {web_port}, store {result['store']}, PBX {result['pbx']}); "
          f"bars: {await lg.expect('ready', timeout=120)}", flush=True)
    await wait_for(lambda: all_ready(server, devices), 60, "every agent READY and a member of both queues")

    if real:
        driver = SippCallers(opts.sipp, Path(opts.sipp_dir), opts.sip, devices, opts.phones.split(","), opts.pjsip)
    else:
        driver = SimPhones(sim, reactor)
        result["decline_is"] = driver.decline_code
    calls = plan(opts.calls, opts.rate, opts.seed, opts.even)
    frames.recording = True
    t_start = time.time()
    t0 = time.monotonic()
    for call in calls:  # each at its own time: a late turn does not delay the calls after it
        wait = t0 + call.at - time.monotonic()
        if wait > 0:
            await sleep(wait)
        driver.place(call)
    made = time.monotonic() - t0
    print(f"{len(calls)} calls made in {made:.1f} s ({len(calls) / made:.2f}/s); planned outcomes: "
          f"{dict(Counter(c.outcome for c in calls))}", flush=True)
    tracker = server.get_call_tracker()
    await wait_for(lambda: driver.open_calls() == 0, 240, "every caller gone on the PBX")
    await wait_for(lambda: not tracker.active_calls(), 60, "no call open in UCS's tracker", fail=False)
    await sleep(opts.acw + 1.0)
    await wait_for(lambda: all_ready(server, devices), 30, "every agent READY again", fail=False)
    frames.recording = False
    await server.get_cdr_writer().flushed()
    await sleep(0.5)  # the last frames reach the clients

    open_in_tracker = [c.uniqueid for c in tracker.active_calls()]
    cdrs = await server.get_store().list_cdrs(since=t_start - 5, limit=10000)
    open_cdrs = [c["uniqueid"] for c in cdrs if c["disconnected"] is None]
    if real:
        truth = {}
        for linkedid, c in master_csv_truth(master, offset).items():
            truth[linkedid] = {"answered_by": c["answered_by"], "cause": CALLER_HUNG_UP, "legs": [],
                               "queue": c["queue"], "label": "answered" if c["answered_by"] else "not answered"}
        planned: dict[str, PlannedCall] = {}
    else:
        truth = sim_truth(calls)
        planned = driver.calls
    verdict = compare(truth, cdrs, frames.trace, planned)
    members = await queue_status(*ami_addr)
    agent_problems = check_agents(server, members)
    client = await dump(lg, tmp / "client.json")
    e2e, in_ucs, lost = frames.latencies(list(_hub(server).connections), client)
    frames.uninstall()
    driver.stop()

    if not real:
        result["double_rings"] = [list(d) for d in driver.double_rings]
        result["busy_by_reject"] = driver.busy_by_reject
    realized = Counter(t["label"] for t in truth.values())
    parity = (not verdict["missing"] and not verdict["mismatches"] and not verdict["extra"]
              and not open_in_tracker and not open_cdrs and not agent_problems and len(truth) == len(calls))
    result.update({
        "generated": len(calls), "calls_on_pbx": len(truth), "cdrs": len(cdrs),
        "cdrs_matched": len(truth) - len(verdict["missing"]), **verdict,
        "open_in_tracker": open_in_tracker, "open_cdrs": open_cdrs, "agent_problems": agent_problems,
        "realized": dict(realized), "outcome_to_realized": _cross(calls, truth) if not real else {},
        "latency_ms": {"frames": len(e2e), "p50": round(pct(e2e, 50), 2), "p95": round(pct(e2e, 95), 2),
                       "p99": round(pct(e2e, 99), 2), "max": round(max(e2e, default=float("nan")), 2),
                       "in_ucs_p50": round(pct(in_ucs, 50), 2), "in_ucs_p99": round(pct(in_ucs, 99), 2),
                       "lost": lost},
        "ami_events": server.get_pbx_link().events, "parity": parity,
    })
    report(result)
    await lg.quit()
    await server.service.stopService()
    shutil.rmtree(tmp, ignore_errors=True)
    return result


async def dump(lg: LoadGenProcess, path: Path) -> dict[str, Any]:
    waiting = lg.expect("dumped", timeout=60)
    lg.command(f"dump {path}")
    await waiting
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _cross(calls: list[PlannedCall], truth: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter[str]] = {}
    for c in calls:
        if c.uniqueid in truth:
            out.setdefault(c.outcome, Counter())[truth[c.uniqueid]["label"]] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


def _hub(server: UCSServer) -> Any:
    web = server.get_web_service()
    return getattr(web, "hub", None) or getattr(web, "_hub")


def all_ready(server: UCSServer, devices: list[str]) -> bool:
    agents = [a for a in server.get_agents().all() if a.device in set(devices)]
    if len(agents) != len(devices) or any(a.status != AgentStatus.READY for a in agents):
        return False
    queues = server.get_pbx().queues
    return all(q in queues and d in queues[q].members and not queues[q].members[d].paused
               for q in ("support", "sales") for d in devices)


async def wait_for(cond: Callable[[], bool], timeout: float, what: str, fail: bool = True) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            if fail:
                raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
            print(f"  (timed out after {timeout:g} s waiting for {what})", flush=True)
            return
        await sleep(0.1)


def report(r: dict[str, Any]) -> None:
    print(f"calls generated {r['generated']}, seen on the PBX {r['calls_on_pbx']}, CDRs stored {r['cdrs']} "
          f"(matched {r['cdrs_matched']}, missing {len(r['missing'])}, extra {len(r['extra'])}, "
          f"legs in more than one CDR {len(r['duplicated_legs'])})")
    print(f"open calls in UCS's tracker at the end: {len(r['open_in_tracker'])}; CDRs without an end: "
          f"{len(r['open_cdrs'])}")
    print(f"what happened: {r['realized']}")
    if r.get("decline_is"):
        print(f"a decline is played as {r['decline_is']}")
    if r.get("busy_by_reject"):
        print(f"busy rings made by reject() (486) because the ring's event was held behind an AMI action: "
              f"{r['busy_by_reject']}")
    if r.get("double_rings"):
        print(f"rings the bench could not answer or decline because the phone rang another call first "
              f"(one phone rung for two calls at once): {len(r['double_rings'])}, e.g. {r['double_rings'][0]}")
    for outcome, got in r["outcome_to_realized"].items():
        print(f"  planned {outcome:13} -> {got}")
    print("what happened -> CDR cause:")
    for k, v in r["causes"].items():
        print(f"  {k:36} {v}")
    print(f"CDRs that differ from what happened: {len(r['mismatches'])}")
    for m in r["mismatches"][:20]:
        print(f"  call {m['call']} ({m['outcome']}; {m['what_happened']}) {m['uniqueid']}: {'; '.join(m['problems'])}")
        print(f"    stored {m['stored']}; journey {m['journey']}")
        for line in m["ami"]:
            print(f"      {line}")
    print(f"agents whose UCS state the PBX does not agree with: {len(r['agent_problems'])}")
    for p in r["agent_problems"]:
        print(f"  {p}")
    lat = r["latency_ms"]
    print(f"AMI event in UCS -> bar frame at the client, {lat['frames']} frames: p50 {lat['p50']} ms, "
          f"p95 {lat['p95']} ms, p99 {lat['p99']} ms, max {lat['max']} ms (in UCS: p50 {lat['in_ucs_p50']} ms, "
          f"p99 {lat['in_ucs_p99']} ms); frames not seen at the client {lat['lost']}")
    print(f"PARITY: {'yes' if r['parity'] else 'NO'}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--rate", type=float, default=5.0, help="new calls a second")
    p.add_argument("--even", action="store_true", help="evenly spaced calls instead of Poisson arrivals")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--agents", type=int, default=24, help="simulated agents (bench phones SIP/100001..)")
    p.add_argument("--acw", type=float, default=2.0, help="agents.acw_seconds")
    p.add_argument("--store", help="store URL (default: SQLite in a temporary directory), e.g. "
                                   "postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--json", help="write the result here")
    a = p.add_argument_group("a real Asterisk (the lab of tests/lab/asterisk, started with lab-up)")
    a.add_argument("--asterisk", metavar="HOST:PORT", help="its AMI; without it the run is on ucs.sim")
    a.add_argument("--ami-user", default="ucs")
    a.add_argument("--ami-secret", default="ucslab")
    a.add_argument("--master-csv", default="Master.csv", help="RUN_DIR/log/cdr-custom/Master.csv")
    a.add_argument("--sip", default="127.0.0.1:5060", help="its chan_sip HOST:PORT (callers, SIP phones)")
    a.add_argument("--pjsip", help="its PJSIP HOST:PORT (PJSIP phones)")
    a.add_argument("--devices", default="SIP/1001,SIP/1002,SIP/1003,PJSIP/2001,PJSIP/2002,PJSIP/2003")
    a.add_argument("--phones", default="answer,answer,busy,answer,decline,noanswer",
                   help="sipp scenario per device (uas_<name>.xml), cycled")
    a.add_argument("--sipp", default=shutil.which("sipp") or "sipp")
    a.add_argument("--sipp-dir", default=str(Path(__file__).resolve().parents[1] / "tests" / "lab" / "asterisk" / "sipp"))
    opts = p.parse_args()
    out = run_on_reactor(lambda: run(opts))
    if opts.json:
        Path(opts.json).write_text(json.dumps(out, indent=1, default=str))
    sys.exit(0 if out.get("parity") else 1)


if __name__ == "__main__":
    main()
