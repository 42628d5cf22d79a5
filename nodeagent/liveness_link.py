"""The control plane's side of the liveness process (nodeagent/liveness_process.py).

`LivenessLink.spawn()` forks the liveness process; the rest of this class is how the agent
starts and stops heartbeats there, tells it that the control loop runs, and reads the
membership it publishes. The copy read here (`MembershipState`) is never ahead of the
truth where safety depends on it: its lease is the one already recorded for the
enforcer, which only grows while it lasts, and a peer is lost here only once the
liveness process said so. Every read first takes the messages already waiting on the
socket, so a control loop that was busy for a while does not answer from an old copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.api.liveness import PeerState as PeerStateName
from nodeagent import fastpath
from nodeagent.heartbeat.config import HeartbeatConfig
from nodeagent.liveness_process import CONTROL_DEADLINE, MAX_MESSAGE, READY, child_main, receive
from nodeagent.selffence import WatchdogSettings

log = logging.getLogger(__name__)

BEAT_EVERY = 0.5  # seconds between the control loop's signs of life
REQUEST_TIMEOUT = 10.0
SPAWN_TIMEOUT = 5.0
EXIT_LIVENESS_LOST = 71
CLOSE_WAIT = 2.0  # seconds the liveness process has to end once its agent closed the link


class LivenessError(Exception):
    pass


@dataclass(frozen=True)
class PeerState:
    state: PeerStateName
    lost: bool
    incarnation: str | None
    links: dict[str, bool]
    """Each link: heard within deadtime."""
    ages: dict[str, float] = field(default_factory=dict, compare=False)
    """Each link: seconds since it was last heard, when the state was sent. Not compared:
    it changes with every message, and a change of peers wakes every listener (the
    reconciler looks at all its groups then)."""
    rtt: dict[str, float] = field(default_factory=dict, compare=False)
    """Each link: seconds from a heartbeat to its ACK, by the last ACK (metrics only)."""
    missed: dict[str, int] = field(default_factory=dict, compare=False)
    """Each link: heartbeats of this peer that never arrived (metrics only)."""


@dataclass(frozen=True)
class MembershipState:
    incarnation: str | None
    expiry: float
    """Monotonic time the serving lease ends, as recorded for the enforcer."""
    margin: float
    peers: dict[str, PeerState]
    link_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    """Each link's error counters (framing, refused packets, send errors, reopens); a
    change alone wakes no listener: readers see it at their next read."""
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)
    """Each link: packets refused on it, by reason (metrics only)."""

    def serving(self, now: float) -> bool:
        return now < self.expiry - self.margin

    @classmethod
    def parse(cls, message: dict[str, Any]) -> MembershipState:
        return cls(
            incarnation=message["incarnation"],
            expiry=float(message["expiry"]),
            margin=float(message["margin"]),
            peers={
                name: PeerState(
                    p["state"],
                    bool(p["lost"]),
                    p["incarnation"],
                    dict(p["links"]),
                    {k: float(v) for k, v in dict(p.get("ages") or {}).items()},
                    {k: float(v) for k, v in dict(p.get("rtt") or {}).items()},
                    {k: int(v) for k, v in dict(p.get("missed") or {}).items()},
                )
                for name, p in message["peers"].items()
            },
            link_stats={
                k: {c: int(n) for c, n in dict(v).items()}
                for k, v in dict(message.get("link_stats") or {}).items()
            },
            rejected={
                k: {r: int(n) for r, n in dict(v).items()}
                for k, v in dict(message.get("rejected") or {}).items()
            },
        )


NOTHING_YET = MembershipState(None, float("-inf"), 0.0, {})
# The agent's ends of the links this process spawned.
_OPEN: set[socket.socket] = set()


class LivenessLink:
    def __init__(self, sock: socket.socket, pid: int, config: HeartbeatConfig | None) -> None:
        self.sock = sock
        self.pid = pid
        self.config = config
        """The heartbeat configuration last asked for (the cached one at first)."""
        self.watchdog: WatchdogSettings | None = None
        """The self-fencing watchdog last asked for."""
        self.state = NOTHING_YET
        self.on_lost: Callable[[], None] = _exit_lost
        self._listeners: list[Callable[[], None]] = []
        self._pending: dict[int, asyncio.Future[str | None]] = {}
        self._ids = itertools.count(1)
        self._last_beat = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gone = False
        self._serving = False  # as the listeners were last told
        self._lease_end: asyncio.TimerHandle | None = None
        sock.setblocking(False)

    @classmethod
    def spawn(
        cls,
        cached: dict[str, Any] | None,
        lease_file: Path,
        *,
        keepalive: float,
        control_deadline: float = CONTROL_DEADLINE,
    ) -> LivenessLink:
        """Fork the liveness process, heartbeating at once if a configuration is cached
        (`fastpath.load`). Call it before the agent starts threads or imports anything heavy."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        agent = os.getpid()
        pid = os.fork()
        if pid == 0:
            # The agent's ends of earlier links (tests fork several): held open here, they
            # would hide from those processes that their agent closed them.
            for sock in (ours, *_OPEN):
                sock.close()
            child_main(theirs, agent, cached, lease_file, keepalive, control_deadline)
        theirs.close()
        _OPEN.add(ours)
        # Once it answers, it is known by its own name (`ps`, the lab's tests) and dies
        # with this process.
        ours.settimeout(SPAWN_TIMEOUT)
        try:
            ready = ours.recv(MAX_MESSAGE)
        except OSError as exc:
            ready = f"{exc}".encode()
        if ready != READY:
            raise LivenessError(f"the liveness process {pid} did not start: {ready!r}")
        return cls(ours, pid, None if cached is None else fastpath.from_dict(cached))

    # -- life cycle ----------------------------------------------------------------------

    def connect(self) -> None:
        """Take the liveness process's messages on the running loop from now on."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock, self.refresh)
        self._arm_lease_end()

    def close(self) -> None:
        """The liveness process ends when it sees this end close."""
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.sock)
        self._gone = True
        if self._lease_end is not None:
            self._lease_end.cancel()
        _OPEN.discard(self.sock)
        self.sock.close()
        self._reap()

    def _reap(self) -> None:
        deadline = time.monotonic() + CLOSE_WAIT
        with contextlib.suppress(ChildProcessError, OSError):
            while time.monotonic() < deadline:
                if os.waitpid(self.pid, os.WNOHANG)[0]:
                    return
                time.sleep(0.01)
            log.warning("the liveness process %d did not end: killing it", self.pid)
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)

    async def start(
        self, config: HeartbeatConfig, key_file: str, watchdog: WatchdogSettings | None = None
    ) -> None:
        """Heartbeats with `config`, restarted there if it is not the one running; the
        node's self-fencing `watchdog` set there (armed once the node serves)."""
        message = {"op": "start", "config": fastpath.to_dict(config, key_file, watchdog)}
        await self._request(message)
        self.config = config
        self.watchdog = watchdog

    async def stop(self, disarm: bool = False) -> None:
        """Stop heartbeats; `disarm`: the agent stopped every resource, so the node's
        self-fencing watchdog is disarmed first (else it stays armed and resets the node)."""
        await self._request({"op": "stop", "disarm": disarm})

    def beat(self) -> None:
        """The control loop runs (its LoopWatch calls this every tick)."""
        now = time.monotonic()
        if now - self._last_beat < BEAT_EVERY or self._gone:
            return
        self._last_beat = now
        with contextlib.suppress(BlockingIOError):
            self.sock.send(b'{"op": "beat"}')

    # -- the membership ------------------------------------------------------------------

    def read(self) -> MembershipState:
        self.refresh()
        return self.state

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Called on the control loop when the membership changed (not when the lease only
        grew)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def refresh(self) -> None:
        """Take every message waiting on the socket."""
        changed = False
        while not self._gone:
            data = receive(self.sock)
            if data is None:
                break
            if not data:
                self._lost()
                return
            message = json.loads(data)
            if message["op"] == "state":
                new = MembershipState.parse(message)
                old = self.state
                changed = changed or new.peers != old.peers or new.incarnation != old.incarnation
                self.state = new
                if new.expiry != old.expiry:
                    self._arm_lease_end()
            elif message["op"] == "done":
                future = self._pending.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message["error"])
        # Against what the listeners were told, not the previous copy: a lease that ran out
        # between two messages has ended for both, and the lease guard must still hear it.
        serving = self.state.serving(time.monotonic())
        if serving != self._serving:
            self._serving = serving
            changed = True
        if changed:
            for listener in list(self._listeners):
                listener()

    def _arm_lease_end(self) -> None:
        """Look again when the lease as known here ends, message or not."""
        if self._loop is None:
            return
        if self._lease_end is not None:
            self._lease_end.cancel()
            self._lease_end = None
        end = self.state.expiry - self.state.margin
        if end != float("-inf"):
            delay = max(0.0, end - time.monotonic()) + 0.001
            self._lease_end = self._loop.call_later(delay, self.refresh)

    async def _request(self, message: dict[str, Any]) -> None:
        if self._gone:
            raise LivenessError("the liveness process is gone")
        loop = asyncio.get_running_loop()
        ident = next(self._ids)
        future: asyncio.Future[str | None] = loop.create_future()
        self._pending[ident] = future
        try:
            await loop.sock_sendall(self.sock, json.dumps({**message, "id": ident}).encode())
            error = await asyncio.wait_for(future, REQUEST_TIMEOUT)
        finally:
            self._pending.pop(ident, None)
        if error is not None:
            raise LivenessError(f"liveness process: {message['op']} failed: {error}")

    def _lost(self) -> None:
        if self._gone:
            return
        self._gone = True
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.sock)
        for future in self._pending.values():
            if not future.done():
                future.set_result("the liveness process ended")
        self.on_lost()


def _exit_lost() -> None:
    log.critical(
        "the liveness process ended: this node sends no heartbeats; exiting so that the agent "
        "is restarted"
    )
    logging.shutdown()
    os._exit(EXIT_LIVENESS_LOST)
