"""A real 3-node lab: reachability, private mounts, power loss, reboot, partitions, teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import Lab, LabError
from lab.testing import running_lab, unique_lab_name

from .conftest import HTTP_PAYLOAD, http_get, needs_root, netns_list, pid_alive, wait_http

pytestmark = [pytest.mark.slow, needs_root]


def test_client_reaches_every_node_and_nodes_are_private(lab3: Lab, tmp_path: Path) -> None:
    for n in lab3.nodes:
        assert http_get(lab3, "client", lab3.node_ip(n)) == n
        assert lab3.exec_in(n, ["hostname"], check=True).stdout.strip() == n
    tag = tmp_path.name[-12:]
    write = f"echo a > /run/{tag} && echo b > /dev/shm/{tag} && echo c > /var/lib/vigil/{tag}"
    lab3.exec_in("n1", ["sh", "-c", write], check=True)
    for path in (f"/run/{tag}", f"/dev/shm/{tag}", f"/var/lib/vigil/{tag}"):
        assert lab3.exec_in("n1", ["cat", path]).returncode == 0
        assert lab3.exec_in("n2", ["test", "-e", path]).returncode != 0, path
        assert not Path(path).exists(), f"{path} leaked to the host"
    assert (lab3.disk_dir("n1") / tag).read_text() == "c\n"
    # Each node sees its own PID namespace: its init is PID 1 there.
    assert lab3.exec_in("n2", ["cat", "/proc/1/cmdline"]).stdout.count("init.py") == 1


def test_kill_is_power_loss_and_reboot_keeps_the_disk(lab3: Lab) -> None:
    ip = lab3.node_ip("n1")
    lab3.exec_in("n1", ["sh", "-c", "echo before-kill > /var/lib/vigil/mark"], check=True)
    pids = lab3.node_pids("n1")
    assert len(pids) >= 2, f"expected init + HTTP server in n1, got {pids}"
    lab3.kill("n1")
    assert [p for p in pids if pid_alive(p)] == []
    assert lab3.node_pid("n1") is None
    assert http_get(lab3, "client", ip, timeout=1.0) is None
    # Link down: n1's surviving network namespace no longer answers ARP.
    arp = lab3.exec_in("client", ["arping", "-c", "1", "-w", "1", "-I", "eth0", ip])
    assert arp.returncode != 0, arp.stdout
    with pytest.raises(LabError, match="down"):
        lab3.exec_in("n1", ["true"])
    assert http_get(lab3, "client", lab3.node_ip("n2")) == "n2"

    lab3.reboot("n1")
    wait_http(lab3, "client", ip, "n1")
    assert lab3.exec_in("n1", ["cat", "/var/lib/vigil/mark"]).stdout == "before-kill\n"
    assert lab3.exec_in("n1", ["hostname"]).stdout.strip() == "n1"
    assert set(lab3.node_pids("n1")).isdisjoint(pids)
    assert {s.name: s.boots for s in lab3.status()} == {"n1": 2, "n2": 1, "n3": 1}


def test_partition_and_heal(lab3: Lab) -> None:
    ip = {n: lab3.node_ip(n) for n in lab3.nodes}
    lab3.partition([["n1"], ["n2", "n3"]])
    assert http_get(lab3, "n1", ip["n2"]) is None
    assert http_get(lab3, "n1", ip["n3"]) is None
    assert http_get(lab3, "n3", ip["n1"]) is None
    assert http_get(lab3, "n2", ip["n3"]) == "n3"
    for n in lab3.nodes:
        assert http_get(lab3, "client", ip[n]) == n
    assert lab3.cuts == [["n1", "n2"], ["n1", "n3"]]

    lab3.heal()
    assert lab3.cuts == []
    wait_http(lab3, "n1", ip["n2"], "n2", within=5)
    wait_http(lab3, "n3", ip["n1"], "n1", within=5)


def test_vip_moves_after_kill_with_gratuitous_arp(lab3: Lab) -> None:
    x, y = lab3.node_ip("n1").split(".")[1:3]
    vip = f"10.{x}.{y}.100"
    lab3.exec_in("n1", ["ip", "addr", "add", f"{vip}/24", "dev", "eth0"], check=True)
    wait_http(lab3, "client", vip, "n1", within=5)
    lab3.kill("n1")
    lab3.exec_in("n2", ["ip", "addr", "add", f"{vip}/24", "dev", "eth0"], check=True)
    lab3.exec_in("n2", ["arping", "-U", "-c", "2", "-I", "eth0", vip], check=True)
    # The client's ARP entry still exists (it talked to n1), so the GARP updates it.
    waited = wait_http(lab3, "client", vip, "n2", within=3)
    assert waited < 3
    neigh = lab3.exec_in("client", ["ip", "neigh", "show", vip]).stdout
    assert lab3.node_mac("n2") in neigh


def test_down_leaves_nothing_behind(tmp_path: Path) -> None:
    disks = tmp_path / "disks"
    with running_lab(2, HTTP_PAYLOAD, disk_root=disks) as lab:
        wait_http(lab, "client", lab.node_ip("n2"), "n2")
        pids = [p for n in lab.nodes for p in lab.node_pids(n)]
        client_proc = lab.popen_in("client", [sys.executable, "-c", "import time; time.sleep(60)"])
        namespaces = lab.layout.all_netns()
        assert all(ns in netns_list() for ns in namespaces)
        assert (disks / lab.name / "n1" / "disk").is_dir()
    listed = netns_list()
    assert [ns for ns in namespaces if ns in listed] == []
    mounts = Path("/proc/mounts").read_text()
    assert f"vl-{lab.name}-" not in mounts
    assert [p for p in [*pids, client_proc.pid] if pid_alive(p)] == []
    assert not Path(f"/run/vigil-lab/{lab.name}").exists()
    assert not (disks / lab.name).exists()
    links = Path("/proc/net/dev").read_text()
    assert "p-n1" not in links and "p-client" not in links


def test_cleanup_happens_when_the_test_body_raises(tmp_path: Path) -> None:
    names: list[str] = []
    pids: list[int] = []
    with (
        pytest.raises(RuntimeError, match="boom"),
        running_lab(2, HTTP_PAYLOAD, disk_root=tmp_path) as lab,
    ):
        names.append(lab.name)
        pids += lab.node_pids("n1") + lab.node_pids("n2")
        assert len(pids) >= 4
        raise RuntimeError("boom")
    assert f"vl-{names[0]}-" not in netns_list()
    assert [p for p in pids if pid_alive(p)] == []
    assert not Path(f"/run/vigil-lab/{names[0]}").exists()


def test_failed_boot_is_a_clear_error_and_cleans_up(tmp_path: Path) -> None:
    name = unique_lab_name("bad")
    lab = Lab(name, 2, ["/nonexistent/payload", "{node}"], disk_root=tmp_path)
    with pytest.raises(LabError, match=r"n1.*failed to boot.*nonexistent"):
        lab.up()
    assert f"vl-{name}-" not in netns_list()
    assert not Path(f"/run/vigil-lab/{name}").exists()


def test_init_reaps_orphans_and_stops_on_sigterm(lab3: Lab) -> None:
    # Orphans in a PID namespace are re-parented to its init, which must reap them.
    lab3.exec_in("n3", ["sh", "-c", "(sleep 0.2 &) ; true"], check=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        states = [_proc_state(p) for p in lab3.node_pids("n3")]
        if "Z" not in states and len(states) == 2:
            break
        time.sleep(0.1)
    assert "Z" not in states and len(states) == 2, states  # init + HTTP server only
    pids = lab3.node_pids("n3")
    init = lab3.node_pid("n3")
    assert init is not None
    # From the host: a `kill` run inside the namespace would be killed by init's own
    # shutdown, racing its exit status.
    os.kill(init, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while lab3.node_pid("n3") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lab3.node_pid("n3") is None
    assert [p for p in pids if pid_alive(p)] == []


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


_RECEIVE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", int(sys.argv[1])))
s.settimeout(2.0)
try:
    print(s.recv(100).decode())
except TimeoutError:
    print("nothing")
"""
_SEND = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(12):
    s.sendto(b"arrived", (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.1)
"""


def udp_arrives(lab: Lab, src: str, dst: str, port: int) -> bool:
    receiver = lab.popen_in(
        dst, [sys.executable, "-S", "-c", _RECEIVE, str(port)], stdout=subprocess.PIPE, text=True
    )
    time.sleep(0.3)  # bound before the first datagram
    lab.exec_in(src, [sys.executable, "-S", "-c", _SEND, lab.node_ip(dst), str(port)], check=True)
    out, _ = receiver.communicate(timeout=10)
    return out.strip() == "arrived"


def test_one_way_blocks_drop_one_direction_only(lab3: Lab) -> None:
    ip = {n: lab3.node_ip(n) for n in lab3.nodes}
    lab3.block("n1", "n2", "heartbeat")
    assert not udp_arrives(lab3, "n1", "n2", 694)  # heartbeats n1 -> n2 are lost
    assert udp_arrives(lab3, "n1", "n2", 695)  # other traffic passes
    assert udp_arrives(lab3, "n2", "n1", 694)  # and the other direction
    assert http_get(lab3, "n1", ip["n2"]) == "n2"
    lab3.block("n3", "n1")
    assert not udp_arrives(lab3, "n3", "n1", 695)
    assert udp_arrives(lab3, "n1", "n3", 695)
    assert lab3.blocks == [["n1", "n2", "heartbeat"], ["n3", "n1", "all"]]
    lab3.heal()
    assert lab3.blocks == []
    assert udp_arrives(lab3, "n1", "n2", 694) and udp_arrives(lab3, "n3", "n1", 695)
