"""`VipObserver`: watches where a floating address is, on every powered-on node of a lab.

The safety claim of docs/safety.md is that a group is never active on two nodes; for a
VIP that is directly visible in the kernel. A background thread asks each node's network
namespace for its addresses over netlink (~0.3 ms a node) every `period`, and records
who holds the address. A killed node's namespace still holds its addresses but nobody can
reach them (its link is down and its processes are gone), so only nodes whose init runs
count. A partitioned node is powered: it counts, which is the point of the isolation test.

One round queries the nodes one after another, usually within a millisecond; on a
loaded machine a round can stall between two nodes and catch a correct hand-over (stop,
then start elsewhere) as two holders. An overlap is therefore recorded only when every
earlier holder, read again, still holds the address after the last one was seen holding
it: then both held it at that moment (short of a node dropping and re-adding it within
one round).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from pyroute2 import IPRoute

from lab.core import Lab


class _HasLab(Protocol):
    lab: Lab


@dataclass(frozen=True)
class Sample:
    time: float  # time.monotonic() at the start of the round
    holders: frozenset[str]  # powered nodes holding the address
    powered: frozenset[str]  # nodes that were powered (and could be read) in that round
    duration: float = 0.0  # how long the round took


class _Handle:
    """A netlink socket inside one boot of a node's namespace."""

    def __init__(self, netns: str, pid: int) -> None:
        self.pid = pid
        self.ipr: Any = IPRoute(netns=netns)

    def addresses(self) -> set[str]:
        out = set()
        for msg in self.ipr.get_addr():
            ip = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            if ip is not None:
                out.add(str(ipaddress.ip_address(ip)))
        return out

    def close(self) -> None:
        self.ipr.close()


class VipObserver:
    """Samples every powered node's addresses in a thread; a context manager.

    `lab` is a `lab.core.Lab` or anything with a `.lab` attribute holding one (VigilLab).
    """

    def __init__(self, lab: Lab | _HasLab, address: str, period: float = 0.02) -> None:
        self.lab: Lab = lab if isinstance(lab, Lab) else lab.lab
        self.address = str(ipaddress.ip_address(address))
        self.period = period
        self.samples: list[Sample] = []
        self.overlaps: list[tuple[float, tuple[str, ...]]] = []
        self.errors: list[str] = []  # a powered node that could not be read (a blind spot)
        # Rounds that saw 2+ holders in turn, of which an earlier one had let go when
        # read again: a hand-over caught mid-way, not an overlap.
        self.unconfirmed: list[tuple[float, tuple[str, ...]]] = []
        self._handles: dict[str, _Handle] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> VipObserver:
        if self._thread is not None:
            raise RuntimeError("the observer is already running")
        self._sample()  # the first round before start() returns: nothing happens unseen
        self._thread = threading.Thread(target=self._run, name=f"vip-{self.address}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def __enter__(self) -> VipObserver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what it saw --------------------------------------------------------------------

    def holders(self) -> frozenset[str]:
        """Powered nodes holding the address in the latest round."""
        with self._lock:
            return self.samples[-1].holders if self.samples else frozenset()

    def history(self) -> list[Sample]:
        """The rounds where the set of holders changed (the first round included)."""
        with self._lock:
            samples = list(self.samples)
        out: list[Sample] = []
        for sample in samples:
            if not out or sample.holders != out[-1].holders:
                out.append(sample)
        return out

    def since(self, t: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if s.time >= t]

    def max_interval(self) -> float:
        """The longest time between two rounds: how blind the observer may have been."""
        with self._lock:
            times = [s.time for s in self.samples]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def wait_for(self, predicate: Any, within: float) -> Sample:
        """Block until a round started after this call has holders satisfying
        `predicate(frozenset)`; that round."""
        deadline = time.monotonic() + within
        with self._lock:
            seen = len(self.samples)
        while time.monotonic() < deadline:
            with self._lock:
                fresh = self.samples[seen:]
                seen = len(self.samples)
            for sample in fresh:
                if predicate(sample.holders):
                    return sample
            time.sleep(self.period)
        raise AssertionError(
            f"{self.address}: no round matched within {within:g} s; last holders "
            f"{sorted(self.holders())}"
        )

    # -- sampling -----------------------------------------------------------------------

    def _run(self) -> None:
        # A loaded machine stretches the rounds (blind spots); run ahead of the cluster's
        # own processes where allowed. Linux applies nice values per thread.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        while not self._stop.wait(self.period):
            self._sample()

    def _handle(self, node: str, pid: int) -> _Handle:
        handle = self._handles.get(node)
        if handle is not None and handle.pid == pid:
            return handle
        if handle is not None:  # rebooted: the namespace of that name is a new one
            handle.close()
        netns = self.lab.layout.node(node).netns
        if not Path("/run/netns", netns).exists():  # pyroute2 would create it
            raise FileNotFoundError(f"network namespace {netns} is missing")
        handle = _Handle(netns, pid)
        self._handles[node] = handle
        return handle

    def _holds(self, node: str, when: float) -> bool | None:
        """Whether a powered `node` holds the address; None if off or unreadable."""
        pid = self.lab.node_pid(node)
        if pid is None:
            stale = self._handles.pop(node, None)
            if stale is not None:
                stale.close()
            return None
        try:
            found = self._handle(node, pid).addresses()
        except Exception as exc:  # a node between power-off and boot; noted, not fatal
            self.errors.append(f"{when:.3f} {node}: {exc!r}")
            self._handles.pop(node, None)
            return None
        # The node may have lost power during the query: then it does not count.
        if self.lab.node_pid(node) != pid:
            return None
        return self.address in found

    def _sample(self) -> None:
        now = time.monotonic()
        holders: list[str] = []  # in query order
        powered: set[str] = set()
        for node in self.lab.nodes:
            held = self._holds(node, now)
            if held is None:
                continue
            powered.add(node)
            if held:
                holders.append(node)
        confirmed = set(holders)
        if len(holders) > 1:
            # The nodes are read one after the other, and a stalled round (a loaded
            # machine) could see a correct hand-over as both. Proof of an overlap: every
            # earlier holder still holds after the last one was seen holding.
            confirmed = {holders[-1]} | {n for n in holders[:-1] if self._holds(n, now)}
            if len(confirmed) < len(holders):
                self.unconfirmed.append((now, tuple(sorted(holders))))
        sample = Sample(now, frozenset(confirmed), frozenset(powered), time.monotonic() - now)
        with self._lock:
            self.samples.append(sample)
            if len(confirmed) > 1:
                self.overlaps.append((now, tuple(sorted(confirmed))))
