"""The simulated PBX demo mode runs on, built from ``[demo]``.

Split out of ``ucs.server`` (issue 15): the container only puts it in the
service tree (before the AMI client, which then connects to it instead of
``[ami]``); what the demo's PBX is like -- phones, callers, how long a phone
rings before the simulated person answers -- is here.
"""

from __future__ import annotations

from typing import Any

from ucs.config import Config


def build_demo_pbx(config: Config, reactor: Any) -> Any:
    """The simulated PBX service (a ``ucs.sim.service.SimService``) for ``config``'s ``[demo]``."""
    from ucs.sim.service import SimService

    d = config.demo
    # Phones ring long enough for a person to press answer in the agent bar.
    svc = SimService(port=d.port, phones=d.phones, call_rate=d.call_rate, reactor=reactor,
                     demo_options={"answer_after": (8.0, 14.0)})
    if svc.demo is None:  # no simulated callers: the phones still answer from the bar
        for device, line in svc.sim.lines.items():
            if not line.trunk:
                svc.sim.phone(device).set_behaviour(remote_answer=True)
    return svc
