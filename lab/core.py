"""`Lab`: a multi-node cluster on one machine built from namespaces.

Topology: a switch namespace with bridge br0; one network namespace per node
(plus private pid/mnt/uts namespaces under the node's init) and one client
namespace, each joined to br0 by a veth pair. Details live in
names.py (addressing), node.py (boot/kill) and partition.py (nft rules).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from lab import net, partition, state
from lab.errors import LabError
from lab.names import (
    CLIENT,
    Endpoint,
    Layout,
    default_node_names,
    make_layout,
    owns_netns,
    render_argv,
)
from lab.node import Booted, boot, enter_netns_argv, enter_node_argv, is_running, power_off
from lab.shell import check_prerequisites

NODE_MOUNTPOINT = "/var/lib/vigil"


@dataclass(frozen=True)
class LabNodeState:
    name: str
    up: bool
    pid: int | None
    ip: str
    mac: str
    netns: str
    link_up: bool
    boots: int


def _payload_list(payload: list[list[str]] | list[str] | None) -> list[list[str]]:
    if not payload:
        return []
    if all(isinstance(p, str) for p in payload):
        return [list(payload)]  # type: ignore[arg-type]
    out = []
    for i, cmd in enumerate(payload):
        if isinstance(cmd, str) or not cmd or not all(isinstance(s, str) for s in cmd):
            raise LabError(f"payload[{i}] must be a non-empty argv list of strings, got {cmd!r}")
        out.append(list(cmd))
    return out


class Lab:
    """Build, break and tear down a lab. Also a context manager: up() ... down()."""

    def __init__(
        self,
        name: str,
        nodes: int | list[str] = 3,
        payload: list[list[str]] | list[str] | None = None,
        *,
        disk_root: str | Path = state.DEFAULT_DISK_ROOT,
        python: str = sys.executable,
        keep_disks: bool = False,
        restart_delay: float | None = None,
    ) -> None:
        names = default_node_names(nodes) if isinstance(nodes, int) else list(nodes)
        self.layout: Layout = make_layout(name, names)
        self.name = name
        self.keep_disks = keep_disks
        self._state = state.LabState(
            name=name,
            nodes=names,
            payload=_payload_list(payload),
            disk_root=str(disk_root),
            python=python,
            restart_delay=restart_delay,
        )
        for n in names:  # fail now, not at boot, on a bad placeholder
            render_argv(
                [a for cmd in self._state.payload for a in cmd], node=n, ip="", disk="", lab=name
            )
        self._wrappers: dict[str, subprocess.Popen[bytes]] = {}
        self._children: list[subprocess.Popen[Any]] = []

    # ---- construction from an existing lab -------------------------------------------------
    @classmethod
    def attach(cls, name: str) -> Lab:
        """The Lab object for a lab another process brought up (reads its state file)."""
        st = state.load(name)
        if st is None:
            raise LabError(
                f"no lab named {name!r} ({state.state_path(name)} missing); "
                f"running labs: {', '.join(state.list_labs()) or 'none'}"
            )
        lab = cls(name, st.nodes, st.payload, disk_root=st.disk_root, python=st.python)
        lab._state = st
        return lab

    # ---- context manager -------------------------------------------------------------------
    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    # ---- queries ---------------------------------------------------------------------------
    @property
    def nodes(self) -> list[str]:
        return list(self._state.nodes)

    @property
    def client_ns(self) -> str:
        return self.layout.client.netns

    @property
    def client_ip(self) -> str:
        return self.layout.client.ip

    def node_ip(self, node: str) -> str:
        return self.layout.node(node).ip

    def node_mac(self, node: str) -> str:
        return self.layout.node(node).mac

    def disk_dir(self, node: str) -> Path:
        self.layout.node(node)
        return state.disk_dir(self._state.disk_root, self.name, node)

    def node_pid(self, node: str) -> int | None:
        """Host PID of the node's init, or None if the node is down."""
        self.layout.node(node)
        rt = self._state.runtime.get(node)
        if rt is None or not is_running(rt.pid, rt.pid_start):
            # Another process (the node's BMC, `ha lab reboot`) may have booted it since
            # this object last read the state file.
            fresh = state.load(self.name)
            if fresh is None:
                return None
            rt = fresh.runtime.get(node)
            if rt is None or not is_running(rt.pid, rt.pid_start):
                return None
            self._state = fresh
        return rt.pid

    def node_pids(self, node: str) -> list[int]:
        """Host PIDs of every process in the node's PID namespace (init included)."""
        pid = self.node_pid(node)
        if pid is None:
            return []
        try:
            target = os.readlink(f"/proc/{pid}/ns/pid")
        except FileNotFoundError:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/ns/pid") == target:
                        found.append(int(entry))
        return sorted(found)

    def status(self) -> list[LabNodeState]:
        out = []
        for ep in self.layout.nodes:
            rt = self._state.runtime.get(ep.name, state.NodeRuntime())
            pid = self.node_pid(ep.name)
            out.append(
                LabNodeState(
                    name=ep.name,
                    up=pid is not None,
                    pid=pid,
                    ip=ep.ip,
                    mac=ep.mac,
                    netns=ep.netns,
                    link_up=net.port_is_up(self.layout.switch_netns, ep.port),
                    boots=rt.boots,
                )
            )
        return out

    @property
    def cuts(self) -> list[list[str]]:
        return [list(p) for p in self._state.cuts]

    @property
    def blocks(self) -> list[list[str]]:
        return [list(b) for b in self._state.blocks]

    # ---- running commands inside -----------------------------------------------------------
    def wrap_argv(self, target: str, argv: list[str]) -> list[str]:
        """argv prefixed so it runs inside `target` (a node name or "client")."""
        if not argv:
            raise LabError("exec_in needs a non-empty argv")
        if target == CLIENT:
            return enter_netns_argv(self.client_ns, argv)
        pid = self.node_pid(target)
        if pid is None:
            raise LabError(f"node {target!r} of lab {self.name!r} is down (reboot it first)")
        return enter_node_argv(pid, argv)

    def exec_in(
        self, target: str, argv: list[str], *, timeout: float = 30.0, check: bool = False,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run argv in a node's net+mnt+uts+pid namespaces (or the client's netns)."""
        return subprocess.run(
            self.wrap_argv(target, argv), capture_output=True, text=True, timeout=timeout,
            check=check, input=input_text,
        )  # fmt: skip

    def popen_in(self, target: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start argv in the background inside `target`; down() kills it if still alive."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self.wrap_argv(target, argv), **kwargs)
        self._children.append(proc)
        return proc

    # ---- lifecycle -------------------------------------------------------------------------
    def up(self) -> Lab:
        check_prerequisites()
        with state.locked(self.name):
            if state.load(self.name) is not None or any(
                net.netns_exists(ns) for ns in self.layout.all_netns()
            ):
                raise LabError(
                    f"lab {self.name!r} already exists; run `ha lab down --name {self.name}` "
                    "or pick another --name"
                )
            state.save(self._state)  # first, so a crash half-way can still be cleaned up
            try:
                net.create_switch(self.layout.switch_netns)
                self._plug(self.layout.client)
                for ep in self.layout.nodes:
                    self._plug(ep)
                    self._boot(ep)
            except BaseException:
                self._teardown()
                shutil.rmtree(state.lab_dir(self.name), ignore_errors=True)
                raise
        return self

    def kill(self, node: str) -> None:
        """Power loss: link down first (no more frames), then SIGKILL of the node's PID 1."""
        ep = self.layout.node(node)
        with state.locked(self.name):
            self._reload()
            net.set_port(self.layout.switch_netns, ep.port, up=False)
            self._power_off(node)
            state.save(self._state)

    def reboot(self, node: str) -> None:
        """Fresh net/pid/mnt/uts namespaces for `node`, same disk, link up, payload restarted."""
        self.layout.node(node)
        with state.locked(self.name):
            self._reload()
            self._restart(node)

    def power_off(self, node: str) -> bool:
        """The BMC's power off (lab/bmc.py): power loss as kill() does, but only for a node
        that runs; False when it was already off. Idempotent, so a repeated request or
        two fencing nodes cannot disturb each other."""
        ep = self.layout.node(node)
        with state.locked(self.name):
            self._reload()
            if self.node_pid(node) is None:
                return False
            net.set_port(self.layout.switch_netns, ep.port, up=False)
            self._power_off(node)
            state.save(self._state)
            return True

    def power_on(self, node: str) -> bool:
        """The BMC's power on: boot a node that is off, as reboot() does; False when it
        already runs (a running node is never restarted by a power-on)."""
        self.layout.node(node)
        with state.locked(self.name):
            self._reload()
            if self.node_pid(node) is not None:
                return False
            self._restart(node)
            return True

    def track(self, proc: subprocess.Popen[Any]) -> None:
        """A helper process of the lab's (a BMC simulator); down() waits for it."""
        self._children.append(proc)

    def partition(self, groups: list[list[str]] | str) -> None:
        """Cut every pair of nodes taken from two different groups; earlier cuts stay."""
        parsed = partition.parse_groups(groups) if isinstance(groups, str) else groups
        with state.locked(self.name):
            self._reload()
            new = partition.cut_pairs(parsed, self.nodes)
            cuts = partition.merge_cuts(self._state.cuts, new)
            partition.apply(self.layout.switch_netns, cuts, self._ports(), self._state.blocks)
            self._state.cuts = cuts
            state.save(self._state)

    def block(self, src: str, dst: str, what: str = "all") -> None:
        """Drop frames from `src` to `dst` only (an asymmetric fault); `what` is "all" or
        "heartbeat". Earlier cuts and blocks stay; heal() removes them all."""
        with state.locked(self.name):
            self._reload()
            rule = partition.check_block(src, dst, what, self.nodes)
            blocks = self._state.blocks
            if rule not in blocks:
                blocks = [*blocks, rule]
            partition.apply(self.layout.switch_netns, self._state.cuts, self._ports(), blocks)
            self._state.blocks = blocks
            state.save(self._state)

    def heal(self) -> None:
        with state.locked(self.name):
            self._reload()
            if self._state.cuts or self._state.blocks or shutil.which("nft"):
                partition.apply(self.layout.switch_netns, [], self._ports())
            self._state.cuts = []
            self._state.blocks = []
            state.save(self._state)

    def down(self, keep_disks: bool | None = None) -> None:
        """Kill everything, delete namespaces and runtime state; disks too unless kept.

        Works from the lab name alone, so it also cleans up after a crashed `up`.
        """
        keep = self.keep_disks if keep_disks is None else keep_disks
        with state.locked(self.name):
            with contextlib.suppress(LabError):
                self._reload()
            errors = self._teardown()
            if not keep:
                shutil.rmtree(Path(self._state.disk_root) / self.name, ignore_errors=True)
        shutil.rmtree(state.lab_dir(self.name), ignore_errors=True)
        if errors:
            raise LabError(f"lab {self.name!r} teardown had errors:\n  " + "\n  ".join(errors))

    # ---- internals -------------------------------------------------------------------------
    def _reload(self) -> None:
        check_prerequisites()
        st = state.load(self.name)
        if st is None:
            raise LabError(f"lab {self.name!r} is not up ({state.state_path(self.name)} missing)")
        self._state = st

    def _ports(self) -> dict[str, str]:
        return {ep.name: ep.port for ep in self.layout.nodes}

    def _plug(self, ep: Endpoint) -> None:
        net.add_netns(ep.netns)
        net.attach(ep, self.layout.switch_netns, self.layout.prefixlen)

    def _boot(self, ep: Endpoint) -> None:
        disk = self.disk_dir(ep.name)
        disk.mkdir(parents=True, exist_ok=True)
        # The mountpoint must exist in the shared filesystem; the mount itself is private.
        os.makedirs(NODE_MOUNTPOINT, exist_ok=True)
        commands = [
            render_argv(c, node=ep.name, ip=ep.ip, disk=NODE_MOUNTPOINT, lab=self.name)
            for c in self._state.payload
        ]
        booted: Booted = boot(
            self._state.python, ep.netns, ep.name, str(disk), commands,
            state.log_path(self.name, ep.name), self._state.restart_delay,
        )  # fmt: skip
        self._wrappers[ep.name] = booted.wrapper
        rt = self._state.runtime.setdefault(ep.name, state.NodeRuntime())
        rt.pid, rt.pid_start, rt.wrapper_pid = booted.pid, booted.pid_start, booted.wrapper.pid
        rt.boots += 1
        state.save(self._state)

    def _restart(self, node: str) -> None:
        """Under the lock: power off, fresh namespaces, boot (same disk)."""
        ep = self.layout.node(node)
        self._power_off(node)
        net.detach(ep, self.layout.switch_netns)
        net.del_netns(ep.netns)
        self._plug(ep)
        self._boot(ep)

    def _power_off(self, node: str) -> None:
        rt = self._state.runtime.get(node)
        if rt is None:
            return
        power_off(rt.pid, rt.pid_start, self._wrappers.pop(node, None))
        rt.pid = rt.pid_start = rt.wrapper_pid = None
        # The node's mounts went with its namespaces, but loop devices are global: those
        # its filesystem actuator attached stay bound to a FUSE file whose nbdfuse is
        # gone, as a real machine's would not after a power loss. Detach them.
        # Imported here: `import lab` runs in every BMC chassis command (lab/bmc_chassis.py),
        # and the actuators package (pyroute2 and all) costs a fifth of a second each time.
        from nodeagent.actuators.attach import RECORDS, detach_recorded

        errors = detach_recorded(self.disk_dir(node) / RECORDS)
        if errors:
            raise LabError(f"node {node!r} powered off, but: " + "; ".join(errors))

    def _teardown(self) -> list[str]:
        """Best effort: every step runs even if an earlier one failed; returns the errors."""
        errors: list[str] = []
        for node in list(self._state.runtime):
            try:
                self._power_off(node)
            except LabError as exc:
                errors.append(str(exc))
        owned = [ns for ns in net.list_netns() if ns in set(self.layout.all_netns())]
        owned += [ns for ns in net.list_netns() if owns_netns(self.name, ns) and ns not in owned]
        for ns in owned:  # stragglers, e.g. client-side processes started by popen_in
            errors.extend(_kill_netns_processes(ns))
        for proc in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._children.clear()
        # Switch last: deleting it first would leave node veths briefly dangling.
        for ns in sorted(owned, key=lambda n: n == self.layout.switch_netns):
            err = net.del_netns(ns)
            if err:
                errors.append(err)
        return errors


def _kill_netns_processes(ns: str, timeout: float = 5.0) -> list[str]:
    try:
        pids = net.netns_pids(ns)
    except LabError as exc:
        return [str(exc)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if is_running(p, None)]
        time.sleep(0.02)
    return [f"pid {p} in {ns} survived SIGKILL" for p in pids]
