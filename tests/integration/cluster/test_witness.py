"""A witness (role: witness) is a store member that heartbeats and runs nothing: two
servers and a witness fail over as a majority cluster, and no group ever lands on the
witness, even when it is the only node left to take one."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver
from lab.testing import unique_lab_name

from .conftest import needs_root
from .helpers import wait_until

pytestmark = [pytest.mark.slow, needs_root]


def test_a_witness_votes_but_never_runs_a_group(tmp_path: Path) -> None:
    lab = VigilLab(unique_lab_name("wi"), 3, disk_root=tmp_path / "disks", witness="n3")
    lab.up()
    observer = VipObserver(lab, lab.vip())
    try:
        observer.start()
        roles = {n["name"]: n["role"] for n in lab.status()["nodes"]}
        assert roles == {"n1": "server", "n2": "server", "n3": "witness"}
        assert lab.apply(lab.web_group()).code == 0
        active = lab.wait_running("web", 30)
        assert active in ("n1", "n2")
        other = "n2" if active == "n1" else "n1"
        lab.lab.kill(active)  # the other server and the witness are a majority
        assert lab.wait_running("web", 30, not_on=active) == other
        # The last server drained: only the witness could take it, and it must not.
        assert lab.ha("standby", other).code == 0
        wait_until("web placed nowhere", lambda: lab.status()["groups"][0]["placed"] is None, 30)
        assert lab.where("web") is None
        assert "n3" not in observer.holders()
    finally:
        observer.stop()
        lab.down()
    assert observer.overlaps == []
