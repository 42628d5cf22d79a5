"""The heartbeat daemon task: sends, answers, feeds Membership, and announces changes.

Heartbeats go out every `keepalive` on a drift-free schedule (deadline += keepalive, so
a late wake-up does not push every later heartbeat back). Every accepted heartbeat is
answered with an ACK at once. Whenever this node's serving state, a peer's state, a
peer's `lost` verdict or this node's incarnation changes, the service sets `changed` and
queues a `ChangeEvent` for every `watch()`er; a timer set at `Membership.next_change`
catches the changes that come from time passing (a lease ending, a peer going silent).

The service runs in the liveness process (nodeagent/liveness_process.py), which
publishes what the control plane needs of it through `read()` and `add_listener()`
(callbacks run on the service's loop and must not block).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from nodeagent.heartbeat.config import HeartbeatConfig
from nodeagent.heartbeat.membership import Membership, Rejected
from nodeagent.heartbeat.packet import Codec, PacketError
from nodeagent.heartbeat.serial import SerialTransport
from nodeagent.heartbeat.udp import HeartbeatTransport, UdpTransport

log = logging.getLogger(__name__)
WATCH_QUEUE = 1024
T = TypeVar("T")


@dataclass(frozen=True)
class ChangeEvent:
    kind: str
    """"serving" (this node), "peer" (a peer's state), "lost" (a peer's verdict),
    "incarnation" (this node rejoined with a fresh incarnation), "link" (subject
    "<peer>/<link>": "up" or "silent", heard on that link within deadtime or not)."""
    subject: str
    old: str
    new: str
    at: float
    """Monotonic time of the change on this node."""
    detail: str = ""


@dataclass
class Counters:
    sent: int = 0
    received: int = 0
    acks_sent: int = 0
    late_ticks: int = 0
    watch_overflow: int = 0

    def __post_init__(self) -> None:
        self.rejected: Counter[str] = Counter()
        self.link_rejected: Counter[tuple[str, str]] = Counter()
        """(link, reason): which line carries garbage or replays."""


def default_links(config: HeartbeatConfig) -> list[HeartbeatTransport]:
    udp: list[HeartbeatTransport] = [UdpTransport(c) for c in config.link_configs()]
    return udp + [SerialTransport(c) for c in config.serial_links]


class HeartbeatService:
    def __init__(
        self,
        config: HeartbeatConfig,
        links: Sequence[HeartbeatTransport] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.codec = Codec(config.cluster, config.key)
        self.membership = Membership(
            config.node,
            config.members,
            config.timing,
            incarnation=secrets.randbits(64) or 1,
            started_at=clock(),
            two_node=config.two_node,
        )
        self.links: list[HeartbeatTransport] = (
            list(links) if links is not None else default_links(config)
        )
        self.counters = Counters()
        self.changed = asyncio.Event()
        self._listeners: list[Callable[[ChangeEvent], None]] = []
        self._watchers: set[asyncio.Queue[ChangeEvent]] = set()
        self._view: dict[tuple[str, str], str] = {}
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        for link in self.links:
            await link.open(self._deliver_for(link))
        self._view = self._current_view(self.clock())
        self._task = asyncio.create_task(self._send_loop(), name=f"heartbeat-{self.config.node}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for link in self.links:
            link.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def __aenter__(self) -> HeartbeatService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- I/O -----------------------------------------------------------------------

    async def _send_loop(self) -> None:
        loop = asyncio.get_running_loop()
        keepalive = self.config.timing.keepalive
        deadline = loop.time()
        while True:
            self._send_heartbeat()
            deadline += keepalive
            now = loop.time()
            if now > deadline:
                # Overslept a whole period (CPU starvation): send now, keep the phase.
                missed = int((now - deadline) // keepalive) + 1
                self.counters.late_ticks += missed
                deadline += missed * keepalive
            await asyncio.sleep(deadline - now)

    def _send_heartbeat(self) -> None:
        now = self.clock()
        data = self.codec.encode(self.membership.next_heartbeat(now))
        for link in self.links:
            self.counters.sent += link.broadcast(data)
        self._evaluate(now)

    def _deliver_for(self, link: HeartbeatTransport) -> Callable[[bytes, object], None]:
        def deliver(data: bytes, source: object) -> None:
            self._on_datagram(link, data, source)

        return deliver

    def _on_datagram(self, link: HeartbeatTransport, data: bytes, source: object) -> None:
        self.counters.received += 1
        try:
            packet = self.codec.decode(data)
            now = self.clock()
            replies = self.membership.on_packet(packet, now, link.name)
        except (PacketError, Rejected) as err:
            self.counters.rejected[err.reason] += 1
            self.counters.link_rejected[(link.name, err.reason)] += 1
            log.debug("heartbeat from %s on %s rejected: %s", source, link.name, err)
            return
        for reply in replies:
            link.reply(self.codec.encode(reply), source)
            self.counters.acks_sent += 1
        self._evaluate(now)

    # -- change detection ------------------------------------------------------------

    def _current_view(self, now: float) -> dict[tuple[str, str], str]:
        m = self.membership
        view = {
            ("serving", m.self_name): str(m.serving(now)).lower(),
            ("incarnation", m.self_name): f"{m.incarnation:016x}",
        }
        for peer, status in m.peer_status(now).items():
            view[("peer", peer)] = status.state
            view[("lost", peer)] = str(m.lost(peer, now)).lower()
        for peer, links in m.link_silent(now).items():
            for link, silent in links.items():
                view[("link", f"{peer}/{link}")] = "silent" if silent else "up"
        return view

    def _evaluate(self, now: float | None = None) -> None:
        events = []
        now = self.clock() if now is None else now
        view = self._current_view(now)
        for key, new in view.items():
            old = self._view.get(key, "")
            if old != new:
                kind, subject = key
                detail = self.membership.why_lost(subject, now) if kind == "lost" else ""
                events.append(ChangeEvent(kind, subject, old, new, now, detail))
        self._view = view
        at = self.membership.next_change(now)
        report = False
        for event in events:
            self._emit(event)
            report = report or (event.kind == "peer" and event.new == "dead" and event.old != "")
        self._arm_timer(now, at)
        if report and self._task is not None:
            # A peer just went silent for deadtime: tell the others now rather than at the
            # next keepalive, since the leader needs a majority of such reports to act.
            asyncio.get_running_loop().call_soon(self._send_heartbeat)

    def _emit(self, event: ChangeEvent) -> None:
        log.info(
            "heartbeat: %s %s: %s -> %s%s",
            event.kind,
            event.subject,
            event.old or "(start)",
            event.new,
            f" ({event.detail})" if event.detail else "",
        )
        self.changed.set()
        for listener in list(self._listeners):
            listener(event)
        for queue in self._watchers:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.counters.watch_overflow += 1

    def _arm_timer(self, now: float, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if at != float("inf"):
            loop = asyncio.get_running_loop()
            # loop.time() is time.monotonic(); the clock may be another in tests.
            delay = max(0.0, at - now)
            self._timer = loop.call_at(loop.time() + delay, self._evaluate)

    def read(self, look: Callable[[Membership, float], T]) -> T:
        """`look(membership, now)`: the membership as of the service's clock."""
        return look(self.membership, self.clock())

    def add_listener(self, listener: Callable[[ChangeEvent], None]) -> None:
        """Called on the service's loop with every change, before `watch()`ers see it; it
        must not block."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[ChangeEvent], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def watch(self) -> AsyncIterator[ChangeEvent]:
        """Every change from now on, in order (a consumer too slow loses events and
        should re-read `snapshot()`: counted in `watch_overflow`)."""
        queue: asyncio.Queue[ChangeEvent] = asyncio.Queue(WATCH_QUEUE)
        self._watchers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._watchers.discard(queue)

    # -- views -----------------------------------------------------------------------

    def link_stats(self) -> dict[str, dict[str, int]]:
        """Per link, its transport's error counters and the packets refused on it
        (`rejected`, of which `replays`): all change only on faults."""
        out = {}
        for link in self.links:
            refused = {
                reason: n for (name, reason), n in self.counters.link_rejected.items()
                if name == link.name
            }  # fmt: skip
            out[link.name] = {
                **link.stats(),
                "rejected": sum(refused.values()),
                "replays": refused.get("replay", 0),
            }
        return out

    def rejected_by_link(self) -> dict[str, dict[str, int]]:
        """Per link, the packets refused on it by reason (a short fixed word each)."""
        out: dict[str, dict[str, int]] = {}
        for (name, reason), n in self.counters.link_rejected.items():
            out.setdefault(name, {})[reason] = n
        return out

    def snapshot(self) -> dict[str, Any]:
        return self.read(self._snapshot)

    def _snapshot(self, m: Membership, now: float) -> dict[str, Any]:
        expiry = m.lease_expiry(now)
        peers = {}
        for peer, st in m.peer_status(now).items():
            peers[peer] = {
                "state": st.state,
                "age": st.age,
                "links": st.links,
                "incarnation": None if st.incarnation is None else f"{st.incarnation:016x}",
                "refused": st.refused,
                "lost": m.lost(peer, now),
            }
        return {
            "node": m.self_name,
            "at": now,
            "incarnation": f"{m.incarnation:016x}",
            "seq": m.seq,
            "rejoins": m.rejoins,
            "serving": m.serving(now),
            "lease_remaining": max(0.0, expiry - now) if expiry > float("-inf") else 0.0,
            "peers": peers,
            "counters": {
                "sent": self.counters.sent,
                "received": self.counters.received,
                "acks_sent": self.counters.acks_sent,
                "late_ticks": self.counters.late_ticks,
                "watch_overflow": self.counters.watch_overflow,
                "rejected": dict(self.counters.rejected),
                "send_errors": {link.name: link.send_errors for link in self.links},
                "links": self.link_stats(),
            },
        }
