"""Prometheus metrics at ``/metrics``.

Most are read from the live objects at scrape time: the collector asks the
AMI client, the PBX model, the tracker, the agents, the sessions and the CDR
writer what they already know when Prometheus scrapes, so ingesting events
costs no extra work per event.  Two are durations, which nothing else keeps,
so they are histograms fed as things finish: store operations (on the
reactor thread, from call to answer: what the caller waited, queueing for a
store thread included) and plugin hooks (per plugin and hook, on whatever
thread the hook ran: the histograms lock for themselves).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.twisted import MetricsResource

if TYPE_CHECKING:
    from ucs.server import UCSServer


class UCSCollector(Collector):
    def __init__(self, server: UCSServer) -> None:
        self._server = server

    def collect(self) -> Iterator[Any]:
        s = self._server
        link = GaugeMetricFamily("ucs_ami_link_up", "1 when the AMI link to Asterisk is logged in", labels=["state"])
        state = s.get_ami_client().state
        for name in ("down", "connecting", "up"):
            link.add_metric([name], 1.0 if state == name else 0.0)
        yield link
        proto = s.get_ami_client().protocol
        yield GaugeMetricFamily("ucs_ami_actions_in_flight", "AMI actions waiting for their response",
                                value=float(proto.pendingCount if proto is not None else 0))
        client = s.get_ami_client()
        yield CounterMetricFamily("ucs_ami_actions", "AMI actions sent by UCS's services",
                                  value=float(client.actionsSent))
        failed = CounterMetricFamily(
            "ucs_ami_actions_failed", "AMI actions that failed, by action and why (error: Asterisk said "
            "Response: Error; timeout; connection_lost; not_connected: the link was down; refused: not sent)",
            labels=["action", "reason"])
        for (action, reason), n in sorted(client.actionsFailed.items()):
            failed.add_metric([action, reason], float(n))
        yield failed
        pbx_link = s.get_pbx_link()
        yield CounterMetricFamily("ucs_ami_events", "AMI events received", value=float(pbx_link.events))
        yield CounterMetricFamily("ucs_pbx_events_applied", "AMI events the PBX model had a use for",
                                  value=float(s.get_pbx().handled))
        yield CounterMetricFamily("ucs_pbx_resyncs", "Resynchronisations of the PBX model",
                                  value=float(pbx_link.resyncs))
        yield GaugeMetricFamily("ucs_channels", "Channels Asterisk has", value=float(len(s.get_pbx().channels)))
        yield GaugeMetricFamily("ucs_calls_active", "Calls in progress",
                                value=float(len(s.get_call_tracker().active_calls())))
        waiting = GaugeMetricFamily("ucs_queue_waiting", "Callers waiting in a queue", labels=["queue"])
        for name, queue in s.get_pbx().queues.items():
            waiting.add_metric([name], float(len(queue.callers)))
        yield waiting
        agents = GaugeMetricFamily("ucs_agents", "Logged-in agents by status", labels=["status"])
        by_status = Counter(a.status.name for a in s.get_agents().all())
        for status in ("READY", "AUX", "ACW", "OFFLINE"):
            agents.add_metric([status], float(by_status.get(status, 0)))
        yield agents
        sessions = GaugeMetricFamily("ucs_sessions", "API sessions by kind (ws: agent bars)", labels=["kind"])
        for kind, n in Counter(x.kind for x in s.get_sessions()).items():
            sessions.add_metric([kind], float(n))
        yield sessions
        cdrs = s.get_cdr_writer()
        yield GaugeMetricFamily("ucs_cdrs_pending", "Finished calls waiting to be written to the store",
                                value=float(len(cdrs.pending)))
        yield CounterMetricFamily("ucs_cdrs_written", "CDRs written to the store", value=float(cdrs.written))
        yield CounterMetricFamily("ucs_cdrs_refused", "CDRs the store refused for what they hold (stored without it)",
                                  value=float(cdrs.refused))
        yield CounterMetricFamily("ucs_bus_events", "Events published on the bus", value=float(s.get_bus().published))
        # Not get_cluster(): that builds the service tree, and the registry is described
        # (collected once) while the tree is being built.
        cluster = getattr(s, "_cluster", None)
        if cluster is not None:
            yield from cluster_metrics(cluster.health(), cluster.elector.state)


#: The roles ``ucs_cluster_role`` has a series for (the election's other states: ``disconnected``).
ROLES = ("owner", "claiming", "standby", "disconnected")


def cluster_metrics(health: dict[str, Any], state: str) -> Iterator[Any]:
    """Issue 20: which node this is, its role, the stream's position, its links -- so a
    scrape of each node tells who owns the AMI link and whether the others follow it.
    ``health`` is :meth:`ucs.cluster.node.ClusterNode.health`, ``state`` its election's."""
    node = str(health["node"])
    role = GaugeMetricFamily("ucs_cluster_role", "1 for this node's role in the cluster (owner: it holds the "
                             "AMI link; disconnected: no PostgreSQL session for the election)",
                             labels=["node", "role"])
    current = state if state in ROLES else "disconnected"
    for name in ROLES:
        role.add_metric([node, name], 1.0 if name == current else 0.0)
    yield role
    yield _one(GaugeMetricFamily, "ucs_cluster_seq", "The event stream's sequence this node is at: the owner's "
               "last acknowledged publish, a standby's last applied event", node, float(health.get("seq") or 0))
    yield _one(CounterMetricFamily, "ucs_cluster_lost_events", "Domain events the owner could not publish to the "
               "stream (NATS away, backlog full): the standbys reload at the next term", node,
               float(health.get("lost") or 0))
    yield _one(GaugeMetricFamily, "ucs_cluster_nats_up", "1 when this node's NATS link is up", node,
               1.0 if health.get("nats") == "up" else 0.0)
    yield _one(GaugeMetricFamily, "ucs_cluster_postgresql_up", "1 when this node's election session to PostgreSQL "
               "is up", node, 1.0 if health.get("postgresql") == "up" else 0.0)


def _one(family: Any, name: str, documentation: str, node: str, value: float) -> Any:
    metric = family(name, documentation, labels=["node"])
    metric.add_metric([node], value)
    return metric


#: Seconds: a store operation is a few milliseconds when well; a hook's budget is 50 ms.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """One server's metrics (a registry of its own, so servers in one process do not mix)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.store_seconds = Histogram(
            "ucs_store_seconds", "Store operations from call to answer, by operation and outcome (ok, error)",
            ["operation", "outcome"], registry=self.registry, buckets=BUCKETS)
        self.hook_seconds = Histogram(
            "ucs_plugin_hook_seconds", "Time spent in plugins' hooks, by plugin and hook",
            ["plugin", "hook"], registry=self.registry, buckets=BUCKETS)

    def watch(self, server: UCSServer) -> None:
        self.registry.register(UCSCollector(server))

    def observe_store(self, operation: str, outcome: str, seconds: float) -> None:
        self.store_seconds.labels(operation, outcome).observe(seconds)

    def observe_hook(self, plugin: str, hook: str, seconds: float) -> None:
        self.hook_seconds.labels(plugin, hook).observe(seconds)

    def resource(self) -> Any:
        return MetricsResource(registry=self.registry)
