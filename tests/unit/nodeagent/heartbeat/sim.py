"""A discrete-event network of Membership instances, with drifting clocks, for unit tests.

Real time is the simulator's; node i reads its own clock `offset_i + rate_i * real`.
Directed links drop and delay packets according to a `LinkModel`. Every packet goes
through the real codec, so the test also covers encoding.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from nodeagent.heartbeat.membership import Membership, Rejected
from nodeagent.heartbeat.packet import Codec
from nodeagent.heartbeat.timing import HeartbeatTiming

LinkModel = Callable[[str, str, float], tuple[bool, float]]
"""(src, dst, real send time) -> (delivered?, delay in seconds)."""


def perfect(src: str, dst: str, t: float) -> tuple[bool, float]:
    return True, 0.0005


@dataclass
class Node:
    name: str
    rate: float
    offset: float
    m: Membership

    def local(self, real: float) -> float:
        return self.offset + self.rate * real

    def real(self, local: float) -> float:
        return (local - self.offset) / self.rate


@dataclass
class Sim:
    timing: HeartbeatTiming
    names: list[str]
    link: LinkModel = perfect
    rates: dict[str, float] = field(default_factory=dict)
    auto_rejoin: bool = False
    two_node: bool = False
    seed: int = 0
    on_event: Callable[[Sim, str, float], None] | None = None

    def __post_init__(self) -> None:
        rnd = random.Random(self.seed)
        self.rnd = rnd
        self.codec = Codec("sim", b"k")
        self.now = 0.0
        self._queue: list[tuple[float, int, str, str, object]] = []  # (t, tie, node, kind, payload)
        self._tie = itertools.count()
        self.nodes: dict[str, Node] = {}
        self.rejected: list[tuple[str, str]] = []
        self.down: set[str] = set()
        self._pending: dict[str, float] = {}
        for name in self.names:
            self.start(name, at=0.0, offset=rnd.uniform(0, 1000))

    def start(self, name: str, at: float, offset: float | None = None) -> Node:
        rate = self.rates.get(name, 1.0)
        off = self.rnd.uniform(0, 1000) if offset is None else offset
        local0 = off + rate * at
        m = Membership(
            name, self.names, self.timing, incarnation=self.rnd.getrandbits(64) or 1,
            started_at=local0, new_incarnation=lambda: self.rnd.getrandbits(64) or 1,
            auto_rejoin=self.auto_rejoin, two_node=self.two_node,
        )  # fmt: skip
        node = self.nodes[name] = Node(name, rate, off, m)
        self.down.discard(name)
        # A random phase, as agents start independently.
        self._push(at + self.rnd.uniform(0, self.timing.keepalive), name, "tick", m)
        return node

    def kill(self, name: str) -> None:
        self.down.add(name)

    def _push(self, t: float, node: str, kind: str, payload: object) -> None:
        heapq.heappush(self._queue, (t, next(self._tie), node, kind, payload))

    def _send(self, src: str, dst: str, data: bytes) -> None:
        ok, delay = self.link(src, dst, self.now)
        if ok:
            self._push(self.now + delay, dst, "recv", (src, data))

    def run_until(self, end: float) -> None:
        while self._queue and self._queue[0][0] <= end:
            t, _, name, kind, payload = heapq.heappop(self._queue)
            self.now = t
            node = self.nodes[name]
            if name in self.down:
                continue
            local = node.local(t)
            if kind == "tick":
                if payload is not node.m:
                    continue  # the tick chain of a killed, restarted node
                data = self.codec.encode(node.m.next_heartbeat(local))
                for peer in self.names:
                    if peer != name:
                        self._send(name, peer, data)
                self._push(t + self.timing.keepalive / node.rate, name, "tick", node.m)
            elif kind == "recv":
                assert isinstance(payload, tuple)
                src, data = payload
                try:
                    replies = node.m.on_packet(self.codec.decode(data), local, "eth0")
                except Rejected as err:
                    self.rejected.append((name, err.reason))
                    replies = []
                for reply in replies:
                    self._send(name, src, self.codec.encode(reply))
            elif kind == "check":
                pass
            if self.on_event is not None:
                self.on_event(self, name, t)
            nxt = node.m.next_change(local)
            if nxt != float("inf"):
                at = node.real(nxt) + 1e-9
                pending = self._pending.get(name, -1.0)
                if pending <= t or at < pending:
                    self._pending[name] = at
                    self._push(at, name, "check", None)
        self.now = end

    def local(self, name: str) -> float:
        return self.nodes[name].local(self.now)
