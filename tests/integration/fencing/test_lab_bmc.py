"""The lab's BMCs: IPMI from inside one lab node really powers another one off (its PID 1
is gone) and on again (booted), also across a partition."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.api.fencing import FenceDevice
from lab.bmc import LabBmcs
from lab.core import Lab
from lab.testing import running_lab
from tests.integration.fencing.conftest import needs_ipmi_sim, needs_root

pytestmark = [pytest.mark.slow, needs_root, needs_ipmi_sim]
FENCE = Path(__file__).with_name("fence_from_node.py")
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def lab_with_bmcs(tmp_path: Path) -> Iterator[tuple[Lab, LabBmcs]]:
    with running_lab(3, [["sleep", "infinity"]], prefix="fence", disk_root=tmp_path) as lab:
        bmcs = LabBmcs(lab)
        try:
            bmcs.start()
            yield lab, bmcs
        finally:
            bmcs.stop()


def fence(lab: Lab, on: str, device: FenceDevice, target: str, *actions: str) -> list[Any]:
    argv = [sys.executable, str(FENCE), device.model_dump_json(by_alias=True), target, *actions]
    proc = lab.exec_in(on, argv, timeout=90)
    assert proc.returncode == 0, proc.stderr
    outcomes = [json.loads(line) for line in proc.stdout.splitlines()]
    for outcome in outcomes:
        if not outcome["ok"]:  # what the BMC saw, for the failure report
            log = LabBmcs(lab).root / target / "chassis.log"
            outcome["chassis.log"] = log.read_text()[-3000:] if log.exists() else None
            outcome["stderr"] = proc.stderr[-3000:]
    return outcomes


def pid_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_ipmi_powers_a_lab_node_off_and_on(lab_with_bmcs: tuple[Lab, LabBmcs]) -> None:
    lab, bmcs = lab_with_bmcs
    devices = {d.spec.targets[0]: d for d in bmcs.fence_devices()}
    assert sorted(devices) == ["n1", "n2", "n3"]
    # Every node holds every BMC's password, root-only, on its private /var/lib/vigil.
    check = lab.exec_in("n3", ["stat", "-c", "%a %u", bmcs.bmc("n2").credentials_file])
    assert check.stdout.split() == ["600", "0"], check

    [status] = fence(lab, "n1", devices["n2"], "n2", "status")
    assert (status["ok"], status["power"]) == (True, "on"), status

    # A partition between n1 and n2 does not cut n1 from n2's BMC (management network).
    lab.partition("n1 / n2,n3")
    pid = lab.node_pid("n2")
    assert pid is not None
    off, after = fence(lab, "n1", devices["n2"], "n2", "off", "status")
    assert (off["ok"], off["verified"], off["power"]) == (True, True, "off"), json.dumps(
        off, indent=1
    )
    assert (after["ok"], after["power"]) == (True, "off"), after
    assert pid_gone(pid), "n2's PID 1 still runs after a verified off"
    assert Lab.attach(lab.name).node_pid("n2") is None
    assert lab.node_pid("n3") is not None and lab.node_pid("n1") is not None
    lab.heal()

    [on] = fence(lab, "n3", devices["n2"], "n2", "on")
    assert (on["ok"], on["power"]) == (True, "on"), json.dumps(on, indent=1)
    new_pid = lab.node_pid("n2")
    assert new_pid is not None and new_pid != pid
    assert lab.exec_in("n2", ["hostname"]).stdout.strip() == "n2"

    # A reboot through the BMC: verified off, then up again with a new PID 1.
    [reboot] = fence(lab, "n1", devices["n2"], "n2", "reboot")
    assert (reboot["ok"], reboot["verified"], reboot["power"]) == (True, True, "on"), json.dumps(
        reboot, indent=1
    )
    assert pid_gone(new_pid)
    assert lab.node_pid("n2") not in (None, new_pid)
    log = (bmcs.root / "n2" / "chassis.log").read_text()
    assert "set power 0" in log and "set power 1" in log


def test_bmcs_go_with_the_lab(tmp_path: Path) -> None:
    with running_lab(1, [["sleep", "infinity"]], prefix="fence", disk_root=tmp_path) as lab:
        bmcs = LabBmcs(lab)
        bmcs.start()
        sims = list(bmcs.pids.values())
        assert sims and all(os.path.exists(f"/proc/{p}") for p in sims)
    # Lab.down alone (no bmcs.stop()) ended the simulators and removed their files.
    assert all(pid_gone(p) for p in sims)
    assert not bmcs.root.exists()
