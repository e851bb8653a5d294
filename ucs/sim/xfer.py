"""Originate, Local channels, transfers, Redirect and Bridge, mixed into :class:`Sim`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ucs.sim.dialplan import WAIT
from ucs.sim.model import Bridge, Channel, DialJob, Leg, QueueEntry, WaitJob
from ucs.sim.wire import CALL, bridge_block, channel_block, clean

#: OriginateResponse Reason for each way a call attempt ends.
ORIGINATE_REASON = {"CHANUNAVAIL": 0, "CANCEL": 1, "NOANSWER": 3, "ANSWER": 4, "BUSY": 5, "CONGESTION": 8}


class XferError(Exception):
    """A call-control command that cannot be done; the text is Asterisk's message."""


class OriginateJob:
    __slots__ = (
        "action_id",
        "application",
        "async_",
        "chan",
        "context",
        "data",
        "done",
        "exten",
        "leg",
        "on_result",
        "priority",
        "request",
        "timer",
        "variables",
    )

    def __init__(self, request: str) -> None:
        self.request = request
        self.chan: Channel | None = None
        self.context = ""
        self.exten = ""
        self.priority = 1
        self.application = ""
        self.data = ""
        self.variables: dict[str, str] = {}
        self.action_id: str | None = None
        self.async_ = True
        self.on_result: Callable[[bool], None] | None = None
        self.timer: Any = None
        self.done = False
        self.leg: Any = None


class AtxferJob:
    __slots__ = ("active", "b1", "b2", "key_timer", "keys", "l1", "l2", "others", "swapped", "transferer")

    def __init__(self, transferer: Channel, others: list[Channel], b1: Bridge, b2: Bridge, l1: Channel, l2: Channel) -> None:
        self.transferer = transferer
        self.others = others
        self.b1 = b1
        self.b2 = b2
        self.l1 = l1
        self.l2 = l2
        self.active = True
        #: The transferer's feature keys so far, and the wait for the next one (ucs.sim.features).
        self.keys = ""
        self.key_timer: Any = None
        #: The transferer is back with the caller (Asterisk's DOUBLECHECKING).
        self.swapped = False


class XferMixin:
    #: features.conf ``atxfernoanswertimeout``: seconds the transfer target may
    #: ring before the consultation is given up and the transferer is back
    #: with the caller.
    atxfer_noanswer_timeout: float = 15.0

    # ------------------------------------------------------------- Originate

    def originate(
        self: Any,
        channel: str,
        *,
        context: str = "",
        exten: str = "",
        priority: int = 1,
        application: str = "",
        data: str = "",
        callerid: tuple[str, str] | None = None,
        timeout: float = 30.0,
        variables: dict[str, str] | None = None,
        action_id: str | None = None,
        async_: bool = True,
        on_result: Callable[[bool], None] | None = None,
    ) -> OriginateJob:
        """Call ``channel`` (``SIP/1001``, ``SIP/carrier/0420…``, ``Local/1003@internal``);
        when it answers, run ``context,exten,priority`` or ``application(data)``.

        With ``async_`` the result is also announced as ``OriginateResponse``;
        ``on_result(success)`` is called either way.
        """
        job = OriginateJob(clean(channel))
        job.context, job.exten, job.priority = clean(context), clean(exten), priority
        job.application, job.data = clean(application), clean(data)
        job.variables = {clean(k): clean(v) for k, v in (variables or {}).items()}
        job.action_id = action_id
        job.async_ = async_
        job.on_result = on_result
        tech, _, rest = job.request.partition("/")
        if tech.upper() in ("SIP", "PJSIP"):
            peer, _, number = rest.partition("/")
            line = self.dial_target(tech, peer)
            if line is None or not line.reachable or (line.trunk and not number):
                self._originate_result(job, False, "CHANUNAVAIL")
                return job
            # The channel starts with the phone's own caller id (its config);
            # the Originate's CallerID replaces it (NewCallerid) and becomes the
            # connected line too.
            cid = (line.number, line.display) if not line.trunk else ("", "")
            ch = self._new_channel(self._sip_name(line), state=0, cid=cid, context=line.context, exten="s", line=line)
            self._varset(ch, "SIPCALLID", self._callid(line))
            ch.exten = "" if not line.trunk else number
            self._newexten(ch, "AppDial2", "(Outgoing Line)")
            if callerid is not None:
                self._set_callerid(ch, callerid[0], callerid[1])
                self._set_connected(ch, callerid[0], callerid[1])
            job.chan = ch
            leg = Leg("originate", None, ch, line, job, rest, self.now())
            ch.leg = job.leg = leg
            ch.originate = job
            line.channels.append(ch)
            self._update_line(line)
            self._emit("DialBegin", CALL, channel_block(ch, "Dest") + f"DialString: {rest}\r\n")
            self._ring(leg)
            job.timer = self._later(timeout, self._originate_timeout, job, chan=ch)
            return job
        if tech.lower() == "local":
            target, _, _opts = rest.partition("/")
            lexten, _, lcontext = target.partition("@")
            lcontext = lcontext or "default"
            l1, l2 = self._new_local(lexten, lcontext, None)
            if not self.dialplan.exists(lcontext, lexten):
                self._local_fail(l1, l2)
                self._originate_result(job, False, "CHANUNAVAIL")
                return job
            if callerid is not None:
                l1.cid_num, l1.cid_name = callerid
                l2.cid_num, l2.cid_name = callerid
            job.chan = l1
            leg = Leg("local", None, l1, None, job, target, self.now())
            l1.leg = job.leg = leg
            job.timer = self._later(timeout, self._originate_timeout, job, chan=l1)
            self._pbx_start(l2)
            return job
        self._originate_result(job, False, "CHANUNAVAIL")
        return job

    def _originate_result(self: Any, job: OriginateJob, ok: bool, status: str) -> None:
        if job.done:
            return
        job.done = True
        self._cancel(job.timer)
        if job.async_:
            ch = job.chan if ok else None
            aid = f"ActionID: {job.action_id}\r\n" if job.action_id is not None else ""
            self._emit(
                "OriginateResponse",
                CALL,
                aid
                + f"Response: {'Success' if ok else 'Failure'}\r\n"
                + f"Channel: {ch.name if ch else job.request}\r\n"
                # manager.c: an application's Originate says Application and Data
                # (the chanspy_listen captures), an extension's Context and Exten.
                + (f"Application: {job.application}\r\nData: {job.data}\r\n" if job.application
                   else f"Context: {job.context}\r\nExten: {job.exten}\r\n")
                + f"Reason: {ORIGINATE_REASON.get(status, 0)}\r\n"
                + f"Uniqueid: {ch.uniqueid if ch else '<unknown>'}\r\n"
                + f"CallerIDNum: {(ch.cid_num or '<unknown>') if ch else '<unknown>'}\r\n"
                + f"CallerIDName: {(ch.cid_name or '<unknown>') if ch else '<unknown>'}\r\n",
            )
        if job.on_result is not None:
            job.on_result(ok)

    def _originate_answered_early(self: Any, leg: Any) -> None:
        self._originate_result(leg.owner, True, "ANSWER")

    def _originate_timeout(self: Any, job: OriginateJob) -> None:
        job.timer = None
        leg = job.leg
        if leg is not None and not leg.answered and not leg.ended:
            # The Originate's own timer: no DialEnd, cause 19 (no answer).
            self._leg_end(leg, "NOANSWER", 19, dialend=leg.kind != "originate")

    def _originate_failed(self: Any, job: OriginateJob, status: str) -> None:
        self._originate_result(job, False, status)

    def _originate_answered(self: Any, job: OriginateJob, leg: Any) -> None:
        ch = leg.chan
        ch.leg = None
        for k, v in job.variables.items():
            self._varset(ch, k, v)
        ch.pbx = True
        if job.application:
            fn = getattr(self, "_app_" + job.application.lower(), None)
            ch.app, ch.appdata = job.application, job.data
            if fn is None or fn(ch, job.data) != WAIT:
                self._pbx_end(ch)
            return
        ch.context, ch.exten, ch.priority = job.context or ch.context, job.exten, job.priority
        self._pbx_run(ch)

    # --------------------------------------------------------- Local channels

    def _new_local(self: Any, exten: str, context: str, linkedid: str | None) -> tuple[Channel, Channel]:
        self._local_seq += 1
        base = f"Local/{exten}@{context}-{self._local_seq:08x}"
        l1 = self._new_channel(base + ";1", state=0, cid=("", ""), context=context, exten=exten, linkedid=linkedid, tech="Local")
        l2 = self._new_channel(base + ";2", state=4, cid=("", ""), context=context, exten=exten, linkedid=l1.linkedid, tech="Local")
        l1.local_peer, l2.local_peer = l2, l1
        return l1, l2

    def _local_fail(self: Any, l1: Channel, l2: Channel) -> None:
        """A Local channel to an extension that does not exist: both halves go at once."""
        l1.local_peer = l2.local_peer = None
        self._destroy(l2, 0)
        self._destroy(l1, 0)

    def _local_ringing(self: Any, l2: Channel, callee: Channel) -> None:
        l1 = l2.local_peer
        if l1 is None or l1.gone or l1.state != 0:
            return
        self._set_state(l1, 5)
        self._set_callerid(l1, callee.cid_num, callee.cid_name)
        self._set_dev(l1.name.rsplit("-", 1)[0], "INUSE")
        self._emit("DialState", CALL, channel_block(l1, "Dest") + "DialStatus: RINGING\r\n")

    def _local_answered(self: Any, l2: Channel) -> None:
        l1 = l2.local_peer
        if l1 is not None and l1.leg is not None and not l1.leg.answered:
            self._leg_answer(l1.leg)

    def _local_leg_answered(self: Any, leg: Any) -> None:
        owner = leg.owner
        if isinstance(owner, OriginateJob):
            self._originate_result(owner, True, "ANSWER")
            self._originate_answered(owner, leg)

    def _local_leg_failed(self: Any, leg: Any, status: str) -> None:
        owner = leg.owner
        if isinstance(owner, OriginateJob):
            self._originate_result(owner, False, status)
        elif isinstance(owner, AtxferJob):
            self._atxfer_abort(owner)

    def _local_hangup_hook(self: Any, ch: Channel) -> bool:
        """A consultation Local;1 hangs up: the attended transfer is aborted."""
        leg = ch.leg
        if leg is not None and isinstance(leg.owner, AtxferJob) and leg.owner.active:
            if not leg.answered:
                self._leg_end(leg, "CANCEL", 16)
            else:
                self._atxfer_abort(leg.owner)
            return True
        return False

    # ------------------------------------------------------ attended transfer

    def atxfer(self: Any, ch: Channel, exten: str, context: str) -> None:
        """The ``Atxfer`` feature on ``ch``: consult ``exten@context`` while the
        other party hears music on hold; hanging ``ch`` up completes it."""
        b1 = ch.bridge
        if b1 is None or ch.hold_owner is not None:
            return
        exten, context = clean(exten), clean(context)
        others = [c for c in b1.channels if c is not ch]
        self._chan_ev("Hold", ch)
        l1, l2 = self._new_local(exten, context, ch.linkedid)
        if not self.dialplan.exists(context, exten):
            self._local_fail(l1, l2)
            self._chan_ev("Unhold", ch)
            return
        b2 = self._bridge_create()
        for o in others:
            self._moh_start(o)
        self._set_callerid(l2, ch.cid_num, ch.cid_name)
        self._emit(
            "LocalBridge",
            CALL,
            channel_block(l1, "LocalOne") + channel_block(l2, "LocalTwo") + f"Context: {context}\r\nExten: {exten}\r\nLocalOptimization: Yes\r\n",
        )
        self._set_connected(l1, ch.cid_num, ch.cid_name)
        self._bridge_enter(b2, l1)
        self._bridge_leave(ch)
        self._bridge_enter(b2, ch)
        self._set_connected(ch, "", "")
        job = AtxferJob(ch, others, b1, b2, l1, l2)
        ch.hold_owner = job
        l1.leg = Leg("local", None, l1, None, job, f"{exten}@{context}", self.now())
        self._varset(l2, "TRANSFERERNAME", ch.name)
        self._later(self.atxfer_noanswer_timeout, self._atxfer_noanswer, job, chan=l1)
        self._pbx_start(l2)

    def _atxfer_noanswer(self: Any, job: AtxferJob) -> None:
        leg = job.l1.leg
        if job.active and leg is not None and not leg.answered:
            self._atxfer_abort(job)

    def _atxfer_transferer_gone(self: Any, job: AtxferJob, ch: Channel) -> None:
        """The transferer hung up while consulting: the transfer completes."""
        ch.hold_owner = None
        others = [o for o in job.others if not o.gone]
        if not job.active or job.l1.gone or job.b1.id not in self.bridges or not others:
            job.active = False
            self._hangup(ch, "ami")
            return
        job.active = False
        b1, b2, l1 = job.b1, job.b2, job.l1
        if not job.swapped:
            self._bridge_leave(ch)
        self._emit("BridgeMerge", CALL, bridge_block(b1, "To") + bridge_block(b2, "From"))
        if l1.bridge is b2:
            self._bridge_leave(l1)
        self._bridge_enter(b1, l1)
        if job.swapped:
            # From DOUBLECHECKING the transferer is in the caller's bridge: the merge
            # (bridge_do_merge) kicks it out only after the others came in.
            self._bridge_leave(ch)
        for o in others:
            self._moh_stop(o)
            self._set_connected(o, l1.cid_num, l1.cid_name)
        self._moh_stop(l1)
        self._set_connected(l1, others[0].cid_num, others[0].cid_name)
        self._attended_transfer_event(
            "Success", job, transferee=others[0], dest=f"Bridge\r\nDestBridgeUniqueid: {b1.id}")
        for o in others:
            if isinstance(o.job, QueueEntry):
                self._queue_complete(o.job, "transfer", with_dest=True)
        l2 = job.l2
        if l2.bridge is not None:
            for c in l2.bridge.channels:
                if c is not l2:
                    self._set_connected(c, others[0].cid_num, others[0].cid_name)
        l1.leg = None
        self._bridge_destroy(b2)
        self._destroy(ch, 16)

    def _attended_transfer_event(self: Any, result: str, job: AtxferJob, *, dest: str,
                                 transferee: Channel | None = None, target: Channel | None = None,
                                 tail: str = "") -> None:
        """``AttendedTransfer`` as ``bridge_basic.c`` publishes it: the transferer (the
        same channel both times for an ``Atxfer``), its two bridges, whoever of the
        transferee and the target is known, and where the transfer went."""
        ch = job.transferer
        self._emit(
            "AttendedTransfer",
            CALL,
            f"Result: {result}\r\n"
            + channel_block(ch, "OrigTransferer")
            + bridge_block(job.b1, "Orig")
            + channel_block(ch, "SecondTransferer")
            + bridge_block(job.b2, "Second")
            + (channel_block(transferee, "Transferee") if transferee is not None else "")
            + (channel_block(target, "TransferTarget") if target is not None else "")
            + f"IsExternal: No\r\nDestType: {dest}\r\n" + tail,
        )

    def _atxfer_transferee_gone(self: Any, gone: Channel) -> None:
        """``gone``, held for an attended transfer, hung up (``bridge_basic.c``): with
        the consultation answered, the transfer is over and the transferer and the
        target talk on in a normal bridge (no event says so); still ringing, the
        transfer fails (``AttendedTransfer`` Result Fail) and Asterisk hangs the
        consultation up, the transferer's channel with it."""
        for ch in list(self.channels.values()):
            job = ch.hold_owner
            if not isinstance(job, AtxferJob) or not job.active or gone not in job.others:
                continue
            if any(not o.gone for o in job.others):
                continue
            job.active = False
            ch.hold_owner = None
            l1, l2 = job.l1, job.l2
            leg = l1.leg
            l1.leg = None
            if leg is not None and leg.answered:
                continue
            self._attended_transfer_event("Fail", job, target=l1, dest="Fail")
            if job.b1.id in self.bridges:
                self._bridge_destroy(job.b1)
            if leg is not None:
                leg.ended = True
            if l1.bridge is job.b2:
                self._bridge_leave(l1)
            if not l2.gone:
                self._chan_ev("HangupRequest", l2, "Cause: 16\r\n")
            if ch.bridge is job.b2:
                self._bridge_leave(ch)
            self._bridge_destroy(job.b2)
            l1.local_peer = None
            self._destroy(l1, 16)
            self._destroy(ch, 16)
            if not l2.gone:
                self._hangup(l2, "req", 16)

    def _atxfer_abort(self: Any, job: AtxferJob) -> None:
        """The consultation failed or ended: the transferer goes back to the caller."""
        if not job.active:
            return
        job.active = False
        ch, l1 = job.transferer, job.l1
        ch.hold_owner = None
        if l1.bridge is job.b2:
            self._bridge_leave(l1)
        if ch.bridge is job.b2:
            self._bridge_leave(ch)
        self._bridge_destroy(job.b2)
        if not l1.gone:
            l1.leg = None
            self._destroy(l1, 16)
        if ch.gone:
            return
        if ch.bridge is job.b1:
            return  # swapped: already with the caller (Asterisk's TRANSFER_RESUME)
        if job.b1.id in self.bridges and any(not o.gone for o in job.others):
            self._bridge_enter(job.b1, ch)
            for o in job.others:
                self._moh_stop(o)
            self._chan_ev("Unhold", ch)
        else:
            self._after_bridge(ch, "caller")

    # --------------------------------------------------------- blind transfer

    def blind_transfer(self: Any, ch: Channel, exten: str, context: str) -> None:
        """AMI ``BlindTransfer``: the other party of ``ch``'s bridge goes to ``exten@context``."""
        b = ch.bridge
        if b is None:
            raise XferError("Transfer failed")
        exten, context = clean(exten), clean(context)
        others = [c for c in b.channels if c is not ch]
        self._chan_ev("Unhold", ch)
        for o in others:
            self._varset(o, "BLINDTRANSFER", ch.name)
            if others:
                self._varset(ch, "BLINDTRANSFER", others[0].name)
        self._emit(
            "BlindTransfer",
            CALL,
            "Result: Success\r\n"
            + channel_block(ch, "Transferer")
            + (channel_block(others[0], "Transferee") if others else "")
            + bridge_block(b)
            + f"IsExternal: Yes\r\nContext: {context}\r\nExtension: {exten}\r\n",
        )
        for o in others:
            if isinstance(o.job, QueueEntry):
                self._queue_complete(o.job, "transfer", with_dest=True)
        self._bridge_leave(ch)
        for o in others:
            self._job_stop_quietly(o)
            o.context, o.exten, o.priority = context, exten, 1
            self._bridge_leave(o)
        self._bridge_destroy(b)
        self._after_bridge(ch, "transfer")
        for o in others:
            o.pbx = True
            o.leg = None
            self._pbx_run(o)

    def _job_stop_quietly(self: Any, ch: Channel) -> None:
        """End ``ch``'s application without it going on in the dialplan."""
        job = ch.job
        ch.job = None
        if isinstance(job, QueueEntry):
            if job.agent is None:
                self._queue_leave_waiting(job, abandon=False)
            else:
                self._queue_end_silently(job)
        elif isinstance(job, DialJob):
            self._dial_cancel(job)
        elif isinstance(job, WaitJob):
            self._cancel(job.timer)
        self._moh_stop(ch)

    # ------------------------------------------------------------ Redirect

    def redirect(self: Any, moves: list[tuple[Channel, str, str, int]]) -> None:
        """AMI ``Redirect`` (with ``ExtraChannel``: a dual redirect)."""
        moving = [m[0] for m in moves]
        for ch in moving:
            self._detach_leg(ch)
        bridges: list[Bridge] = []
        for ch, context, exten, priority in moves:
            self._job_stop_quietly(ch)
            ch.context, ch.exten, ch.priority = clean(context), clean(exten), priority
            if ch.bridge is not None and ch.bridge not in bridges:
                bridges.append(ch.bridge)
        for ch in moving:
            if ch.bridge is not None:
                self._bridge_leave(ch)
        for b in bridges:
            rest = [c for c in b.channels if c not in moving]
            for y in rest:
                self._bridge_leave(y)
            self._bridge_destroy(b)
            for y in rest:
                self._after_bridge(y, "caller")
        for ch in moving:
            ch.pbx = True
            ch.leg = None
            if not ch.gone:
                self._pbx_run(ch)

    def _detach_leg(self: Any, ch: Channel) -> None:
        """``ch`` is being called (ringing) and is taken away by a Redirect or a
        Bridge: the call attempt ends for whoever made it; the channel lives on."""
        leg = ch.leg
        if leg is None or leg.answered or leg.ended:
            return
        leg.ended = True
        self._dial_end(leg, "CANCEL")
        ch.leg = None
        if ch.line is not None:
            self._update_line(ch.line)
        if leg.kind == "queue":
            self._queue_leg_failed(leg.owner, leg)
        elif leg.kind == "dial":
            self._dial_failed(leg.owner, "CANCEL")
        elif leg.kind == "originate":
            self._originate_failed(leg.owner, "CANCEL")
        elif leg.kind == "local":
            self._local_leg_failed(leg, "CANCEL")

    # -------------------------------------------------------------- Bridge

    def bridge_channels(self: Any, c1: Channel, c2: Channel) -> None:
        """AMI ``Bridge``: both channels leave what they do and talk; the first
        one goes on in its dialplan afterwards."""
        for c in (c1, c2):
            self._detach_leg(c)
        for c in (c1, c2):
            self._job_stop_quietly(c)
        if c1.gone or c2.gone:
            return
        for c in (c1, c2):
            if c.bridge is not None:
                old = c.bridge
                self._bridge_leave(c)
                rest = [y for y in old.channels if y not in (c1, c2)]
                for y in rest:
                    self._bridge_leave(y)
                if not old.channels:
                    self._bridge_destroy(old)
                for y in rest:
                    self._after_bridge(y, "caller")
        if c1.gone or c2.gone:
            return
        b = self._bridge_create()
        for c in (c1, c2):
            self._job_stop_quietly(c)
            c.priority += 1
            c.leg = None
            if c.state != 6:
                self._set_state(c, 6)
            self._bridge_enter(b, c)
        c1.pbx = True
        c2.pbx = False
