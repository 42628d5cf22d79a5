"""The faults of the campaign: each is injected into a running lab cluster, held for a
while, and undone (the heal). Each returns a sentence saying what exactly it did.

power      the node's power is cut (link down, SIGKILL of its PID 1), then it boots again
agent-kill SIGKILL of the node's vigil-agent (its init starts a new one)
agent-stop SIGSTOP of the agent and its liveness process (a hung agent), SIGCONT after the hold
etcd-kill  SIGKILL of the node's etcd member (the agent's supervisor restarts it)
etcd-stop  SIGSTOP of the etcd member (frozen: connections accepted, never answered)
partition  the node is cut from the others (nftables in the lab's switch), then healed
mute       what the node sends to the others is lost; it still hears them (asymmetric)
deaf       what the others send to the node is lost; they still hear it (asymmetric)
heartbeat-loss  heartbeats between the node and the others are lost both ways; etcd and
           client traffic pass (the heartbeat network fails, the rest does not)
link-down  the node's switch port goes down (the cable pulled: clients lose it too)
cpu        every core busy with spinning processes (the node is not one: CPU is shared)
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lab import net
from lab.cluster import VigilLab

KINDS = (
    "power", "agent-kill", "agent-stop", "etcd-kill", "etcd-stop", "partition", "mute",
    "deaf", "heartbeat-loss", "link-down", "cpu",
)  # fmt: skip


def _argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def agent_pid(lab: VigilLab, node: str) -> int | None:
    return lab.agent_processes(node)[0]


def etcd_pid(lab: VigilLab, node: str) -> int | None:
    for pid in lab.lab.node_pids(node):
        argv = _argv(pid)
        if argv and Path(argv[0].decode(errors="replace")).name == "etcd":
            return pid
    return None


def etcd_leader(lab: VigilLab) -> str | None:
    result = lab.ha("cluster", "members", "-o", "json", timeout=30)
    with contextlib.suppress(ValueError):
        return next((str(r["name"]) for r in json.loads(result.out) if r.get("leader")), None)
    return None


class Injector:
    def __init__(self, lab: VigilLab, rng: random.Random) -> None:
        self.lab = lab
        self.rng = rng

    def run(self, kind: str, node: str) -> str:
        fault: Callable[[str], str] = getattr(self, "_" + kind.replace("-", "_"))
        return fault(node)

    def _hold(self, low: float, high: float) -> float:
        held = self.rng.uniform(low, high)
        time.sleep(held)
        return held

    def _power(self, node: str) -> str:
        self.lab.lab.kill(node)
        held = self._hold(1.0, 4.0)
        self.lab.lab.reboot(node)
        return f"power off for {held:.1f} s, then boot"

    def _signal(self, pid: int | None, sig: signal.Signals) -> bool:
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            return True
        return False

    def _kill(self, pid: int | None, what: str) -> str:
        return f"SIGKILL {what} {pid}" if self._signal(pid, signal.SIGKILL) else f"no {what} found"

    def _freeze(self, pids: list[int | None], what: str, low: float, high: float) -> str:
        found = [pid for pid in pids if pid is not None]
        if not found:
            return f"no {what} found"
        for pid in found:
            self._signal(pid, signal.SIGSTOP)
        try:
            held = self._hold(low, high)
        finally:
            for pid in found:
                self._signal(pid, signal.SIGCONT)
        return f"SIGSTOP {what} {', '.join(map(str, found))} for {held:.1f} s"

    def _agent_kill(self, node: str) -> str:
        return self._kill(agent_pid(self.lab, node), "agent")

    def _agent_stop(self, node: str) -> str:
        return self._freeze(list(self.lab.agent_processes(node)), "agent", 0.5, 3.0)

    def _etcd_kill(self, node: str) -> str:
        return self._kill(etcd_pid(self.lab, node), "etcd")

    def _etcd_stop(self, node: str) -> str:
        return self._freeze([etcd_pid(self.lab, node)], "etcd", 1.0, 4.0)

    def _partition(self, node: str) -> str:
        others = [n for n in self.lab.nodes if n != node]
        self.lab.lab.partition(f"{node} / {','.join(others)}")
        try:
            held = self._hold(2.0, 6.0)
        finally:
            self.lab.lab.heal()
        return f"{node} cut from {', '.join(others)} for {held:.1f} s"

    def _blocked(self, pairs: list[tuple[str, str]], what: str, low: float, high: float) -> float:
        try:
            for src, dst in pairs:
                self.lab.lab.block(src, dst, what)
            return self._hold(low, high)
        finally:
            self.lab.lab.heal()

    def _mute(self, node: str) -> str:
        others = [n for n in self.lab.nodes if n != node]
        held = self._blocked([(node, o) for o in others], "all", 2.0, 6.0)
        return f"{node} -> {', '.join(others)} lost for {held:.1f} s"

    def _deaf(self, node: str) -> str:
        others = [n for n in self.lab.nodes if n != node]
        held = self._blocked([(o, node) for o in others], "all", 2.0, 6.0)
        return f"{', '.join(others)} -> {node} lost for {held:.1f} s"

    def _heartbeat_loss(self, node: str) -> str:
        others = [n for n in self.lab.nodes if n != node]
        pairs = [(node, o) for o in others] + [(o, node) for o in others]
        held = self._blocked(pairs, "heartbeat", 2.0, 6.0)
        return f"heartbeats between {node} and {', '.join(others)} lost for {held:.1f} s"

    def _link_down(self, node: str) -> str:
        lab = self.lab.lab
        port = lab.layout.node(node).port
        net.set_port(lab.layout.switch_netns, port, up=False)
        try:
            held = self._hold(1.0, 4.0)
        finally:
            net.set_port(lab.layout.switch_netns, port, up=True)
        return f"link down for {held:.1f} s"

    def _cpu(self, node: str) -> str:
        hogs = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 2)
        ]
        try:
            held = self._hold(2.0, 5.0)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
        return f"{len(hogs)} spinning processes for {held:.1f} s"
