"""The VipObserver itself: it must see an address on two powered nodes, and ignore a
killed node's namespace (which keeps its addresses after power loss)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lab.observer import VipObserver
from lab.testing import running_lab

from .conftest import needs_root

pytestmark = [pytest.mark.slow, needs_root]


def test_observer_sees_two_holders_and_ignores_dead_nodes(tmp_path: Path) -> None:
    with running_lab(3, [["sleep", "infinity"]], prefix="obs", disk_root=tmp_path) as lab:
        base = lab.node_ip("n1").rsplit(".", 1)[0]
        vip = f"{base}.100"
        netns = {n: lab.layout.node(n).netns for n in lab.nodes}
        with VipObserver(lab, vip) as observer:
            observer.wait_for(lambda h: h == frozenset(), within=2)
            lab.exec_in("n1", ["ip", "addr", "add", f"{vip}/24", "dev", "eth0"], check=True)
            observer.wait_for(lambda h: h == {"n1"}, within=2)
            assert observer.overlaps == []
            lab.exec_in("n2", ["ip", "addr", "add", f"{vip}/24", "dev", "eth0"], check=True)
            seen = observer.wait_for(lambda h: h == {"n1", "n2"}, within=2)
            assert observer.overlaps and observer.overlaps[0][1] == ("n1", "n2")
            lab.kill("n1")
            killed = time.monotonic()  # kill() returns once n1's init is gone
            # n1's namespace still has the address, but n1 is off: it no longer counts.
            assert vip in _addresses(lab, netns["n1"])
            observer.wait_for(lambda h: h == {"n2"}, within=2)
            time.sleep(0.2)
            after = observer.since(killed)
            assert after and all(s.powered == {"n2", "n3"} for s in after), after[:5]
            # A rebooted node is read through its new namespace.
            lab.reboot("n1")
            observer.wait_for(lambda h: h == {"n2"}, within=2)
            # The observer's next round after the reboot reads n1 again (a sample taken
            # while reboot() ran may still count it off).
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                late = observer.since(seen.time)[-1]
                if late.powered == {"n1", "n2", "n3"}:
                    break
                time.sleep(0.05)
            assert late.powered == {"n1", "n2", "n3"}
        assert observer.max_interval() < 2.0  # it kept sampling (a loaded box stretches rounds)


def _addresses(lab: object, netns: str) -> str:
    import subprocess

    return subprocess.run(
        ["ip", "-n", netns, "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
