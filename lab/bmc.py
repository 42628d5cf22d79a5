"""The lab's BMCs: one OpenIPMI `ipmi_sim` per lab node, so that IPMI really powers it.

Each simulator runs in the lab's switch namespace, on a management address of the
bridge (`.254` of the lab's subnet) with a port per node (6231 for the first node,
6232 for the second, ...). Nodes reach it over their eth0 as they would reach a BMC on
a management LAN. A partition (nftables on the bridge's *forward* hook) does not cut
this traffic: packets to the bridge's own address are delivered locally, not forwarded,
as with a management network separate from the cluster's links.

ipmi_sim cannot power anything itself: it runs a `chassis_control` program, here
`python -m lab.bmc_chassis LAB NODE get power|set power 0|1|set reset 1 ...`
(`bmc_chassis.py`). Power is
whether the node's PID 1 runs; off is the lab's power loss (`Lab.power_off`: link down,
SIGKILL of PID 1); on boots the node again (`Lab.power_on`). ipmi_sim waits for the
program before it answers, so a boot is started in the background and the power state
reads "on" once the node runs.

Each BMC has its own random password, in the simulator's root-only config and in a
root-only file on every node's private /var/lib/vigil (`secrets/bmc-<node>`), so that
the leader, wherever it runs, can fence any node. Everything lives under the lab's run
directory and in its switch namespace, so `Lab.down` removes it even after a crash.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lab import state
from lab.core import Lab
from lab.errors import LabError
from lab.names import BRIDGE_IFNAME
from lab.net import NETNS_DIR
from lab.shell import run

if TYPE_CHECKING:
    from controller.api.fencing import FenceDevice

BMC_HOST = 254
FIRST_PORT = 6231
USERNAME = "admin"
NODE_SECRETS = "/var/lib/vigil/secrets"
START_TIMEOUT_S = 10.0

EMU = """mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
sel_enable 0x20 1000 0x0a
mc_enable 0x20
"""


@dataclass(frozen=True)
class Bmc:
    node: str
    address: str
    port: int
    username: str
    password: str = field(repr=False)
    directory: Path

    @property
    def credentials_file(self) -> str:
        """Where the nodes find this BMC's credentials (an in-node path)."""
        return f"{NODE_SECRETS}/bmc-{self.node}"


def lan_conf(bmc: Bmc, chassis: list[str]) -> str:
    """ipmi_sim's configuration for one BMC (pure). Only the admin user, IPMI 2.0
    (lanplus) and 1.5 both allowed: fence_ipmilan users may use either."""
    auths = "none md2 md5 straight"
    command = " ".join(chassis)
    return f"""name "{bmc.node}"
set_working_mc 0x20
  startlan 1
    addr {bmc.address} {bmc.port}
    priv_limit admin
    allowed_auths_callback {auths}
    allowed_auths_user {auths}
    allowed_auths_operator {auths}
    allowed_auths_admin {auths}
    guid {secrets.token_hex(16)}
  endlan
  chassis_control "{command}"
  user 2 true "{bmc.username}" "{bmc.password}" admin 10 {auths}
"""


def _udp_bound(pid: int, port: int) -> bool:
    """Whether a process's network namespace has a UDP socket on `port`."""
    try:
        lines = Path(f"/proc/{pid}/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(ln.split()[1].endswith(f":{port:04X}") for ln in lines if len(ln.split()) > 1)


class LabBmcs:
    """Start, find and stop the BMCs of a lab that is up."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.root = state.lab_dir(lab.name) / "bmc"
        base = lab.layout.subnet.split("/")[0].rsplit(".", 1)[0]
        self.address = f"{base}.{BMC_HOST}"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._bmcs: dict[str, Bmc] = {}

    def bmc(self, node: str) -> Bmc:
        if node not in self._bmcs:
            index = self.lab.nodes.index(self.lab.layout.node(node).name)
            self._bmcs[node] = Bmc(
                node=node,
                address=self.address,
                port=FIRST_PORT + index,
                username=USERNAME,
                # 16 characters: IPMI 1.5 passwords hold at most 16 bytes (2.0: 20).
                password=secrets.token_hex(8),
                directory=self.root / node,
            )
        return self._bmcs[node]

    def fence_devices(
        self, timeout: str = "30s", delays: dict[str, str] | None = None
    ) -> list[FenceDevice]:
        """One `ipmi` FenceDevice per node, as an operator would write them; `delays`:
        a node's device waits that long before fencing it (the preferred node's, in
        two-node mode)."""
        from controller.api.fencing import FenceDevice  # pydantic: only for who asks

        return [
            FenceDevice.model_validate(
                {
                    "apiVersion": "ha.vigil.dev/v1alpha1",
                    "kind": "FenceDevice",
                    "metadata": {"name": f"bmc-{node}"},
                    "spec": {
                        "agent": "ipmi",
                        "targets": [node],
                        "address": self.bmc(node).address,
                        "port": self.bmc(node).port,
                        "username": USERNAME,
                        "credentialsFile": self.bmc(node).credentials_file,
                        "timeout": timeout,
                        "delay": (delays or {}).get(node, "0s"),
                    },
                }
            )
            for node in self.lab.nodes
        ]

    def fence_manifest(self, timeout: str = "30s", delays: dict[str, str] | None = None) -> str:
        """The same devices as YAML documents for `ha apply` (specs only)."""
        import yaml

        docs = [d.to_dict() for d in self.fence_devices(timeout, delays)]
        return yaml.safe_dump_all([{k: v for k, v in d.items() if k != "status"} for d in docs])

    def write_credentials(self) -> None:
        """Every BMC's password into every node's /var/lib/vigil/secrets, root-only."""
        for node in self.lab.nodes:
            directory = self.lab.disk_dir(node) / "secrets"
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
            for target in self.lab.nodes:
                _write_private(directory / f"bmc-{target}", self.bmc(target).password + "\n")

    def start(self) -> None:
        """The management address, the credentials, then one simulator per node; waits
        until each listens. On failure stops what it started."""
        try:
            self._add_address()
            self.write_credentials()
            for node in self.lab.nodes:
                self._start_one(self.bmc(node))
            deadline = time.monotonic() + START_TIMEOUT_S
            for node, proc in self._procs.items():
                while not _udp_bound(proc.pid, self.bmc(node).port):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log = self.bmc(node).directory / "sim.log"
                        raise LabError(
                            f"BMC of node {node} (ipmi_sim) did not start listening on "
                            f"{self.address}:{self.bmc(node).port}; see {log}"
                        )
                    time.sleep(0.02)
        except BaseException:
            self.stop()
            raise

    @property
    def pids(self) -> dict[str, int]:
        """Host PIDs of the simulators this object started, by node."""
        return {node: proc.pid for node, proc in self._procs.items()}

    def stop(self) -> None:
        """Kill the simulators this object started, by PID, and wait for them."""
        for proc in self._procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._procs.clear()

    def _add_address(self) -> None:
        switch = self.lab.layout.switch_netns
        # A fixed MAC: a bridge otherwise takes the smallest MAC of its ports, and a node
        # booted again brings a port with a new random one. The BMC address would then
        # move to another MAC and nodes would send to the old one until their ARP entry
        # went stale (about 30 s without an answer from the BMC).
        x, y = (int(part) for part in self.address.split(".")[1:3])
        run(["ip", "-n", switch, "link", "set", BRIDGE_IFNAME,
             "address", f"02:76:{x:02x}:{y:02x}:ff:fd"])  # fmt: skip
        shown = run(["ip", "-n", switch, "-o", "addr", "show", "dev", BRIDGE_IFNAME])
        if f" {self.address}/" not in shown:
            prefix = self.lab.layout.prefixlen
            run(["ip", "-n", switch, "addr", "add", f"{self.address}/{prefix}",
                 "dev", BRIDGE_IFNAME])  # fmt: skip

    def _start_one(self, bmc: Bmc) -> None:
        bmc.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(bmc.directory, 0o700)  # the config holds the password
        chassis = [sys.executable, "-m", "lab.bmc_chassis", self.lab.name, bmc.node]
        conf = bmc.directory / "lan.conf"
        _write_private(conf, lan_conf(bmc, chassis))
        (bmc.directory / "sim.emu").write_text(EMU)
        (bmc.directory / "state").mkdir(exist_ok=True)
        # nsenter --net only (not `ip netns exec`, which also enters a new mount
        # namespace): the chassis program must create and delete the node's network
        # namespaces in the host's /run/netns when it powers the node on.
        argv = [
            "nsenter", f"--net={NETNS_DIR}/{self.lab.layout.switch_netns}", "--",
            "ipmi_sim", "-n", "-c", str(conf), "-f", str(bmc.directory / "sim.emu"),
            "-s", str(bmc.directory / "state"),
        ]  # fmt: skip
        with (bmc.directory / "sim.log").open("ab") as log:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=bmc.directory,
                start_new_session=True,
            )  # fmt: skip
        self._procs[bmc.node] = proc
        self.lab.track(proc)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)
