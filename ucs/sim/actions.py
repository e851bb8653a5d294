"""What each AMI action does on the simulated PBX, and Asterisk's answers.

Response texts are those of Asterisk 20 (chan_sip, app_queue) as the
captures show them; a handler returns the bytes of the response (and of the
event list it announces), or a Deferred of them for a synchronous Originate.

Why this module is over 600 lines (issue 15): it is one short handler per AMI
action (about 40, ``a_<action>``, found by name in ``dispatch``) and nothing
else; the PJSIP ones are in :mod:`ucs.sim.pjsip`.  The chan_sip and queue
handlers could follow them into modules of their own once the response
helpers (``ok``, ``error``, ``list_start``...) stand apart from this class.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from ucs.sim.model import Channel
from ucs.sim.pbx import Sim, SimError
from ucs.sim.pjsip import PjsipActions
from ucs.sim.queues import QueueError
from ucs.sim.wire import (
    CLASSES,
    bridge_block,
    channel_block,
    class_mask,
    clean,
    frame,
)
from ucs.sim.xfer import XferError

if TYPE_CHECKING:  # pragma: no cover
    from ucs.sim.server import AMISession

Pairs = list[tuple[str, object]]

#: The actions the simulator answers, as Asterisk spells them.
ACTION_NAMES = (
    "Atxfer", "BlindTransfer", "Bridge", "BridgeList", "Challenge", "Command", "CoreSettings",
    "CoreShowChannels", "CoreStatus", "DeviceStateList", "Events", "ExtensionStateList", "Filter", "Getvar",
    "Hangup", "ListCommands", "Login", "Logoff", "MuteAudio", "Originate", "PJSIPNotify", "PJSIPShowContacts", "PJSIPShowEndpoint",
    "PJSIPShowEndpoints", "PJSIPShowRegistrationsInbound", "Ping", "QueueAdd",
    "QueuePause", "QueueRemove", "QueueStatus", "QueueSummary", "Redirect", "SIPnotify", "SIPpeers",
    "SIPshowpeer", "Setvar", "Status",
)  # fmt: skip


class ActionMessage:
    """An action as received: header names are case-insensitive, some repeat."""

    __slots__ = ("headers",)

    def __init__(self, headers: dict[str, list[str]]) -> None:
        self.headers = headers

    def get(self, name: str, default: str | None = None) -> str | None:
        v = self.headers.get(name.lower())
        return clean(v[0]) if v else default

    def getall(self, name: str) -> list[str]:
        return [clean(v) for v in self.headers.get(name.lower(), [])]

    def aid(self) -> Pairs:
        v = self.headers.get("actionid")
        return [("ActionID", clean(v[0]))] if v else []


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "yes", "1", "on", "y", "t")


def _hms(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


_CALLERID = re.compile(r'^\s*"?([^"<]*?)"?\s*<([^>]*)>\s*$')


def parse_callerid(text: str) -> tuple[str, str]:
    m = _CALLERID.match(text)
    if m:
        return m.group(2).strip(), m.group(1).strip()
    return text.strip(), ""


class Actions(PjsipActions):
    """The action handlers; ``dispatch`` picks one by the ``Action:`` header."""

    #: Actions allowed before Login.
    OPEN = frozenset({"login", "challenge", "logoff"})

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self._handlers: dict[str, Callable[[AMISession, ActionMessage], Any]] = {}
        for name in dir(self):
            if name.startswith("a_"):
                self._handlers[name[2:].lower()] = getattr(self, name)

    @property
    def names(self) -> list[str]:
        return sorted(self._handlers)

    # ----------------------------------------------------------- plumbing

    def dispatch(self, s: AMISession, m: ActionMessage) -> bytes | defer.Deferred[bytes]:
        action = m.get("action")
        if not action:
            return self.error(m, "Missing action in request")
        key = action.lower()
        if not s.authenticated and key not in self.OPEN:
            return self.error(m, "Permission denied")
        handler = self._handlers.get(key)
        if key.startswith("pjsip") and not self.sim.pjsip:
            handler = None  # res_pjsip is not loaded: Asterisk knows no such action
        if handler is None:
            self._bad_format(s, action)
            return self.error(
                m, f"Invalid/unknown command: {action}. Use Action: ListCommands to show available commands."
            )
        try:
            return handler(s, m)  # type: ignore[no-any-return]
        except (SimError, QueueError, XferError) as e:
            return self.error(m, str(e))

    @staticmethod
    def ok(m: ActionMessage, message: str | None = None, *extra: tuple[str, object]) -> bytes:
        pairs: Pairs = [("Response", "Success"), *m.aid()]
        if message is not None:
            pairs.append(("Message", message))
        pairs.extend(extra)
        return frame(*pairs)

    @staticmethod
    def error(m: ActionMessage, message: str) -> bytes:
        return frame(("Response", "Error"), *m.aid(), ("Message", message))

    @staticmethod
    def list_start(m: ActionMessage, message: str) -> bytes:
        return frame(("Response", "Success"), *m.aid(), ("EventList", "start"), ("Message", message))

    @staticmethod
    def list_end(m: ActionMessage, event: str, count: int, *extra: tuple[str, object]) -> bytes:
        return frame(("Event", event), *m.aid(), ("EventList", "Complete"), ("ListItems", count), *extra)

    @staticmethod
    def _aid_line(m: ActionMessage) -> str:
        aid = m.aid()
        return f"ActionID: {aid[0][1]}\r\n" if aid else ""

    def _bad_format(self, s: AMISession, action: str) -> None:
        local, remote = _addresses(s)
        self.sim.security_event(
            "RequestBadFormat",
            f"Severity: Error\r\nService: AMI\r\nEventVersion: 1\r\nSessionID: {s.session_id}\r\n"
            f"LocalAddress: {local}\r\nRemoteAddress: {remote}\r\nRequestType: Action: {action}\r\n"
            f"SessionTV: {self.sim._eventtv()}\r\nAccountID: {s.username or ''}\r\n",
        )

    def _channel(self, name: str | None) -> Channel | None:
        return self.sim.find_channel(name) if name else None

    # ------------------------------------------------------------- session

    def a_challenge(self, s: AMISession, m: ActionMessage) -> bytes:
        if (m.get("authtype") or "").lower() != "md5":
            return self.error(m, "Must specify AuthType")
        s.challenge = str(self.sim.random.randint(100000000, 999999999))
        return frame(("Response", "Success"), *m.aid(), ("Challenge", s.challenge))

    def a_login(self, s: AMISession, m: ActionMessage) -> bytes:
        if s.authenticated:
            return self.ok(m, "Already authenticated")
        user = m.get("username") or ""
        secret = self.sim.ami_users.get(user)
        ok = False
        if secret is not None:
            key = m.get("key")
            if (m.get("authtype") or "").lower() == "md5" and key is not None:
                if s.challenge:
                    ok = hashlib.md5((s.challenge + secret).encode()).hexdigest() == key.lower()
            else:
                ok = m.get("secret") == secret
        if not ok:
            local, remote = _addresses(s)
            self.sim.security_event(
                "InvalidPassword" if secret is not None else "InvalidAccountID",
                f"Severity: Error\r\nService: AMI\r\nEventVersion: 1\r\nAccountID: {user}\r\n"
                f"SessionID: {s.session_id}\r\nLocalAddress: {local}\r\nRemoteAddress: {remote}\r\n",
            )
            s.closing = True
            return self.error(m, "Authentication failed")
        s.login_ok(user, m.get("events"))
        sim = self.sim
        up = sim.uptime()
        booted = (
            f"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: {up}\r\nLastReload: {up}\r\nStatus: Fully Booted\r\n\r\n"
        ).encode()
        local, remote = _addresses(s)
        sim.security_event(
            "SuccessfulAuth",
            f"Severity: Informational\r\nService: AMI\r\nEventVersion: 1\r\nAccountID: {user}\r\n"
            f"SessionID: {s.session_id}\r\nLocalAddress: {local}\r\nRemoteAddress: {remote}\r\n"
            f"UsingPassword: 0\r\nSessionTV: {sim._eventtv()}\r\n",
        )
        if not s.events_mask & CLASSES["system"]:
            booted = b""
        return self.ok(m, "Authentication accepted") + booted

    def a_logoff(self, s: AMISession, m: ActionMessage) -> bytes:
        s.closing = True
        return frame(("Response", "Goodbye"), *m.aid(), ("Message", "Thanks for all the fish."))

    def a_ping(self, s: AMISession, m: ActionMessage) -> bytes:
        return frame(("Response", "Success"), *m.aid(), ("Ping", "Pong"), ("Timestamp", f"{self.sim.now():.6f}"))

    def a_events(self, s: AMISession, m: ActionMessage) -> bytes:
        mask = class_mask(m.get("eventmask"))
        s.set_events(mask)
        return self.ok(m, "Events On" if mask else "Events Off")

    def a_filter(self, s: AMISession, m: ActionMessage) -> bytes:
        import re

        if (m.get("operation") or "").lower() != "add":
            return self.error(m, "Unknown operation")
        expr = m.get("filter") or ""
        exclude = expr.startswith("!")
        try:
            rx = re.compile(expr[1:] if exclude else expr)
        except re.error:
            return self.error(m, "Filter Not Added")
        s.filters.append((exclude, rx))
        return self.ok(m, "Filter Added Successfully")

    def a_listcommands(self, s: AMISession, m: ActionMessage) -> bytes:
        proper = {n.lower(): n for n in ACTION_NAMES}
        return self.ok(m, None, *[(proper.get(n, n), "Simulated by ucs.sim.  (Priv: all)") for n in self.names])

    # -------------------------------------------------------------- queues

    def a_queueadd(self, s: AMISession, m: ActionMessage) -> bytes:
        queue, iface = m.get("queue"), m.get("interface")
        if not queue or not iface:
            return self.error(m, "'Queue' and 'Interface' not specified.")
        try:
            penalty = int(m.get("penalty") or 0)
        except ValueError:
            return self.error(m, "Invalid penalty")
        self.sim.queue_add(
            queue,
            iface,
            m.get("membername") or "",
            penalty=penalty,
            paused=_true(m.get("paused")),
            reason=m.get("reason") or "",
            state_interface=m.get("stateinterface") or "",
        )
        return self.ok(m, "Added interface to queue")

    def a_queueremove(self, s: AMISession, m: ActionMessage) -> bytes:
        queue, iface = m.get("queue"), m.get("interface")
        if not queue or not iface:
            return self.error(m, "Need 'Queue' and 'Interface' parameters.")
        self.sim.queue_remove(queue, iface)
        return self.ok(m, "Removed interface from queue")

    def a_queuepause(self, s: AMISession, m: ActionMessage) -> bytes:
        iface, paused = m.get("interface"), m.get("paused")
        if not iface:
            return self.error(m, "Need 'Interface' parameter.")
        if paused is None or paused == "":
            return self.error(m, "Need 'Paused' parameter.")
        p = _true(paused)
        self.sim.queue_pause(iface, p, m.get("queue") or None, m.get("reason") or "")
        return self.ok(m, "Interface paused successfully" if p else "Interface unpaused successfully")

    def a_queuestatus(self, s: AMISession, m: ActionMessage) -> bytes:
        sim = self.sim
        only, member = m.get("queue"), m.get("member")
        aid = self._aid_line(m)
        out = [self.list_start(m, "Queue status will follow")]
        n = 0
        now = sim.now()
        for q in sim.queues.values():
            if only and q.name != only:
                continue
            out.append(
                (
                    f"Event: QueueParams\r\nQueue: {q.name}\r\nMax: 0\r\nStrategy: {q.strategy}\r\nCalls: {len(q.entries)}\r\n"
                    f"Holdtime: {q.holdtime}\r\nTalkTime: {q.talktime}\r\nCompleted: {q.completed}\r\nAbandoned: {q.abandoned}\r\n"
                    f"ServiceLevel: 0\r\nServicelevelPerf: 0.0\r\nServicelevelPerf2: 0.0\r\nWeight: 0\r\n{aid}\r\n"
                ).encode()
            )
            n += 1
            for mem in q.members.values():
                if member and mem.iface != member and mem.name != member:
                    continue
                out.append(
                    (
                        f"Event: QueueMember\r\nQueue: {q.name}\r\nName: {mem.name}\r\nLocation: {mem.iface}\r\n"
                        f"StateInterface: {mem.state_iface}\r\nMembership: dynamic\r\nPenalty: {mem.penalty}\r\n"
                        f"CallsTaken: {mem.calls_taken}\r\nLastCall: {mem.last_call}\r\nLastPause: {mem.last_pause}\r\n"
                        f"LoginTime: {mem.login_time}\r\nInCall: {1 if mem.in_call else 0}\r\nStatus: {mem.status}\r\n"
                        f"Paused: {1 if mem.paused else 0}\r\nPausedReason: {mem.reason}\r\nWrapuptime: 0\r\n{aid}\r\n"
                    ).encode()
                )
                n += 1
            for pos, e in enumerate(q.entries, 1):
                c = e.chan
                out.append(
                    (
                        f"Event: QueueEntry\r\nQueue: {q.name}\r\nPosition: {pos}\r\nChannel: {c.name}\r\nUniqueid: {c.uniqueid}\r\n"
                        f"CallerIDNum: {c.cid_num or 'unknown'}\r\nCallerIDName: {c.cid_name or 'unknown'}\r\n"
                        f"ConnectedLineNum: {c.conn_num or 'unknown'}\r\nConnectedLineName: {c.conn_name or 'unknown'}\r\n"
                        f"Wait: {int(now - e.joined)}\r\nPriority: 0\r\n{aid}\r\n"
                    ).encode()
                )
                n += 1
        out.append(self.list_end(m, "QueueStatusComplete", n))
        return b"".join(out)

    def a_queuesummary(self, s: AMISession, m: ActionMessage) -> bytes:
        sim = self.sim
        only = m.get("queue")
        aid = self._aid_line(m)
        out = [self.list_start(m, "Queue summary will follow")]
        n = 0
        now = sim.now()
        for q in sim.queues.values():
            if only and q.name != only:
                continue
            logged = len(q.members)
            avail = sum(1 for mem in q.members.values() if not mem.paused and mem.status in (0, 1))
            longest = max((int(now - e.joined) for e in q.entries), default=0)
            out.append(
                (
                    f"Event: QueueSummary\r\nQueue: {q.name}\r\nLoggedIn: {logged}\r\nAvailable: {avail}\r\n"
                    f"Callers: {len(q.entries)}\r\nHoldTime: {q.holdtime}\r\nTalkTime: {q.talktime}\r\n"
                    f"LongestHoldTime: {longest}\r\n{aid}\r\n"
                ).encode()
            )
            n += 1
        out.append(self.list_end(m, "QueueSummaryComplete", n))
        return b"".join(out)

    # ------------------------------------------------------------ channels

    def a_coreshowchannels(self, s: AMISession, m: ActionMessage) -> bytes:
        sim = self.sim
        aid = self._aid_line(m)
        out = [self.list_start(m, "Channels will follow")]
        now = sim.now()
        chans = list(sim.channels.values())
        for c in chans:
            out.append(
                (
                    f"Event: CoreShowChannel\r\n{aid}{channel_block(c)}Application: {c.app}\r\nApplicationData: {c.appdata}\r\n"
                    f"Duration: {_hms(now - c.created)}\r\nBridgeId: {c.bridge.id if c.bridge else ''}\r\n\r\n"
                ).encode()
            )
        out.append(self.list_end(m, "CoreShowChannelsComplete", len(chans)))
        return b"".join(out)

    def a_status(self, s: AMISession, m: ActionMessage) -> bytes:
        sim = self.sim
        name = m.get("channel")
        if name:
            c = self._channel(name)
            if c is None:
                return self.error(m, "No such channel")
            chans = [c]
        else:
            chans = list(sim.channels.values())
        aid = self._aid_line(m)
        out = [self.list_start(m, "Channel status will follow")]
        now = sim.now()
        for c in chans:
            slin = c.moh
            out.append(
                (
                    f"Event: Status\r\nPrivilege: Call\r\n{channel_block(c)}Type: {c.tech}\r\nDNID: {c.dnid}\r\n"
                    f"EffectiveConnectedLineNum: {c.conn_num or '<unknown>'}\r\nEffectiveConnectedLineName: {c.conn_name or '<unknown>'}\r\n"
                    f"TimeToHangup: 0\r\nBridgeID: {c.bridge.id if c.bridge else ''}\r\nApplication: {c.app}\r\nData: {c.appdata}\r\n"
                    f"Nativeformats: (ulaw)\r\nReadformat: ulaw\r\nReadtrans: \r\nWriteformat: {'slin' if slin else 'ulaw'}\r\n"
                    f"Writetrans: {'(slin@8000)->(ulaw@8000)' if slin else ''}\r\nCallgroup: 0\r\nPickupgroup: 0\r\n"
                    f"Seconds: {int(now - c.created)}\r\n{aid}\r\n"
                ).encode()
            )
        out.append(self.list_end(m, "StatusComplete", len(chans), ("Items", len(chans))))
        return b"".join(out)

    def a_hangup(self, s: AMISession, m: ActionMessage) -> bytes:
        name = m.get("channel")
        if not name:
            return self.error(m, "No channel specified")
        cause: int | None = None
        if m.get("cause"):
            try:
                cause = int(m.get("cause") or "")
            except ValueError:
                return self.error(m, "Invalid cause")
        sim = self.sim
        if len(name) > 2 and name.startswith("/") and name.endswith("/"):
            try:
                rx = re.compile(name[1:-1])
            except re.error:
                return self.error(m, "Invalid regex")
            hit = [c for c in sim.channels.values() if rx.search(c.name)]
            aid = self._aid_line(m)
            out = [self.list_start(m, "Channels hung up will follow")]
            for c in hit:
                out.append(f"Event: ChannelHungup\r\nChannel: {c.name}\r\n{aid}\r\n".encode())
            out.append(self.list_end(m, "ChannelsHungupListComplete", len(hit)))
            for c in hit:
                sim.hangup_channel(c, cause)
            return b"".join(out)
        target = self._channel(name)
        if target is None:
            return self.error(m, "No such channel")
        sim.hangup_channel(target, cause)
        return self.ok(m, "Channel Hungup")

    def a_originate(self, s: AMISession, m: ActionMessage) -> bytes | defer.Deferred[bytes]:
        channel = m.get("channel")
        if not channel:
            return self.error(m, "Channel not specified")
        app = m.get("application") or ""
        exten = m.get("exten") or ""
        prio = m.get("priority") or "1"
        if not app:
            try:
                priority = int(prio)
            except ValueError:
                return self.error(m, "Invalid priority")
        else:
            priority = 1
        try:
            timeout = int(m.get("timeout") or 30000) / 1000.0
        except ValueError:
            return self.error(m, "Invalid timeout")
        callerid = parse_callerid(m.get("callerid") or "") if m.get("callerid") else None
        variables: dict[str, str] = {}
        for v in m.getall("variable"):
            for part in v.split(","):
                k, _, val = part.partition("=")
                if k.strip():
                    variables[k.strip()] = val
        async_ = _true(m.get("async"))
        aid = m.aid()
        d: defer.Deferred[bytes] = defer.Deferred()

        def result(ok: bool) -> None:
            if not async_ and not d.called:
                d.callback(self.ok(m, "Originate successfully queued") if ok else self.error(m, "Originate failed"))

        self.sim.originate(
            channel,
            context=m.get("context") or "",
            exten=exten,
            priority=priority,
            application=app,
            data=m.get("data") or "",
            callerid=callerid,
            timeout=timeout,
            variables=variables,
            action_id=str(aid[0][1]) if aid else None,
            async_=async_,
            on_result=result,
        )
        if async_:
            return self.ok(m, "Originate successfully queued")
        if d.called:
            out: list[bytes] = []
            d.addCallback(out.append)
            return out[0]
        return d

    def a_redirect(self, s: AMISession, m: ActionMessage) -> bytes:
        name = m.get("channel")
        if not name:
            return self.error(m, "Channel not specified")
        c = self._channel(name)
        if c is None:
            return self.error(m, f"Channel does not exist: {name}")
        try:
            prio = int(m.get("priority") or 1)
        except ValueError:
            return self.error(m, "Invalid priority")
        moves = [(c, m.get("context") or c.context, m.get("exten") or "", prio)]
        extra = m.get("extrachannel")
        if extra:
            x = self._channel(extra)
            if x is None:
                return self.error(m, f"ExtraChannel does not exist: {extra}")
            try:
                xprio = int(m.get("extrapriority") or 1)
            except ValueError:
                return self.error(m, "Invalid ExtraPriority")
            moves.append((x, m.get("extracontext") or x.context, m.get("extraexten") or "", xprio))
        self.sim.redirect(moves)
        return self.ok(m, "Dual Redirect successful" if extra else "Redirect successful")

    def a_bridge(self, s: AMISession, m: ActionMessage) -> bytes:
        n1, n2 = m.get("channel1"), m.get("channel2")
        if not n1 or not n2:
            return self.error(m, "Missing channel parameter in request")
        c1 = self._channel(n1)
        if c1 is None:
            return self.error(m, f"Channel1 does not exist: {n1}")
        c2 = self._channel(n2)
        if c2 is None:
            return self.error(m, f"Channel2 does not exist: {n2}")
        if c1 is c2:
            return self.error(m, f"Channel1 and Channel2 are the same channel: {n1}")
        self.sim.bridge_channels(c1, c2)
        return self.ok(m, "Channels have been bridged")

    def a_blindtransfer(self, s: AMISession, m: ActionMessage) -> bytes:
        name = m.get("channel")
        if not name:
            return self.error(m, "No channel specified")
        exten = m.get("exten")
        if not exten:
            return self.error(m, "No extension specified")
        c = self._channel(name)
        if c is None:
            return self.error(m, "No such channel")
        self.sim.blind_transfer(c, exten, m.get("context") or c.context)
        return self.ok(m, "Transfer succeeded")

    def a_atxfer(self, s: AMISession, m: ActionMessage) -> bytes:
        name = m.get("channel")
        if not name:
            return self.error(m, "Channel not specified")
        exten = m.get("exten")
        if not exten:
            return self.error(m, "Extension not specified")
        c = self._channel(name)
        if c is None:
            return self.error(m, "Channel specified does not exist")
        self.sim.atxfer(c, exten, m.get("context") or c.context)
        return self.ok(m, "Atxfer successfully queued")

    def a_setvar(self, s: AMISession, m: ActionMessage) -> bytes:
        var = m.get("variable")
        if not var:
            return self.error(m, "No variable specified")
        value = m.get("value") or ""
        name = m.get("channel")
        if name:
            c = self._channel(name)
            if c is None:
                return self.error(m, "No such channel")
            self.sim._varset(c, var, value)
        else:
            self.sim.global_vars[var] = value
        return self.ok(m, "Variable Set")

    def a_getvar(self, s: AMISession, m: ActionMessage) -> bytes:
        var = m.get("variable")
        if not var:
            return self.error(m, "No variable specified")
        name = m.get("channel")
        if name:
            c = self._channel(name)
            if c is None:
                return self.error(m, "No such channel")
            value = self.sim._lookup_var(c, var)
        else:
            value = self.sim.global_vars.get(var, "")
        return self.ok(m, None, ("Variable", var), ("Value", value))

    def a_muteaudio(self, s: AMISession, m: ActionMessage) -> bytes:
        name, direction, state = m.get("channel"), m.get("direction"), m.get("state")
        if not name:
            return self.error(m, "Channel not specified")
        if not direction:
            return self.error(m, "Direction not specified")
        if not state:
            return self.error(m, "State not specified")
        c = self._channel(name)
        if c is None:
            return self.error(m, "No such channel")
        d = direction.lower()
        if d not in ("in", "out", "all"):
            return self.error(m, "Invalid direction specified")
        st = state.lower()
        if st not in ("on", "off"):
            return self.error(m, "Invalid state specified")
        dirs = {"in", "out"} if d == "all" else {d}
        if st == "on":
            c.muted |= dirs
        else:
            c.muted -= dirs
        return self.ok(m)

    # -------------------------------------------------------------- system

    def a_coresettings(self, s: AMISession, m: ActionMessage) -> bytes:
        return self.ok(
            m,
            None,
            ("AMIversion", "9.0.0"),
            ("AsteriskVersion", self.sim.version),
            ("SystemName", self.sim.system_name),
            ("CoreMaxCalls", 0),
            ("CoreMaxLoadAvg", "0.000000"),
            ("CoreRunUser", ""),
            ("CoreRunGroup", ""),
            ("CoreMaxFilehandles", 0),
            ("CoreRealTimeEnabled", "No"),
            ("CoreCDRenabled", "Yes"),
            ("CoreHTTPenabled", "No"),
            ("SoundsSearchCustomDir", "No"),
        )

    def a_corestatus(self, s: AMISession, m: ActionMessage) -> bytes:
        sim = self.sim
        boot = datetime.datetime.fromtimestamp(sim.booted_at, datetime.UTC)
        rel = datetime.datetime.fromtimestamp(sim.reloaded_at, datetime.UTC)
        return self.ok(
            m,
            None,
            ("CoreStartupDate", boot.strftime("%Y-%m-%d")),
            ("CoreStartupTime", boot.strftime("%H:%M:%S")),
            ("CoreReloadDate", rel.strftime("%Y-%m-%d")),
            ("CoreReloadTime", rel.strftime("%H:%M:%S")),
            ("CoreCurrentCalls", len(sim.channels)),
            ("CoreProcessedCalls", sim.processed_calls),
        )

    def a_command(self, s: AMISession, m: ActionMessage) -> bytes:
        cmd = " ".join((m.get("command") or "").split())
        sim = self.sim
        if not cmd:
            return self.error(m, "No command provided")
        low = cmd.lower()
        if low == "core show version":
            lines = [f"Asterisk {sim.version} built by ucs-sim @ simulator on a x86_64 running Linux"]
        elif low == "core show uptime":
            lines = [f"System uptime: {sim.uptime()} seconds", f"Last reload: {sim.uptime()} seconds"]
        elif low in ("core show channels", "core show channels concise"):
            lines = [c.name for c in sim.channels.values()]
            lines.append(f"{len(sim.channels)} active channel{'s' if len(sim.channels) != 1 else ''}")
        elif low.startswith("module reload ") and cmd.split()[-1] in sim.MODULES:
            sim.module_reload(cmd.split()[-1])
            lines = []
        elif low in ("core restart now", "core restart gracefully", "core restart when convenient"):
            sim.clock.callLater(0, sim.restart)
            lines = []
        else:
            lines = [f"No such command '{cmd}' (type 'core show help {cmd}' for other possible commands)"]
        return self.ok(m, "Command output follows", *[("Output", line) for line in lines])

    def a_devicestatelist(self, s: AMISession, m: ActionMessage) -> bytes:
        aid = self._aid_line(m)
        out = [self.list_start(m, "Device State Changes will follow")]
        items = list(self.sim.devices.items())
        for dev, state in items:
            out.append(f"Event: DeviceStateChange\r\n{aid}Device: {dev}\r\nState: {state}\r\n\r\n".encode())
        out.append(self.list_end(m, "DeviceStateListComplete", len(items)))
        return b"".join(out)

    def a_extensionstatelist(self, s: AMISession, m: ActionMessage) -> bytes:
        return self.error(m, "No dialplan hints are available")

    def a_bridgelist(self, s: AMISession, m: ActionMessage) -> bytes:
        aid = self._aid_line(m)
        out = [self.list_start(m, "Bridge listing will follow")]
        bridges = list(self.sim.bridges.values())
        for b in bridges:
            out.append(f"Event: BridgeListItem\r\n{aid}{bridge_block(b)}\r\n".encode())
        out.append(self.list_end(m, "BridgeListComplete", len(bridges)))
        return b"".join(out)

    # ------------------------------------------------------------ chan_sip

    def a_sippeers(self, s: AMISession, m: ActionMessage) -> bytes:
        aid = self._aid_line(m)
        out = [self.list_start(m, "Peer status list will follow")]
        peers = [ln for ln in sorted(self.sim.lines.values(), key=lambda ln: ln.peer) if ln.tech == "SIP" and (ln.reachable or not ln.dynamic)]
        for ln in peers:
            out.append(
                (
                    f"Event: PeerEntry\r\n{aid}Channeltype: SIP\r\nObjectName: {ln.peer}\r\nChanObjectType: peer\r\n"
                    f"IPaddress: {ln.ip or '-none-'}\r\nIPport: {ln.port}\r\nDynamic: {'yes' if ln.dynamic else 'no'}\r\n"
                    f"AutoForcerport: yes\r\nForcerport: no\r\nAutoComedia: no\r\nComedia: no\r\nVideoSupport: no\r\n"
                    f"TextSupport: no\r\nACL: no\r\nStatus: Unmonitored\r\nRealtimeDevice: no\r\nDescription: \r\n"
                    f"Accountcode: \r\n\r\n"
                ).encode()
            )
        out.append(self.list_end(m, "PeerlistComplete", len(peers)))
        return b"".join(out)

    def a_sipnotify(self, s: AMISession, m: ActionMessage) -> bytes:
        channel = m.get("channel")
        if not channel:
            return self.error(m, "SIPNotify requires a channel name")
        variables: dict[str, str] = {}
        for v in m.getall("variable"):
            for part in v.split(","):
                k, _, val = part.partition("=")
                if k.strip():
                    variables[k.strip()] = val.strip()
        self.sim.sip_notify(channel, variables)
        return self.ok(m, "Notify Sent")

    def a_sipshowpeer(self, s: AMISession, m: ActionMessage) -> bytes:
        peer = m.get("peer")
        if not peer:
            return self.error(m, "Peer: <name> missing.")
        ln = self.sim.lines.get(f"SIP/{peer}")
        if ln is None:
            return self.error(m, "Peer not found")
        sim = self.sim
        expire = -1
        if ln.dynamic and ln.registered and ln.reg_expires_at is not None:
            expire = max(0, int(ln.reg_expires_at - sim.now()))
        callerid = f'"{ln.display}" <{ln.number}>' if ln.display else (f"<{ln.number}>" if ln.number else "")
        return self.ok(
            m,
            None,
            ("Channeltype", "SIP"),
            ("ObjectName", ln.peer),
            ("ChanObjectType", "peer"),
            ("SecretExist", "Y" if ln.secret else "N"),
            ("RemoteSecretExist", "N"),
            ("MD5SecretExist", "N"),
            ("Context", ln.context),
            ("Language", ""),
            ("ToneZone", "<Not set>"),
            ("AMAflags", "Unknown"),
            ("CID-CallingPres", "Presentation Allowed, Not Screened"),
            ("Callgroup", ""),
            ("Pickupgroup", ""),
            ("Named Callgroup", ""),
            ("Named Pickupgroup", ""),
            ("MOHSuggest", ""),
            ("VoiceMailbox", ""),
            ("TransferMode", "open"),
            ("LastMsgsSent", -1 if ln.dynamic else 0),
            ("Maxforwards", 0),
            ("Call-limit", ln.call_limit),
            ("Busy-level", 0),
            ("MaxCallBR", "384 kbps"),
            ("Dynamic", "Y" if ln.dynamic else "N"),
            ("Callerid", callerid),
            ("RegExpire", f"{expire} seconds"),
            ("SIP-AuthInsecure", "no" if ln.dynamic else "port,invite"),
            ("SIP-Forcerport", "a"),
            ("SIP-Comedia", "N"),
            ("ACL", "N"),
            ("SIP-CanReinvite", "N"),
            ("SIP-DirectMedia", "N"),
            ("SIP-PromiscRedir", "N"),
            ("SIP-UserPhone", "N"),
            ("SIP-VideoSupport", "N"),
            ("SIP-TextSupport", "N"),
            ("SIP-T.38Support", "N"),
            ("SIP-T.38EC", "Unknown"),
            ("SIP-T.38MaxDtgrm", 4294967295),
            ("SIP-Sess-Timers", "Accept"),
            ("SIP-Sess-Refresh", "uas"),
            ("SIP-Sess-Expires", 1800),
            ("SIP-Sess-Min", 90),
            ("SIP-RTP-Engine", "asterisk"),
            ("SIP-Encryption", "N"),
            ("SIP-RTCP-Mux", "N"),
            ("SIP-DTMFmode", "rfc2833"),
            ("ToHost", ln.static_ip or ""),
            ("Address-IP", ln.ip if ln.reachable else "(null)"),
            ("Address-Port", ln.port if ln.reachable else 0),
            ("Default-addr-IP", "(null)"),
            ("Default-addr-port", 0),
            ("Default-Username", ln.peer if ln.dynamic else ""),
            ("Codecs", "(ulaw)"),
            ("Status", "Unmonitored"),
            ("SIP-Useragent", ln.useragent),
            ("Reg-Contact", ln.reg_contact),
            ("QualifyFreq", "60000 ms"),
            ("Parkinglot", ""),
            ("SIP-Use-Reason-Header", "N"),
            ("Description", ""),
        )


def _addresses(s: AMISession) -> tuple[str, str]:
    try:
        h: Any = s.transport.getHost()
        p: Any = s.transport.getPeer()
        return f"IPV4/TCP/{h.host}/{h.port}", f"IPV4/TCP/{p.host}/{p.port}"
    except (AttributeError, TypeError):  # a transport without addresses (tests)
        return "IPV4/TCP/127.0.0.1/5038", "IPV4/TCP/127.0.0.1/0"

