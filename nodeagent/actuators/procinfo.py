"""Reading /proc/<pid>/stat, so a restarted agent can recognise a process it started.

A pid alone is not an identity (pids are reused); the pair (pid, starttime) is: the
kernel's start time in clock ticks since boot never repeats for a given pid within
one boot.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    state: str
    pgid: int
    sid: int
    starttime: int

    @property
    def alive(self) -> bool:
        # A zombie has exited; only its parent's wait() is missing.
        return self.state not in ("Z", "X", "x")


def parse_proc_stat(text: str) -> ProcStat:
    """Parse the one line of /proc/<pid>/stat (comm may hold spaces and parentheses)."""
    head, sep, tail = text.rpartition(")")
    if not sep:
        raise ValueError(f"malformed /proc stat line: {text[:80]!r}")
    pid_text, _, comm = head.partition(" (")
    fields = tail.split()
    # fields[0] is field 3 (state) of proc(5); field n is fields[n - 3].
    return ProcStat(
        pid=int(pid_text),
        comm=comm,
        state=fields[0],
        pgid=int(fields[2]),
        sid=int(fields[3]),
        starttime=int(fields[19]),
    )


def read_proc_stat(pid: int, proc: Path = PROC) -> ProcStat | None:
    try:
        return parse_proc_stat((proc / str(pid) / "stat").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return None


def is_same_live_process(pid: int, starttime: int, proc: Path = PROC) -> bool:
    stat = read_proc_stat(pid, proc)
    return stat is not None and stat.starttime == starttime and stat.alive


def signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group; False if it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def kill_group_quietly(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
