"""``MixMonitor`` and ``StopMixMonitor`` on the simulated PBX, as app_mixmonitor.c of Asterisk 20 does them.

The AMI ``MixMonitor`` action runs the application on the channel: the file
name is made absolute under the monitor directory when relative
(``filename_parse``), ``MIXMONITOR_FILENAME`` is set, the ``i(VAR)`` option
sets ``VAR`` to the recording's id (Asterisk prints the datastore's address,
``0x…``), ``MixMonitorStart`` is published and the response carries
``MixMonitorID`` when ``i()`` was given (the response comes first, then the
``VarSet`` events, ``MixMonitorStart``, and on a bridged channel ``BRIDGEPEER``
and ``BRIDGEPVTCALLID`` set again on both sides: the ``record_call``
captures).  ``StopMixMonitor`` closes the file
and publishes ``MixMonitorStop``; a channel that hangs up ends its recordings
with no event at all.  Errors: ``No channel specified``, ``No such channel``,
``Could not stop monitoring channel`` (nothing recording, or no such id).

The simulator writes a short silent WAV (8 kHz, 16-bit mono, one second per
second the recording ran, at most ten) where Asterisk would have written the
file, so that fetching a recording is real in tests; a directory it cannot
write to is logged, as Asterisk logs it, and the recording still "runs".
"""

from __future__ import annotations

import logging
import os
import re
import struct
from typing import TYPE_CHECKING, Any

from ucs.sim.model import Channel
from ucs.sim.respond import ActionMessage

if TYPE_CHECKING:  # pragma: no cover
    from ucs.sim.server import AMISession

log = logging.getLogger(__name__)

#: Asterisk's ``ast_config_AST_MONITOR_DIR`` default; :attr:`Sim.monitor_dir` overrides it.
MONITOR_DIR = "/var/spool/asterisk/monitor"

_UID_OPTION = re.compile(r"i\(([^)]*)\)")


class Recording:
    __slots__ = ("file", "id", "started")

    def __init__(self, id: str, file: str, started: float) -> None:
        self.id, self.file, self.started = id, file, started


def wav_bytes(seconds: float) -> bytes:
    """A silent 8 kHz 16-bit mono WAV of ``seconds`` (at least 0.1 s, at most 10)."""
    samples = int(8000 * min(10.0, max(0.1, seconds)))
    data = b"\x00\x00" * samples
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" + struct.pack("<I", len(data))
    return header + data


def recordings(ch: Channel) -> list[Recording]:
    return ch.mixmonitors  # type: ignore[no-any-return]


def close(ch: Channel, rec: Recording, now: float) -> None:
    """The file is complete: written (silence as long as the recording ran)."""
    try:
        os.makedirs(os.path.dirname(rec.file), exist_ok=True)
        with open(rec.file, "wb") as f:
            f.write(wav_bytes(now - rec.started))
    except OSError as e:
        log.warning("sim MixMonitor: cannot write %s for %s: %s", rec.file, ch.name, e)


def close_all(ch: Channel, now: float) -> None:
    """The channel hung up: its recordings end with it (Asterisk sends no MixMonitorStop)."""
    recs, ch.mixmonitors = ch.mixmonitors, []
    for rec in recs:
        close(ch, rec, now)


class MixMonitorActions:
    """``a_mixmonitor`` and ``a_stopmixmonitor``, mixed into :class:`ucs.sim.actions.Actions`."""

    sim: Any

    def a_mixmonitor(self, s: AMISession, m: ActionMessage) -> bytes:
        name = m.get("channel")
        if not name:
            return self.error(m, "No channel specified")  # type: ignore[attr-defined,no-any-return]
        c = self._channel(name)  # type: ignore[attr-defined]
        if c is None:
            return self.error(m, "No such channel")  # type: ignore[attr-defined,no-any-return]
        file = m.get("file") or ""
        options = m.get("options") or ""
        if not file:
            # "MixMonitor requires an argument (filename)": mixmonitor_exec fails.
            return self.error(m, "Could not start monitoring channel")  # type: ignore[attr-defined,no-any-return]
        sim = self.sim
        if not file.startswith("/"):
            file = f"{getattr(sim, 'monitor_dir', None) or MONITOR_DIR}/{file}"
        sim._varset(c, "MIXMONITOR_FILENAME", file)
        rec_id = f"0x{0x7f0000000000 + sim.random.randrange(1 << 32) * 16:x}"
        uid = _UID_OPTION.search(options)
        if uid and uid.group(1):
            sim._varset(c, uid.group(1), rec_id)
        recordings(c).append(Recording(rec_id, file, sim.now()))
        sim._chan_ev("MixMonitorStart", c)
        if c.bridge is not None:
            # The audiohook makes the bridge re-pick its technology (native RTP cannot
            # carry one): both channels' BRIDGEPEER/BRIDGEPVTCALLID are set again.
            sim._bridge_peer_vars(c.bridge)
        extra = [("MixMonitorID", rec_id)] if uid and uid.group(1) else []
        return self.ok(m, None, *extra)  # type: ignore[attr-defined,no-any-return]

    def a_stopmixmonitor(self, s: AMISession, m: ActionMessage) -> bytes:
        name = m.get("channel")
        if not name:
            return self.error(m, "No channel specified")  # type: ignore[attr-defined,no-any-return]
        c = self._channel(name)  # type: ignore[attr-defined]
        if c is None:
            return self.error(m, "No such channel")  # type: ignore[attr-defined,no-any-return]
        wanted = m.get("mixmonitorid") or ""
        recs = recordings(c)
        found = next((r for r in recs if not wanted or r.id == wanted), None)
        if found is None:
            return self.error(m, "Could not stop monitoring channel")  # type: ignore[attr-defined,no-any-return]
        recs.remove(found)
        close(c, found, self.sim.now())
        self.sim._chan_ev("MixMonitorStop", c)
        return self.ok(m)  # type: ignore[attr-defined,no-any-return]
