"""The metrics read from the agent's state when scraped: nothing is kept or updated for
them while nobody asks, so an idle agent pays nothing between scrapes.

Every family of the catalog read here is yielded on every scrape, with no sample if the
part it reads has not started yet (or this node runs no volume): the names and types an
agent exports do not depend on the moment.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from blockrepl.metrics import families as replica_families
from controller.api.group import ResourceGroup, ResourceGroupStatus
from controller.api.liveness import NodePhase, PeerState
from controller.api.node import NodeStatus
from controller.store.base import Store
from controller.store.informer import Informer
from nodeagent.liveness import HeartbeatLiveness
from nodeagent.liveness_link import LivenessLink
from nodeagent.metrics import catalog
from nodeagent.metrics.etcd_poll import EtcdPoll

PEER_STATES: tuple[str, ...] = get_args(PeerState)
NODE_PHASES: tuple[str, ...] = get_args(NodePhase)
GROUP_PHASES: tuple[str, ...] = get_args(ResourceGroupStatus.model_fields["phase"].annotation)


@dataclass
class Sources:
    """What the collector reads; the agent fills it in as its parts start."""

    node: str
    version: str
    link: LivenessLink
    liveness: HeartbeatLiveness | None = None
    informer: Informer | None = None
    volumes: Callable[[], Mapping[str, dict[str, Any] | None]] | None = None
    etcd: EtcdPoll | None = None
    clock: Callable[[], float] = field(default=time.monotonic)
    # For the status page only (nodeagent/web/): its cluster name and its events' store.
    cluster: str = ""
    store: Store | None = None


class _Families:
    """The catalog's families by name, filled in as the collector reads."""

    def __init__(self, sections: Iterable[list[catalog.Metric]]) -> None:
        self.out: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for section in sections:
            for m in section:
                if m.kind == "counter":
                    self.out[m.name] = CounterMetricFamily(m.family, m.help, labels=m.labels)
                else:
                    self.out[m.name] = GaugeMetricFamily(m.name, m.help, labels=m.labels)

    def add(self, name: str, labels: Iterable[str], value: float) -> None:
        self.out[name].add_metric(list(labels), value)

    def one_hot(self, name: str, labels: list[str], known: Iterable[str], current: str) -> None:
        states = list(known)
        if current not in states:
            states.append(current)
        for state in states:
            self.add(name, [*labels, state], 1.0 if state == current else 0.0)


class AgentCollector(Collector):
    SECTIONS = (
        catalog.NODE,
        catalog.HEARTBEAT,
        [m for m in catalog.LEADER if m.kind == "gauge"],
        [m for m in catalog.GROUPS if m.kind == "gauge"],
        [m for m in catalog.STORE if m.kind == "gauge"],
        catalog.VOLUMES,
    )

    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def describe(self) -> list[Metric]:
        return []  # names are the catalog's; nothing to check against the registry

    def collect(self) -> Iterator[Metric]:
        f = _Families(self.SECTIONS)
        self._node(f)
        self._heartbeats(f)
        self._store(f)
        self._volumes(f)
        yield from f.out.values()

    def _node(self, f: _Families) -> None:
        s = self.sources
        f.add("vigil_agent_info", [s.node, s.version], 1)
        state = s.link.read()
        now = s.clock()
        end = state.expiry
        if s.liveness is not None:
            end = max(end, s.liveness.inherited)
        serving = s.liveness.serving() if s.liveness is not None else state.serving(now)
        f.add("vigil_node_serving", [], 1.0 if serving else 0.0)
        f.add("vigil_serving_lease_remaining_seconds", [], max(0.0, end - now))
        lease = s.link.config.timing.lease if s.link.config is not None else math.nan
        age = lease - (end - now) if end > now else math.nan
        f.add("vigil_serving_lease_age_seconds", [], max(0.0, age) if not math.isnan(age) else age)

    def _heartbeats(self, f: _Families) -> None:
        state = self.sources.link.read()
        for peer, p in sorted(state.peers.items()):
            f.one_hot("vigil_peer_state", [peer], PEER_STATES, p.state)
            f.add("vigil_peer_lost", [peer], 1.0 if p.lost else 0.0)
            for link, up in sorted(p.links.items()):
                f.add("vigil_heartbeat_link_up", [peer, link], 1.0 if up else 0.0)
                if link in p.ages:
                    f.add("vigil_heartbeat_last_heard_seconds", [peer, link], p.ages[link])
                if link in p.rtt:
                    f.add("vigil_heartbeat_rtt_seconds", [peer, link], p.rtt[link])
                f.add("vigil_heartbeat_missed_total", [peer, link], p.missed.get(link, 0))
        for link, reasons in sorted(state.rejected.items()):
            for reason, n in sorted(reasons.items()):
                f.add("vigil_heartbeat_rejected_total", [link, reason], n)

    def _store(self, f: _Families) -> None:
        s = self.sources
        if s.etcd is not None:
            f.add("vigil_etcd_member_healthy", [], s.etcd.healthy)
            f.add("vigil_etcd_db_size_bytes", [], s.etcd.db_size)
            f.add("vigil_etcd_voting_members", [], s.etcd.voters)
        informer = s.informer
        if informer is None:
            return
        for node, st in sorted(informer.statuses("Node", NodeStatus).items()):
            f.one_hot("vigil_node_phase", [node], NODE_PHASES, st.phase)
        leader = informer.leader()
        if leader is not None:
            f.add("vigil_leader", [leader.node], 1)
        f.add("vigil_is_leader", [], 1.0 if leader is not None and leader.node == s.node else 0.0)
        for group, record in sorted(informer.placements().items()):
            if record.node is not None:
                f.add("vigil_group_placed", [group, record.node], 1)
        groups = informer.statuses("ResourceGroup", ResourceGroupStatus)
        for group, gs in sorted(groups.items()):
            f.one_hot("vigil_group_phase", [group], GROUP_PHASES, gs.phase)
        # Beside the phase, so that an alert tells a group Stopped on purpose from one
        # that should run.
        for group, spec in sorted(informer.objects("ResourceGroup").items()):
            if isinstance(spec, ResourceGroup):
                f.add("vigil_group_enabled", [group], 1.0 if spec.spec.enabled else 0.0)

    def _volumes(self, f: _Families) -> None:
        if self.sources.volumes is None:
            return
        statuses = self.sources.volumes()
        answered = []
        for volume, raw in sorted(statuses.items()):
            f.add("vigil_volume_status_up", [volume], 0.0 if raw is None else 1.0)
            if raw is not None:
                answered.append(raw)
        for fam in replica_families(answered):
            name = catalog.VOLUME_PREFIX + fam.name.removeprefix("blockrepl_")
            if name not in f.out:
                continue  # a metric a newer blockrepl added: listed once the catalog says so
            for labels, value in fam.samples:
                f.add(name, [v for _, v in labels], float(value))
