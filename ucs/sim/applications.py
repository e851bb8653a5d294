"""The dialplan's applications: the interpreter that runs a channel's
dialplan, ``Answer``, ``Set``, ``Goto``, ``Wait``, ``MusicOnHold``,
``Hangup``, and ``Dial`` with the legs it rings (shared with ``Queue`` and
``Originate``: ringing, answering, failing).  ``Queue`` is in
:mod:`ucs.sim.queues`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ucs.sim.dialplan import CONTINUE, END, JUMP, WAIT, substitute
from ucs.sim.events import SimPart
from ucs.sim.model import Channel, DialJob, Leg, Line, WaitJob, draw
from ucs.sim.wire import CALL, channel_block, make_event

log = logging.getLogger("ucs.sim.pbx")


class ApplicationsMixin(SimPart):
    """The dialplan interpreter and its applications, a part of :class:`ucs.sim.pbx.Sim`."""

    # -------------------------------------------------------------- dialplan

    def _lookup_var(self, ch: Channel, name: str) -> str:
        if name == "EXTEN":
            return ch.exten
        if name == "CONTEXT":
            return ch.context
        if name == "CALLERID(num)":
            return ch.cid_num
        if name == "CALLERID(name)":
            return ch.cid_name
        if name == "UNIQUEID":
            return ch.uniqueid
        return ch.vars.get(name, self.global_vars.get(name, ""))

    def _pbx_start(self, ch: Channel) -> None:
        ch.pbx = True
        self._pbx_run(ch)

    def _pbx_next(self, ch: Channel) -> None:
        ch.job = None
        ch.priority += 1
        self._pbx_run(ch)

    def _pbx_run(self, ch: Channel) -> None:
        while not ch.gone:
            steps = self.dialplan.lookup(ch.context, ch.exten)
            if steps is None or not 1 <= ch.priority <= len(steps):
                self._pbx_end(ch)
                return
            app, data = steps[ch.priority - 1]
            data = substitute(data, lambda n: self._lookup_var(ch, n))
            self._newexten(ch, app, data)
            ch.app, ch.appdata = app, data
            fn = getattr(self, "_app_" + app.lower(), None)
            if fn is None:
                log.warning("sim: %s runs %s(%s), which the simulator does not know; skipped", ch.name, app, data)
                ch.priority += 1
                continue
            res = fn(ch, data)
            if res == CONTINUE:
                ch.priority += 1
            elif res == JUMP:
                continue
            elif res == END:
                self._pbx_end(ch)
                return
            else:
                return

    def _app_noop(self, ch: Channel, data: str) -> int:
        return CONTINUE

    def _app_set(self, ch: Channel, data: str) -> int:
        name, _, value = data.partition("=")
        if "(" in name:  # a function such as CDR(userfield): no VarSet
            ch.vars[name] = value
        else:
            self._varset(ch, name, value)
        return CONTINUE

    def _app_answer(self, ch: Channel, data: str) -> int:
        self._set_state(ch, 6)
        return CONTINUE

    def _app_hangup(self, ch: Channel, data: str) -> int:
        if data.strip().isdigit():
            ch.cause = int(data)
        return END

    def _app_goto(self, ch: Channel, data: str) -> int:
        parts = data.split(",")
        if len(parts) == 3:
            ch.context, ch.exten, ch.priority = parts[0], parts[1], int(parts[2])
        elif len(parts) == 2:
            ch.exten, ch.priority = parts[0], int(parts[1])
        else:
            ch.priority = int(parts[0])
        return JUMP

    def _app_wait(self, ch: Channel, data: str) -> int:
        try:
            secs = float(data or 0)
        except ValueError:
            secs = 0.0
        job = WaitJob(ch, "wait")
        ch.job = job
        job.timer = self._later(secs, self._wait_done, ch, job, chan=ch)
        return WAIT

    def _wait_done(self, ch: Channel, job: WaitJob) -> None:
        if ch.job is job and not ch.gone:
            self._pbx_next(ch)

    def _app_musiconhold(self, ch: Channel, data: str) -> int:
        cls, _, duration = data.partition(",")
        self._set_state(ch, 6)
        self._moh_start(ch, cls or "default")
        job = WaitJob(ch, "moh")
        ch.job = job
        if duration.strip():
            job.timer = self._later(float(duration), self._moh_done, ch, job, chan=ch)
        return WAIT

    def _moh_done(self, ch: Channel, job: WaitJob) -> None:
        if ch.job is job and not ch.gone:
            self._moh_stop(ch)
            self._pbx_next(ch)

    _app_playback = _app_noop
    _app_progress = _app_noop
    _app_ringing = _app_noop

    # ---------------------------------------------------------------- Dial()

    def _app_dial(self, ch: Channel, data: str) -> int:
        args = data.split(",")
        job = DialJob(ch, self.now())
        ch.job = job
        for target in args[0].split("&"):
            tech, _, rest = target.partition("/")
            peer, _, number = rest.partition("/")
            line = self.dial_target(tech, peer)
            if line is None or not line.reachable:
                job.statuses.append("CHANUNAVAIL")
                continue
            job.legs.append(self._dial_leg(job, line, number, rest))
        if not job.legs:
            self._varset(ch, "DIALSTATUS", "CHANUNAVAIL")
            ch.job = None
            return CONTINUE
        timeout = args[1].strip() if len(args) > 1 else ""
        if timeout:
            job.timer = self._later(float(timeout), self._dial_timeout, job, chan=ch)
        return WAIT

    def _dial_leg(self, job: DialJob, line: Line, number: str, dialstring: str) -> Leg:
        caller = job.chan
        if line.trunk:
            callee = self._new_channel(
                self._sip_name(line), state=0, cid=("", ""), context=line.context, exten="s", linkedid=caller.linkedid, line=line
            )
            callee.exten = number
            self._newexten(callee, "AppDial", "(Outgoing Line)")
            self._set_callerid(callee, number, caller.cid_name)
            self._set_connected(callee, caller.cid_num, caller.cid_name)
        else:
            callee = self._line_channel(line, caller)
            callee.exten = caller.exten
            self._newexten(callee, "AppDial", "(Outgoing Line)")
            self._set_connected(callee, caller.cid_num, caller.cid_name)
        leg = Leg("dial", caller, callee, line, job, dialstring, self.now())
        callee.leg = leg
        line.channels.append(callee)
        self._update_line(line)
        self._emit("DialBegin", CALL, channel_block(caller) + channel_block(callee, "Dest") + f"DialString: {dialstring}\r\n")
        if not line.trunk:
            self._set_connected(caller, callee.cid_num, callee.cid_name)
        self._ring(leg)
        return leg

    def _dial_timeout(self, job: DialJob) -> None:
        for leg in list(job.legs):
            if not leg.ended and not leg.answered:
                self._leg_end(leg, "NOANSWER", 16)

    def _dial_cancel(self, job: DialJob) -> None:
        self._cancel(job.timer)
        for leg in list(job.legs):
            if not leg.ended and not leg.answered:
                self._dial_end(leg, "CANCEL")
                self._destroy(leg.chan, 16)

    def _dial_answered(self, job: DialJob, leg: Leg) -> None:
        caller = job.chan
        self._cancel(job.timer)
        job.answered = leg
        for other in job.legs:
            if other is not leg and not other.ended:
                self._dial_end(other, "CANCEL")
                self._destroy(other.chan, 26)
        if caller.state != 6:
            self._set_state(caller, 6)
        elapsed = self.now() - job.started
        self._varset(caller, "DIALEDPEERNAME", leg.chan.name)
        self._varset(caller, "DIALEDPEERNUMBER", leg.dialstring)
        self._varset(caller, "RINGTIME", str(int(elapsed)))
        b = self._bridge_create()
        callee = leg.chan
        callee.exten = ""
        self._newexten(callee, "AppDial", "(Outgoing Line)")
        self._bridge_enter(b, callee)
        self._bridge_enter(b, caller)

    def _dial_failed(self, job: DialJob, status: str) -> None:
        job.statuses.append(status)
        if any(not leg.ended for leg in job.legs):
            return
        ch = job.chan
        if ch.job is not job or ch.gone:
            return
        self._cancel(job.timer)
        final = "BUSY" if "BUSY" in job.statuses else job.statuses[-1]
        if final == "BUSY":
            ch.cause = 17  # Dial passes the called side's cause on to the caller
        self._varset(ch, "DIALSTATUS", final)
        self._pbx_next(ch)

    # ------------------------------------------------------------------ legs

    def _dial_end(self, leg: Leg, status: str) -> None:
        caller = leg.caller
        head = channel_block(caller) if caller is not None and leg.kind != "local" else ""
        self._emit("DialEnd", CALL, head + channel_block(leg.chan, "Dest") + f"DialStatus: {status}\r\n")

    def _ring(self, leg: Leg) -> None:
        """The called endpoint got the INVITE: it rings, or says busy at once."""
        line = leg.line
        assert line is not None
        if line.driver is not None:  # a real phone: it rings when it says so (180)
            line.driver.invite(leg)
            return
        b = line.behaviour
        ch = leg.chan
        if b.busy:
            self._later(0.05, self._refused, leg, "BUSY", 17, chan=ch)
            return
        if b.not_found:
            self._later(0.05, self._not_found, leg, chan=ch)
            return
        if b.decline:
            if ch.tech == "PJSIP":
                self._later(0.05, self._refused, leg, "NOANSWER", 21, chan=ch)
            else:
                self._refused(leg, "BUSY", 21)
            return
        if b.silent:
            delay = draw(b.answer_after, self.random)
            if delay is not None:
                self._later(delay, self._leg_answer, leg, chan=ch)
            return
        self._ringing(leg)

    def _ringing(self, leg: Leg) -> None:
        """The called phone rings (its 180): the channel is Ringing, the caller hears it."""
        line = leg.line
        assert line is not None
        ch = leg.chan
        if leg.ended or leg.answered or ch.state == 5:
            return
        self._set_state(ch, 5)
        caller = leg.caller
        if leg.kind == "queue" and caller is not None:
            self._newexten(ch, "AppQueue", "(Outgoing Line)")
            self._chan_ev("NewConnectedLine", ch)
        head = channel_block(caller) if caller is not None else ""
        dialstate = make_event("DialState", CALL, head + channel_block(ch, "Dest") + "DialStatus: RINGING\r\n")
        if self._ring_batch is not None:
            self._ring_batch.append(dialstate)
        elif self._subs or self._held is not None:
            self._dispatch(dialstate)
        if caller is not None and caller.tech == "Local" and caller.local_peer is not None:
            self._local_ringing(caller, ch)
        if caller is not None and caller.line is not None and caller.line.driver is not None:
            caller.line.driver.channel_ringing(caller)  # the caller's own phone hears it ring (180)
        if not line.trunk and line.tech == "SIP":
            self._set_dev(line.device, self._line_state(line), force=True)
        delay = draw(line.behaviour.answer_after, self.random)
        if delay is not None:
            self._later(delay, self._leg_answer, leg, chan=ch)

    def _refused(self, leg: Leg, status: str, cause: int) -> None:
        """The phone answered the INVITE with a final error (486 Busy, 603 Decline).

        chan_pjsip hangs its channel up on it (``HangupRequest``); for a 603 the
        caller then sees a hangup, not a busy signal (``NOANSWER``).
        """
        if leg.ended or leg.answered:
            return
        if leg.chan.tech == "PJSIP":
            self._chan_ev("HangupRequest", leg.chan)
        self._leg_end(leg, status, cause, rna=True)

    def _not_found(self, leg: Leg) -> None:
        """404 Not Found: the called channel asks to hang up with cause 1 (unallocated
        number), Dial() says NOANSWER (chan_sip), and the caller's channel ends with the
        called side's cause, as the matrix's ``sip_click_to_dial_not_found`` shows."""
        if leg.ended or leg.answered:
            return
        self._chan_ev("HangupRequest", leg.chan, "Cause: 1\r\n")
        if leg.caller is not None:
            leg.caller.cause = 1
        self._leg_end(leg, "NOANSWER", 1)

    def ring_all(self, legs: Callable[[], None]) -> None:
        """Call several phones at once (``Queue`` ringall): each ``DialState
        RINGING`` comes after all of them were called and the ones that
        refused at once were dealt with, as app_queue reads the answers in its
        wait loop only after placing every call."""
        outer = self._ring_batch
        self._ring_batch = batch = [] if outer is None else outer
        try:
            legs()
        finally:
            if outer is None:
                self._ring_batch = None
                for ev in batch:
                    self._dispatch(ev)

    def _leg_answer(self, leg: Leg) -> None:
        if leg.answered or leg.ended or leg.chan.gone:
            return
        leg.answered = True
        ch = leg.chan
        if leg.line is not None:
            self._update_line(leg.line)
        self._set_state(ch, 6)
        self._dial_end(leg, "ANSWER")
        if leg.kind == "originate":
            # After the channel's Newstate Up and DialEnd, as in the click_to_dial
            # and chanspy_listen captures.
            self._originate_answered_early(leg)
        if leg.line is not None:
            hang = draw(leg.line.behaviour.hangup_after, self.random)
            if hang is not None:
                self._later(hang, self._phone_hangs_up, ch, chan=ch)
        if leg.kind == "queue":
            self._queue_answered(leg.owner, leg)
        elif leg.kind == "dial":
            self._dial_answered(leg.owner, leg)
        elif leg.kind == "originate":
            self._originate_answered(leg.owner, leg)
        elif leg.kind == "local":
            self._local_leg_answered(leg)

    def _phone_hangs_up(self, ch: Channel) -> None:
        if not ch.gone:
            self.bye(ch)

    def _leg_end(self, leg: Leg, status: str, cause: int, rna: bool = False, dialend: bool = True) -> None:
        """The call attempt failed: no answer, busy, cancelled.  ``dialend``:
        False when nobody reports it (an Originate giving up on its own)."""
        if leg.ended or leg.answered:
            return
        leg.ended = True
        if dialend:
            self._dial_end(leg, status)
        if leg.kind == "queue" and rna:
            self._queue_rna(leg)
        self._destroy(leg.chan, cause)
        if leg.kind == "queue":
            self._queue_leg_failed(leg.owner, leg)
        elif leg.kind == "dial":
            self._dial_failed(leg.owner, status)
        elif leg.kind == "originate":
            self._originate_failed(leg.owner, status)
        elif leg.kind == "local":
            self._local_leg_failed(leg, status)
