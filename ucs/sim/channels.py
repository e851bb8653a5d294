"""Channels and bridges: creating a channel, its ``Hangup``, bridging, and
how a hangup travels (a BYE, the AMI ``Hangup``, the other half of a Local).
"""

from __future__ import annotations

import uuid

from ucs.sim.mixmonitor import close_all as close_recordings
from ucs.sim.events import SimPart
from ucs.sim.model import SIP_DOMAIN, Bridge, Channel, DialJob, Line, QueueEntry, WaitJob
from ucs.sim.spy import SpyJob
from ucs.sim.wire import CALL, CAUSE_TXT, CLASSES, bridge_block, channel_block

_DIALPLAN_BIT = CLASSES["dialplan"]


class ChannelsMixin(SimPart):
    """Channels, bridges and hangups, a part of :class:`ucs.sim.pbx.Sim`."""

    # -------------------------------------------------------------- channels

    def _uniqueid(self) -> str:
        n = self._uid
        self._uid += 1
        return f"{int(self.now())}.{n}"

    def _new_channel(
        self,
        name: str,
        *,
        state: int,
        cid: tuple[str, str],
        context: str,
        exten: str,
        linkedid: str | None = None,
        line: Line | None = None,
        tech: str = "SIP",
        conn: tuple[str, str] = ("", ""),
    ) -> Channel:
        uid = self._uniqueid()
        ch = Channel(name, uid, linkedid or uid, self.now())
        ch.state = state
        ch.cid_num, ch.cid_name = cid
        ch.conn_num, ch.conn_name = conn
        ch.context, ch.exten = context, exten
        ch.line = line
        ch.tech = line.tech if line is not None else tech
        self.channels[name] = ch
        self.processed_calls += 1
        self._chan_ev("Newchannel", ch)
        return ch

    def _sip_name(self, line: Line) -> str:
        self._sip_seq += 1
        return f"{line.tech}/{line.peer}-{self._sip_seq:08x}"

    def dial_target(self, tech: str, peer: str) -> Line | None:
        """The line a ``Dial``/``Originate`` string's ``TECH/peer`` names, if any."""
        tech = tech.upper()
        return self.lines.get(f"{tech}/{peer}") if tech in ("SIP", "PJSIP") else None

    def _callid(self, line: Line) -> str:
        if line.trunk:
            return f"{self.random.randint(1, 9)}-{self.random.randint(1000, 99999)}@{line.ip}"
        return f"{self.random.getrandbits(128):032x}@{SIP_DOMAIN}:5060"

    def _line_channel(self, line: Line, caller: Channel) -> Channel:
        """The channel Asterisk creates to ring ``line`` for ``caller``'s call."""
        ch = self._new_channel(
            self._sip_name(line),
            state=0,
            cid=(line.number, line.display),
            context=line.context,
            exten="s",
            linkedid=caller.linkedid,
            line=line,
        )
        self._varset(ch, "SIPCALLID", self._callid(line))
        return ch

    def find_channel(self, name: str) -> Channel | None:
        ch = self.channels.get(name)
        if ch is None:
            low = name.lower()
            for c in self.channels.values():
                if c.name.lower() == low:
                    return c
        return ch

    def channels_of(self, device: str) -> list[Channel]:
        return [c for c in self.channels.values() if c.peer_name == device]

    def _destroy(self, ch: Channel, cause: int) -> None:
        """The channel is gone: ``Hangup``, devices updated, its Local half told."""
        if ch.gone:
            return
        ch.gone = True
        if ch.mixmonitors:
            close_recordings(ch, self.now())
        for dc in ch.timers:
            self._cancel(dc)
        ch.timers = []
        if ch.leg is not None:
            ch.leg.ended = True
        peer = ch.local_peer
        if peer is not None and not peer.gone:
            peer.local_peer = None
            self._chan_ev("HangupRequest", peer, "Cause: 16\r\n")
        spies = self._spies_stop(ch)
        if ch.line is not None and ch.tech == "SIP" and not ch.line.trunk:
            self._varset(ch, "RTPAUDIOQOS", _QOS)
        self._chan_ev("Hangup", ch, f"Cause: {cause}\r\nCause-txt: {CAUSE_TXT.get(cause, 'Unknown')}\r\n")
        self.channels.pop(ch.name, None)
        if ch.line is not None and ch.line.driver is not None:
            ch.line.driver.channel_gone(ch, cause)
        if ch.line is not None:
            try:
                ch.line.channels.remove(ch)
            except ValueError:
                pass
            self._update_line(ch.line)
        if ch.tech == "Local":
            dev = ch.name.rsplit("-", 1)[0]
            if not self.dialplan.exists(ch.context, ch.exten):
                self._set_dev(dev, "INVALID", force=True)
            elif not any(c.tech == "Local" and c.name.startswith(dev + "-") for c in self.channels.values()):
                self._set_dev(dev, "NOT_INUSE")
        if peer is not None and not peer.gone:
            self._hangup(peer, "req", 16)
        self._atxfer_transferee_gone(ch)
        self._spies_exit(spies)

    # --------------------------------------------------------------- bridges

    def _bridge_create(self) -> Bridge:
        b = Bridge(str(uuid.UUID(int=self.random.getrandbits(128), version=4)), self.now())
        self.bridges[b.id] = b
        self._emit("BridgeCreate", CALL, bridge_block(b))
        return b

    def _bridge_enter(self, b: Bridge, ch: Channel) -> None:
        b.channels.append(ch)
        ch.bridge = b
        self._emit("BridgeEnter", CALL, bridge_block(b) + channel_block(ch))
        if len(b.channels) >= 2:
            for c in b.channels:
                if c.bridge_time is None:
                    c.bridge_time = self.now()
                cb = c.on_bridged
                if cb is not None:
                    c.on_bridged = None
                    cb(c)
            self._bridge_peer_vars(b)

    def _bridge_peer_vars(self, b: Bridge) -> None:
        """``BRIDGEPEER`` and ``BRIDGEPVTCALLID`` of a two-party bridge's channels, set
        when the bridge (re)picks its technology: once both are in, and again when an
        audiohook (MixMonitor) joins a channel of it."""
        if self._mask & _DIALPLAN_BIT and len(b.channels) == 2:
            a, z = b.channels
            for x, y in ((a, z), (z, a)):
                self._varset(x, "BRIDGEPEER", y.name)
                self._varset(x, "BRIDGEPVTCALLID", y.vars.get("SIPCALLID", ""))

    def _bridge_leave(self, ch: Channel) -> Bridge | None:
        b = ch.bridge
        if b is None:
            return None
        if self._mask & _DIALPLAN_BIT and len(b.channels) == 2:
            other = b.channels[0] if b.channels[1] is ch else b.channels[1]
            if ch.tech == "SIP" and other.tech == "SIP":
                # chan_sip reports the RTP quality of both legs as the call ends.
                for x, y in ((ch, other), (other, ch)):
                    for var, value in _QOS_VARS:
                        self._varset(x, var, value)
                        self._varset(y, var + "BRIDGED", value)
            self._varset(ch, "BRIDGEPEER", "")
            self._varset(ch, "BRIDGEPVTCALLID", "")
        b.channels.remove(ch)
        ch.bridge = None
        self._queue_bridge_left(ch)
        self._emit("BridgeLeave", CALL, bridge_block(b) + channel_block(ch))
        return b

    def _bridge_destroy(self, b: Bridge) -> None:
        if self.bridges.pop(b.id, None) is not None:
            self._emit("BridgeDestroy", CALL, bridge_block(b))

    def _dissolve(self, b: Bridge) -> list[Channel]:
        """Everyone left in a two-party bridge leaves it; the bridge goes."""
        rest: list[Channel] = []
        if len(b.channels) <= 1:
            for y in list(b.channels):
                self._bridge_leave(y)
                rest.append(y)
            self._bridge_destroy(b)
        return rest

    def _after_bridge(self, y: Channel, reason: str) -> None:
        """``y`` was left alone in a bridge: its application returns, or it hangs up."""
        if y.gone:
            return
        if y.pbx:
            job = y.job
            if isinstance(job, QueueEntry):
                self._queue_after_bridge(job, reason)
                self._pbx_next(y)
            elif isinstance(job, DialJob):
                self._varset(y, "DIALSTATUS", "ANSWER")
                self._pbx_next(y)
            else:
                y.job = None
                self._pbx_run(y)
        else:
            self._destroy(y, 16)

    # ---------------------------------------------------------------- hangup

    def bye(self, ch: Channel) -> None:
        """The endpoint of ``ch`` hangs up (a phone or the caller sends BYE)."""
        if ch.gone:
            return
        if ch.leg is not None and not ch.leg.answered:
            self._leg_end(ch.leg, "BUSY", 17, rna=True)
            return
        self._chan_ev("HangupRequest", ch)
        self._hangup(ch, "bye")

    def hangup_channel(self, ch: Channel, cause: int | None = None) -> None:
        """The AMI ``Hangup`` action on ``ch``."""
        if ch.gone:
            return
        if ch.hold_owner is not None:
            self._atxfer_transferer_gone(ch.hold_owner, ch)
            return
        if ch.leg is not None and not ch.leg.answered:
            self._leg_end(ch.leg, "CANCEL", cause if cause is not None else 16, rna=True)
            return
        self._hangup(ch, "ami", cause)

    def _hangup(self, ch: Channel, source: str, cause: int | None = None) -> None:
        """Tear ``ch`` down.  ``source``: ``bye`` (its endpoint hung up; the
        HangupRequest is already out), ``req`` (same, propagated from the other
        half of a Local channel), ``ami`` (the Hangup action)."""
        if ch.gone:
            return
        if ch.hold_owner is not None:
            self._atxfer_transferer_gone(ch.hold_owner, ch)
            return
        if self._local_hangup_hook(ch):
            return
        if ch.leg is not None and not ch.leg.answered:
            self._leg_end(ch.leg, "CANCEL", 16, rna=True)
            return
        b = ch.bridge
        if b is not None:
            reason = "agent" if source == "bye" and self._is_queue_agent(ch) else "caller"
            if ch.pbx and source != "ami":
                if isinstance(ch.job, QueueEntry):
                    self._queue_complete(ch.job, "caller", with_dest=True)
                self._moh_stop(ch)  # held for an attended transfer: the music stops first
                self._bridge_leave(ch)
                ch.cause = cause if cause is not None else 16
                self._pbx_end(ch)
                for y in self._dissolve(b):
                    self._after_bridge(y, reason)
                return
            self._bridge_leave(ch)
            rest = self._dissolve(b)
            if ch.pbx:
                for y in rest:
                    self._after_bridge(y, reason)
                if isinstance(ch.job, QueueEntry):
                    self._queue_after_bridge(ch.job, reason)
                ch.cause = cause if cause is not None else 16
                self._pbx_end(ch)
            else:
                self._destroy(ch, cause if cause is not None else 16)
                for y in rest:
                    self._after_bridge(y, reason)
            return
        if ch.pbx:
            self._job_interrupt(ch, hangup=True)
            if ch.cause is None:
                ch.cause = cause if cause is not None else 0
            self._pbx_end(ch)
            return
        self._destroy(ch, cause if cause is not None else 16)

    def _pbx_end(self, ch: Channel) -> None:
        if ch.gone:
            return
        self._chan_ev("SoftHangupRequest", ch, "Cause: 16\r\n")
        cause = ch.cause if ch.cause is not None else 16
        self._destroy(ch, cause)

    def _job_interrupt(self, ch: Channel, hangup: bool) -> None:
        """Stop the application ``ch`` runs (it hangs up or is redirected)."""
        job = ch.job
        ch.job = None
        if isinstance(job, QueueEntry):
            self._queue_leave_waiting(job, abandon=hangup)
        elif isinstance(job, DialJob):
            self._dial_cancel(job)
        elif isinstance(job, WaitJob):
            self._cancel(job.timer)
        elif isinstance(job, SpyJob):
            self._spy_interrupted(job)
        self._moh_stop(ch)


_QOS = "ssrc=0;themssrc=0;lp=0;rxjitter=0.000000;rxcount=0;txjitter=0.000000;txcount=0;rlp=0;rtt=0.000000;rxmes=0.000000;txmes=0.000000"


_QOS_VARS = (
    ("RTPAUDIOQOS", _QOS),
    ("RTPAUDIOQOSJITTER", ("minrxjitter=000.000000;maxrxjitter=000.000000;avgrxjitter=000.000000;stdevrxjitter=000.000000;"
     "mintxjitter=000.000000;maxtxjitter=000.000000;avgtxjitter=000.000000;stdevtxjitter=000.000000;")),
    ("RTPAUDIOQOSLOSS", ("  minrxlost=000.000000;  maxrxlost=000.000000;  avgrxlost=000.000000;  stdevrxlost=000.000000;"
     "  mintxlost=000.000000;  maxtxlost=000.000000;  avgtxlost=000.000000;  stdevtxlost=000.000000;")),
    ("RTPAUDIOQOSRTT", "     minrtt=000.000000;     maxrtt=000.000000;     avgrtt=000.000000;     stdevrtt=000.000000;"),
    ("RTPAUDIOQOSMES", ("   minrxmes=000.000000;   maxrxmes=000.000000;   avgrxmes=000.000000;   stdevrxmes=000.000000;"
     "   mintxmes=000.000000;   maxtxmes=000.000000;   avgtxmes=000.000000;   stdevtxmes=000.000000;")),
)
