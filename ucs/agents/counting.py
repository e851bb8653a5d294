"""The agents' call observer: busy phones, the figures of each leg, wrap-up's inputs.

Every leg on an agent's phone makes the phone busy while it rings or talks
(time counts as busy), and is counted once in the day's figures when it
ends (:func:`ucs.agents.stats.count_leg`).  A queue call the agent serves
(:func:`serves`: talks with its customer) is the ``talking`` input of the
status machine (the leg is held, see :mod:`ucs.agents.wrapup`); the end of
a held leg is ``hung up``.  A queue call the agent transferred counts as an
external transfer once the call is over and it is known that it left the PBX.

Every channel of an attended transfer shares the caller's ``Linkedid``, so
a colleague the agent consults has a leg in the customer's queue call while
the customer waits on hold.  That leg talks with the agent, not the
customer: it is not held, and its end is no wrap-up (the colleague took an
internal call).  It becomes the colleague's customer call when the transfer
completes (or a conference joins them) and they talk with the customer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger

from ucs.agents.agent import Agent
from ucs.agents.stats import count_external_transfer, count_leg, is_queue_call, talking
from ucs.calls.call import Call, Cause, Leg
from ucs.calls.numbers import LOCAL, TRUNK
from ucs.calls.topology import talk_together
from ucs.calls.tracker import CallTracker
from ucs.directory.directory import Directory
from ucs.pbx.model import device_of
from ucs.pbx.pbx import PBX

if TYPE_CHECKING:
    from ucs.agents.service import Agents


def customer_of(call: Call) -> str | None:
    """The Uniqueid of the customer's leg of a queue call: the caller of a call
    that came in through a queue; of a call placed for an outgoing queue (the
    agent's phone is its caller), the first other leg, the party it called
    (Local channels aside; a consultation's leg comes after it)."""
    if call.data.get("outbound_id") is None:
        return call.origin
    for leg in call.legs.values():
        if leg.uniqueid != call.origin and leg.kind != LOCAL:
            return leg.uniqueid
    return None


def serves(pbx: PBX, call: Call, leg: Leg) -> bool:
    """Whether the live ``leg`` of the queue call ``call`` serves its customer now,
    making the call the agent's own (wrap-up follows it): the agent who placed a
    call for an outgoing queue once it connects, any other leg while it talks
    with the customer (:func:`~ucs.calls.topology.talk_together`): who answered
    from the queue, who got the call by a transfer, who joined a conference.  Not
    the customer's own leg (an agent calling a queue is its customer), nor a
    colleague consulted while the customer waits on hold."""
    customer = customer_of(call)
    if customer is None or leg.uniqueid == customer:
        return False
    if leg.uniqueid == call.origin:
        return talking(call, leg)
    if leg.answered is None:
        return False
    ch = pbx.channels.get(leg.uniqueid)
    return ch is not None and talk_together(pbx, ch, customer)


class CallCounter:
    log = Logger()

    def __init__(self, agents: Agents, directory: Directory, tracker: CallTracker, pbx: PBX) -> None:
        self._agents = agents
        self._directory = directory
        self._tracker = tracker
        self._pbx = pbx
        self._transfers: dict[str, list[tuple[int, int | None, Leg]]] = {}

    def call_event(self, call: Call, ended: bool) -> None:
        agents = self._agents
        try:
            now = agents.now()
            for leg in call.legs.values():
                agent = agents.by_device(leg.device)
                if agent is None:
                    continue
                uid = leg.uniqueid
                if leg.ended is None and not ended:
                    if uid not in agent.live_legs and uid not in agent.counted_legs:
                        agent.accrue(now)
                        agent.live_legs.add(uid)
                    if (uid in agent.live_legs and uid not in agent.held and agents.acw_seconds > 0
                            and is_queue_call(call) and serves(self._pbx, call, leg)):
                        agents.wrapup.hold(agent, uid)
                    continue
                if uid in agent.live_legs:
                    agent.accrue(now)
                    agent.live_legs.discard(uid)
                if uid not in agent.counted_legs:
                    agent.counted_legs.add(uid)
                    if call.monitoring is None:  # a supervisor's monitoring is not a call (ucs.calls.spying)
                        self._count(agent, call, leg)
            if ended:
                for leg in call.legs.values():
                    agent = agents.by_device(leg.device)
                    if agent is not None:
                        agent.counted_legs.discard(leg.uniqueid)
                self._settle_transfers(call)
        except Exception:  # noqa: BLE001 - an observer must never break the tracker's dispatch
            self.log.failure("agents: call {uniqueid} could not be counted", uniqueid=call.uniqueid)

    def _count(self, agent: Agent, call: Call, leg: Leg) -> None:
        agents = self._agents
        queue_id = self._call_queue_id(call)
        count_leg(agent.stats, call, leg, queue_id)
        if is_queue_call(call) and (leg.transferred or leg.cause == Cause.TRANSFER):
            self._transfers.setdefault(call.uniqueid, []).append((agent.user.id, queue_id, leg))
        agents.figures.save(agent.user.id)
        uid = leg.uniqueid
        if uid in agent.held:  # a leg that served the customer (see serves); wrap_up lets go of it
            agents.spawn(agents.serial(agent.user.id, lambda: agents.wrapup.wrap_up(agent, uid, call)),
                         f"wrap-up of {agent.user.username}")

    def _settle_transfers(self, call: Call) -> None:
        figures = self._agents.figures
        for user_id, queue_id, leg in self._transfers.pop(call.uniqueid, []):
            if self._external(call, leg):
                count_external_transfer(figures.of(user_id), queue_id)
                figures.save(user_id)

    def _external(self, call: Call, leg: Leg) -> bool:
        """Whether the agent's leg transferred the call outside the PBX: a trunk
        joined the call at or after the transfer, or its target is a trunk or
        an outside number."""
        records = [t for t in call.transfers if t.get("from") == leg.device]
        at = float(records[-1].get("at", 0.0)) if records else (leg.ended or 0.0)
        for other in call.legs.values():
            if other.uniqueid != call.origin and other.kind == TRUNK and other.created >= at - 1e-6:
                return True
        to = str(records[-1].get("to", "")) if records else ""
        if "/" in to:
            device = device_of(to.split(";")[0])
            if device.startswith("Local/"):
                to = device.split("/", 1)[1].split("@", 1)[0]
            else:
                return self._tracker.classify(device) == TRUNK
        return bool(to) and bool(self._tracker.normalize(to))

    def _call_queue_id(self, call: Call) -> int | None:
        outbound = call.data.get("outbound_id")
        if isinstance(outbound, int) and outbound in self._directory.queues:
            return outbound
        if call.queue:
            queue = self._directory.queue_by_asterisk_name(call.queue)
            return queue.id if queue is not None else None
        return None
