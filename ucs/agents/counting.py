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

The figures follow the same rule (:class:`Roles`): a leg the call named as the
consultation (``Call.consult``) that never served the customer is counted as
the internal call it is, not as the queue's.  Each phone leg is counted once:
when the caller hangs up during the consultation, the tracker ends the
caller's call and the two who talk on are a new internal call of the same legs
(:mod:`ucs.calls.consultation`).  A leg that served the customer is counted
then, in the queue call, and not again when it ends; one that did not (the
consulted colleague) is counted only where it ends, as that internal call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

import attrs
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


@attrs.define
class Roles:
    """What the agents' legs of one queue call were to its customer, as seen while
    they lived (the channels are gone once a leg ends): ``consulted``, named by
    the call as whom the agent consults (``Call.consult``); ``served``, talked
    with the customer (:func:`serves`)."""

    consulted: set[str] = attrs.Factory(set)
    served: set[str] = attrs.Factory(set)

    def consultation(self, uid: str) -> bool:
        """Whether the leg was only a colleague's consultation: an internal call."""
        return uid in self.consulted and uid not in self.served


class CallCounter:
    log = Logger()

    def __init__(self, agents: Agents, directory: Directory, tracker: CallTracker, pbx: PBX) -> None:
        self._agents = agents
        self._directory = directory
        self._tracker = tracker
        self._pbx = pbx
        self._transfers: dict[str, list[tuple[int, int | None, Leg]]] = {}
        #: The queue calls' legs, while the Call lives (the supervisor counts its call
        #: after the tracker let go of it: :meth:`consultation`).
        self._roles: WeakKeyDictionary[Call, Roles] = WeakKeyDictionary()
        #: Legs counted in a queue call they served that ended while they talk on in
        #: another call (the caller hung up during a consultation): not counted again.
        self._carried: set[str] = set()

    def consultation(self, call: Call, leg: Leg) -> bool:
        """Whether ``leg`` of ``call`` was a colleague consulted while the customer
        waited, who never served the customer: an internal call, not the queue's."""
        roles = self._roles.get(call)
        return roles is not None and roles.consultation(leg.uniqueid)

    def _roles_of(self, call: Call) -> Roles | None:
        """The call's :class:`Roles`, with whom it consults now; ``None`` for a call
        that is no queue call."""
        if not is_queue_call(call):
            return None
        roles = self._roles.get(call)
        if roles is None:
            roles = self._roles[call] = Roles()
        consulted = call.consult.get("channel") if call.consult else None
        if consulted:
            roles.consulted.update(uid for uid, leg in call.legs.items()
                                   if leg.channel == consulted and uid != call.origin)
        return roles

    def call_event(self, call: Call, ended: bool) -> None:
        agents = self._agents
        try:
            now = agents.now()
            roles = self._roles_of(call) if not ended else self._roles.get(call)
            for leg in call.legs.values():
                agent = agents.by_device(leg.device)
                if agent is None:
                    continue
                uid = leg.uniqueid
                if leg.ended is None and not ended:
                    if uid not in agent.live_legs and uid not in agent.counted_legs:
                        agent.accrue(now)
                        agent.live_legs.add(uid)
                    if (roles is not None and uid in agent.live_legs and uid not in roles.served
                            and serves(self._pbx, call, leg)):
                        roles.served.add(uid)
                    if (roles is not None and uid in roles.served and uid not in agent.held
                            and agents.acw_seconds > 0):
                        agents.wrapup.hold(agent, uid)
                    continue
                if uid in agent.live_legs:
                    agent.accrue(now)
                    agent.live_legs.discard(uid)
                if uid not in agent.counted_legs:
                    agent.counted_legs.add(uid)
                    if call.monitoring is None:  # a supervisor's monitoring is not a call (ucs.calls.spying)
                        self._settle_leg(agent, call, leg, roles)
            if ended:
                for leg in call.legs.values():
                    agent = agents.by_device(leg.device)
                    if agent is not None:
                        agent.counted_legs.discard(leg.uniqueid)
                    if leg.uniqueid not in self._pbx.channels:  # (the phone went to another agent meanwhile)
                        self._carried.discard(leg.uniqueid)
                self._settle_transfers(call)
        except Exception:  # noqa: BLE001 - an observer must never break the tracker's dispatch
            self.log.failure("agents: call {uniqueid} could not be counted", uniqueid=call.uniqueid)

    def _settle_leg(self, agent: Agent, call: Call, leg: Leg, roles: Roles | None) -> None:
        """The agent's leg ended in ``call``: counted once (see the module's doc)."""
        uid = leg.uniqueid
        if uid in self._carried:  # counted in the queue call it served, before it talked on here
            self._carried.discard(uid)
            return
        if uid in self._pbx.channels and leg.cause != Cause.PICKUP:  # the leg talks on in another call
            if roles is None or uid not in roles.served:
                return  # counted where it ends, as the call it is there
            self._carried.add(uid)
        self._count(agent, call, leg, consultation=roles is not None and roles.consultation(uid))

    def _count(self, agent: Agent, call: Call, leg: Leg, *, consultation: bool) -> None:
        agents = self._agents
        queue_id = self._call_queue_id(call)
        count_leg(agent.stats, call, leg, queue_id, consultation=consultation)
        if is_queue_call(call) and not consultation and (leg.transferred or leg.cause == Cause.TRANSFER):
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
