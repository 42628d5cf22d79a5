"""Independent observers of a lab cluster for the fault campaign.

`ServiceObserver` reads /proc of the host every `period` and tells, for each group, on
which powered nodes its service process runs (a lab node is a PID namespace: a process's
node is the one whose init shares its namespace). Like lab/observer.py for VIPs, a round
that sees a service on two nodes counts as an overlap only if the first one still runs
when read again after the last was seen. `ClientView` asks every VIP from the client
namespace every `period` (lab/probe_client.py) and keeps who answered when.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lab.core import Lab

SETTLE = 2.0  # seconds
PROBE_CLIENT = Path(__file__).resolve().parents[2] / "lab" / "probe_client.py"


def _alive(pid: int) -> bool:
    """Running or sleeping, not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


class ServiceObserver:
    def __init__(self, lab: Lab, markers: Mapping[str, bytes], period: float = 0.02) -> None:
        """``markers``: group name -> a byte string found only in its service's argv."""
        self.lab = lab
        self.markers = dict(markers)
        self.period = period
        self.overlaps: list[tuple[float, str, tuple[str, ...]]] = []  # time, group, nodes
        self.rounds = 0
        self.longest_round = 0.0
        self._latest: dict[str, frozenset[str]] = {}
        self._group_of: dict[int, str | None] = {}  # pid -> group (None: not a service)
        # A child's argv is its parent's until it calls exec: a pid is read again until it
        # has lived SETTLE seconds, then its answer is kept.
        self._young: dict[int, float] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> ServiceObserver:
        self._round()
        self._thread = threading.Thread(target=self._run, name="services", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def where(self) -> dict[str, frozenset[str]]:
        with self._lock:
            return dict(self._latest)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            with contextlib.suppress(OSError):
                self._round()
            took = time.monotonic() - started
            self.longest_round = max(self.longest_round, took)
            self._stop.wait(max(0.0, self.period - took))

    def _namespaces(self) -> dict[str, str]:
        """PID namespace -> node, for powered nodes."""
        out = {}
        for node in self.lab.nodes:
            pid = self.lab.node_pid(node)
            if pid is not None:
                with contextlib.suppress(OSError):
                    out[os.readlink(f"/proc/{pid}/ns/pid")] = node
        return out

    def _classify(self, pid: int) -> str | None:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        return next((g for g, marker in self.markers.items() if marker in argv), None)

    def _round(self) -> None:
        now = time.monotonic()
        pids = {int(e) for e in os.listdir("/proc") if e.isdigit()}
        for gone in [p for p in self._group_of if p not in pids]:
            del self._group_of[gone]
            self._young.pop(gone, None)
        for pid in pids - self._group_of.keys():
            self._young[pid] = now
        for pid, born in list(self._young.items()):
            self._group_of[pid] = self._classify(pid)
            if now - born > SETTLE or self._group_of[pid] is not None:
                del self._young[pid]
        namespaces = self._namespaces()
        found: dict[str, dict[str, list[int]]] = {g: {} for g in self.markers}
        for pid, group in self._group_of.items():
            if group is None or not _alive(pid):
                continue
            try:
                node = namespaces.get(os.readlink(f"/proc/{pid}/ns/pid"))
            except OSError:
                continue
            if node is not None:
                found[group].setdefault(node, []).append(pid)
        latest = {g: frozenset(nodes) for g, nodes in found.items()}
        for group, nodes in found.items():
            if len(nodes) > 1 and all(_alive(p) for pids_ in nodes.values() for p in pids_):
                self.overlaps.append((now, group, tuple(sorted(nodes))))
        with self._lock:
            self._latest = latest
            self.rounds += 1


@dataclass(frozen=True)
class Answer:
    time: float
    node: str | None  # None: no answer
    error: str | None = None  # why not: "timeout", a refused or unreachable address
    connected: bool = True  # the address answered (a timeout after it: a slow service)


class ClientView:
    """One probe client per VIP in the lab's client namespace."""

    def __init__(self, lab: Lab, vips: Mapping[str, tuple[str, int]], period: float = 0.02):
        self.lab = lab
        self.vips = dict(vips)  # group -> (address, port)
        self.period = period
        self.answers: dict[str, list[Answer]] = {g: [] for g in self.vips}
        self._procs: dict[str, subprocess.Popen[str]] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> ClientView:
        for group, (address, port) in self.vips.items():
            argv = [sys.executable, "-S", str(PROBE_CLIENT), address, "--port", str(port),
                    "--interval", str(self.period), "--timeout", "0.3"]  # fmt: skip
            proc = self.lab.popen_in("client", argv, stdout=subprocess.PIPE, text=True)
            self._procs[group] = proc
            reader = threading.Thread(target=self._read, args=(group, proc), daemon=True)
            reader.start()
            self._threads.append(reader)
        return self

    def _read(self, group: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with contextlib.suppress(ValueError, KeyError):
                record = json.loads(line)
                with self._lock:
                    self.answers[group].append(
                        Answer(
                            float(record["t0"]),
                            record["node"],
                            record.get("error"),
                            bool(record.get("connected", True)),
                        )
                    )

    def latest(self, group: str, since: float) -> str | None:
        """Who answered the last attempt started after ``since`` (None: no answer)."""
        with self._lock:
            fresh = [a for a in self.answers[group] if a.time >= since]
        return fresh[-1].node if fresh else None

    def series(self, group: str) -> list[tuple[float, bool]]:
        with self._lock:
            return [(a.time, a.node is not None) for a in self.answers[group]]

    def stop(self) -> None:
        for proc in self._procs.values():
            proc.terminate()
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=5)
