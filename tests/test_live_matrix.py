"""The live server agrees with the replay (issue 13): every flow of the capture
matrix (``tests/data/ami-captures/sip_*.ami`` and ``pj_*.ami``, recorded on a
real Asterisk 20.21) played into the whole :class:`~ucs.server.UCSServer`.

The server is configured as a customer would (not demo mode): its AMI client
logs into a fake Asterisk over TCP (``tests/amistage.py``) that streams the
capture's own events; the lab's agents log in over the real agent-bar
WebSocket on the capture's phones, READY (or AUX with the capture's reason) in
the capture's queues; where the recording client acted on the call (hang up,
dial, hold, transfer, mute, unpause), the agent does it from the bar and the
stream waits for UCS's action.  Then each phone's bar must have seen what its
user saw (seed 002's ``onCallNew`` … ``onCallHangup`` with the final cause),
the agents must be in the states the flow leaves them in, and the CDR stored
must say what physically happened.

The expectations come from ``README.md`` ("The matrix", "what happened") and
``expected.json`` next to the captures, not from what UCS prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from amistage import Gate, Stage, StageFactory
from test_web_api import CallError, Client, connect
from twisted.internet import defer, reactor
from twisted.internet.interfaces import IListeningPort

from ucs.config import Config
from ucs.server import UCSServer

CAPTURES = Path(__file__).resolve().parent / "data" / "ami-captures"
CUSTOMER = "420777123456"
DIALLED = "0420777987654"
#: The lab's phones (``../asterisk``): device -> the person on it (sip.conf/pjsip.conf callerid).
PEOPLE = {
    "SIP/1001": "Alice Agent", "SIP/1002": "Bob Agent", "SIP/1003": "Carol Agent",
    "PJSIP/2001": "Erin Agent", "PJSIP/2002": "Frank Agent", "PJSIP/2003": "Grace Agent",
}
ROLES = {"sip": ("SIP/1001", "SIP/1002", "SIP/1003"), "pj": ("PJSIP/2001", "PJSIP/2002", "PJSIP/2003")}
AUX_REASONS = ("Lunch", "Training", "Meeting", "Coffee")


@dataclass
class Flow:
    """What a flow looks like to its users: ``bars`` per phone role (``a``, ``b``,
    ``c``): the call events in order, each with fields its data must have;
    ``status`` per role: the agent's (status, reason) when the flow is over;
    ``cdr``: fields of the one CDR stored (``None``: no call, no CDR; ``journey_has``: devices
    of its journey; ``recorded_on``: the phones whose recordings UCS started and stopped)."""

    phones: str
    bars: dict[str, list[tuple[str, dict[str, Any]]]]
    status: dict[str, tuple[str, str]]
    cdr: dict[str, Any] | None
    #: Bar requests that must fail (method -> why it is right that it fails).
    refused: dict[str, str] = field(default_factory=dict)
    #: Fields of the CDRs stored after the first, in order (a consultation that
    #: became a call of its own).
    more_cdrs: list[dict[str, Any]] = field(default_factory=list)
    #: Calls in each role's figures of the day once the flow is over: ``in_calls_answered``,
    #: ``in_calls_unanswered``, ``out_calls_answered``, ``out_calls_unanswered``, and the
    #: support queue's ``answered`` and ``unanswered`` (each phone leg counted once).
    calls: dict[str, tuple[int, int, int, int, int, int]] = field(default_factory=dict)


def _queue_call(queue: str = "support") -> dict[str, Any]:
    return {"direction": "INCOMING", "number": CUSTOMER, "queue": queue}


Event = tuple[str, dict[str, Any]]
RINGING_IN: Event = ("call.ringing", _queue_call())
CONNECT: Event = ("call.connect", {})
#: An attended transfer's two agents are told it happened (UCS's ``call.transfer``); the
#: transferring agent's part then ends (cause 8).  A blind transfer is told to the one who made it.
TRANSFERRED: Event = ("call.transfer", {})


def hangup(cause: int | None) -> tuple[str, dict[str, Any]]:
    """``cause=None``: any cause the enum has once a call ended (not -1)."""
    return ("call.hangup", {} if cause is None else {"cause": cause})


FLOWS: dict[str, Flow] = {
    # support call answered by a; the agent hangs up from the bar (Hangup, cause 16)
    "queue_answered_agent_hangs_up": Flow(
        "a", {"a": [RINGING_IN, CONNECT, hangup(4)]}, {"a": ("ACW", "")},
        {"direction": "INCOMING", "caller_number": CUSTOMER, "queue": "support", "answered_by": "a", "cause": 4}),
    # b is AUX(Lunch) in support; b is made READY from the bar while the call goes on
    # (the capture's own QueueAdd found 1002 already there unpaused, so the customer
    # reached it before the unpause); the customer hangs up
    "queue_paused_aux_then_ready": Flow(
        "b", {"b": [RINGING_IN, CONNECT, hangup(3)]}, {"b": ("ACW", "")},
        {"direction": "INCOMING", "caller_number": CUSTOMER, "queue": "support", "answered_by": "b", "cause": 3}),
    # sales (ringall): a declines (603), b answers, the customer hangs up
    "ringall_decline_then_answer": Flow(
        "ab", {"a": [("call.ringing", _queue_call("sales")), hangup(5)],
               "b": [("call.ringing", _queue_call("sales")), CONNECT, hangup(3)]},
        {"a": ("READY", ""), "b": ("ACW", "")},
        {"direction": "INCOMING", "caller_number": CUSTOMER, "queue": "sales", "answered_by": "b", "cause": 3}),
    # support: a rings, never answers; the customer hangs up while it rings
    "caller_abandons_while_ringing": Flow(
        "a", {"a": [RINGING_IN, hangup(3)]}, {"a": ("READY", "")},
        {"direction": "INCOMING", "caller_number": CUSTOMER, "queue": "support", "answered_by": None, "cause": 3}),
    # click-to-dial from a's bar; a answers, the carrier answers; a hangs up from the bar
    "click_to_dial_answered": Flow(
        "a", {"a": [("call.new", {"direction": "OUTGOING", "number": DIALLED}),
                    ("call.ringing", {"direction": "OUTGOING", "number": DIALLED}), CONNECT, hangup(3)]},
        {"a": ("READY", "")},
        {"direction": "OUTGOING", "caller_number": "a#", "called_number": DIALLED, "answered_by": "SIP/carrier",
         "cause": 3}),
    # click-to-dial; a answers, the carrier never does; a hangs up from the bar (DialEnd CANCEL)
    "click_to_dial_cancelled": Flow(
        "a", {"a": [("call.new", {"direction": "OUTGOING", "number": DIALLED}),
                    ("call.ringing", {"direction": "OUTGOING", "number": DIALLED}), hangup(3)]},
        {"a": ("READY", "")},
        {"direction": "OUTGOING", "caller_number": "a#", "called_number": DIALLED, "answered_by": None, "cause": 3}),
    # click-to-dial; a's phone never answers (OriginateResponse Failure)
    "click_to_dial_agent_noanswer": Flow(
        "a", {"a": [("call.new", {"direction": "OUTGOING", "number": DIALLED}),
                    ("call.ringing", {"direction": "OUTGOING", "number": DIALLED}), hangup(None)]},
        {"a": ("READY", "")},
        {"direction": "OUTGOING", "called_number": DIALLED, "answered_by": None},
        refused={"call.dial": "the agent's phone never answered"}),
    # a dials b, which answers 486 Busy at once.  Like the phone that declines in the
    # ringall flow (603 at once, no 180 either), b's bar is offered the call and gets
    # its own call.hangup: the call reached b's phone and b's phone refused it.
    "internal_busy": Flow(
        "ab", {"a": [("call.new", {"number": "b#"}), ("call.ringing", {"number": "b#"}), hangup(1)],
               "b": [("call.ringing", {"number": "a#"}), hangup(1)]},
        {"a": ("READY", ""), "b": ("READY", "")},
        {"direction": "INTERNAL", "caller_number": "a#", "called_number": "b#", "answered_by": None, "cause": 1}),
    # a dials c, which rings for the Dial timeout (NOANSWER)
    "internal_noanswer": Flow(
        "ac", {"a": [("call.new", {"number": "c#"}), ("call.ringing", {"number": "c#"}), hangup(6)],
               "c": [("call.ringing", {"number": "a#"}), hangup(6)]},
        {"a": ("READY", ""), "c": ("READY", "")},
        {"direction": "INTERNAL", "caller_number": "a#", "called_number": "c#", "answered_by": None, "cause": 6}),
    # a dials b, b answers; b hangs up from the bar
    "internal_answered_called_hangs_up": Flow(
        "ab", {"a": [("call.new", {"number": "b#"}), ("call.ringing", {"number": "b#"}), CONNECT, hangup(4)],
               "b": [("call.ringing", {"number": "a#"}), CONNECT, hangup(4)]},
        {"a": ("READY", ""), "b": ("READY", "")},
        {"direction": "INTERNAL", "caller_number": "a#", "called_number": "b#", "answered_by": "b", "cause": 4}),
    # a dials 7777, refused before any channel exists: no call at all
    "invalid_extension": Flow("a", {"a": []}, {"a": ("READY", "")}, None),
    # support call answered by a; hold and resume from the bar; the customer hangs up
    "hold_redirect_bridge": Flow(
        "a", {"a": [RINGING_IN, CONNECT, ("call.hold", {}), ("call.resume", {}), hangup(3)]}, {"a": ("ACW", "")},
        {"direction": "INCOMING", "caller_number": CUSTOMER, "queue": "support", "answered_by": "a", "cause": 3}),
    # support call answered by a; a blind-transfers it to b from the bar; b answers; the customer hangs up
    "blind_transfer_action": Flow(
        "ab", {"a": [RINGING_IN, CONNECT, TRANSFERRED, hangup(8)], "b": [RINGING_IN, CONNECT, hangup(3)]},
        {"a": ("ACW", ""), "b": ("ACW", "")},
        {"direction": "INCOMING", "caller_number": CUSTOMER, "queue": "support", "answered_by": "a", "cause": 3,
         "journey_has": ["SIP/carrier", "Queue:support", "a", "b"]},
        calls={"a": (1, 0, 0, 0, 1, 0), "b": (1, 0, 0, 0, 1, 0)}),
    # support call answered by a; a consults c from the bar (the customer on hold); c answers;
    # a finishes the transfer from the bar; the customer hangs up
    "atxfer_complete": Flow(
        "ac", {"a": [RINGING_IN, CONNECT, ("call.hold", {}), TRANSFERRED, hangup(8)],
               "c": [RINGING_IN, CONNECT, TRANSFERRED, hangup(3)]},
        {"a": ("ACW", ""), "c": ("ACW", "")},
        {"direction": "INCOMING", "caller_number": CUSTOMER, "queue": "support", "answered_by": "a", "cause": 3,
         "journey_has": ["SIP/carrier", "Queue:support", "a", "c"]},
        # c: the consultation became the customer's call, one answered queue call
        calls={"a": (1, 0, 0, 0, 1, 0), "c": (1, 0, 0, 0, 1, 0)}),
    # as above, but c never answers: the consultation is cancelled, the customer is back with a
    "atxfer_target_noanswer": Flow(
        "ac", {"a": [RINGING_IN, CONNECT, ("call.hold", {}), ("call.resume", {}), hangup(3)],
               "c": [RINGING_IN, hangup(6)]},  # c rang out (the transfer's no-answer timeout), not "answered elsewhere"
        {"a": ("ACW", ""), "c": ("READY", "")},
        {"direction": "INCOMING", "caller_number": CUSTOMER, "queue": "support", "answered_by": "a", "cause": 3},
        # c: a consultation not picked up, an internal call missed, not a queue call
        calls={"a": (1, 0, 0, 0, 1, 0), "c": (0, 1, 0, 0, 0, 0)}),
    # support call answered by a; a consults c from the bar (the customer on hold); c answers;
    # the customer hangs up while a and c talk: the customer's call ends for both (cause 3) and
    # a's talk with c goes on as a call of its own, from a to c; a hangs up from the bar
    "atxfer_caller_hangs_up_consulting": Flow(
        "ac", {"a": [RINGING_IN, CONNECT, ("call.hold", {}), hangup(3),
                     ("call.new", {"direction": "INTERNAL", "number": "c#"}), ("call.connect", {"number": "c#"}),
                     hangup(3)],
               "c": [RINGING_IN, CONNECT, hangup(3),
                     ("call.connect", {"direction": "INTERNAL", "number": "a#"}), hangup(3)]},
        # a's wrap-up follows the customer's call; c, consulted, only took an internal call: no ACW
        {"a": ("ACW", ""), "c": ("READY", "")},
        {"direction": "INCOMING", "caller_number": CUSTOMER, "queue": "support", "answered_by": "a", "cause": 3,
         "journey_has": ["SIP/carrier", "Queue:support", "a", "c"]},
        more_cdrs=[{"direction": "INTERNAL", "caller_number": "a#", "called_number": "c#", "answered_by": "c",
                    "cause": 3, "queue": None, "journey_has": ["a", "c"]}],
        # each phone leg once: a's, the queue call it answered; c's, the internal call it took
        calls={"a": (1, 0, 0, 0, 1, 0), "c": (1, 0, 0, 0, 0, 0)}),
    # as above, but c never answers: the customer hangs up while it rings, and Asterisk ends
    # the consultation (the transfer fails) and a's part with it
    "atxfer_caller_hangs_up_ringing": Flow(
        "ac", {"a": [RINGING_IN, CONNECT, ("call.hold", {}), hangup(3)],
               "c": [RINGING_IN, hangup(3)]},  # for c too, the caller hung up
        {"a": ("ACW", ""), "c": ("READY", "")},
        {"direction": "INCOMING", "caller_number": CUSTOMER, "queue": "support", "answered_by": "a", "cause": 3,
         "journey_has": ["SIP/carrier", "Queue:support", "a", "c"]},
        calls={"a": (1, 0, 0, 0, 1, 0), "c": (0, 1, 0, 0, 0, 0)}),
    # support call answered by a; mute and unmute from the bar; the customer hangs up
    "mute_during_call": Flow(
        "a", {"a": [RINGING_IN, CONNECT, ("call.mute", {}), ("call.unmute", {}), hangup(3)]}, {"a": ("ACW", "")},
        {"direction": "INCOMING", "caller_number": CUSTOMER, "queue": "support", "answered_by": "a", "cause": 3}),
    # the customer calls a's extension directly; a rings and does not answer; c dials
    # ``**`` + a's extension (PickupChan) and takes the call; the customer hangs up.  a's
    # bar: answered elsewhere (7).  c's bar: its dialling ends (it became the customer's
    # call, cause 7 for it too: picked up; no CDR of its own), then the customer's call
    # connected, never ringing (c's phone answered it).
    "pickup": Flow(
        "ac", {"a": [("call.ringing", {"direction": "INCOMING", "number": CUSTOMER}), hangup(7)],
               "c": [("call.new", {"direction": "INTERNAL"}), ("call.ringing", {"direction": "INTERNAL"}), hangup(7),
                     ("call.connect", {"direction": "INCOMING", "number": CUSTOMER}), hangup(3)]},
        {"a": ("READY", ""), "c": ("READY", "")},
        {"direction": "INCOMING", "caller_number": CUSTOMER, "called_number": "a#", "answered_by": "c", "cause": 3,
         "journey_has": ["SIP/carrier", "a", "c"]}),
    # click-to-dial from a's bar; a answers; the carrier answers 404 Not Found: the
    # number does not exist (Q.850 1, though Dial() says NOANSWER)
    "click_to_dial_not_found": Flow(
        "a", {"a": [("call.new", {"direction": "OUTGOING", "number": DIALLED}),
                    ("call.ringing", {"direction": "OUTGOING", "number": DIALLED}), hangup(2)]},
        {"a": ("READY", "")},
        {"direction": "OUTGOING", "caller_number": "a#", "called_number": DIALLED, "answered_by": None, "cause": 2}),
    # support call answered by a; a records it from the bar (MixMonitor, i(UCS_MIXMON_ID)) and
    # stops (StopMixMonitor with the MixMonitorID Asterisk gave); the customer hangs up
    "record_call": Flow(
        "a", {"a": [RINGING_IN, CONNECT, hangup(3)]}, {"a": ("ACW", "")},
        {"direction": "INCOMING", "caller_number": CUSTOMER, "queue": "support", "answered_by": "a", "cause": 3,
         "recorded_on": ["a"]}),
    # support call answered by a; a supervisor listens on b (Originate to ChanSpy qE); not played
    # live (SKIP below): its expectations are here so that the matrix stays complete
    "chanspy_listen": Flow(
        "a", {"a": [RINGING_IN, CONNECT, hangup(3)]}, {"a": ("ACW", "")},
        {"direction": "INCOMING", "caller_number": CUSTOMER, "queue": "support", "answered_by": "a", "cause": 3}),
    # a in support, b AUX(Lunch) in sales; app_queue reloaded; no call
    "module_reload_queue": Flow("ab", {"a": [], "b": []}, {"a": ("READY", ""), "b": ("AUX", "Lunch")}, None),
    # 2001 in support, 2002 AUX(Training) in sales; a phone registers, lists are asked for; no call
    "registers_and_resync": Flow("ab", {"a": [], "b": []}, {"a": ("READY", ""), "b": ("AUX", "Training")}, None),
}


#: Flows UCS does not yet show as they happened, with the divergence.
XFAIL: dict[str, str] = {}
#: Flows not played live, and why.
SKIP: dict[str, str] = {
    "chanspy_listen": "the Originate to ChanSpy is supervisor.monitor, from a supervisor's session (a "
                      "supervisor user supervising a, supervisor.start paired to b), which this harness of "
                      "agent bars does not log in; the capture is held to the simulator (test_sim_matrix) "
                      "and the replay (expected.json), and monitoring end to end to the real Asterisk "
                      "(tests/lab/test_supervisor_lab.py)",
}


def _matrix() -> list[Any]:
    out = []
    for path in sorted(CAPTURES.glob("*.ami")):
        tech, _, flow = path.stem.partition("_")
        if tech in ROLES and not path.stem.endswith(".after"):
            assert flow in FLOWS, f"{path.name}: a matrix capture without expectations"
            marks = [pytest.mark.xfail(strict=True, reason=XFAIL[flow])] if flow in XFAIL else []
            if flow in SKIP:
                marks = [pytest.mark.skip(reason=SKIP[flow])]
            out.append(pytest.param(path.stem, id=path.stem, marks=marks))
    return out


# -- the server, the fake Asterisk, the bars -----------------------------------------------------


@dataclass
class Live:
    server: UCSServer
    factory: StageFactory
    port: IListeningPort
    bars: dict[str, Client] = field(default_factory=dict)


async def _start(tmp_path: Path, stage: Stage, auth: str) -> Live:
    factory = StageFactory(stage)
    port: Any = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined,arg-type]
    config = Config().replace(
        ami={"host": "127.0.0.1", "port": port.getHost().port, "username": "ucs", "secret": "ucslab", "auth": auth},
        calls={"trunks": ["SIP/carrier*"], "dial_prefix": "0"},  # the lab: 0 for an outside line (_0X.)
        store={"url": f"sqlite:///{tmp_path / 'ucs.db'}"},
        web={"port": 0},
        plugins={"directory": str(tmp_path / "plugins")},
        auth={"admin_password": "live-admin"},
        agents={"acw_seconds": 600, "initial_status": "ready"},
    )
    server = UCSServer(config, reactor)
    server.service.startService()
    await server.service.whenStarted()
    await factory.whenLoggedIn()
    if not server.get_pbx_link().resyncs:
        await server.get_pbx_link().whenSynced()
    return Live(server, factory, port)


async def _seed(live: Live, stage: Stage) -> None:
    """The lab in UCS's directory: the two queues, the six phones and their people,
    each a member of the queues the capture put its phone in."""
    directory = live.server.get_directory()
    queues = {name: await directory.add("queues", {"name": name.title(), "asterisk_name": name, "type": 1})
              for name in ("support", "sales")}
    for reason in AUX_REASONS:
        await directory.add("auxreasons", {"name": reason})
    members = stage.memberships()
    for device, person in PEOPLE.items():
        ext = device.partition("/")[2]
        line = await directory.add("lines", {"device": device, "name": f"Agent {ext}", "identifiers": [f"phone-{ext}"]})
        first, _, last = person.partition(" ")
        await directory.add("users", {
            "username": f"agent{ext}", "password": f"lab-pass-{ext}", "firstname": first, "lastname": last,
            "lines": [line.id], "locale": "en",
            "queues": {str(queues[q].id): {"priorities": 0} for q, _, _ in members.get(device, [])},
        })


async def _log_in(live: Live, stage: Stage, phones: list[str]) -> None:
    """Each phone's agent logs in from a bar, READY, then AUX where the capture
    put the phone in its queue paused; returns once the fake Asterisk holds
    the members the capture had."""
    url = live.server.get_web_service().ws_url
    members = stage.memberships()
    for device in phones:
        ext = device.partition("/")[2]
        bar = await connect(url)
        await bar.call("login", [f"agent{ext}", f"lab-pass-{ext}"])
        await bar.call("identifier", [f"phone-{ext}"])
        await bar.call("provision")
        paused = [reason for _, p, reason in members.get(device, []) if p]
        if paused:
            await bar.call("agent.changeStatus", ["AUX", paused[0]])
        live.bars[device] = bar

    def placed() -> bool:
        for device, entries in members.items():
            for queue, paused, _ in entries:
                m = live.factory.members.get((queue, device))
                if m is None or m.paused != paused:
                    return False
        return True

    await live.factory.whenMembers(placed).addTimeout(5, reactor)
    for bar in live.bars.values():
        await bar.call("state")  # everything the login sent is in the inbox now
        bar.inbox.clear()


def _device(channel: str) -> str:
    return re.sub(r"-[0-9a-f]+$", "", channel)


class Driver:
    """The agents' hands: what each gate of the capture asks a bar to do."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.consulting: set[str] = set()
        self.pending: dict[str, tuple[str, Any]] = {}  # device -> (method, request id)
        self.replies: list[tuple[str, str, dict[str, Any]]] = []

    async def _request(self, device: str, method: str, args: Any = None) -> None:
        bar = self.live.bars[device]
        await self.settle(device)
        self.pending[device] = (method, bar.request(method, args))

    async def settle(self, device: str) -> None:
        """Wait for the reply to the phone's previous request (one at a time per line)."""
        if device in self.pending:
            method, rid = self.pending.pop(device)
            self.replies.append((device, method, await self.live.bars[device].reply(rid)))

    async def synced(self) -> None:
        """Wait until UCS has taken in every event the fake Asterisk sent so far: a
        ``Ping`` over UCS's own AMI link is answered after them, and AMI is one
        ordered stream."""
        await self.live.server.get_ami_client().sendAction("Ping")

    async def act(self, gate: Gate) -> None:
        await self.synced()
        a = gate.action
        name = a.get("Action", "").lower()
        if name == "originate":
            await self._request(a["Channel"], "call.dial", [a["Exten"]])
        elif name == "hangup":
            device = _device(a["Channel"])
            # Finishing a transfer while it is one; once the caller hung up during the
            # consultation, hanging up the call with the consulted party.
            still = device in self.consulting and device in self.live.server.get_call_control().ops
            method = "call.finishTransfer" if still else "call.hangup"
            self.consulting.discard(device)
            await self._request(device, method)
        elif name == "redirect":
            await self._request(_device(a["ExtraChannel"]), "call.tribute")
        elif name == "bridge":
            device = next(_device(a[k]) for k in ("Channel1", "Channel2") if _device(a[k]) in self.live.bars)
            await self._request(device, "call.unhold")
        elif name == "blindtransfer":
            await self._request(_device(a["Channel"]), "call.blindTransfer", [a["Exten"]])
        elif name == "setvar" and a.get("Variable") == "TRANSFER_EXTEN":
            device = _device(a["Channel"])
            self.consulting.add(device)
            await self._request(device, "call.transfer", [a["Value"]])
        elif name == "mixmonitor":
            await self._request(_device(a["Channel"]), "call.record")
        elif name == "stopmixmonitor":
            await self._request(_device(a["Channel"]), "call.stopRecord")
        elif name == "muteaudio":
            await self._request(_device(a["Channel"]), "call.mute")
        elif name == "queuepause":
            paused = a.get("Paused", "").lower() in ("1", "true", "yes")
            args = ["AUX", a.get("Reason", "")] if paused else ["READY"]
            await self._request(a["Interface"], "agent.changeStatus", args)
        # Atxfer: UCS sends it by itself right after the Setvar of call.transfer.


# -- the test --------------------------------------------------------------------------------------


def _resolve(value: Any, roles: dict[str, str]) -> Any:
    """``"a"`` -> the device of role a, ``"a#"`` -> its extension; other values as they are."""
    if isinstance(value, list):
        return [_resolve(v, roles) for v in value]
    if isinstance(value, str) and value in roles:
        return roles[value]
    if isinstance(value, str) and value.endswith("#") and value[:-1] in roles:
        return roles[value[:-1]].partition("/")[2]
    return value


@pytest.mark.parametrize("name", _matrix())
@pytest_twisted.ensureDeferred
async def test_live_matrix(name: str, tmp_path: Path) -> None:
    tech, _, flow_name = name.partition("_")
    flow = FLOWS[flow_name]
    roles = {r: d for r, d in zip("abc", ROLES[tech])}
    stage = Stage(CAPTURES / f"{name}.ami")
    # Both logins Asterisk offers: the PJSIP flows log in with MD5, the chan_sip ones in plain.
    live = await _start(tmp_path, stage, "md5" if tech == "pj" else "plain")
    try:
        await _scenario(live, stage, Driver(live), flow, roles)
    finally:
        for bar in live.bars.values():
            bar.close()
        await live.server.service.stopService()
        await defer.maybeDeferred(live.port.stopListening)


async def _scenario(live: Live, stage: Stage, driver: Driver, flow: Flow, roles: dict[str, str]) -> None:
    await _seed(live, stage)
    phones = [roles[r] for r in flow.phones]
    await _log_in(live, stage, phones)
    done = live.factory.start()
    while True:
        gate = await live.factory.whenGate().addTimeout(10, reactor)
        if gate is None:
            break
        await driver.act(gate)
    await done
    await driver.synced()
    for device in list(driver.pending):
        await driver.settle(device)
    assert not live.factory.unexpected, f"UCS sent actions the recording has no place for: {live.factory.unexpected}"
    for device, bar in live.bars.items():
        await bar.call("state")  # a barrier: every event sent before it is in the inbox

    # What the bars asked for succeeded (or failed where the flow says it must).
    for device, method, reply in driver.replies:
        if method in flow.refused:
            assert "error" in reply, f"{device} {method}: must fail ({flow.refused[method]}), got {reply}"
        else:
            assert "error" not in reply, f"{device} {method} failed: {reply['error']}"

    # Each phone's bar: the call events in order, the fields the flow sets.
    agents_names = {PEOPLE[d] for d in phones} | {f"Agent {d.partition('/')[2]}" for d in phones}
    for role, expected in flow.bars.items():
        device = roles[role]
        got = [m for m in live.bars[device].inbox if m["event"].startswith("call.") and m["event"] != "call.change"]
        names = [m["event"] for m in got]
        seen = [(m["event"], m["data"].get("state"), m["data"].get("cause")) for m in live.bars[device].inbox
                if m["event"].startswith("call.")]
        assert names == [e for e, _ in expected], f"{device}'s bar saw {names}: (event, state, cause) {seen}"
        for (event, fields), msg in zip(expected, got):
            data = msg["data"]
            for key, value in fields.items():
                assert data.get(key) == _resolve(value, roles), f"{device} {event}: {key}={data.get(key)!r}"
            if event == "call.hangup":
                assert data["cause"] not in (-1, None), f"{device}: call.hangup without a cause: {data['cause']}"
                assert data["disconnected"], f"{device}: call.hangup without the time it ended"
            else:
                assert data["cause"] == -1, f"{device} {event}: a live call with cause {data['cause']}"
            if data.get("direction") == "OUTGOING":
                assert data.get("connected_name") not in agents_names, \
                    f"{device} {event}: the agent's own name as the called party's: {data.get('connected_name')!r}"

    # The agents' states.
    for role, (status, reason) in flow.status.items():
        st = await live.bars[roles[role]].call("state")
        assert (st["status"], st.get("reason") or "") == (status, reason), f"{roles[role]}: {st['status']} {st.get('reason')}"

    # The calls in the agents' figures of the day (the support queue's too where the phone is
    # no member of it: the User object shows the user's queues, the figures keep every one).
    support = live.server.get_directory().queue_by_asterisk_name("support")
    assert support is not None
    for role, counts in flow.calls.items():
        user = (await live.bars[roles[role]].call("state"))["user"]
        queue = live.server.get_agents().figures.of(user["id"]).queues.get(support.id)
        got = (user["in_calls_answered"], user["in_calls_unanswered"], user["out_calls_answered"],
               user["out_calls_unanswered"], queue.answered if queue else 0, queue.unanswered if queue else 0)
        assert got == counts, f"{roles[role]}'s calls (in ans/unans, out ans/unans, support ans/unans): {got}"

    # The CDR.
    await live.server.get_cdr_writer().flushed()
    store = live.server.get_store_service().store
    assert store is not None
    cdrs = await store.list_cdrs()
    if flow.cdr is None:
        assert cdrs == []
        return
    wanted = [flow.cdr, *flow.more_cdrs]
    assert len(cdrs) == len(wanted), f"{len(cdrs)} CDRs: {[c['uniqueid'] for c in cdrs]}"
    for cdr, want in zip(sorted(cdrs, key=lambda c: c["disconnected"]), wanted):
        for key, value in want.items():
            if key == "recorded_on":
                # The recordings UCS started (the CDR's data), each on a phone's channel, each stopped.
                recs = (cdr.get("data") or {}).get("recordings") or []
                assert [_device(r["channel"]) for r in recs] == _resolve(value, roles), f"recordings {recs}"
                assert all(r.get("stopped") and r.get("file") for r in recs), f"recordings {recs}"
            elif key == "journey_has":
                devices = [step["Device"] for step in cdr["journey"]]
                for d in _resolve(value, roles):
                    assert d in devices, f"journey {devices} without {d}"
            else:
                assert cdr[key] == _resolve(value, roles), f"CDR {key}={cdr[key]!r}"
