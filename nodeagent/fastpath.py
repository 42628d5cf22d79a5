"""Heartbeats first: the part of the agent that must run within a fraction of deadtime.

A restarted agent must be heard again before its peers declare it lost (deadtime, 1 s by
default), and loading the whole agent (pydantic, gRPC) takes most of a second. So the
agent keeps, next to its data, the heartbeat configuration it last derived from the
Cluster spec; on start it reads that file and starts heartbeating with the standard
library alone, then loads the rest. This module imports nothing heavy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nodeagent.heartbeat.config import HeartbeatConfig, PeerAddress
from nodeagent.heartbeat.membership import Membership
from nodeagent.heartbeat.service import HeartbeatService
from nodeagent.heartbeat.timing import HeartbeatTiming
from nodeagent.heartbeat.udp import UdpLinkConfig

log = logging.getLogger(__name__)

CACHE_NAME = "heartbeat.json"


def save(config: HeartbeatConfig, key_file: str, lib_dir: Path) -> None:
    data: dict[str, Any] = {
        "node": config.node,
        "cluster": config.cluster,
        "key_file": key_file,
        "timing": asdict(config.timing),
        "address": config.address,
        "port": config.port,
        "peers": [asdict(p) for p in config.peers],
        "extra_links": [asdict(link) for link in config.extra_links],
    }
    path = lib_dir / CACHE_NAME
    tmp = path.with_suffix(".tmp")
    lib_dir.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def load(lib_dir: Path) -> HeartbeatConfig | None:
    path = lib_dir / CACHE_NAME
    try:
        data = json.loads(path.read_text())
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
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the cached heartbeat configuration %s: %s", path, exc)
        return None


async def start(config: HeartbeatConfig) -> HeartbeatService:
    """On the liveness loop: heartbeats from the cached configuration."""
    service = HeartbeatService(config)
    await service.start()
    log.info("heartbeats started from the cached configuration (%d peers)", len(config.peers))
    return service


# A lease that grew by less than this is not worth a write.
PERSIST_STEP = 0.02


def read_recorded_lease(path: Path) -> float:
    try:
        return float(json.loads(path.read_text())["expiry"])
    except (OSError, ValueError, KeyError, TypeError):
        return float("-inf")


def _lease(m: Membership, now: float) -> tuple[float, float]:
    return m.lease_expiry(now), m.timing.stop_margin


class LeaseRecorder:
    """Records the serving lease on tmpfs for the lease enforcer and the next agent.

    Started with the heartbeats, before the agent's slow start-up (etcd, imports): the
    lease a restarted agent inherits must be extended as soon as its peers acknowledge
    it, or the enforcer would stop what the previous agent left running. It runs on the
    liveness thread; the control plane also calls `persist()` before it acts on a lease.
    """

    def __init__(self, service: HeartbeatService, path: Path) -> None:
        self.service = service
        self.path = path
        self.persisted = read_recorded_lease(path)
        self._task: asyncio.Task[None] | None = None
        self._lock = threading.Lock()  # one writer of the file at a time

    def persist(self) -> None:
        expiry, margin = self.service.read(_lease)
        with self._lock:
            if expiry <= self.persisted + PERSIST_STEP:
                return
            tmp = self.path.with_suffix(".tmp")
            record = {"expiry": expiry, "stopMargin": margin, "pid": os.getpid()}
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(json.dumps(record))
                tmp.replace(self.path)
                self.persisted = expiry
            except OSError as exc:
                log.warning("cannot record the serving lease in %s: %s", self.path, exc)

    async def _run(self) -> None:
        # Twice a keepalive: the enforcer's copy lags the real lease by at most that.
        interval = self.service.membership.timing.keepalive / 2
        while True:
            self.persist()
            await asyncio.sleep(interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="lease-recorder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
