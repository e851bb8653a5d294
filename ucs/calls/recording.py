"""Recording calls: Asterisk's MixMonitor started and stopped by UCS.

What is recorded is the **agent's channel** — everything the agent's phone
sends and hears (MixMonitor mixes both directions of one channel).  That is
the conversation a contact center keeps: the agent with the caller, and with
whoever the agent consults; the caller's music on hold is not in it.  A
recording ends when the agent stops it, or when the agent's channel hangs up
(after a transfer the agent is no longer in the call, and neither is the
recording).  Why not Asterisk's own queue option (``queues.conf``
``monitor-type = MixMonitor``): UCS would not know the file's name, could not
record calls from the bar that did not come through a queue, and the setting
would live in two places.  A queue whose directory entry has ``record: true``
is recorded from its ``AgentConnect`` on, by the same action.

The AMI (app_mixmonitor.c, Asterisk 20): ``MixMonitor`` with ``Channel``,
``File`` (absolute: ``[recording] directory``) and ``Options: i(UCS_MIXMON_ID)``
answers ``Success`` with ``MixMonitorID``; ``MixMonitorStart`` follows on the
channel.  ``StopMixMonitor`` (``Channel``, ``MixMonitorID``) closes the file and
sends ``MixMonitorStop``; a hangup sends nothing.  The PBX model keeps
``Channel.recording``, the call tracker ``Call.recording`` and ``Call.recorded``;
here each recording UCS starts is added to ``Call.recordings``
(``{"file", "channel", "started", "stopped"}``), which the CDR keeps in its
``data``.  ``file`` is a bare name (``ucs-<call>-<leg>-<n>.wav``, digits and
dots only from the uniqueids), so that serving it can never leave the
recordings' directory (:func:`local_path`).
"""

from __future__ import annotations

import os
import re
from typing import Any

from twisted.internet.defer import Deferred

from ucs.calls.call import Call
from ucs.calls.control_base import ActionRefused, ControlBase, line_device
from ucs.directory.model import Line
from ucs.error import InvalidState, NotFound, PBXError
from ucs.pbx.model import STATE_UP, Channel

#: The channel variable MixMonitor's ``i()`` option sets to the recording's id.
ID_VARIABLE = "UCS_MIXMON_ID"

#: What a recording's file name may be: nothing that could name another directory.
FILE_NAME = re.compile(r"ucs-[0-9A-Za-z_.-]{1,120}\.(wav|WAV|gsm)\Z")


def local_path(directory: str, name: str) -> str:
    """The file ``name`` in ``directory``, or :class:`NotFound` when ``name`` is not
    a recording's name (a path, ``..``) or the file is not there."""
    if not FILE_NAME.match(name) or name.startswith("."):
        raise NotFound(f"{name!r} is not a recording's file name")
    path = os.path.join(directory, name)
    if os.path.dirname(os.path.abspath(path)) != os.path.abspath(directory):
        raise NotFound(f"{name!r} is not a recording's file name")
    if not os.path.isfile(path):
        raise NotFound(f"the recording {name} is not (or not yet) in {directory}")
    return path


class Recording(ControlBase):
    """``record`` / ``stop_record`` of :class:`~ucs.calls.control.CallControl`, and
    recording the queues that say so."""

    #: ``[recording] directory``, format and extra options (``ucs.server`` sets them).
    record_directory: str = "/var/spool/asterisk/monitor/ucs"
    record_format: str = "wav"
    record_options: str = ""

    async def record(self, line: Line | str) -> Call:
        """Start recording the call on the agent's phone; resolves once Asterisk
        says it records (``MixMonitorStart``)."""
        device = line_device(line)
        with self._line_busy(device, "record"):
            ch = self._current(device)
            if ch.state != STATE_UP:
                raise InvalidState(f"the call on {device} is not answered yet: record it once it is")
            if ch.recording:
                raise InvalidState(f"the call on {device} is already being recorded")
            return await self._start_recording(ch, self._call_of(ch, device), device)

    async def stop_record(self, line: Line | str) -> Call:
        """Stop recording the call on the agent's phone (the file is complete then)."""
        device = line_device(line)
        with self._line_busy(device, "stopRecord"):
            ch = next((c for c in reversed(self._channels(device)) if c.recording), None)
            if ch is None:
                if not self._channels(device):
                    raise InvalidState(f"there is no call on {device}")
                raise InvalidState(f"the call on {device} is not being recorded")
            call = self._call_of(ch, device)
            entry = next((r for r in reversed(call.recordings) if r["channel"] == ch.name and r["stopped"] is None), None)
            headers: dict[str, object] = {"Channel": ch.name}
            if entry is not None and entry.get("id"):
                headers["MixMonitorID"] = entry["id"]

            def stopped() -> Call | None:
                return call if not ch.recording or ch.uniqueid not in self._pbx.channels else None

            result = await self._do("StopMixMonitor", headers, stopped, f"Asterisk stops recording {ch.name}")
            if entry is not None:
                entry["stopped"] = self.clock.seconds()
            self._tracker.touch(call)
            return result

    async def _start_recording(self, ch: Channel, call: Call, device: str) -> Call:
        name = f"ucs-{call.uniqueid}-{ch.uniqueid}-{len(call.recordings) + 1}.{self.record_format}"
        name = re.sub(r"[^0-9A-Za-z_.-]", "_", name)
        options = f"{self.record_options}i({ID_VARIABLE})"

        def started() -> Call | None:
            if ch.uniqueid not in self._pbx.channels:
                raise PBXError(f"the call on {device} ended before Asterisk started recording it")
            return call if ch.recording else None

        exp = self._confirm.expect(started, f"Asterisk records {ch.name} (MixMonitorStart)")
        try:
            reply = await self._send("MixMonitor", {
                "Channel": ch.name, "File": f"{self.record_directory}/{name}", "Options": options,
            })
        except ActionRefused as e:
            exp.cancel()
            raise PBXError(f"Asterisk did not record {ch.name}: {e.asterisk_message} "
                           "(is app_mixmonitor loaded, and may Asterisk write to "
                           f"{self.record_directory}?)") from None
        except BaseException:
            exp.cancel()
            raise
        entry: dict[str, Any] = {"file": name, "channel": ch.name, "started": self.clock.seconds(),
                                 "stopped": None, "id": _get(reply, "MixMonitorID")}
        call.recordings.append(entry)
        call.recorded = True
        try:
            return await exp.wait(self.confirm_timeout)
        finally:
            self._tracker.touch(call)

    def queue_answered(self, queue_name: str, agent: Channel | None) -> None:
        """An agent answered a call of ``queue_name`` (``AgentConnect``): record it
        when the directory's queue says ``record``."""
        directory: Any = self.directory
        find = getattr(directory, "queue_by_asterisk_name", None)
        queue = find(queue_name) if find is not None else None
        if queue is None or not getattr(queue, "record", False) or agent is None or agent.recording:
            return
        call = self._tracker.call_of(agent.uniqueid)
        if call is None:
            return
        d = Deferred.fromCoroutine(self._start_recording(agent, call, agent.device))
        d.addErrback(lambda f: self.log.error("recording the call {uniqueid} of queue {queue} failed: {error}",
                                              uniqueid=call.uniqueid, queue=queue_name, error=f.getErrorMessage()))


def _get(reply: Any, key: str) -> str:
    try:
        return str(reply.get(key) or "")
    except AttributeError:
        return ""
