"""The agent's /metrics, put together: the registry (event-site instruments, the
scrape-time collector, the process's own CPU and memory) and its server, per the node
config's `metrics` settings."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, ProcessCollector

from controller.api.errors import InputError
from controller.bootstrap.node_config import MetricsSettings
from nodeagent.metrics import instruments
from nodeagent.metrics.collector import AgentCollector, Sources
from nodeagent.metrics.server import MetricsServer
from nodeagent.metrics.webconfig import WebConfig, load_web_config


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
    server = MetricsServer(host, port, agent_registry(sources), web)
    try:
        await server.start()
    except OSError as exc:
        raise InputError(
            f"node config: metrics.listen {settings.listen}: cannot listen: {exc.strerror or exc}"
        ) from None
    return server
