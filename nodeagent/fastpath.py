"""Heartbeats first: the part of the agent that must run within a fraction of deadtime.

A restarted agent must be heard again before its peers declare it lost (deadtime, 1 s by
default), and loading the whole agent (pydantic, gRPC) takes most of a second. So the
agent keeps, next to its data, the heartbeat configuration it last derived from the
Cluster spec; on start it reads that file and its liveness process starts heartbeating
with the standard library alone, while the agent loads the rest. This module imports
nothing heavy.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nodeagent.heartbeat.config import HeartbeatConfig, PeerAddress
from nodeagent.heartbeat.membership import Membership
from nodeagent.heartbeat.serial import SerialLinkConfig
from nodeagent.heartbeat.timing import HeartbeatTiming
from nodeagent.heartbeat.udp import UdpLinkConfig
from nodeagent.selffence import WatchdogSettings

log = logging.getLogger(__name__)

CACHE_NAME = "heartbeat.json"


def to_dict(
    config: HeartbeatConfig, key_file: str, watchdog: WatchdogSettings | None = None
) -> dict[str, Any]:
    """The configuration with its key's file instead of the key: what is cached on disk and
    sent to the liveness process (the key itself never leaves a root-only file). With it,
    the node's self-fencing watchdog, if a FenceDevice targets this node: cached too, so
    that a restarted agent's liveness process pets it again before the agent has loaded
    the store (an agent restart must not outlast the watchdog timeout)."""
    return {
        "node": config.node,
        "cluster": config.cluster,
        "key_file": key_file,
        "timing": asdict(config.timing),
        "address": config.address,
        "port": config.port,
        "peers": [asdict(p) for p in config.peers],
        "extra_links": [asdict(link) for link in config.extra_links],
        "serial_links": [asdict(link) for link in config.serial_links],
        "two_node": config.two_node,
        "watchdog": None if watchdog is None else watchdog.to_dict(),
    }


def from_dict(data: dict[str, Any]) -> HeartbeatConfig:
    """Raises OSError (the key file), KeyError, TypeError or ValueError."""
    key = Path(data["key_file"]).read_bytes().strip()
    return HeartbeatConfig(
        node=data["node"],
        cluster=data["cluster"],
        key=key,
        timing=HeartbeatTiming(**data["timing"]),
        address=data["address"],
        port=int(data["port"]),
        peers=tuple(PeerAddress(**p) for p in data["peers"]),
        extra_links=tuple(
            UdpLinkConfig(**{**link, "destinations": tuple(map(tuple, link["destinations"]))})
            for link in data["extra_links"]
        ),
        # Caches written before serial links have none.
        serial_links=tuple(SerialLinkConfig(**link) for link in data.get("serial_links", [])),
        two_node=bool(data.get("two_node", False)),
    )


def save(
    config: HeartbeatConfig,
    key_file: str,
    lib_dir: Path,
    watchdog: WatchdogSettings | None = None,
) -> None:
    path = lib_dir / CACHE_NAME
    tmp = path.with_suffix(".tmp")
    lib_dir.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(to_dict(config, key_file, watchdog), indent=1))
    tmp.replace(path)


def load(lib_dir: Path) -> dict[str, Any] | None:
    """The cached configuration as `to_dict` wrote it, if it is whole and its key is
    readable."""
    path = lib_dir / CACHE_NAME
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        from_dict(data)
        return data
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the cached heartbeat configuration %s: %s", path, exc)
        return None


# A lease that grew by less than this is not worth a write.
PERSIST_STEP = 0.02


def read_recorded_lease(path: Path) -> float:
    try:
        return float(json.loads(path.read_text())["expiry"])
    except (OSError, ValueError, KeyError, TypeError):
        return float("-inf")


class LeaseRecorder:
    """Records the serving lease on tmpfs for the lease enforcer and the next agent.

    Driven by the liveness process (nodeagent/liveness_process.py) from the moment
    heartbeats start, before the agent's slow start-up (etcd, imports): the lease a
    restarted agent inherits must be extended as soon as its peers acknowledge it, or the
    enforcer would stop what the previous agent left running. `persisted` is what the
    file says: the liveness process tells the control plane no longer a lease than that.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.persisted = read_recorded_lease(path)

    def persist(self, m: Membership, now: float) -> None:
        expiry = m.lease_expiry(now)
        if expiry <= self.persisted + PERSIST_STEP:
            return
        tmp = self.path.with_suffix(".tmp")
        record = {"expiry": expiry, "stopMargin": m.timing.stop_margin, "pid": os.getpid()}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(record))
            tmp.replace(self.path)
            self.persisted = expiry
        except OSError as exc:
            log.warning("cannot record the serving lease in %s: %s", self.path, exc)
