"""The liveness process: heartbeats, acknowledgements and the serving lease, in a process
of their own, as corosync is to Pacemaker.

With one loop for everything, a big apply held the loop for up to 0.8 s, heartbeats
stopped and every node lost its serving lease. A thread of its own was not enough: the
threads of one interpreter share its lock and its garbage collector, and with thousands
of groups a full collection (0.3 s, most of it scanning the control plane's heap) held
both, so leases were still lost. Here nothing of the control plane is shared: the agent
forks this process first thing (nodeagent/liveness_link.py), before it imports anything
heavy, and it runs at real-time priority (SCHED_RR) with a heap of a few megabytes.

It serves the control plane over a socket pair (SOCK_SEQPACKET, one JSON message per
packet):

- from the agent: `start` (heartbeats with this configuration; restarted if it differs;
  its `watchdog` entry, this node's self-fencing watchdog, applied without restarting
  them), `stop` (with `disarm` when the agent stopped every resource: the watchdog is
  disarmed first; then heartbeats stop), and `beat` (the control loop runs);
- to the agent: `state` (the membership as the control plane needs it: the serving lease,
  each peer's state, verdict and incarnation) on every change and whenever the recorded
  lease grew, and `done` in answer to start and stop.

The lease it tells is the one recorded for the enforcer (nodeagent/fastpath.py
LeaseRecorder), written before it is told: whatever the control plane starts under a
lease, the enforcer already knows of it.

It ends with the agent: when the agent's end of the socket closes (it exited or was
killed), at once, without stopping anything (the enforcer stops the resources at the
lease's end unless a new agent is heard in time). It ignores SIGTERM and SIGINT: a
stopping agent stops its resources first and its heartbeats last. A control plane stuck
for good would keep its node "up" while nothing tends its resources: the watchdog here
aborts the agent when its control loop has not ticked for CONTROL_DEADLINE.

It also pets this node's hardware watchdog when one is configured (nodeagent/selffence.py):
here, because this process's death or freeze, a lost lease or a stuck control loop are
exactly what must reset the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nodeagent import fastpath
from nodeagent.fastpath import LeaseRecorder
from nodeagent.heartbeat.config import HeartbeatConfig
from nodeagent.heartbeat.membership import Membership
from nodeagent.heartbeat.service import ChangeEvent, HeartbeatService
from nodeagent.loopwatch import LoopWatch
from nodeagent.realtime import make_realtime
from nodeagent.selffence import SelfFence, WatchdogSettings

log = logging.getLogger(__name__)

CONTROL_DEADLINE = 30.0
WATCHDOG_TICK = 0.5
ABORT_GRACE = 5.0  # seconds the aborted agent has to dump its stacks before SIGKILL
MAX_MESSAGE = 65536
PROCESS_NAME = b"vigil-liveness"
READY = b'{"op": "ready"}'
_PR_SET_NAME = 15
_PR_SET_PDEATHSIG = 1


class ControlWatchdog:
    """Whether the control loop is stuck: not ticked for `deadline`, while this process
    ran. Armed by the first tick. If this process was frozen as well (SIGSTOP of the
    whole agent, a suspended machine), the control loop gets a fresh allowance: both were
    stopped, neither is stuck."""

    def __init__(self, deadline: float, tick: float = WATCHDOG_TICK) -> None:
        self.deadline = deadline
        self.tick = tick
        self.last_beat: float | None = None
        self.last_check: float | None = None

    def beat(self, now: float) -> None:
        self.last_beat = now

    def stuck(self, now: float) -> bool:
        frozen = self.last_check is not None and now - self.last_check > self.tick + 1.0
        self.last_check = now
        if self.last_beat is None:
            return False
        if frozen:
            self.last_beat = now
            return False
        return now - self.last_beat > self.deadline


def membership_state(
    m: Membership,
    now: float,
    recorded: float,
    link_stats: dict[str, dict[str, int]] | None = None,
    rejected: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    """What the control plane reads of the membership. `expiry` is the lease as recorded
    for the enforcer, never beyond it; `lost` is this process's verdict, which the control
    plane takes as is (it would judge time-based verdicts on an older copy). Per peer and
    link: heard within deadtime, and how long ago it was heard (`ages`, for "silent for
    X s"); `link_stats`: each link's error counters."""
    silent = m.link_silent(now)
    peers = {
        peer: {
            "state": status.state,
            "lost": m.lost(peer, now),
            "incarnation": None if status.incarnation is None else f"{status.incarnation:016x}",
            "links": {link: not quiet for link, quiet in silent[peer].items()},
            "ages": {link: round(age, 3) for link, age in status.links.items()},
            "rtt": {link: round(rtt, 6) for (p, link), rtt in m.rtt.items() if p == peer},
            "missed": {link: n for (p, link), n in m.missed.items() if p == peer},
        }
        for peer, status in m.peer_status(now).items()
    }
    return {
        "op": "state",
        "incarnation": f"{m.incarnation:016x}",
        "expiry": min(m.lease_expiry(now), recorded),
        "margin": m.timing.stop_margin,
        "peers": peers,
        "link_stats": link_stats or {},
        "rejected": rejected or {},
    }


class Outbox:
    """Messages to the agent, never blocking this loop: what the socket cannot take now
    waits, and a newer `state` replaces a waiting one (each is whole)."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self.loop = loop
        self.waiting: deque[dict[str, Any]] = deque()
        self._writer = False

    def send(self, message: dict[str, Any]) -> None:
        if message["op"] == "state":
            self.waiting = deque(m for m in self.waiting if m["op"] != "state")
        self.waiting.append(message)
        self.flush()

    def flush(self) -> None:
        while self.waiting:
            try:
                self.sock.send(json.dumps(self.waiting[0]).encode())
            except BlockingIOError:
                if not self._writer:
                    self.loop.add_writer(self.sock, self.flush)
                    self._writer = True
                return
            except OSError:
                return  # the agent is gone: the reader sees the end
            self.waiting.popleft()
        if self._writer:
            self.loop.remove_writer(self.sock)
            self._writer = False


class LivenessServer:
    def __init__(
        self,
        sock: socket.socket,
        lease_file: Path,
        keepalive: float,
        *,
        control_deadline: float = CONTROL_DEADLINE,
        on_stuck: Callable[[], None] | None = None,
    ) -> None:
        self.sock = sock
        self.lease_file = lease_file
        self.keepalive = keepalive
        self.watchdog = ControlWatchdog(control_deadline)
        self.on_stuck = on_stuck or (lambda: abort_agent(control_deadline))
        self.service: HeartbeatService | None = None
        self.config: dict[str, Any] | None = None
        self.recorder = LeaseRecorder(lease_file)
        self.watch: LoopWatch | None = None
        self._sent_expiry = float("nan")
        self._closed: asyncio.Future[None] | None = None
        self._outbox: Outbox | None = None
        self.selffence: SelfFence | None = None
        self.make_selffence: Callable[[WatchdogSettings], SelfFence] = SelfFence
        self._control_stuck = False
        self._pet_wake: asyncio.Event | None = None

    async def run(self, initial: dict[str, Any] | None) -> None:
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        self._outbox = Outbox(self.sock, loop)
        self._pet_wake = asyncio.Event()
        self.sock.setblocking(False)
        loop.add_reader(self.sock, self._readable)
        # Stalls longer than a keepalive delay heartbeats.
        self.watch = LoopWatch(self.keepalive, "liveness loop")
        self.watch.start()
        tasks = [
            loop.create_task(self._watchdog(), name="control-watchdog"),
            loop.create_task(self._record(), name="lease-recorder"),
            loop.create_task(self._pet(), name="watchdog-petter"),
        ]
        try:
            if initial is not None:
                await self._start(initial)
            await self._closed
        finally:
            for task in tasks:
                task.cancel()
            loop.remove_reader(self.sock)

    # -- requests --------------------------------------------------------------------

    def _readable(self) -> None:
        while True:
            data = receive(self.sock)
            if data is None:
                return
            if not data:
                # The agent is gone: so are its heartbeats, now.
                assert self._closed is not None
                if not self._closed.done():
                    self._closed.set_result(None)
                return
            message = json.loads(data)
            if message["op"] == "beat":
                self.watchdog.beat(time.monotonic())
            else:
                asyncio.get_running_loop().create_task(self._request(message))

    async def _request(self, message: dict[str, Any]) -> None:
        error = None
        try:
            if message["op"] == "start":
                await self._start(message["config"])
            elif message["op"] == "stop":
                # `disarm`: the agent stopped every resource, nothing is left for a reset
                # to protect. Disarmed before heartbeats stop, or the petter would see the
                # lease go and commit the node to a reset. Without it (a resource that
                # would not stop), it stays armed: the node resets.
                if self.selffence is not None and message.get("disarm", False):
                    self.selffence.disarm()
                    self.selffence = None
                await self._stop()
            else:
                error = f"unknown request {message['op']!r}"
        except Exception as exc:  # the agent reports it; this process carries on
            log.exception("liveness request %s failed", message["op"])
            error = f"{type(exc).__name__}: {exc}"
        self._send({"op": "done", "id": message["id"], "error": error})

    async def _start(self, data: dict[str, Any]) -> None:
        self._configure_watchdog(WatchdogSettings.from_dict(data.get("watchdog")))
        data = {k: v for k, v in data.items() if k != "watchdog"}
        if self.service is not None and data == self.config:
            return
        config: HeartbeatConfig = fastpath.from_dict(data)
        await self._stop()
        service = HeartbeatService(config)
        service.add_listener(self._changed)
        await service.start()
        self.service, self.config = service, data
        log.info(
            "heartbeats started: %s, %d peers, keepalive %g s, deadtime %g s",
            config.node,
            len(config.peers),
            config.timing.keepalive,
            config.timing.deadtime,
        )
        self._publish()

    def _configure_watchdog(self, settings: WatchdogSettings | None) -> None:
        current = self.selffence
        if current is not None and current.settings == settings:
            return
        if current is not None:
            if current.state == "stopped":
                # Committed to a reset: a new FenceDevice does not take that back.
                log.warning("watchdog %s: petting stopped, not reconfigured", current.settings.name)
                return
            current.disarm()
        self.selffence = None if settings is None else self.make_selffence(settings)
        if self._pet_wake is not None:
            self._pet_wake.set()

    def may_serve(self) -> bool:
        """Whether the node may serve now: the lease as recorded for the enforcer, less the
        stop margin (what the agent is told, nodeagent/liveness_link.py)."""
        if self.service is None:
            return False

        def serving(m: Membership, now: float) -> bool:
            return now < min(m.lease_expiry(now), self.recorder.persisted) - m.timing.stop_margin

        return self.service.read(serving)

    async def _pet(self) -> None:
        """Every `interval` of the configured watchdog: pet it while the node may serve."""
        assert self._pet_wake is not None
        while True:
            selffence = self.selffence
            if selffence is not None:
                before = selffence.state
                selffence.tick(self.may_serve(), not self._control_stuck)
                if selffence.state != before:
                    self._publish()  # armed: the control plane may serve; stopped: not
            self._pet_wake.clear()
            with contextlib.suppress(TimeoutError):
                # A reconfiguration wakes it; otherwise a quarter of the timeout.
                interval = selffence.interval if selffence is not None else 1.0
                await asyncio.wait_for(self._pet_wake.wait(), interval)

    async def _stop(self) -> None:
        if self.service is not None:
            service, self.service, self.config = self.service, None, None
            await service.stop()
            log.info("heartbeats stopped")

    # -- the lease and the state -------------------------------------------------------

    def _changed(self, _event: ChangeEvent) -> None:
        self._publish()
        if self.selffence is not None and self.selffence.state == "idle" and self._pet_wake:
            self._pet_wake.set()  # it may serve now: arm without waiting for the next tick

    def _publish(self) -> None:
        """Record the lease, then tell the agent (in this order: see the module's doc)."""
        if self.service is None:
            return
        state = self.service.read(self._state)
        # Held back for an unarmed watchdog, the lease told is -inf: compared as recorded,
        # or `_record` would publish again at every round.
        clamped = self.selffence is not None and self.selffence.state != "armed"
        self._sent_expiry = self.recorder.persisted if clamped else state["expiry"]
        self._send(state)

    def _state(self, m: Membership, now: float) -> dict[str, Any]:
        self.recorder.persist(m, now)
        stats = self.service.link_stats() if self.service is not None else None
        rejected = self.service.rejected_by_link() if self.service is not None else None
        state = membership_state(m, now, self.recorder.persisted, stats, rejected)
        if self.selffence is not None and self.selffence.state != "armed":
            # A node configured to fence itself serves only with its watchdog armed: the
            # leader will count it fenced after the timeout, which proves nothing if it
            # was never armed (no driver, a wrong spec.device). The lease stays recorded
            # for the enforcer (an inherited one is kept, its pets covered it); the
            # control plane starts nothing new until the watchdog is armed.
            state["expiry"] = float("-inf")
        return state

    async def _record(self) -> None:
        while True:
            # Twice a keepalive: the enforcer's copy lags the real lease by at most that.
            keepalive = self.service.config.timing.keepalive if self.service else self.keepalive
            await asyncio.sleep(keepalive / 2)
            if self.service is None:
                continue
            self.service.read(self.recorder.persist)
            if self.recorder.persisted != self._sent_expiry:
                self._publish()

    def _send(self, message: dict[str, Any]) -> None:
        if self._outbox is not None:
            self._outbox.send(message)

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self.watchdog.tick)
            if self.watchdog.stuck(time.monotonic()):
                # Petting stops before the agent is aborted: the abort may not be enough
                # (a process in D state survives SIGKILL), the reset is.
                self._control_stuck = True
                if self.selffence is not None:
                    self.selffence.tick(self.may_serve(), control_alive=False)
                self.on_stuck()
                return


def receive(sock: socket.socket) -> bytes | None:
    """The next message on a non-blocking socket of the pair: None if none is waiting, b""
    if the other end is gone."""
    try:
        return sock.recv(MAX_MESSAGE)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def abort_agent(deadline: float) -> None:
    """The control loop is stuck: end the agent so that its supervisor restarts it. SIGABRT
    first, so that faulthandler prints where each of its threads was."""
    agent = os.getppid()
    log.critical(
        "the control plane's event loop has not run for %.0f s: aborting the agent (pid %d) "
        "so that it is restarted (heartbeats stop; resources stop at the lease's end unless "
        "the new agent is heard in time)",
        deadline,
        agent,
    )
    with contextlib.suppress(OSError):
        os.kill(agent, signal.SIGABRT)
    time.sleep(ABORT_GRACE)  # this process must not heartbeat for a stuck agent meanwhile
    with contextlib.suppress(OSError):
        os.kill(agent, signal.SIGKILL)
    logging.shutdown()
    os._exit(0)


def child_main(
    sock: socket.socket,
    agent_pid: int,
    initial: dict[str, Any] | None,
    lease_file: Path,
    keepalive: float,
    control_deadline: float,
) -> None:
    """In the forked child: run the liveness process until the agent is gone; never
    returns into the agent's code."""
    code = 0
    try:
        # What the agent had loaded when it forked is never this process's garbage: out of
        # every collection, which stays small and short here.
        gc.freeze()
        _bind_to_agent(agent_pid)
        sock.send(READY)  # named and bound: the agent goes on
        # The agent handles these; its heartbeats must outlive its orderly stop.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.set_wakeup_fd(-1)
        log.info("liveness process %d: %s", os.getpid(), make_realtime())
        # Forked from inside a running loop (tests do): that loop is the agent's.
        asyncio.events._set_running_loop(None)
        server = LivenessServer(sock, lease_file, keepalive, control_deadline=control_deadline)
        asyncio.run(server.run(initial))
    except BaseException:
        log.exception("the liveness process failed")
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


def _bind_to_agent(agent_pid: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    # The name `ps` and `top` show (the command line stays the agent's).
    libc.prctl(_PR_SET_NAME, ctypes.c_char_p(PROCESS_NAME), 0, 0, 0)
    # Belt and braces with the socket's end: die with the agent.
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != agent_pid:
        os._exit(0)  # the agent died before the line above
