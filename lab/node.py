"""Booting, identifying and killing a node's PID 1 from the host."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError

INIT_SCRIPT = Path(__file__).with_name("init.py")
BOOT_TIMEOUT_S = 15.0


@dataclass
class Booted:
    wrapper: subprocess.Popen[bytes]  # the `unshare` process; its only child is PID 1
    pid: int
    pid_start: int


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, starttime) of a host PID, or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = raw.rsplit(")", 1)[1].split()
    return rest[0], int(rest[19])


def is_running(pid: int | None, start: int | None) -> bool:
    """True if `pid` is alive (not a zombie) and is the same process as recorded."""
    if pid is None:
        return False
    st = proc_stat(pid)
    return st is not None and st[0] != "Z" and (start is None or st[1] == start)


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(t) for t in text.split()]


def boot_argv(python: str, netns: str, hostname: str, disk: str, commands: list[list[str]],
              ready_fd: int, restart_delay: float | None = None) -> list[str]:  # fmt: skip
    restart = ["--restart-delay", str(restart_delay)] if restart_delay is not None else []
    return [
        "ip", "netns", "exec", netns,
        "unshare", "--pid", "--fork", "--mount", "--uts", "--mount-proc",
        "--propagation", "private",
        python, str(INIT_SCRIPT),
        "--hostname", hostname, "--disk", disk,
        "--commands", json.dumps(commands), "--ready-fd", str(ready_fd),
        *restart,
    ]  # fmt: skip


def _read_ready(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return f"error: init did not report ready within {timeout:.0f} s"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return "error: init exited before reporting ready"
        buf += chunk
    return buf.decode(errors="replace").strip()


def _tail(path: Path, lines: int = 10) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def boot(python: str, netns: str, hostname: str, disk: str, commands: list[list[str]],
         log: Path, restart_delay: float | None = None) -> Booted:  # fmt: skip
    """Start a node's init in fresh pid/mnt/uts namespaces inside `netns`; wait until ready."""
    r, w = os.pipe()
    try:
        with log.open("ab") as logf:
            wrapper = subprocess.Popen(
                boot_argv(python, netns, hostname, disk, commands, w, restart_delay),
                pass_fds=(w,),
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=logf,
                start_new_session=True,  # a Ctrl-C on the CLI must not reach the node
            )
        os.close(w)
        w = -1
        answer = _read_ready(r, BOOT_TIMEOUT_S)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    kids = children_of(wrapper.pid) if answer == "ready" else []
    st = proc_stat(kids[0]) if kids else None
    if answer != "ready" or st is None:
        kill_wrapper(wrapper)
        raise LabError(
            f"node {hostname!r} failed to boot: {answer.removeprefix('error: ')}; "
            f"log {log}:\n{_tail(log)}"
        )
    return Booted(wrapper=wrapper, pid=kids[0], pid_start=st[1])


def kill_wrapper(wrapper: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(wrapper.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        wrapper.wait(timeout=5)


def power_off(pid: int | None, start: int | None,
              wrapper: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:  # fmt: skip
    """SIGKILL the node's PID 1 and wait until it (hence its whole PID namespace) is gone."""
    if pid is not None and is_running(pid, start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    if wrapper is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            wrapper.wait(timeout=timeout)
    while pid is not None and is_running(pid, start) and time.monotonic() < deadline:
        time.sleep(0.02)
    if pid is not None and is_running(pid, start):
        raise LabError(f"node PID 1 (host pid {pid}) survived SIGKILL for {timeout} s")


def enter_node_argv(pid: int, argv: list[str]) -> list[str]:
    return ["nsenter", "-t", str(pid), "-n", "-m", "-u", "-p", "--", *argv]


def enter_netns_argv(netns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv]
