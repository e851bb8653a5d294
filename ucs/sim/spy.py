"""``ChanSpy`` (apps/app_chanspy.c) as the simulated PBX runs it: a supervisor's phone,
rung by an ``Originate`` to the application ``ChanSpy(<channel prefix>,<options>)``,
listens to (``q``: quietly), whispers to (``w``) or barges into (``B``) an agent's channel.

What Asterisk shows of it, and so what the simulator emits:

* ChanSpy answers the spying channel (``Newstate`` Up) and runs as its application
  (``Newexten`` with ``Application: ChanSpy``);
* it spies on the first channel whose name starts with the prefix (not itself) and
  announces it with ``ChanSpyStart`` (``Spyer…`` and ``Spyee…`` channel snapshots);
* it ends with ``ChanSpyStop`` when the spied channel hangs up — before that channel's
  ``Hangup`` (then, with option ``E``, the spying channel's ``Hangup``, cause 16 on
  chan_sip, 0 on PJSIP; without it ChanSpy looks for another channel, here: waits) — or when the spying
  channel hangs up.  The order is Asterisk 20.21's (tests/lab/test_supervisor_lab.py).

No bridge: ChanSpy works with audiohooks, so the spy is in no bridge and the agent's
call is unchanged.  With no matching channel ChanSpy waits (Asterisk rescans every
few seconds; the simulator looks again when the spy's next chance comes: never,
which is what a wrong prefix looks like on Asterisk too).
"""

from __future__ import annotations

from typing import Any

from ucs.sim.dialplan import WAIT
from ucs.sim.model import Channel
from ucs.sim.wire import CALL, channel_block



class SpyJob:
    __slots__ = ("chan", "prefix", "options", "spyee")

    def __init__(self, chan: Channel, prefix: str, options: str) -> None:
        self.chan = chan
        self.prefix = prefix
        self.options = options
        self.spyee: Channel | None = None

    @property
    def mode(self) -> str:
        return "barge" if "B" in self.options else "whisper" if "w" in self.options else "listen"


class SpyMixin:
    def _app_chanspy(self: Any, ch: Channel, data: str) -> int:
        prefix, _, options = data.partition(",")
        if ch.state != 6:
            self._set_state(ch, 6)  # ast_answer
        job = SpyJob(ch, prefix.strip(), options.strip())
        ch.job = job
        target = next((c for c in self.channels.values()
                       if c is not ch and not c.gone and job.prefix
                       and c.name.lower().startswith(job.prefix.lower())), None)
        if target is not None:
            job.spyee = target
            self._emit("ChanSpyStart", CALL, channel_block(ch, "Spyer") + channel_block(target, "Spyee"))
        return WAIT

    def spies_of(self: Any, ch: Channel) -> list[SpyJob]:
        """The ChanSpy jobs spying on ``ch`` now."""
        return [c.job for c in self.channels.values()
                if isinstance(c.job, SpyJob) and c.job.spyee is ch and not c.gone]

    def _spies_stop(self: Any, ch: Channel) -> list[SpyJob]:
        """``ch`` is hanging up: each spy on it says ``ChanSpyStop`` (before ``ch``'s
        ``Hangup``, as Asterisk 20 does); returns the spies to end after it."""
        jobs = self.spies_of(ch)
        for job in jobs:
            self._emit("ChanSpyStop", CALL, channel_block(job.chan, "Spyer") + channel_block(ch, "Spyee"))
            job.spyee = None
        return jobs

    def _spies_exit(self: Any, jobs: list[SpyJob]) -> None:
        """After the spied channel's ``Hangup``: with ``E`` the spying channel hangs up
        (no SoftHangupRequest: ChanSpy returned, nobody set a cause; the ``Hangup``
        says 16 on chan_sip and 0 on PJSIP, as the ``chanspy_listen`` captures show);
        without it ChanSpy waits."""
        for job in jobs:
            if "E" in job.options and not job.chan.gone and job.chan.job is job:
                job.chan.job = None
                self._destroy(job.chan, 0 if job.chan.tech == "PJSIP" else 16)

    def _spy_interrupted(self: Any, job: SpyJob) -> None:
        """The spying channel hangs up (or is redirected) while spying."""
        if job.spyee is not None and not job.spyee.gone:
            self._emit("ChanSpyStop", CALL, channel_block(job.chan, "Spyer") + channel_block(job.spyee, "Spyee"))
        job.spyee = None
