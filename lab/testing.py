"""Helpers for tests that need a lab: unique names and a cleanup-guaranteed context."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from lab.core import Lab
from lab.state import DEFAULT_DISK_ROOT


def unique_lab_name(prefix: str = "t") -> str:
    """A lab name unique to this process and call ([a-z0-9], <= 20 chars)."""
    return f"{prefix[:8]}{os.getpid() % 100000}{secrets.token_hex(2)}"


@contextlib.contextmanager
def running_lab(
    nodes: int | list[str] = 3,
    payload: list[list[str]] | list[str] | None = None,
    *,
    prefix: str = "t",
    disk_root: str | Path | None = None,
    restart_delay: float | None = None,
) -> Iterator[Lab]:
    """Yield an up lab; it is torn down (disks included) however the body ends.

    In a pytest fixture: `with running_lab(3, payload, disk_root=tmp_path) as lab: yield lab`.
    """
    root = DEFAULT_DISK_ROOT if disk_root is None else disk_root
    lab = Lab(unique_lab_name(prefix), nodes, payload, disk_root=root, restart_delay=restart_delay)
    lab.up()  # cleans up after itself if it fails; must not tear down a same-named lab
    try:
        yield lab
    finally:
        lab.down()
