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

import asyncio
import fractions
import math
import threading
from collections.abc import Coroutine
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


class MediaPeer:
    """One call's WebRTC peer: offers or answers, sends the tone, counts packets in."""

    def __init__(self, codecs: tuple[str, ...] = CODECS) -> None:
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

    def _on_track(self, track: Any) -> None:
        self._readers.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                await track.recv()
                self.frames_received += 1
        except MediaStreamError:
            return

    async def offer(self) -> str:
        """An SDP offer with every ICE candidate in it (aiortc gathers before answering)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, sdp: str) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def answer(self, sdp: str) -> str:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def reoffer(self, sdp: str) -> str:
        """Answer a re-INVITE's offer (hold, unhold) on the same connection."""
        return await self.answer(sdp)

    async def stats(self) -> dict[str, Any]:
        """RTP packets received from the browser and sent to it, and the DTLS state."""
        report = await self.pc.getStats()
        out: dict[str, Any] = {"packets_received": 0, "packets_sent": 0, "frames_received": self.frames_received}
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
