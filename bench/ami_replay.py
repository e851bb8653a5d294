"""A stand-in Asterisk for ``bench/ami_ingest.py``: replays a real capture over
a real socket to one AMI client, in a process of its own.

    python bench/ami_replay.py [--capture FILE.ami] [--repeat 10]

It listens on 127.0.0.1 (a free port, told on stdout as ``port N``), greets
each client with the AMI banner and answers its actions the way the Asterisk
20 of ``../shared/ami-captures`` did (MD5 ``Challenge`` and ``Login`` followed
by ``FullyBooted``; ``QueueAdd``/``QueuePause``/``QueueRemove`` answered, then
confirmed by their member event; ``Already there``/``Not there``/``Interface
not found`` errors; event lists with ``EventList: start`` … ``…Complete``).

Commands on stdin, one a line:

``go``
    stream the capture's body (everything after its banner line) ``--repeat``
    times to the last client that logged in, as fast as the socket takes it,
    then the marker event ``UserEvent: UCSBenchEnd``.  Prints
    ``started T`` before the first byte and ``finished T EXTRA`` once the
    marker is handed to the kernel: ``T`` is ``time.monotonic()`` (one clock
    for every process of the machine), ``EXTRA`` the events written between
    the two that were not the capture's (member events confirming the
    client's actions), so the client can check it got every event.
``quit``
    close everything and exit (so does the end of stdin).

Actions keep being answered while the stream runs, in order with it: an
answer is written after the chunk being sent, as Asterisk writes an answer
between two events.  So that a list action (the client resyncs at every
``FullyBooted`` of the stream) does not wipe what the stream built up, lists
report what the stream said up to that point: live channels
(``CoreShowChannels``), queue members and waiting callers (``QueueStatus``),
device states (``DeviceStateList``) — plus the members the client's own
actions added.  Only standard-library Python: no Twisted here.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CAPTURE = ROOT / "tests" / "data" / "ami-captures" / "load_mixed.ami"
BANNER = b"Asterisk Call Manager/5.0.2\r\n"
MARKER = b"Event: UserEvent\r\nPrivilege: user,all\r\nUserEvent: UCSBenchEnd\r\n\r\n"
CHUNK = 65536

Message = dict[str, str]

#: What a ``CoreShowChannel`` item carries, taken from the channel's events.
CHANNEL_FIELDS = ("Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName",
                  "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode", "Context", "Exten",
                  "Priority", "Uniqueid", "Linkedid")
#: A queue member as ``QueueMemberStatus`` and friends describe it, in their order.
MEMBER_FIELDS = ("MemberName", "Interface", "StateInterface", "Membership", "Penalty", "CallsTaken",
                 "LastCall", "LastPause", "LoginTime", "InCall", "Status", "Paused", "PausedReason",
                 "Ringinuse", "Wrapuptime")
#: The events of the stream that change what a list action reports.
STATE_EVENTS = frozenset({
    "Newchannel", "Newstate", "NewCallerid", "NewConnectedLine", "Newexten", "Rename", "Hangup",
    "BridgeEnter", "BridgeLeave", "DeviceStateChange", "QueueMemberAdded", "QueueMemberStatus",
    "QueueMemberPause", "QueueMemberRemoved", "QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon",
})
#: The lab's queues (strategy), as ``QueueStatus`` lists them even when empty.
QUEUES = {"support": "rrmemory", "sales": "ringall"}
#: ``SIPpeers`` of the lab (static peers), as captured.
SIP_PEERS = (("1001", "127.0.0.11"), ("1002", "127.0.0.12"), ("1003", "127.0.0.13"), ("carrier", "127.0.0.20"))
#: One item of an event list: its headers in wire order.
Item = list[tuple[str, object]]
#: List actions: the event that closes each list.
LISTS = {
    "CoreShowChannels": "CoreShowChannelsComplete", "QueueStatus": "QueueStatusComplete",
    "DeviceStateList": "DeviceStateListComplete", "SIPpeers": "PeerlistComplete",
    "QueueSummary": "QueueSummaryComplete", "BridgeList": "BridgeListComplete", "Status": "StatusComplete",
    "Agents": "AgentsComplete", "CoreShowChannelMap": "CoreShowChannelMapComplete",
}
#: Actions the lab's Asterisk did not know (no PJSIP there).
UNKNOWN = frozenset({"PJSIPShowEndpoints", "PJSIPShowContacts", "PJSIPShowRegistrationsInbound",
                     "ExtensionStateList"})


def frames(data: bytes) -> Iterator[bytes]:
    start = 0
    while True:
        end = data.find(b"\r\n\r\n", start)
        if end < 0:
            return
        if end > start:
            yield data[start:end]
        start = end + 4


def parse(frame: bytes) -> Message:
    msg: Message = {}
    for line in frame.decode("utf-8", "replace").split("\r\n"):
        key, _, value = line.partition(":")
        msg.setdefault(key.strip(), value.strip())
    return msg


def fmt(*headers: tuple[str, object]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in headers).encode() + b"\r\n"


def split_body(body: bytes, size: int = CHUNK) -> list[bytes]:
    """Chunks of about ``size`` bytes ending at a frame end, so that an answer
    written between two chunks falls between two messages."""
    out = []
    start = 0
    while start < len(body):
        end = body.find(b"\r\n\r\n", start + size)
        end = len(body) if end < 0 else end + 4
        out.append(body[start:end])
        start = end
    return out


def state_events(chunk: bytes) -> list[Message]:
    out = []
    for frame in frames(chunk):
        if frame.startswith(b"Event: "):
            name = frame[7:frame.find(b"\r\n")].decode() if b"\r\n" in frame else frame[7:].decode()
            if name in STATE_EVENTS:
                out.append(parse(frame))
    return out


class Asterisk:
    """What the replayed Asterisk holds: the stream's state up to the chunk
    being sent, and the members the client's actions changed."""

    def __init__(self, per_chunk: list[list[Message]]) -> None:
        self.per_chunk = per_chunk
        self.applied = 0  # chunks of the stream applied (across repeats)
        self.channels: dict[str, Message] = {}  # by Uniqueid, in creation order
        self.devices: dict[str, str] = {}
        self.members: dict[tuple[str, str], Message] = {}  # (queue, interface)
        self.callers: dict[str, dict[str, Message]] = {}  # queue -> Uniqueid -> caller

    def catch_up(self, sent: int) -> None:
        """Apply the state events of the chunks written since the last answer."""
        n = len(self.per_chunk)
        while self.applied < sent:
            for ev in self.per_chunk[self.applied % n]:
                self.apply(ev)
            self.applied += 1

    def apply(self, ev: Message) -> None:
        name = ev["Event"]
        uid = ev.get("Uniqueid", "")
        if name == "Newchannel":
            ch = {k: ev.get(k, "") for k in CHANNEL_FIELDS}
            ch.update(Application="", ApplicationData="", BridgeId="", _t=str(time.monotonic()))
            self.channels[uid] = ch
        elif name == "Hangup":
            self.channels.pop(uid, None)
        elif name.startswith(("New", "Rename", "Bridge")):
            known = self.channels.get(uid)
            if known is None:
                return
            ch = known
            for k in CHANNEL_FIELDS:
                if k in ev:
                    ch[k] = ev[k]
            if name == "Newexten":
                ch["Application"], ch["ApplicationData"] = ev.get("Application", ""), ev.get("AppData", "")
            elif name == "Rename" and "Newname" in ev:
                ch["Channel"] = ev["Newname"]
            elif name == "BridgeEnter":
                ch["BridgeId"] = ev.get("BridgeUniqueid", "")
            elif name == "BridgeLeave":
                ch["BridgeId"] = ""
        elif name == "DeviceStateChange":
            self.devices[ev.get("Device", "")] = ev.get("State", "")
        elif name == "QueueMemberRemoved":
            self.members.pop((ev.get("Queue", ""), ev.get("Interface", "")), None)
        elif name.startswith("QueueMember"):
            self.members[(ev.get("Queue", ""), ev.get("Interface", ""))] = {
                k: ev.get(k, "") for k in ("Queue", *MEMBER_FIELDS)}
        elif name == "QueueCallerJoin":
            self.callers.setdefault(ev.get("Queue", ""), {})[uid] = {**ev, "_t": str(time.monotonic())}
        elif name in ("QueueCallerLeave", "QueueCallerAbandon"):
            self.callers.get(ev.get("Queue", ""), {}).pop(uid, None)

    # -- answers -----------------------------------------------------------------------

    def answer(self, action: Message) -> tuple[bytes, int]:
        """The bytes to write for one action, and how many of them are events
        outside any list (the client counts those apart)."""
        name = action.get("Action", "")
        aid = ("ActionID", action.get("ActionID", ""))
        low = name.lower()
        if low == "challenge":
            return fmt(("Response", "Success"), aid, ("Challenge", str(random.randrange(10**8, 10**9)))), 0
        if low == "login":
            return fmt(("Response", "Success"), aid, ("Message", "Authentication accepted")) + fmt(
                ("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", "352"), ("LastReload", "352"),
                ("Status", "Fully Booted")), 1
        if low == "logoff":
            return fmt(("Response", "Goodbye"), aid, ("Message", "Thanks for all the fish.")), 0
        if low == "ping":
            return fmt(("Response", "Success"), aid, ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")), 0
        if low == "coresettings":
            return fmt(("Response", "Success"), aid, ("AMIversion", "9.0.0"), ("AsteriskVersion", "20.0.0"),
                       ("SystemName", ""), ("CoreMaxCalls", "0"), ("CoreMaxLoadAvg", "0.000000"),
                       ("CoreRunUser", ""), ("CoreRunGroup", ""), ("CoreMaxFilehandles", "0"),
                       ("CoreRealTimeEnabled", "No"), ("CoreCDRenabled", "Yes"), ("CoreHTTPenabled", "No"),
                       ("SoundsSearchCustomDir", "No")), 0
        if name in UNKNOWN:
            return self._error(aid, f"Invalid/unknown command: {name}. Use Action: ListCommands to show "
                                    "available commands."), 0
        if low == "queueadd":
            return self._queue_add(action, aid)
        if low == "queuepause":
            return self._queue_pause(action, aid)
        if low == "queueremove":
            return self._queue_remove(action, aid)
        for list_action, complete in LISTS.items():
            if low == list_action.lower():
                items = self._items(list_action, action)
                out = [fmt(("Response", "Success"), aid, ("EventList", "start"),
                           ("Message", f"{list_action} will follow"))]
                out += [fmt(*item, aid) for item in items]
                out.append(fmt(("Event", complete), aid, ("EventList", "Complete"), ("ListItems", len(items))))
                return b"".join(out), 0
        return fmt(("Response", "Success"), aid), 0

    @staticmethod
    def _error(aid: tuple[str, str], message: str) -> bytes:
        return fmt(("Response", "Error"), aid, ("Message", message))

    def _member_event(self, event: str, member: Message) -> bytes:
        return fmt(("Event", event), ("Privilege", "agent,all"), ("Queue", member["Queue"]),
                   *((k, member.get(k, "")) for k in MEMBER_FIELDS))

    def _queue_add(self, action: Message, aid: tuple[str, str]) -> tuple[bytes, int]:
        queue, iface = action.get("Queue", ""), action.get("Interface", "")
        if (queue, iface) in self.members:
            return self._error(aid, "Unable to add interface: Already there"), 0
        paused = action.get("Paused", "false").lower() in ("true", "yes", "1")
        now = str(int(time.time()))
        member = {"Queue": queue, "MemberName": action.get("MemberName", iface), "Interface": iface,
                  "StateInterface": action.get("StateInterface", iface), "Membership": "dynamic",
                  "Penalty": action.get("Penalty", "0"), "CallsTaken": "0", "LastCall": "0",
                  "LastPause": now if paused else "0", "LoginTime": now, "InCall": "0", "Status": "1",
                  "Paused": "1" if paused else "0", "PausedReason": action.get("Reason", "") if paused else "",
                  "Ringinuse": "0", "Wrapuptime": "0"}
        self.members[(queue, iface)] = member
        return fmt(("Response", "Success"), aid, ("Message", "Added interface to queue")) + \
            self._member_event("QueueMemberAdded", member), 1

    def _queue_pause(self, action: Message, aid: tuple[str, str]) -> tuple[bytes, int]:
        queue, iface = action.get("Queue"), action.get("Interface", "")
        paused = action.get("Paused", "false").lower() in ("true", "yes", "1")
        found = [m for (q, i), m in self.members.items() if i == iface and (queue is None or q == queue)]
        if not found:
            return self._error(aid, "Interface not found"), 0
        events = []
        for m in found:
            m["Paused"] = "1" if paused else "0"
            m["PausedReason"] = action.get("Reason", "") if paused else ""
            if paused:
                m["LastPause"] = str(int(time.time()))
            events.append(self._member_event("QueueMemberPause", m))
        verb = "paused" if paused else "unpaused"
        return fmt(("Response", "Success"), aid, ("Message", f"Interface {verb} successfully")) + \
            b"".join(events), len(events)

    def _queue_remove(self, action: Message, aid: tuple[str, str]) -> tuple[bytes, int]:
        member = self.members.pop((action.get("Queue", ""), action.get("Interface", "")), None)
        if member is None:
            return self._error(aid, "Unable to remove interface: Not there"), 0
        return fmt(("Response", "Success"), aid, ("Message", "Removed interface from queue")) + \
            self._member_event("QueueMemberRemoved", member), 1

    def _items(self, action: str, request: Message) -> list[Item]:
        now = time.monotonic()
        if action == "CoreShowChannels":
            out: list[Item] = []
            for ch in self.channels.values():
                secs = int(now - float(ch["_t"]))
                out.append([("Event", "CoreShowChannel"), *((k, ch[k]) for k in CHANNEL_FIELDS),
                            ("Application", ch["Application"]), ("ApplicationData", ch["ApplicationData"]),
                            ("Duration", f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"),
                            ("BridgeId", ch["BridgeId"])])
            return out
        if action == "DeviceStateList":
            return [[("Event", "DeviceStateChange"), ("Device", d), ("State", s)] for d, s in self.devices.items()]
        if action == "SIPpeers":
            return [[("Event", "PeerEntry"), ("Channeltype", "SIP"), ("ObjectName", name),
                     ("ChanObjectType", "peer"), ("IPaddress", ip), ("IPport", "5060"), ("Dynamic", "no"),
                     ("Status", "Unmonitored"), ("Description", ""), ("Accountcode", "")]
                    for name, ip in SIP_PEERS]
        if action == "QueueStatus":
            return self._queue_status(request.get("Queue"), now)
        return []

    def _queue_status(self, only: str | None, now: float) -> list[Item]:
        names = dict.fromkeys([*QUEUES, *(q for q, _ in self.members), *self.callers])
        out: list[Item] = []
        for queue in names:
            if only and queue != only:
                continue
            callers = list(self.callers.get(queue, {}).values())
            out.append([("Event", "QueueParams"), ("Queue", queue), ("Max", "0"),
                        ("Strategy", QUEUES.get(queue, "ringall")), ("Calls", len(callers)), ("Holdtime", "0"),
                        ("TalkTime", "0"), ("Completed", "0"), ("Abandoned", "0"), ("ServiceLevel", "0"),
                        ("ServicelevelPerf", "0.0"), ("ServicelevelPerf2", "0.0"), ("Weight", "0")])
            for (q, iface), m in self.members.items():
                if q == queue:
                    out.append([("Event", "QueueMember"), ("Queue", queue), ("Name", m["MemberName"]),
                                ("Location", iface), ("StateInterface", m["StateInterface"]),
                                ("Membership", m["Membership"]), ("Penalty", m["Penalty"]),
                                ("CallsTaken", m["CallsTaken"]), ("LastCall", m["LastCall"]),
                                ("LastPause", m["LastPause"]), ("LoginTime", m["LoginTime"]),
                                ("InCall", m["InCall"]), ("Status", m["Status"]), ("Paused", m["Paused"]),
                                ("PausedReason", m["PausedReason"]), ("Wrapuptime", m["Wrapuptime"])])
            for pos, c in enumerate(callers, 1):
                out.append([("Event", "QueueEntry"), ("Queue", queue), ("Position", pos),
                            ("Channel", c.get("Channel", "")), ("Uniqueid", c.get("Uniqueid", "")),
                            ("CallerIDNum", c.get("CallerIDNum", "")), ("CallerIDName", c.get("CallerIDName", "")),
                            ("ConnectedLineNum", c.get("ConnectedLineNum", "")),
                            ("ConnectedLineName", c.get("ConnectedLineName", "")),
                            ("Wait", int(now - float(c["_t"]))), ("Priority", "0")])
        return out


class Replay:
    """The listening socket, its clients, and the stream to the last one logged in."""

    def __init__(self, body: bytes, repeat: int) -> None:
        self.chunks = split_body(body)
        self.repeat = repeat
        self.pbx = Asterisk([state_events(c) for c in self.chunks])
        self.sent = 0  # chunks of the stream handed to the transport
        self.streaming = False
        self.extra = 0  # events outside lists written while streaming
        self.client: asyncio.StreamWriter | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def serve(self) -> asyncio.AbstractServer:
        server = await asyncio.start_server(self.connected, "127.0.0.1", 0)
        print("port", server.sockets[0].getsockname()[1], flush=True)
        return server

    async def connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        writer.write(BANNER)
        buf = b""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                buf += data
                *done, buf = buf.split(b"\r\n\r\n")
                for raw in done:
                    if not raw.strip():
                        continue
                    action = parse(raw.strip())
                    self.pbx.catch_up(self.sent)
                    reply, events = self.pbx.answer(action)
                    writer.write(reply)
                    if writer is self.client and self.streaming:
                        self.extra += events
                    name = action.get("Action", "").lower()
                    if name == "login":
                        self.client = writer
                    elif name == "logoff":
                        await writer.drain()
                        writer.close()
                        return
        except ConnectionError:
            pass
        finally:
            self.writers.discard(writer)
            if self.client is writer:
                self.client = None

    async def stream(self) -> None:
        writer = self.client
        if writer is None:
            print("error no client logged in", flush=True)
            return
        self.streaming = True
        self.extra = 0
        print("started", repr(time.monotonic()), flush=True)
        try:
            for _ in range(self.repeat):
                for chunk in self.chunks:
                    writer.write(chunk)
                    self.sent += 1
                    await writer.drain()
            writer.write(MARKER)
            await writer.drain()
        except ConnectionError as e:
            print("error", e, flush=True)
            return
        finally:
            self.streaming = False
        print("finished", repr(time.monotonic()), self.extra, flush=True)

    def close(self) -> None:
        for w in list(self.writers):
            w.close()


def capture_body(path: str) -> tuple[bytes, bytes]:
    """The capture's banner line and its body, without its ``FullyBooted``: this
    replay sent its own at login, and one in the body, repeated, would tell UCS
    that Asterisk restarted under a live link at every repeat (the model rebuilt,
    every membership re-checked) — what a PBX under steady load never says."""
    data = Path(path).read_bytes()
    banner, _, body = data.partition(b"\r\n")
    frames = body.split(b"\r\n\r\n")
    kept = [f for f in frames if not f.lstrip(b"\r\n").startswith(b"Event: FullyBooted\r\n")]
    return banner, b"\r\n\r\n".join(kept)


async def main_async(args: argparse.Namespace) -> None:
    _, body = capture_body(args.capture)
    replay = Replay(body, args.repeat)
    server = await replay.serve()
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    tasks: set[asyncio.Task[None]] = set()
    while True:
        raw = await stdin.readline()
        line = raw.decode().strip()
        if line == "go":
            task = asyncio.create_task(replay.stream())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        elif line == "quit" or not raw:
            break
    server.close()
    replay.close()
    for task in tasks:
        task.cancel()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture", default=str(CAPTURE))
    ap.add_argument("--repeat", type=int, default=10)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
