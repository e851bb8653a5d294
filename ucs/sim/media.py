"""The far end's media of a simulated WebRTC line: a real WebRTC stack (aiortc:
ICE, DTLS-SRTP, RTP) that sends a tone and counts what it receives.

aiortc runs on asyncio; UCS and the simulator run on Twisted's reactor, which
may be any reactor.  So the media run on their own asyncio loop, in one thread
owned by :class:`MediaLoop`; the reactor's side only ever gets Deferreds (the
coroutine's result is handed back with ``reactor.callFromThread``), so the
reactor never waits for ICE or DTLS.  A :class:`MediaPeer`'s methods are
coroutines for that loop, never called from the reactor's thread.
"""

from __future__ import annotations

import array
import asyncio
import fractions
import math
import re
import struct
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet.defer import Deferred

#: The tone the simulated phone plays: 8 kHz mono, 20 ms frames.
RATE = 8000
FRAME = 160
TONE_HZ = 440.0


def _needs_aiortc() -> None:
    try:
        import aiortc  # noqa: F401
    except ImportError as e:  # pragma: no cover - the test extra installs it
        raise RuntimeError("the simulator's WebRTC lines need aiortc (pip install 'ucs[webrtc]')") from e


class MediaLoop:
    """One asyncio loop in one daemon thread, for every WebRTC call of a simulator."""

    def __init__(self, reactor: Any) -> None:
        _needs_aiortc()
        self.reactor = reactor
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="ucs.sim media", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Deferred[Any]:
        """Run ``coro`` on the media loop; its result (or error) fires the Deferred in the reactor."""
        d: Deferred[Any] = Deferred()
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)

        def done(f: Any) -> None:
            exc = f.exception()
            if exc is not None:
                self.reactor.callFromThread(d.errback, exc)
            else:
                self.reactor.callFromThread(d.callback, f.result())

        future.add_done_callback(done)
        return d

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)


def _tone_track() -> Any:
    from aiortc import MediaStreamTrack
    from av import AudioFrame

    class ToneTrack(MediaStreamTrack):
        """A 440 Hz tone in real time: what the agent hears from the simulated caller."""

        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self._pts = 0
            self._start: float | None = None
            amplitude = 8000
            samples = [int(amplitude * math.sin(2 * math.pi * TONE_HZ * i / RATE)) for i in range(RATE // 10)]
            self._pcm = b"".join(s.to_bytes(2, "little", signed=True) for s in samples)

        async def recv(self) -> Any:
            loop = asyncio.get_running_loop()
            if self._start is None:
                self._start = loop.time()
            wait = self._start + self._pts / RATE - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            frame = AudioFrame(format="s16", layout="mono", samples=FRAME)
            offset = (self._pts * 2) % len(self._pcm)
            chunk = (self._pcm + self._pcm)[offset:offset + FRAME * 2]
            frame.planes[0].update(chunk)
            frame.sample_rate = RATE
            frame.pts = self._pts
            frame.time_base = fractions.Fraction(1, RATE)
            self._pts += FRAME
            return frame

    return ToneTrack()


#: The codecs the simulated endpoint allows: the lab's ``webrtc1`` has ``allow=ulaw``.
CODECS = ("audio/PCMU",)

#: The payload type Asterisk gives telephone-event/8000 in its offers (rtp_engine's
#: static mapping: ``AST_RTP_DTMF`` is 101).  ``webrtc1`` has no ``dtmf_mode``, so
#: res_pjsip's default, ``rfc4733``: keys are telephone-events in the call's RTP.
TELEPHONE_EVENT_PT = 101

#: How far back :attr:`MediaPeer.level` looks: Chromium's fake microphone beeps
#: about every half second, so a second always holds a beep unless it is muted.
LEVEL_WINDOW = 1.0

#: RFC 4733 event codes -> keys, as res_rtp_asterisk reads them (16, a flash, is no key).
_KEYS = "0123456789*#ABCD"


def with_telephone_event(sdp: str, pt: int) -> str:
    """``sdp`` with telephone-event/8000 (events 0-16) as payload type ``pt`` in its audio
    section, as Asterisk puts it in an SDP for an endpoint with ``dtmf_mode=rfc4733``.

    aiortc knows no telephone-event codec, so its SDP never has one; without it a
    browser's ``RTCDTMFSender.canInsertDTMF`` is false."""
    lines = sdp.split("\r\n")
    out: list[str] = []
    in_audio = False
    added = False
    for i, line in enumerate(lines):
        if line.startswith("m="):
            in_audio = line.startswith("m=audio ")
            if in_audio:
                line += f" {pt}"
        out.append(line)
        if in_audio and not added and line.startswith("a=rtpmap:"):
            following = lines[i + 1] if i + 1 < len(lines) else ""
            if not following.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
                out += [f"a=rtpmap:{pt} telephone-event/8000", f"a=fmtp:{pt} 0-16"]
                added = True
    return "\r\n".join(out)


def telephone_event_pt(sdp: str) -> int | None:
    """The payload type of telephone-event/8000 in ``sdp`` (a browser's offer), if any."""
    m = re.search(r"^a=rtpmap:(\d+) telephone-event/8000\s*$", sdp, re.M | re.I)
    return int(m.group(1)) if m else None


def frame_rms(pcm: bytes) -> float:
    """The RMS of 16-bit little-endian mono samples, 0 (silence) to 1 (full scale)."""
    samples = array.array("h", pcm)
    if not samples:
        return 0.0
    return math.sqrt(sum(x * x for x in samples) / len(samples)) / 32768.0


class RFC4733Reader:
    """The keys in a stream of RFC 4733 telephone-event payloads, read as res_rtp_asterisk
    reads them (``process_dtmf_rfc2833``, without DTMF compensation): a key begins at the
    first packet of a new event, ends at the first end-bit packet whose timestamp is newer
    than the last end's (the two repeats of an end are dropped); a begin while another
    key is going on ends that one first.  ``on_key(end, key, duration_ms)``."""

    def __init__(self, on_key: Callable[[bool, str, int], None]) -> None:
        self._on_key = on_key
        self._key = ""
        self._samples = 0
        self._last_end_ts: int | None = None
        self._last_seq: int | None = None

    def packet(self, seq: int, timestamp: int, payload: bytes) -> None:
        if len(payload) < 4:
            return
        event, flags, samples = struct.unpack("!BBH", payload[:4])
        if event >= len(_KEYS):
            return
        key = _KEYS[event]
        if flags & 0x80:
            if seq != self._last_seq and (self._last_end_ts is None or timestamp > self._last_end_ts):
                self._last_end_ts = timestamp
                self._key, self._samples = "", 0
                self._on_key(True, key, samples // 8)
        else:
            if self._last_end_ts is not None and timestamp <= self._last_end_ts:
                return  # late packets of a key already ended
            if self._key and self._key != key:
                self._on_key(True, self._key, self._samples // 8)
                self._key = ""
            if not self._key:
                self._key = key
                self._on_key(False, key, 0)
            self._samples = samples
        self._last_seq = seq


class MediaPeer:
    """One call's WebRTC peer: offers or answers, sends the tone, counts packets in,
    measures how loud what it hears is, and reads the keys sent in the RTP.

    :param on_key: called (in the media loop's thread) with ``(end, key, duration_ms)``
        for each telephone-event key's begin and end.
    """

    def __init__(self, codecs: tuple[str, ...] = CODECS,
                 on_key: Callable[[bool, str, int], None] | None = None) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender

        # No STUN or TURN: the browser and the simulator share a host (a default
        # configuration would ask Google's STUN server).
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(_tone_track())
        allowed = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType in codecs]
        for t in self.pc.getTransceivers():
            t.setCodecPreferences(allowed)
        self.pc.on("track", self._on_track)
        self.frames_received = 0
        self._readers: list[asyncio.Task[None]] = []
        #: (loop time, RMS) of the frames heard in the last :data:`LEVEL_WINDOW` seconds.
        self._levels: deque[tuple[float, float]] = deque()
        self._keys = RFC4733Reader(on_key or (lambda end, key, ms: None))
        #: The telephone-event payload type agreed with the browser (None: no DTMF in RTP).
        self.dtmf_pt: int | None = None
        self._tapped: set[int] = set()

    def _on_track(self, track: Any) -> None:
        self._readers.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await track.recv()
                self.frames_received += 1
                now = loop.time()
                self._levels.append((now, frame_rms(bytes(frame.planes[0])[:frame.samples * 2])))
                while self._levels and self._levels[0][0] < now - LEVEL_WINDOW:
                    self._levels.popleft()
        except MediaStreamError:
            return

    @property
    def level(self) -> float:
        """How loud the browser's audio is: the loudest 20 ms frame (RMS, 0 to 1) of
        the last :data:`LEVEL_WINDOW` seconds; 0 when nothing was heard then."""
        loop = asyncio.get_running_loop()
        recent = [rms for t, rms in self._levels if t >= loop.time() - LEVEL_WINDOW]
        return max(recent, default=0.0)

    def _tap(self) -> None:
        """Read the telephone-events before aiortc drops them.

        aiortc's RTP router hands a packet to a receiver only if its payload type is
        one of the negotiated codecs, and aiortc has no telephone-event codec: an
        RFC 4733 packet is discarded unseen.  So each DTLS transport's decrypted RTP
        (``_handle_rtp_data``, the one place that sees every packet after SRTP and
        before the router) goes through this peer first: the agreed telephone-event
        payload type is read here, everything else goes on untouched.  The wrapper is
        on this peer's own transport objects only."""
        for t in self.pc.getTransceivers():
            transport = t.receiver.transport
            if transport is None or id(transport) in self._tapped:
                continue
            self._tapped.add(id(transport))
            handle = transport._handle_rtp_data

            async def tapped(data: bytes, arrival_time_ms: int, handle: Any = handle) -> None:
                if self.dtmf_pt is not None and len(data) >= 12 and data[1] & 0x7F == self.dtmf_pt:
                    self._telephone_event(data)
                    return
                await handle(data, arrival_time_ms)

            transport._handle_rtp_data = tapped  # type: ignore[method-assign]  # deliberately, see above

    def _telephone_event(self, data: bytes) -> None:
        from aiortc.rtp import RtpPacket

        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            return
        self._keys.packet(packet.sequence_number, packet.timestamp, packet.payload)

    async def offer(self) -> str:
        """An SDP offer with every ICE candidate in it (aiortc gathers before answering),
        and telephone-event/8000 as Asterisk offers it."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self._tap()
        return with_telephone_event(str(self.pc.localDescription.sdp), TELEPHONE_EVENT_PT)

    async def accept(self, sdp: str) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self._tap()
        self.dtmf_pt = telephone_event_pt(sdp)

    async def answer(self, sdp: str) -> str:
        """The answer to a browser's offer: its telephone-event/8000 accepted (its
        payload type), as res_pjsip does for an ``rfc4733`` endpoint."""
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._tap()
        answer = str(self.pc.localDescription.sdp)
        pt = telephone_event_pt(sdp)
        if pt is not None:
            self.dtmf_pt = pt
            answer = with_telephone_event(answer, pt)
        return answer

    async def reoffer(self, sdp: str) -> str:
        """Answer a re-INVITE's offer (hold, unhold) on the same connection."""
        return await self.answer(sdp)

    async def stats(self) -> dict[str, Any]:
        """RTP packets received from the browser and sent to it, how loud the browser's
        audio is now (``level``, :attr:`level`), and the DTLS state."""
        report = await self.pc.getStats()
        out: dict[str, Any] = {"packets_received": 0, "packets_sent": 0, "frames_received": self.frames_received,
                               "level": self.level}
        for s in report.values():
            if s.type == "inbound-rtp":
                out["packets_received"] += s.packetsReceived
            elif s.type == "outbound-rtp":
                out["packets_sent"] += s.packetsSent
        out["dtls"] = self._dtls_state()
        out["connection"] = self.pc.connectionState
        return out

    def _dtls_state(self) -> str:
        for t in self.pc.getTransceivers():
            transport = t.receiver.transport
            if transport is not None:
                return str(transport.state)
        return ""

    async def close(self) -> None:
        for r in self._readers:
            r.cancel()
        await self.pc.close()
