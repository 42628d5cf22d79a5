"""A real Vigil cluster in a lab: every node runs `vigil-agent` with its own etcd member.

What `ha cluster init/join` would do on real servers is done here at once, the way etcd
documents a static bootstrap: one CA, each node's certificates, the cluster's heartbeat
key and a node config per node, written into each node's disk before it boots. The
operator's `ha` runs in the client namespace with an admin certificate, as an
administrator's workstation would.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controller.api.fencing import FenceDevice
from controller.api.units import parse_duration
from controller.bootstrap import pki
from controller.bootstrap.etcd_config import etcd_timing
from controller.bootstrap.node_config import (
    EtcdSettings,
    MetricsSettings,
    NodeConfig,
    save_node_config,
    url,
)
from lab import state
from lab.bmc import LabBmcs
from lab.core import Lab
from lab.errors import LabError
from lab.serial_line import RelayLine, SocatLine

NODE_LIB = "/var/lib/vigil"
SERIAL_DEVICE = "ttyHB"  # the null-modem's end, in each node's disk: /var/lib/vigil/ttyHB
HTTP_ECHO = Path(__file__).with_name("http_echo.py")
HA = str(Path(sys.executable).parent / "ha")
# The shipped defaults (controller/api/cluster.py), but a shorter initdead: lab nodes boot
# together.
DEFAULT_TIMING = {"keepalive": "200ms", "warntime": "500ms", "deadtime": "900ms", "initdead": "10s"}
TUNED_TIMING = {"keepalive": "50ms", "warntime": "150ms", "deadtime": "250ms", "initdead": "10s"}


RACE_DELAY = "2s"


def agent_argv() -> list[str]:
    return [sys.executable, "-m", "nodeagent", "--config", f"{NODE_LIB}/node.yaml"]


@dataclass
class Result:
    code: int
    out: str
    err: str


class VigilLab:
    """A lab whose nodes run Vigil. Use as a context manager, or call up() and down()."""

    def __init__(
        self,
        name: str,
        nodes: int = 3,
        *,
        timing: dict[str, str] | None = None,
        disk_root: str | Path = state.DEFAULT_DISK_ROOT,
        serial: tuple[str, str] | None = None,
        serial_line: str = "socat",
        bmcs: bool = False,
        fencing: bool = False,
        quorum: str = "majority",
        fence_action: str = "reboot",
        witness: str | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        """`serial`: two nodes joined by a serial heartbeat link (a pty null-modem, each
        end at /var/lib/vigil/ttyHB in its node) as well as the network; `serial_line`
        "socat" (a plain cable) or "relay" (lab/serial_line.py's RelayLine, which a test
        drives through `line`). `bmcs`: give every node a BMC (an ipmi_sim, lab/bmc.py)
        that really powers it off and on; `fence_devices()` then describes them.
        `fencing`: the cluster fences through those BMCs (spec.fencing.enabled, its
        FenceDevices applied at up()); it implies `bmcs`. `quorum`: majority or two-node
        (two nodes, fencing on). `witness`: that node votes and heartbeats but runs
        nothing. `metrics`: every node config's `metrics` settings (docs/metrics.md;
        the default serves on each node's loopback). `fence_action`: reboot (the shipped
        default) or off; a lab
        node reboots in a second, far faster than a server, so tests that want to see the
        group recovered elsewhere fence with off and power the node on themselves."""
        if quorum not in ("majority", "two-node"):
            raise LabError(f"quorum {quorum!r}: majority or two-node")
        if quorum == "two-node" and (nodes != 2 or not fencing):
            raise LabError("two-node mode: nodes=2 and fencing=True (it fences its peer)")
        bmcs = bmcs or fencing
        self.fencing = fencing
        self.quorum = quorum
        self.fence_action = fence_action
        self.witness = witness
        self.metrics = MetricsSettings.model_validate(metrics or {})
        self.lab = Lab(name, nodes, [agent_argv()], disk_root=disk_root, restart_delay=0.02)
        self.bmcs: LabBmcs | None = LabBmcs(self.lab) if bmcs else None
        self.name = name
        self.timing = dict(timing or DEFAULT_TIMING)
        self.home = state.lab_dir(name) / "vigil"
        self.client_config = self.home / "client.yaml"
        if serial is not None and (serial[0] == serial[1] or not set(serial) <= set(self.nodes)):
            raise LabError(f"serial link {serial}: two different nodes of {self.nodes}")
        if serial_line not in ("socat", "relay"):
            raise LabError(f"serial_line {serial_line!r}: socat or relay")
        self.serial = serial
        self.serial_line = serial_line
        self.line: SocatLine | RelayLine | None = None

    @property
    def nodes(self) -> list[str]:
        return [ep.name for ep in self.lab.layout.nodes]

    def vip(self, host: int = 100) -> str:
        """An address of the lab's subnet that no node owns, for floating IPs."""
        base = self.lab.layout.subnet.split("/")[0].rsplit(".", 1)[0]
        return f"{base}.{host}"

    def cluster_document(self) -> dict[str, Any]:
        return {
            "apiVersion": "ha.vigil.dev/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": self.name},
            "spec": {
                "nodes": [self._node_document(n) for n in self.nodes],
                "timing": self.timing,
                "quorum": {"mode": self.quorum},
                # Without BMCs, safety rests on the serving lease (docs/safety.md).
                "fencing": {"enabled": self.fencing, "action": self.fence_action},
            },
        }

    def _node_document(self, node: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": node, "address": self.lab.node_ip(node)}
        if node == self.witness:
            doc["role"] = "witness"
        if self.serial is not None and node in self.serial:
            device = f"{NODE_LIB}/{SERIAL_DEVICE}"
            doc["heartbeat"] = [{"serial": {"device": device, "baud": 115200}}]
        return doc

    def _start_line(self) -> None:
        if self.serial is None:
            return
        a, b = (self.lab.disk_dir(n) / SERIAL_DEVICE for n in self.serial)
        line = SocatLine(a, b) if self.serial_line == "socat" else RelayLine(a, b)
        self.line = line.start()

    def _stop_line(self) -> None:
        if self.line is not None:
            self.line.stop()
            self.line = None

    # -- set-up -------------------------------------------------------------------------

    def _write_configs(self) -> None:
        ca = pki.create_ca(self.name)
        heartbeat_key = secrets.token_hex(32).encode()
        members = ",".join(f"{n}={url(self.lab.node_ip(n), 2380)}" for n in self.nodes)
        # As `ha cluster init` does: etcd elects within the heartbeats' deadtime.
        heartbeat_ms, election_ms = etcd_timing(parse_duration(self.timing["deadtime"]))
        for node in self.nodes:
            disk = self.lab.disk_dir(node)
            paths = pki.PKIPaths(disk / "pki")
            paths.directory.mkdir(parents=True, exist_ok=True)
            pki.write_public(paths.ca_cert, pki.cert_pem(ca.cert))
            pki.write_private(paths.heartbeat_key, heartbeat_key)
            pki.issue_local(ca, paths, node, [self.lab.node_ip(node)])
            ip = self.lab.node_ip(node)
            config = NodeConfig(
                node=node,
                cluster=self.name,
                address=ip,
                data_dir=f"{NODE_LIB}/etcd",
                pki_dir=f"{NODE_LIB}/pki",
                etcd=EtcdSettings(
                    client_urls=[url(ip, 2379)],
                    peer_url=url(ip, 2380),
                    initial_cluster=members,
                    initial_cluster_state="new",
                    initial_cluster_token=f"lab-{self.name}",
                    heartbeat_ms=heartbeat_ms,
                    election_ms=election_ms,
                ),
                seed_cluster=self.cluster_document(),
                metrics=self.metrics,
            )
            # The file names in-node paths; it is written through the host's view of
            # the disk.
            save_node_config(config, disk / "node.yaml")
            # What `ha` at this node's console reads (see ha_on): every member's endpoint.
            inside = pki.PKIPaths(Path(NODE_LIB) / "pki")
            (disk / "client.yaml").write_text(
                yaml.safe_dump(
                    {
                        "endpoints": [url(self.lab.node_ip(n), 2379) for n in self.nodes],
                        "cluster": self.name,
                        "timeout": "3s",
                        "tls": {
                            "ca": inside.ca_cert,
                            "cert": inside.admin_cert,
                            "key": inside.admin_key,
                        },
                    }
                )
            )
        admin = pki.PKIPaths(self.home / "pki")
        admin.directory.mkdir(parents=True, exist_ok=True)
        pki.write_public(admin.ca_cert, pki.cert_pem(ca.cert))
        # The administrator's copy of the CA key, as on the node `ha cluster init` ran on:
        # what `ha cluster user add --pki-dir` issues users' certificates with.
        pki.write_private(admin.ca_key, pki.key_pem(ca.key))
        pki.issue_local(ca, admin, "admin", ["127.0.0.1"])
        self.client_config.write_text(
            yaml.safe_dump(
                {
                    "endpoints": [url(self.lab.node_ip(n), 2379) for n in self.nodes],
                    "cluster": self.name,
                    "timeout": "3s",
                    "tls": {"ca": admin.ca_cert, "cert": admin.admin_cert, "key": admin.admin_key},
                }
            )
        )

    def up(self, within: float = 60.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self._write_configs()
        try:
            self._start_line()
            self.lab.up()
            if self.bmcs is not None:
                self.bmcs.start()
            self.wait_ready(within)
            if self.fencing:
                applied = self.apply(self.fence_manifest(timeout="10s"))
                if applied.code != 0:
                    raise LabError(f"applying the lab's FenceDevices failed: {applied.err}")
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        try:
            if self.bmcs is not None:
                self.bmcs.stop()
            self.lab.down()
        finally:
            self._stop_line()

    def fence_devices(self, timeout: str = "30s") -> list[FenceDevice]:
        """One `ipmi` FenceDevice per node for the lab's BMCs (made with bmcs=True)."""
        if self.bmcs is None:
            raise LabError(f"lab {self.name} has no BMCs: make it with VigilLab(..., bmcs=True)")
        return self.bmcs.fence_devices(timeout)

    def fence_manifest(self, timeout: str = "30s") -> str:
        """The same devices as YAML documents for `ha apply` (specs only). In two-node
        mode the first node is preferred: its device waits RACE_DELAY, so that in a cut
        cable race its peer shoots second and it survives."""
        if self.bmcs is None:
            raise LabError(f"lab {self.name} has no BMCs: make it with VigilLab(..., bmcs=True)")
        delays = {self.nodes[0]: RACE_DELAY} if self.quorum == "two-node" else None
        return self.bmcs.fence_manifest(timeout, delays)

    def __enter__(self) -> VigilLab:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- operating it -------------------------------------------------------------------

    def agent_processes(self, node: str) -> tuple[int | None, int | None]:
        """Host PIDs of the node's vigil-agent and of its liveness process (a fork of it:
        the same command line, another name); None for one that does not run."""
        agent = liveness = None
        for pid in self.lab.node_pids(node):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if b"nodeagent" in argv and b"-m" in argv:
                if comm == "vigil-liveness":
                    liveness = pid
                else:
                    agent = pid
        return agent, liveness

    def ha(self, *args: str, stdin: str | None = None, timeout: float = 30.0) -> Result:
        """Run `ha` as an administrator would, from the client namespace."""
        proc = self.lab.exec_in(
            "client",
            [HA, "--config", str(self.client_config), *args],
            timeout=timeout,
            input_text=stdin,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ha_on(self, node: str, *args: str, timeout: float = 30.0) -> Result:
        """Run `ha` at a node's console: in its namespaces, with its client config, where
        it also finds what its agent wrote under /run/vigil."""
        proc = self.lab.exec_in(
            node, [HA, "--config", f"{NODE_LIB}/client.yaml", *args], timeout=timeout
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def status(self) -> dict[str, Any]:
        result = self.ha("status", "-o", "json", timeout=15)
        if result.code != 0:
            raise LabError(f"ha status failed: {result.err.strip()}")
        data: dict[str, Any] = json.loads(result.out)
        return data

    def wait_ready(self, within: float = 60.0) -> dict[str, Any]:
        """Until every agent is connected to the store and a leader is elected."""
        deadline = time.monotonic() + within
        last: object = None
        while time.monotonic() < deadline:
            try:
                data = self.status()
                last = data
                if data["leader"] and all(n["agent"] for n in data["nodes"]):
                    return data
            except (LabError, subprocess.TimeoutExpired, ValueError) as exc:
                last = exc
            time.sleep(0.3)
        raise LabError(f"the Vigil cluster in lab {self.name} did not come up: {last}")

    def apply(self, text: str) -> Result:
        return self.ha("apply", "-f", "-", stdin=text)

    def web_group(self, name: str = "web", host: int = 100, port: int = 80,
                  extra: str = "", arp: str = "{count: 3, interval: 50ms}") -> str:  # fmt: skip
        """A small HTTP service behind a floating IP, answering with the node's name."""
        return f"""apiVersion: ha.vigil.dev/v1alpha1
kind: ResourceGroup
metadata: {{name: {name}}}
spec:
{extra}  resources:
    - service:
        exec:
          command: [{sys.executable}, -S, {HTTP_ECHO}, "{port}"]
          stopTimeout: 2s
      probe: {{tcp: {{port: {port}}}, period: 1s, timeout: 500ms, failureThreshold: 2}}
    - ip: {{address: {self.vip(host)}/24, interface: eth0, arp: {arp}}}
"""

    def where(self, group: str) -> str | None:
        for item in self.status()["groups"]:
            if item["name"] == group and item["phase"] == "Running":
                return str(item["running"])
        return None

    def wait_running(self, group: str, within: float = 30.0, not_on: str | None = None) -> str:
        deadline = time.monotonic() + within
        last: object = None
        while time.monotonic() < deadline:
            try:
                node = self.where(group)
                last = self.status()["groups"]
            except (LabError, subprocess.TimeoutExpired) as exc:
                node, last = None, exc
            if node is not None and node != not_on:
                return node
            time.sleep(0.2)
        raise LabError(f"group {group} not running within {within:.0f} s: {last}")

    def scrape(
        self,
        node: str,
        listen: str = "127.0.0.1:9464",
        timeout: float = 5.0,
        path: str = "/metrics",
    ) -> str:
        """The node agent's /metrics text (or another `path` of its listener: the status
        page), fetched inside the node's namespaces (the agent listens on the node's
        loopback by default: docs/metrics.md)."""
        script = (
            "import sys,urllib.request\n"
            f"sys.stdout.write(urllib.request.urlopen('http://{listen}{path}', "
            f"timeout={timeout}).read().decode())\n"
        )
        proc = self.lab.exec_in(node, [sys.executable, "-c", script], timeout=timeout + 10)
        if proc.returncode != 0:
            raise LabError(f"fetching {node}'s {path} failed: {proc.stderr.strip()[-300:]}")
        return proc.stdout

    def get(self, address: str, port: int = 80, timeout: float = 1.0) -> str | None:
        """Body of GET http://address:port/ from the client namespace, or None."""
        script = (
            "import sys,urllib.request\n"
            "try:\n"
            f"  print(urllib.request.urlopen('http://{address}:{port}/', timeout={timeout})"
            ".read().decode())\n"
            "except OSError as e:\n  sys.exit(1)\n"
        )
        proc = self.lab.exec_in("client", [sys.executable, "-c", script], timeout=timeout + 10)
        return proc.stdout.strip() if proc.returncode == 0 else None
