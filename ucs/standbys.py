"""What the container wires for a cluster's standbys (issue 20, ``[cluster]`` only).

A standby's bars, its ``state`` and its Interaction Processor show the AMI
owner's agents and calls: they hear a *view bus* that repeats this node's own
bus and, on a standby, the owner's events too (the mirror's,
:mod:`ucs.cluster.mirror`), and read the agents, calls and PBX model through
role-aware views.  The owner tells its standbys what puts nothing on its bus:
a phone's quiet change inside a call, an agent's figures that change with no
agent event (:mod:`ucs.cluster.quiet`), who monitors whom and a queue's
figures of the day (supervision).

Why a module of its own: all of it is about the cluster, and none of it is
which component gets which others; :class:`~ucs.server.UCSServer` keeps the
accessors (``get_mirror``, ``get_view_bus``, ``get_readers``) and calls these
where it builds and wires.  The cluster's modules are imported only when
``[cluster]`` is enabled.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ucs.agents.stats import Days
from ucs.bus import EventBus

if TYPE_CHECKING:
    from ucs.server import UCSServer
    from ucs.supervisor.service import Supervision


def build_mirror(server: UCSServer) -> Any:
    """A standby's copy of the owner's model as objects (``ucs.cluster.mirror.Mirror``)."""
    from ucs.cluster.mirror import Mirror

    return Mirror(server.get_view_bus(), server.get_directory(), server.get_reactor(), server.get_call_tracker(),
                  days=Days(server.config.agents.timezone))


def tell_quiet_agents(server: UCSServer) -> None:
    """The owner tells its agents' figures that change with no agent event (:mod:`ucs.cluster.quiet`)."""
    from ucs.cluster.quiet import QuietAgents

    quiet = QuietAgents(server.get_agents(), server.get_reactor(), functools.partial(tell_standbys, server))
    server.get_bus().subscribe_all(quiet.heard)


def view_bus(bus: EventBus) -> EventBus:
    """A bus that repeats ``bus`` (and on which a standby's mirror also publishes the owner's events)."""
    view = EventBus()
    bus.subscribe_all(lambda name, subject, args: view.publish(name, subject, **args))
    return view


def readers(agents: Any, tracker: Any, pbx: Any, mirror: Any) -> tuple[Any, Any, Any]:
    """The agents, the call tracker and the PBX model as bars read them: the owner's on a standby."""
    from ucs.cluster.mirror import AgentsView, PBXView, TrackerView

    return AgentsView(agents, mirror), TrackerView(tracker, mirror), PBXView(pbx, mirror)


def quiet_change(server: UCSServer, hub: Any, call: Any) -> None:
    """A call's change that puts nothing on the bus: to this node's bars' hub, and to the
    standbys through the owner's feed."""
    if hub is not None:
        hub(call)
    if server._cluster is not None:
        server._cluster.call_changed_quietly(call)


def tell_standbys(server: UCSServer, name: str, subject: Any) -> None:
    """An envelope with no bus event behind it, to the owner's feed (nothing on a standby)."""
    feed = server._cluster.feed if server._cluster is not None else None
    if feed is not None:
        feed.restate(name, subject)


def wire_supervision(server: UCSServer, mirror: Any, supervision: Supervision) -> None:
    """What the team view and the wallboard tell the standbys (on the owner), and hear from
    the owner (on a standby): who monitors an agent, a queue's figures of the day."""
    from ucs.cluster.codec import AGENT_QUIET, QUEUE_FIGURES, QueueFigures

    supervision.on_spies = functools.partial(tell_standbys, server, AGENT_QUIET)
    supervision.on_queue_figures = lambda queue, day, totals: tell_standbys(
        server, QUEUE_FIGURES, QueueFigures(queue, day, totals))
    mirror.monitored_of = supervision.monitored_of
    mirror.on_agent_quiet = lambda agent: supervision.told_agent(agent.id)
    mirror.on_queue_figures = lambda f: supervision.told_queue(f.queue, f.day, f.figures)
