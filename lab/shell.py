"""Running the host tools the lab drives (ip, nft, nsenter) with readable errors."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from lab.errors import LabError

REQUIRED_TOOLS = {
    "ip": "apt-get install iproute2",
    "unshare": "apt-get install util-linux",
    "nsenter": "apt-get install util-linux",
}


def check_prerequisites(extra: Sequence[str] = ()) -> None:
    """Fail early, naming each missing piece and how to get it."""
    problems = []
    if os.geteuid() != 0:
        problems.append("must run as root (namespaces, bridges and mounts need CAP_SYS_ADMIN)")
    for tool, fix in REQUIRED_TOOLS.items():
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` not found on PATH ({fix})")
    for tool in extra:
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` not found on PATH")
    for ns in ("net", "pid", "mnt", "uts"):
        if not os.path.exists(f"/proc/self/ns/{ns}"):
            problems.append(f"kernel lacks {ns} namespaces (/proc/self/ns/{ns} missing)")
    if problems:
        raise LabError("lab prerequisites not met:\n  - " + "\n  - ".join(problems))


def require_nft() -> str:
    path = shutil.which("nft")
    if path is None:
        raise LabError("partitions need nftables: `nft` not found (apt-get install -y nftables)")
    return path


def run(argv: Sequence[str], *, input_text: str | None = None, timeout: float = 30.0) -> str:
    """Run a tool; on failure raise LabError with the command and its stderr."""
    try:
        proc = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise LabError(f"cannot run {argv[0]!r}: not found on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(argv)}` did not finish within {timeout} s") from exc
    if proc.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def try_run(argv: Sequence[str], *, timeout: float = 30.0) -> str | None:
    """Like run() for best-effort cleanup: returns the error text instead of raising."""
    try:
        run(argv, timeout=timeout)
    except LabError as exc:
        return str(exc)
    return None
