"""PID 1 of a lab node.

Run inside fresh net/mnt/uts/pid namespaces (by `ip netns exec NS unshare
--pid --fork --mount --uts --mount-proc python init.py ...`). It gives the
node private /run, /dev/shm and a persistent /var/lib/vigil, sets the
hostname, starts the payload commands, reaps every zombie in the node, and on
SIGTERM/SIGINT stops everything and exits (which makes the kernel kill what
is left in the PID namespace).

Standard library only and runnable as a plain script: the node must boot
even when the `lab` package is not importable from the node's cwd.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import socket
import subprocess
import sys
import time

MS_BIND = 4096
MS_NOSUID = 2
MS_NODEV = 4
STOP_GRACE_S = 3.0


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    rc = libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target} ({fstype or 'bind'}): {os.strerror(err)}")


def setup_node(hostname: str, disk: str) -> None:
    socket.sethostname(hostname)
    _mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=64m")
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m")
    os.makedirs("/var/lib/vigil", exist_ok=True)
    _mount(disk, "/var/lib/vigil", None, MS_BIND, None)


def start_payloads(commands: list[list[str]]) -> list[subprocess.Popen[bytes]]:
    procs = []
    for argv in commands:
        procs.append(subprocess.Popen(argv, cwd="/", stdin=subprocess.DEVNULL))
    return procs


def reap_all() -> list[int]:
    """Reap every exited child; return their PIDs."""
    reaped: list[int] = []
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append(pid)


def stop_everything() -> None:
    # As PID 1, kill(-1) reaches every other process in this PID namespace.
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)
    # Whatever is left dies with us: PID 1 exiting kills the whole namespace.


def serve(
    ready_fd: int | None,
    payloads: dict[int, list[str]] | None = None,
    restart_delay: float | None = None,
) -> int:
    """Reap, restart payloads that exit (as systemd's Restart=always) when restart_delay is
    set, and stop everything on SIGTERM/SIGINT."""
    # Blocked only after the payloads started: children inherit the signal mask.
    # A child that died in between stays a zombie until the reap just below.
    watched = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    payloads = dict(payloads or {})
    due: list[tuple[float, list[str]]] = []

    def collect() -> None:
        for pid in reap_all():
            argv = payloads.pop(pid, None)
            if argv is not None and restart_delay is not None:
                due.append((time.monotonic() + restart_delay, argv))

    collect()
    if ready_fd is not None:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
    while True:
        now = time.monotonic()
        for item in [d for d in due if d[0] <= now]:
            due.remove(item)
            with contextlib.suppress(OSError):
                signal.pthread_sigmask(signal.SIG_UNBLOCK, watched)
                try:
                    proc = subprocess.Popen(item[1], cwd="/", stdin=subprocess.DEVNULL)
                finally:
                    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
                payloads[proc.pid] = item[1]
        wait = min((d[0] for d in due), default=now + 3600) - time.monotonic()
        info = signal.sigtimedwait(watched, max(wait, 0.0))
        if info is None:
            continue
        if info.si_signo == signal.SIGCHLD:
            collect()
        else:
            stop_everything()
            return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="vigil lab node init (PID 1)")
    p.add_argument("--hostname", required=True)
    p.add_argument("--disk", required=True, help="host directory bind-mounted on /var/lib/vigil")
    p.add_argument("--commands", default="[]", help="JSON list of argv lists to start")
    p.add_argument("--ready-fd", type=int, default=None)
    p.add_argument(
        "--restart-delay",
        type=float,
        default=None,
        help="restart payloads that exit after this many seconds (default: never)",
    )
    args = p.parse_args(argv)
    ready_fd: int | None = args.ready_fd
    try:
        commands = json.loads(args.commands)
        if not isinstance(commands, list) or not all(
            isinstance(c, list) and c and all(isinstance(s, str) for s in c) for c in commands
        ):
            raise ValueError("--commands must be a JSON list of non-empty lists of strings")
        if os.getpid() != 1:
            raise RuntimeError(
                "lab init must be PID 1 of a new PID namespace (unshare --pid --fork)"
            )
        setup_node(args.hostname, args.disk)
        procs = start_payloads(commands)
    except (OSError, ValueError, RuntimeError) as exc:
        if ready_fd is not None:
            os.write(ready_fd, f"error: {exc}\n".encode())
            os.close(ready_fd)
        print(f"lab init: {exc}", file=sys.stderr)
        return 1
    payloads = {proc.pid: argv for proc, argv in zip(procs, commands, strict=True)}
    return serve(ready_fd, payloads, args.restart_delay)


if __name__ == "__main__":
    sys.exit(main())
