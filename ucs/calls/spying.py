"""A supervisor's monitoring (ChanSpy) is not a call: it is a fact about the call monitored.

When a supervisor listens, whispers or barges in, Asterisk runs ``ChanSpy`` on a channel
of the supervisor's phone.  That channel has a Linkedid of its own, so the tracker sees
a call: an INTERNAL call of the supervisor's phone that nobody answered, ended from the
far side (cause 4) when ``E`` hangs it up.  A contact centre's reports (Cisco's, Genesys')
keep monitoring sessions apart from calls: counted as a call it would be a CDR, a line in
the supervisor's recent calls and a call in the figures of whoever the phone belongs to.

So the tracker marks that call as a monitoring session (:attr:`Call.monitoring`): the CDR
writer writes none for it, the agents' figures leave it out, the supervisor's bar shows
it as what it is.  What happened is kept on the monitored call (:attr:`Call.monitors`,
written in its CDR's ``data``): who monitored, from which phone, how, from when to when.

How the spy leg is recognised, from what Asterisk says (tests/data/ami-captures
``*_chanspy_listen``), not only from UCS's own request:

* UCS rang the phone itself (``supervisor.monitor``): :meth:`Spies.expect` before the
  ``Originate``, so the bar's very first ``call.new`` already says it is monitoring;
* the ``OriginateResponse`` of an Originate to ``Application: ChanSpy`` (anyone's: an
  operator's script) names the channel (``Uniqueid``) and the options (``Data``);
* a dialplan ``ChanSpy`` (a feature code such as ``*222``): its ``Newexten``;
* ``ChanSpyStart`` (``SpyerUniqueid``) whatever started it; ``ChanSpyStop`` ends the
  monitoring (the spy's channel may stay up without ``E``).
"""

from __future__ import annotations

import re
from typing import Any

from ucs.calls.call import Call

#: The dialplan application.
CHANSPY = "ChanSpy"

#: How long after UCS's request the supervisor's phone's channel is its monitoring: the
#: Originate's channel comes at once (it rings for up to 30 s after).
EXPECT_SECONDS = 10.0

_ARGS = re.compile(r"\([^)]*\)")


def mode_of(data: str) -> str:
    """The way of monitoring ChanSpy's arguments ask for (``<spec>,<options>``,
    apps/app_chanspy.c): ``B`` barges, ``w`` whispers, otherwise it listens."""
    options = _ARGS.sub("", data.partition(",")[2])
    if "B" in options:
        return "barge"
    if "w" in options:
        return "whisper"
    return "listen"


class Spies:
    """The tracker's bookkeeping of monitoring: what UCS asked for, what Asterisk said."""

    def __init__(self) -> None:
        #: Phones UCS is about to ring into ChanSpy: device → ``{"mode", "by", "channel"}``.
        self.expected: dict[str, dict[str, Any]] = {}
        #: A spy channel's ChanSpy arguments, once said (OriginateResponse, Newexten).
        self.data: dict[str, str] = {}
        #: A spy channel's open entry in the monitored call: spyer Uniqueid → (call, entry).
        self.open: dict[str, tuple[Call, dict[str, Any]]] = {}

    def expect(self, device: str, mode: str, by: str, channel: str, now: float) -> None:
        self.expected[device] = {"mode": mode, "by": by, "channel": channel, "at": now}

    def forget(self, device: str) -> None:
        self.expected.pop(device, None)

    def created(self, call: Call, device: str, now: float) -> None:
        """The first channel of ``call`` is up on ``device``: the monitoring UCS rang it for?
        Not when UCS asked longer ago than an Originate rings: the supervisor's next own
        call must not lose its CDR to a request Asterisk never carried out."""
        asked = self.expected.pop(device, None)
        if asked is not None and call.monitoring is None and now - asked["at"] <= EXPECT_SECONDS:
            call.monitoring = {"call": None, "channel": asked["channel"], "device": None,
                               "mode": asked["mode"], "by": asked["by"] or None}

    def mark(self, call: Call, data: str) -> bool:
        """Asterisk said the call's channel runs ChanSpy with ``data``: it is a monitoring
        session.  True when that is news."""
        if call.monitoring is not None:
            return False
        spec = data.partition(",")[0]
        call.monitoring = {"call": None, "channel": spec or None, "device": None, "mode": mode_of(data), "by": None}
        return True

    def started(self, spy: Call | None, spyer_uid: str, spyer_device: str, spyer_name: str,
                target: Call | None, spyee_name: str, spyee_device: str, now: float) -> None:
        """``ChanSpyStart``: the spy call (if tracked) is a monitoring session of
        ``target``'s channel, and ``target`` records who monitors it."""
        if spy is not None:
            if spy.monitoring is None:
                self.mark(spy, self.data.get(spyer_uid, ""))
            assert spy.monitoring is not None
            spy.monitoring.update(call=target.uniqueid if target is not None else None,
                                  channel=spyee_name, device=spyee_device)
        mode = (spy.monitoring or {}).get("mode") if spy is not None else None
        if target is None:
            return
        previous = self.open.pop(spyer_uid, None)
        if previous is not None and previous[1]["stopped"] is None:
            previous[1]["stopped"] = now  # it moved on to another channel (ChanSpy without a spec)
        entry = {"by": (spy.monitoring or {}).get("by") if spy is not None else None,
                 "device": spyer_device, "channel": spyer_name, "spied": spyee_device,
                 "mode": mode or mode_of(self.data.get(spyer_uid, "")), "started": now, "stopped": None}
        target.monitors.append(entry)
        self.open[spyer_uid] = (target, entry)

    def stopped(self, spyer_uid: str, now: float) -> Call | None:
        """``ChanSpyStop`` (or the spy's channel gone): the monitored call, its entry closed."""
        found = self.open.pop(spyer_uid, None)
        if found is None:
            return None
        if found[1]["stopped"] is None:
            found[1]["stopped"] = now
        return found[0]

    def finished(self, call: Call, now: float) -> None:
        """``call`` ended: monitoring of it, or by it, ends with it."""
        for uid in list(call.legs):
            self.data.pop(uid, None)
            self.stopped(uid, now)
        for entry in call.monitors:
            if entry["stopped"] is None:
                entry["stopped"] = now
        for uid in [u for u, (c, _) in self.open.items() if c is call]:
            del self.open[uid]

    def clear(self) -> None:
        self.data.clear()
        self.open.clear()
