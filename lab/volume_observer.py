"""`VolumeObserver`: on every powered node of a lab, is the volume Primary, and is its
filesystem mounted? Sampled in a thread, as `VipObserver` samples a VIP.

The claim it checks: a volume is never Primary on two nodes at once, and its filesystem
never mounted on two nodes at once. A node's replica answers on its control socket, which
lives in the node's private /run: the host reaches it through /proc/<init>/root. The
node's mount table is /proc/<init>/mounts. Only nodes whose init runs count (a killed
node's replica is gone with its PID namespace). Two holders in one round are an overlap
only when the first one, asked again after the second answered, still holds: a hand-over
(demote, then promote elsewhere) seen across a slow round is not one.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

from blockrepl.errors import BlockReplError
from blockrepl.replication.control import request
from lab.core import Lab


class _HasLab(Protocol):
    lab: Lab


@dataclass(frozen=True)
class VolumeSample:
    time: float
    primary: frozenset[str]
    mounted: frozenset[str]


def _role(pid: int, volume: str) -> str | None:
    path = f"/proc/{pid}/root/run/vigil/volumes/{volume}/control.sock"
    try:
        return str(request(path, "status", timeout=0.5)["status"]["role"])
    except (BlockReplError, OSError, ValueError, KeyError, TypeError):
        return None


def _mounted(pid: int, mount_point: str) -> bool | None:
    try:
        with open(f"/proc/{pid}/mounts") as f:
            return any(line.split()[1] == mount_point for line in f if line.strip())
    except OSError:
        return None


class VolumeObserver:
    def __init__(
        self, lab: Lab | _HasLab, volume: str, mount_point: str, period: float = 0.02
    ) -> None:
        self.lab: Lab = lab if isinstance(lab, Lab) else lab.lab
        self.volume = volume
        self.mount_point = mount_point
        self.period = period
        self.samples: list[VolumeSample] = []
        self.two_primaries: list[tuple[float, tuple[str, ...]]] = []
        self.two_mounts: list[tuple[float, tuple[str, ...]]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> VolumeObserver:
        self._sample()
        self._thread = threading.Thread(target=self._run, name=f"vol-{self.volume}", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        while not self._stop.wait(self.period):
            self._sample()

    def _sample(self) -> None:
        now = time.monotonic()
        primary: list[tuple[str, int]] = []
        mounted: list[tuple[str, int]] = []
        for node in self.lab.nodes:
            pid = self.lab.node_pid(node)
            if pid is None:
                continue
            if _role(pid, self.volume) == "Primary":
                primary.append((node, pid))
            if _mounted(pid, self.mount_point):
                mounted.append((node, pid))
        # Confirm: the earlier holders, asked again, still hold (and still run).
        if len(primary) > 1 and all(
            _role(pid, self.volume) == "Primary" and self.lab.node_pid(n) == pid
            for n, pid in primary[:-1]
        ):
            self.two_primaries.append((now, tuple(n for n, _ in primary)))
        if len(mounted) > 1 and all(
            _mounted(pid, self.mount_point) and self.lab.node_pid(n) == pid
            for n, pid in mounted[:-1]
        ):
            self.two_mounts.append((now, tuple(n for n, _ in mounted)))
        with self._lock:
            self.samples.append(
                VolumeSample(
                    now, frozenset(n for n, _ in primary), frozenset(n for n, _ in mounted)
                )
            )

    def latest(self) -> VolumeSample | None:
        with self._lock:
            return self.samples[-1] if self.samples else None

    def assert_never_twice(self) -> None:
        assert not self.two_primaries, f"{self.volume} Primary on two nodes: {self.two_primaries}"
        assert not self.two_mounts, f"{self.mount_point} mounted on two nodes: {self.two_mounts}"
        assert len(self.samples) > 1, "the volume observer took no samples"
