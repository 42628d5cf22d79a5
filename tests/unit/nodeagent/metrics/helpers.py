"""A liveness link over a socket pair whose membership copy a test sets, and an informer
loaded with chosen records: the collector's and tracker's inputs without a cluster."""

from __future__ import annotations

import socket
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.store.base import KeyValue
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from nodeagent.liveness_link import LivenessLink, MembershipState, PeerState


def link() -> tuple[LivenessLink, socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return LivenessLink(ours, 0, None), theirs


def peer(state: str = "up", lost: bool = False, **links: bool) -> PeerState:
    return PeerState(state, lost, "00000000000000cc", dict(links) or {"eth0": True})  # type: ignore[arg-type]


def membership(peers: dict[str, PeerState], expiry: float = 0.0) -> MembershipState:
    return MembershipState("00000000000000aa", expiry, 0.1, peers)


class Copy:
    """An informer whose copy the test replaces, one revision at a time."""

    def __init__(self) -> None:
        self.informer = Informer(MemoryStore("c"))
        self.items: dict[str, dict[str, Any]] = {}
        self.revision = 0

    def set(self, key: str, value: dict[str, Any] | None) -> None:
        if value is None:
            self.items.pop(key, None)
        else:
            self.items[key] = value
        self.revision += 1
        kvs = [KeyValue(k, v, self.revision, 0, 0, 0) for k, v in self.items.items()]
        self.informer.load(kvs, self.revision)


def scrape(registry: CollectorRegistry) -> dict[str, Any]:
    """Family name -> family, from the exposition text as Prometheus would parse it."""
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(family: Any) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}
