"""The simulated PBX demo mode runs on, built from ``[demo]``.

Split out of ``ucs.server`` (issue 15): the container only puts it in the
service tree (before the AMI client, which then connects to it instead of
``[ami]``); what the demo's PBX is like -- phones, callers, how long a phone
rings before the simulated person answers -- is here.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from ucs.config import Config

log = Logger()

#: The demo's WebRTC line (``[demo] softphone``): the browser registers as this PJSIP
#: endpoint over the simulated PBX's SIP WebSocket (:mod:`ucs.sim.sipws`).
SOFTPHONE_DEVICE = "PJSIP/webrtc1"
SOFTPHONE_NUMBER = "2100"
SOFTPHONE_SECRET = "demo-webrtc1"


def _has_aiortc() -> bool:
    """The simulated PBX answers a browser's WebRTC with aiortc; an install without it
    (no ``[webrtc]`` extra) runs the demo without the softphone line, saying so."""
    try:
        import aiortc  # noqa: F401
    except ImportError:
        log.warn("demo: no softphone line: the simulated PBX needs aiortc for it (pip install 'ucs[webrtc]')")
        return False
    return True


def build_demo_pbx(config: Config, reactor: Any) -> Any:
    """The simulated PBX service (a ``ucs.sim.service.SimService``) for ``config``'s ``[demo]``."""
    from ucs.sim.service import SimService

    d = config.demo
    softphone = d.softphone and _has_aiortc()
    # Phones ring long enough for a person to press answer in the agent bar.
    svc = SimService(port=d.port, phones=d.phones, call_rate=d.call_rate, reactor=reactor,
                     demo_options={"answer_after": (8.0, 14.0)},
                     webrtc_port=d.softphone_port if softphone else None)
    if softphone:
        from ucs.sim.webrtc import add_webrtc_line

        add_webrtc_line(svc.sim, SOFTPHONE_DEVICE, "Web Agent", secret=SOFTPHONE_SECRET, number=SOFTPHONE_NUMBER)
        for context in ("internal", "from-carrier"):
            svc.sim.dialplan.add(context, SOFTPHONE_NUMBER, [("Dial", f"{SOFTPHONE_DEVICE},20"), ("Hangup", "")])
    if svc.demo is None:  # no simulated callers: the phones still answer from the bar
        for device, line in svc.sim.lines.items():
            if not line.trunk:
                svc.sim.phone(device).set_behaviour(remote_answer=True)
    return svc
