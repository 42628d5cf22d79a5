"""The agent's /metrics, put together: the registry (event-site instruments, the
scrape-time collector, the process's own CPU and memory) and its server, with the status
page beside it (nodeagent/web/), per the node config's `metrics` settings."""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector

from controller.api.errors import InputError
from controller.bootstrap.node_config import MetricsSettings, NodeConfig
from controller.store.informer import Informer
from nodeagent.liveness_link import LivenessLink
from nodeagent.metrics import instruments
from nodeagent.metrics.collector import AgentCollector, Sources
from nodeagent.metrics.etcd_poll import EtcdPoll
from nodeagent.metrics.server import MetricsServer
from nodeagent.metrics.tracker import ChangeTracker
from nodeagent.metrics.webconfig import WebConfig, load_web_config
from nodeagent.reconciler.loop import Reconciler
from nodeagent.web.source import StatusPages


def agent_registry(sources: Sources) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(instruments.REGISTRY)
    registry.register(AgentCollector(sources))
    registry.register(ProcessCollector(namespace="vigil", registry=None))
    return registry


def web_config(settings: MetricsSettings) -> WebConfig | None:
    """The web config file's TLS and users, checked (InputError naming the setting)."""
    if not settings.enabled or settings.web_config_file is None:
        return None
    return load_web_config(Path(settings.web_config_file))


async def serve(
    settings: MetricsSettings, sources: Sources, web: WebConfig | None
) -> MetricsServer | None:
    """The server listening as `settings` say, or None if metrics are off."""
    if not settings.enabled:
        return None
    host, port = settings.address()
    pages = None
    if settings.status_page:
        pages = StatusPages(
            sources.cluster, sources.node, lambda: sources.informer, lambda: sources.store
        )
    server = MetricsServer(host, port, agent_registry(sources), web, pages)
    try:
        await server.start()
    except OSError as exc:
        raise InputError(
            f"node config: metrics.listen {settings.listen}: cannot listen: {exc.strerror or exc}"
        ) from None
    return server


class AgentMetrics:
    """The metrics side of one agent: its server, the etcd poll and the change tracker,
    started and stopped with it; the agent fills in `sources` as its parts start."""

    def __init__(
        self, config: NodeConfig, link: LivenessLink, version: str, web: WebConfig | None
    ) -> None:
        self.config = config
        self.sources = Sources(config.node, version, link, cluster=config.cluster)
        self.web = web
        self.server: MetricsServer | None = None
        self.tracker: ChangeTracker | None = None

    async def start(self) -> list[tuple[Coroutine[Any, Any, None], str]]:
        """Serve (InputError if metrics.listen cannot be); the loops to run meanwhile."""
        self.server = await serve(self.config.metrics, self.sources, self.web)
        if self.server is None:
            return []
        poll = EtcdPoll(self.config.etcd.client_urls[0], self.config.client_tls())
        self.sources.etcd = poll
        return [(poll.run(), "metrics-etcd")]

    def track(
        self, informer: Informer, reconciler: Reconciler
    ) -> list[tuple[Coroutine[Any, Any, None], str]]:
        """Count store changes and time failovers (only while metrics are served)."""
        if self.server is None:
            return []
        self.tracker = ChangeTracker(self.config.node, informer, self.sources.link)
        self.tracker.start()
        reconciler.on_group_started = self.tracker.group_started
        return [(self.tracker.run(), "metrics-tracker")]

    async def close(self) -> None:
        if self.tracker is not None:
            self.tracker.stop()
        if self.server is not None:
            await self.server.close()
