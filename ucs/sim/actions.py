"""What each AMI action does on the simulated PBX, and Asterisk's answers.

Response texts are those of Asterisk 20 (chan_sip, app_queue) as the
captures show them; a handler returns the bytes of the response (and of the
event list it announces), or a Deferred of them for a synchronous Originate.

Here are the session, channel and system actions and ``dispatch``, which
finds a handler (``a_<action>``) by name; the queue actions are in
:mod:`ucs.sim.queue_actions`, chan_sip's in :mod:`ucs.sim.sip_actions`,
PJSIP's in :mod:`ucs.sim.pjsip`, the shapes of a response they all use in
:mod:`ucs.sim.respond`.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from ucs.sim.mixmonitor import MixMonitorActions
from ucs.sim.pbx import Sim, SimError
from ucs.sim.pjsip import PjsipActions
from ucs.sim.queue_actions import QueueActions
from ucs.sim.queues import QueueError
from ucs.sim.respond import ActionMessage, true_value, variables
from ucs.sim.sip_actions import SipActions
from ucs.sim.wire import CLASSES, bridge_block, channel_block, class_mask, frame
from ucs.sim.xfer import XferError

if TYPE_CHECKING:  # pragma: no cover
    from ucs.sim.server import AMISession

#: The actions the simulator answers, as Asterisk spells them.
ACTION_NAMES = (
    "Atxfer", "BlindTransfer", "Bridge", "BridgeList", "Challenge", "Command", "CoreSettings",
    "CoreShowChannels", "CoreStatus", "DeviceStateList", "Events", "ExtensionStateList", "Filter", "Getvar",
    "Hangup", "ListCommands", "Login", "Logoff", "MixMonitor", "MuteAudio", "Originate", "PJSIPNotify", "PJSIPShowContacts", "PJSIPShowEndpoint",
    "PJSIPShowEndpoints", "PJSIPShowRegistrationsInbound", "Ping", "PlayDTMF", "QueueAdd",
    "QueuePause", "QueuePenalty", "QueueRemove", "QueueStatus", "QueueSummary", "Redirect", "SIPnotify", "SIPpeers",
    "SIPshowpeer", "Setvar", "Status", "StopMixMonitor",
)  # fmt: skip


def _hms(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


_CALLERID = re.compile(r'^\s*"?([^"<]*?)"?\s*<([^>]*)>\s*$')


def parse_callerid(text: str) -> tuple[str, str]:
    m = _CALLERID.match(text)
    if m:
        return m.group(2).strip(), m.group(1).strip()
    return text.strip(), ""


class Actions(QueueActions, SipActions, PjsipActions, MixMonitorActions):
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

    def _bad_format(self, s: AMISession, action: str) -> None:
        local, remote = _addresses(s)
        self.sim.security_event(
            "RequestBadFormat",
            f"Severity: Error\r\nService: AMI\r\nEventVersion: 1\r\nSessionID: {s.session_id}\r\n"
            f"LocalAddress: {local}\r\nRemoteAddress: {remote}\r\nRequestType: Action: {action}\r\n"
            f"SessionTV: {self.sim._eventtv()}\r\nAccountID: {s.username or ''}\r\n",
        )

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

    # ------------------------------------------------------------ channels

    def a_coreshowchannels(self, s: AMISession, m: ActionMessage) -> bytes:
        sim = self.sim
        aid = self.aid_line(m)
        now = sim.now()
        items = [
            f"Event: CoreShowChannel\r\n{aid}{channel_block(c)}Application: {c.app}\r\nApplicationData: {c.appdata}\r\n"
            f"Duration: {_hms(now - c.created)}\r\nBridgeId: {c.bridge.id if c.bridge else ''}\r\n\r\n"
            for c in sim.channels.values()
        ]
        return self.event_list(m, "Channels will follow", "CoreShowChannelsComplete", items)

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
        aid = self.aid_line(m)
        now = sim.now()
        items: list[str] = []
        for c in chans:
            slin = c.moh
            items.append(
                    f"Event: Status\r\nPrivilege: Call\r\n{channel_block(c)}Type: {c.tech}\r\nDNID: {c.dnid}\r\n"
                    f"EffectiveConnectedLineNum: {c.conn_num or '<unknown>'}\r\nEffectiveConnectedLineName: {c.conn_name or '<unknown>'}\r\n"
                    f"TimeToHangup: 0\r\nBridgeID: {c.bridge.id if c.bridge else ''}\r\nApplication: {c.app}\r\nData: {c.appdata}\r\n"
                    f"Nativeformats: (ulaw)\r\nReadformat: ulaw\r\nReadtrans: \r\nWriteformat: {'slin' if slin else 'ulaw'}\r\n"
                    f"Writetrans: {'(slin@8000)->(ulaw@8000)' if slin else ''}\r\nCallgroup: 0\r\nPickupgroup: 0\r\n"
                    f"Seconds: {int(now - c.created)}\r\n{aid}\r\n"
            )
        return self.event_list(m, "Channel status will follow", "StatusComplete", items, ("Items", len(chans)))

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
            aid = self.aid_line(m)
            items = [f"Event: ChannelHungup\r\nChannel: {c.name}\r\n{aid}\r\n" for c in hit]
            out = self.event_list(m, "Channels hung up will follow", "ChannelsHungupListComplete", items)
            for c in hit:
                sim.hangup_channel(c, cause)
            return out
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
        async_ = true_value(m.get("async"))
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
            variables=variables(m),
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

    def a_playdtmf(self, s: AMISession, m: ActionMessage) -> bytes:
        # apps/app_senddtmf.c manager_play_dtmf: the checks in its order, its texts.
        c = self._channel(m.get("channel") or "")
        if c is None:
            return self.error(m, "Channel not found")
        digit = m.get("digit") or ""
        if not digit:
            return self.error(m, "No digit specified")
        duration = m.get("duration") or ""
        if duration and not duration.strip().isdigit():
            return self.error(m, "Could not convert Duration parameter")
        self.sim.play_dtmf(c, digit[0], int(duration or 0), true_value(m.get("receive")))
        return self.ok(m, "DTMF successfully queued")

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
        aid = self.aid_line(m)
        items = [
            f"Event: DeviceStateChange\r\n{aid}Device: {dev}\r\nState: {state}\r\n\r\n"
            for dev, state in self.sim.devices.items()
        ]
        return self.event_list(m, "Device State Changes will follow", "DeviceStateListComplete", items)

    def a_extensionstatelist(self, s: AMISession, m: ActionMessage) -> bytes:
        return self.error(m, "No dialplan hints are available")

    def a_bridgelist(self, s: AMISession, m: ActionMessage) -> bytes:
        aid = self.aid_line(m)
        items = [f"Event: BridgeListItem\r\n{aid}{bridge_block(b)}\r\n" for b in self.sim.bridges.values()]
        return self.event_list(m, "Bridge listing will follow", "BridgeListComplete", items)


def _addresses(s: AMISession) -> tuple[str, str]:
    try:
        h: Any = s.transport.getHost()
        p: Any = s.transport.getPeer()
        return f"IPV4/TCP/{h.host}/{h.port}", f"IPV4/TCP/{p.host}/{p.port}"
    except (AttributeError, TypeError):  # a transport without addresses (tests)
        return "IPV4/TCP/127.0.0.1/5038", "IPV4/TCP/127.0.0.1/0"

