"""Prometheus metrics at ``/metrics``, read from the live objects at scrape time.

Nothing is counted on the hot path for them: the collector asks the AMI
client, the PBX model, the tracker, the agents, the sessions and the CDR
writer what they already know when Prometheus scrapes, so ingesting events
costs no extra work per event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

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
        yield CounterMetricFamily("ucs_bus_events", "Events published on the bus", value=float(s.get_bus().published))


def metrics_resource(server: UCSServer) -> Any:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(UCSCollector(server))
    return MetricsResource(registry=registry)
