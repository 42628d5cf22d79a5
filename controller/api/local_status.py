"""What one node's agent knows by itself, written where `ha status` on that node reads it.

On the minority side of a partition the store has no quorum and answers nothing; the
agent there still knows its heartbeat view, whether it holds its serving lease, and what
it runs. It keeps that in a file on tmpfs (`<run dir>/status.json`), so that `ha status`
can show it, marked as local and possibly stale, instead of only "no leader". The file is
written again when its content changes and its modification time renewed every second
otherwise: its age is from the later of `written` and that time.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

DEFAULT_RUN_DIR = Path("/run/vigil")
FILE_NAME = "status.json"


class _Model(BaseModel):
    # Read by `ha` of possibly another version: ignore what it does not know.
    model_config = ConfigDict(extra="ignore")


class LocalPeer(_Model):
    name: str
    state: str  # up, warn, dead, unknown: the heartbeat view
    lost: bool  # declared lost by the majority rule


class LocalResource(_Model):
    name: str
    state: str  # running, stopped, failed, unknown: as observed here
    detail: str = ""


class LocalGroup(_Model):
    name: str
    mode: str  # run, keep, stop: what this node is doing with it
    resources: list[LocalResource]


class LocalStatus(_Model):
    node: str
    cluster: str
    written: datetime
    serving: bool  # holds its serving lease: hears a majority (docs/safety.md)
    # The controller leader as last seen in the store. Whether the store answers is not
    # recorded: a member without quorum keeps its watch streams open for a while.
    leader: str | None
    peers: list[LocalPeer]
    groups: list[LocalGroup]


def local_status_path(run_dir: Path = DEFAULT_RUN_DIR) -> Path:
    return run_dir / FILE_NAME
