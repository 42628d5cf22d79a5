"""The two sides of docs/safety.md: without etcd a node heard by a majority keeps serving;
a node cut from everyone stops before anyone else starts."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver

from .conftest import needs_root
from .helpers import VipPoller, group, wait_until

pytestmark = [pytest.mark.slow, needs_root]

OUTAGE = 10.0


def etcd_pids(lab: VigilLab, node: str) -> list[int]:
    found = []
    for pid in lab.lab.node_pids(node):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if Path(argv[0].decode()).name == "etcd" and b"--data-dir=/var/lib/vigil/etcd" in (
                b" ".join(argv)
            ).replace(b"--data-dir /", b"--data-dir=/"):
                found.append(pid)
    return found


def test_store_quorum_lost_the_active_node_keeps_serving(
    vlab: VigilLab, observer: VipObserver
) -> None:
    vip = vlab.vip()
    assert vlab.apply(vlab.web_group()).code == 0
    active = vlab.wait_running("web", 30)
    other = next(n for n in vlab.nodes if n != active)
    stopped = [p for n in (active, other) for p in etcd_pids(vlab, n)]
    assert len(stopped) == 2, f"one etcd per node expected, found {stopped}"
    with VipPoller(vlab, vip) as poller:
        time.sleep(0.5)
        start = time.monotonic()
        try:
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            # The store really is gone: the operator's `ha status` cannot read it.
            assert vlab.ha("status", "-o", "json", timeout=20).code != 0
            time.sleep(max(0.0, OUTAGE - (time.monotonic() - start)))
            during = time.monotonic()
        finally:
            for pid in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        time.sleep(0.5)
    window = [a for a in poller.answers if start <= a.time <= during]
    gap = poller.max_gap(start=start - 0.2)
    sys.stderr.write(
        f"\netcd stopped on {active} and {other} for {during - start:.1f} s: {len(window)} "
        f"polls, {sum(1 for a in window if a.node != active)} not answered by {active}, "
        f"longest gap {gap:.3f} s\n"
    )
    # A lone poll may time out on a loaded machine; the service must not stop.
    assert window and all(a.node in (active, None) for a in window)
    assert gap < 1.0
    assert observer.holders() == {active}
    # The store comes back and nothing moved.
    web = wait_until("status readable again", lambda: group(vlab, "web"), 30, every=0.5)
    assert web["placed"] == active and web["running"] == active and web["phase"] == "Running"


def test_isolated_active_node_stops_before_another_starts(
    vlab: VigilLab, observer: VipObserver
) -> None:
    vip = vlab.vip()
    assert vlab.apply(vlab.web_group()).code == 0
    active = vlab.wait_running("web", 30)
    others = [n for n in vlab.nodes if n != active]
    observer.wait_for(lambda h: h == {active}, within=5)
    cut = time.monotonic()
    vlab.lab.partition(f"{active} / {','.join(others)}")
    gone = observer.wait_for(lambda h: active not in h, within=5)
    moved = observer.wait_for(lambda h: bool(h - {active}), within=20)
    survivor = next(iter(moved.holders))
    # Every round from the cut to the takeover: never both.
    rounds = observer.since(cut)
    assert all(len(s.holders) <= 1 for s in rounds)
    assert gone.time <= moved.time
    assert active not in moved.holders
    sys.stderr.write(
        f"\n{active} isolated: VIP removed there after {gone.time - cut:.3f} s, up on "
        f"{survivor} after {moved.time - cut:.3f} s (gap {moved.time - gone.time:.3f} s)\n"
    )
    survivor_running = vlab.wait_running("web", 20, not_on=active)
    assert survivor_running == survivor
    wait_until("the VIP answers", lambda: vlab.get(vip) == survivor, 10)
    assert active not in observer.holders()
    # At the isolated node's console, `ha status` cannot read the cluster's view; it shows
    # what that node's agent knows, marked as such, and that it stands down.
    local = vlab.ha_on(active, "status", "--timeout", "1s", timeout=30)
    sys.stderr.write(f"ha status on {active}:\n{local.err}{local.out}")
    assert local.code == 3, local
    assert f"LOCAL VIEW of node {active}, written by its agent" in local.out, local
    assert f"Quorum:  NO: {active} hears 0 of 2 peers, not a majority of 3" in local.out
    assert "it runs nothing and stops what it ran" in local.out
    assert re.search(r"\n  web  not here +\S+ stopped, \S+ stopped\n", local.out), local.out
    assert "error: etcd unavailable" in local.err
