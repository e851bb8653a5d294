"""ucs.sim: a simulated Asterisk 20 PBX that speaks real AMI over TCP.

It is the PBX of a first run (``twistd -n ucs --demo``), the test double of
every test above the protocol layer, and the load generator of the
benchmarks.  What it emits is held to the real captures in
``shared/ami-captures`` (see :mod:`ucs.sim.compare` and the tests
``tests/test_sim_*.py``).

    from twisted.internet.task import Clock
    from ucs.sim import lab, AMIServer

    sim = lab(Clock())                      # the capture lab
    reactor.listenTCP(5038, AMIServer(sim))
    sim.phone("SIP/1001").set_behaviour(answer_after=1.5)
    sim.caller_calls("5000", "420777123456", "Customer", hangup_after=2)
"""

from ucs.sim.demo import Demo
from ucs.sim.lab import lab
from ucs.sim.model import Behaviour, Channel, Line, Member, Queue
from ucs.sim.pbx import Phone, Sim, SimError
from ucs.sim.queues import QueueError
from ucs.sim.server import AMIServer
from ucs.sim.service import SimService
from ucs.sim.xfer import XferError

__all__ = [
    "AMIServer",
    "Behaviour",
    "Channel",
    "Demo",
    "Line",
    "Member",
    "Phone",
    "Queue",
    "QueueError",
    "Sim",
    "SimError",
    "SimService",
    "XferError",
    "lab",
]
