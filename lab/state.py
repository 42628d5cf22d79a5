"""The lab's on-host record (/run/vigil-lab/<lab>/state.json) and its lock.

Separate `ha lab ...` invocations share nothing but this file, so every
mutation happens under an exclusive flock and is written atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import LabError

RUN_ROOT = Path("/run/vigil-lab")
DEFAULT_DISK_ROOT = Path("/var/lib/vigil-lab")
STATE_VERSION = 1


@dataclass
class NodeRuntime:
    pid: int | None = None  # host PID of the node's init (PID 1 inside)
    pid_start: int | None = None  # /proc starttime, guards against PID reuse
    wrapper_pid: int | None = None  # the `unshare` process that forked the init
    boots: int = 0


@dataclass
class LabState:
    name: str
    nodes: list[str]
    payload: list[list[str]]
    disk_root: str
    python: str
    runtime: dict[str, NodeRuntime] = field(default_factory=dict)
    cuts: list[list[str]] = field(default_factory=list)  # sorted node-name pairs
    # One-way drops: [source, destination, what] with what in lab.partition.BLOCKABLE.
    blocks: list[list[str]] = field(default_factory=list)
    restart_delay: float | None = None  # init restarts payloads that exit, as systemd would
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> LabState:
        try:
            raw: dict[str, Any] = json.loads(text)
            if raw.get("version") != STATE_VERSION:
                raise ValueError(f"version {raw.get('version')!r}, expected {STATE_VERSION}")
            runtime = {k: NodeRuntime(**v) for k, v in raw.pop("runtime", {}).items()}
            return cls(runtime=runtime, **raw)
        except (ValueError, TypeError) as exc:
            raise LabError(
                f"lab state {where} is unreadable ({exc}); remove the lab with "
                "`ha lab down NAME --force`, which works from names alone"
            ) from exc


def lab_dir(name: str) -> Path:
    return RUN_ROOT / name


def state_path(name: str) -> Path:
    return lab_dir(name) / "state.json"


def log_path(name: str, node: str) -> Path:
    return lab_dir(name) / f"{node}.log"


def disk_dir(disk_root: str, lab: str, node: str) -> Path:
    return Path(disk_root) / lab / node / "disk"


def load(name: str) -> LabState | None:
    path = state_path(name)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return LabState.from_json(text, str(path))


def save(state: LabState) -> None:
    path = state_path(state.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.to_json())
    os.replace(tmp, path)


def list_labs() -> list[str]:
    try:
        return sorted(p.name for p in RUN_ROOT.iterdir() if (p / "state.json").exists())
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    d = lab_dir(name)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
