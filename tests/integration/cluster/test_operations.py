"""Operator-visible behaviour: probe failures and the migration threshold, `ha cleanup`,
`ha standby`/`unstandby` with stickiness and fail-back."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver

from .conftest import needs_root
from .helpers import group, wait_until

pytestmark = [pytest.mark.slow, needs_root]

# The probe connects to 127.0.0.1:80 inside the node; the client reaches the VIP on eth0.
BLOCK_PROBE = """
table inet vtest {
  chain input {
    type filter hook input priority 0;
    iif "lo" tcp dport 80 reject with tcp reset
  }
}
"""


def block_probe(lab: VigilLab, node: str) -> None:
    lab.lab.exec_in(node, ["nft", "-f", "-"], input_text=BLOCK_PROBE, check=True)


def unblock_probe(lab: VigilLab, node: str) -> None:
    lab.lab.exec_in(node, ["nft", "delete", "table", "inet", "vtest"], check=True)


def echo_pids(lab: VigilLab, node: str) -> list[int]:
    found = []
    for pid in lab.lab.node_pids(node):
        try:
            if b"http_echo.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def test_failing_probe_restarts_then_moves_and_cleanup_clears(
    vlab: VigilLab, observer: VipObserver
) -> None:
    assert vlab.apply(vlab.web_group(extra="  migrationThreshold: 2\n")).code == 0
    home = vlab.wait_running("web", 30)
    [first_pid] = echo_pids(vlab, home)

    # First failure: restarted in place.
    block_probe(vlab, home)
    t0 = time.monotonic()
    # The failure is recorded before the restart begins, whose first step drops the VIP;
    # the probe of the restarted service would fail again at once: unblock it now.
    observer.wait_for(lambda h: home not in h, within=15)
    failed_after = time.monotonic() - t0
    unblock_probe(vlab, home)
    web = wait_until(
        "the group running again on the same node",
        lambda: (g := group(vlab, "web"))["phase"] == "Running" and g,
        15,
    )
    assert web["failures"] == {home: 1}, web
    assert web["placed"] == home and web["running"] == home and web["failures"] == {home: 1}
    [second_pid] = echo_pids(vlab, home)
    assert second_pid != first_pid, "the service was not restarted"

    # Second failure reaches the threshold: the group moves.
    block_probe(vlab, home)
    t1 = time.monotonic()
    other = vlab.wait_running("web", 30, not_on=home)
    moved_after = time.monotonic() - t1
    web = group(vlab, "web")
    assert web["failures"] == {home: 2} and web["placed"] == other
    assert observer.holders() == {other}
    assert echo_pids(vlab, home) == []
    sys.stderr.write(
        f"\nprobe blocked on {home}: failure 1 recorded after {failed_after:.1f} s, restarted "
        f"locally (pid {first_pid} -> {second_pid}); failure 2 -> moved to {other} after "
        f"{moved_after:.1f} s\n"
    )

    # Banned until cleanup: a move there is refused by the scheduler...
    unblock_probe(vlab, home)
    assert vlab.ha("move", "web", home).code == 0
    time.sleep(3)
    assert vlab.where("web") == other
    # ... and allowed after it.
    result = vlab.ha("cleanup", "web")
    assert result.code == 0 and home in result.out, result
    assert group(vlab, "web")["failures"] == {}
    wait_until("the group back on the cleaned node", lambda: vlab.where("web") == home, 30)
    assert observer.holders() == {home}


def test_standby_moves_groups_and_unstandby_respects_stickiness(
    vlab: VigilLab, observer: VipObserver
) -> None:
    assert vlab.apply(vlab.web_group()).code == 0
    home = vlab.wait_running("web", 30)

    # Standby: stopped on the old node before it starts on the new one.
    before = time.monotonic()
    assert vlab.ha("standby", home).code == 0
    other = vlab.wait_running("web", 30, not_on=home)
    _stopped_before_started(observer, before, home, other)
    nodes = {n["name"]: n for n in vlab.status()["nodes"]}
    assert nodes[home]["standby"] is True
    # Stickiness (default 100): unstandby leaves the group where it is.
    assert vlab.ha("unstandby", home).code == 0
    time.sleep(5)  # two controller resyncs
    web = group(vlab, "web")
    assert web["placed"] == other and web["running"] == other, web
    assert {n["name"]: n for n in vlab.status()["nodes"]}[home]["standby"] is False

    # Fail-back: no stickiness and a preferred node.
    preferred = f"  placement:\n    stickiness: 0\n    nodes: [{{name: {home}, score: 100}}]\n"
    before = time.monotonic()
    assert vlab.apply(vlab.web_group(extra=preferred)).code == 0
    wait_until("the group on its preferred node", lambda: vlab.where("web") == home, 30)
    _stopped_before_started(observer, before, other, home)
    before = time.monotonic()
    assert vlab.ha("standby", home).code == 0
    away = vlab.wait_running("web", 30, not_on=home)
    _stopped_before_started(observer, before, home, away)
    before = time.monotonic()
    assert vlab.ha("unstandby", home).code == 0
    wait_until("the group back home", lambda: vlab.where("web") == home, 30)
    _stopped_before_started(observer, before, away, home)
    assert observer.holders() == {home}


def _stopped_before_started(observer: VipObserver, since: float, old: str, new: str) -> None:
    """In the observer's rounds since `since`: `old` let go of the VIP, then `new` took it."""
    rounds = observer.since(since)
    took = next(i for i, s in enumerate(rounds) if new in s.holders)
    gone = next(i for i, s in enumerate(rounds) if old not in s.holders)
    assert gone < took, f"{new} took the VIP before {old} let go"
    assert all(len(s.holders) <= 1 for s in rounds)
    sys.stderr.write(
        f"\n{old} -> {new}: VIP absent for {rounds[took].time - rounds[gone].time:.3f} s\n"
    )
