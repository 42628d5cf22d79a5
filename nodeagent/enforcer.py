"""The lease enforcer: stops this node's resources when its serving lease ends, even if
the agent is dead or frozen.

The agent stops its resources when its serving lease ends (docs/safety.md). An agent that
is killed and slow to come back, or frozen, cannot: its peers would start the groups
elsewhere while its floating IPs and processes live on. This small process, started by
the agent in a session of its own so that it outlives it, is the software watchdog for
that case. Every 20 ms it reads the lease the agent records on tmpfs; once the lease
minus its stop margin has passed, it removes the cluster's floating IPs from every
interface and SIGKILLs the process groups the agent started (their PID records, checked
by start time so a recycled PID is never hit). A hardware watchdog (fencing issue) covers
the case where this process dies too.

Standard library only, and cheap: one small file read per tick.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("vigil-enforcer")

TICK = 0.02
LEASE_FILE = "lease.json"
VIPS_FILE = "vips.json"
LOCK_FILE = "enforcer.lock"


def read_lease(run_dir: Path) -> tuple[float, float]:
    """(expiry, stop margin) on CLOCK_MONOTONIC; no lease recorded: already expired."""
    try:
        data = json.loads((run_dir / LEASE_FILE).read_text())
        return float(data["expiry"]), float(data.get("stopMargin", 0.0))
    except (OSError, ValueError, KeyError, TypeError):
        return float("-inf"), 0.0


def read_vips(run_dir: Path) -> list[str]:
    try:
        data = json.loads((run_dir / VIPS_FILE).read_text())
        return [str(a) for a in data.get("addresses", [])]
    except (OSError, ValueError, TypeError, AttributeError):
        return []


def _starttime(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def kill_recorded_groups(run_dir: Path) -> list[str]:
    killed = []
    for record_path in sorted((run_dir / "exec").glob("*.pid")):
        try:
            record = json.loads(record_path.read_text())
            pid, pgid, starttime = int(record["pid"]), int(record["pgid"]), int(record["starttime"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _starttime(pid) != starttime:
            continue  # gone, or the PID now belongs to someone else
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
            killed.append(f"{record_path.stem} (pgid {pgid})")
    return killed


def remove_vips(addresses: list[str]) -> list[str]:
    removed = []
    for cidr in addresses:
        ip = cidr.split("/", 1)[0]
        try:
            shown = subprocess.run(
                ["ip", "-o", "addr", "show", "to", ip], capture_output=True, text=True, timeout=2
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        for line in shown.splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            interface, prefix = fields[1].split("@", 1)[0], fields[3]
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(
                    ["ip", "addr", "del", prefix, "dev", interface],
                    capture_output=True,
                    timeout=2,
                )
                removed.append(f"{prefix} on {interface}")
    return removed


def enforce(run_dir: Path) -> list[str]:
    done = [f"removed {v}" for v in remove_vips(read_vips(run_dir))]
    done += [f"killed {g}" for g in kill_recorded_groups(run_dir)]
    return done


def run(run_dir: Path, recheck: float = 1.0) -> None:
    enforced_at = float("-inf")
    while True:
        expiry, margin = read_lease(run_dir)
        now = time.monotonic()
        if now >= expiry - margin:
            # On the transition at once, then now and then: something may bring a
            # resource back while no lease is held (a confused or restarted agent).
            if now - enforced_at >= recheck:
                done = enforce(run_dir)
                if done:
                    log.warning("serving lease ended %.3f s ago: %s", now - expiry, "; ".join(done))
                enforced_at = now
        else:
            enforced_at = float("-inf")
        time.sleep(TICK)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="/run/vigil")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # Opened without truncating: the file names the enforcer that holds the lock.
    lock = (run_dir / LOCK_FILE).open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # one already watches this node
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    log.info("watching the serving lease in %s", run_dir)
    try:
        run(run_dir)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
