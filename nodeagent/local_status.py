"""Writing the agent's own view for `ha status` on this node (controller/api/local_status.py).

Kept every second and at once when the heartbeat view changes, so that on the minority
side of a partition, where the store answers nothing, `ha status` still tells what this
node knows: that it has no quorum, what it hears, and what it runs or has stopped. Written
again only when that changed; otherwise only its modification time is renewed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from controller.api.liveness import LivenessSource
from controller.api.local_status import LocalGroup, LocalPeer, LocalResource, LocalStatus
from controller.store.informer import Informer, wait_any
from nodeagent.reconciler.plan import GroupView

log = logging.getLogger(__name__)

INTERVAL = 1.0  # seconds: `ha status` shows the file's age, so it must stay fresh


@dataclass(frozen=True)
class Sources:
    """What the file says, in plain values: compared with the last written, so that an
    unchanged view of a thousand groups is not serialised again every second. The views
    are the reconciler's, which keeps the same object for a group it did not look at."""

    node: str
    cluster: str
    serving: bool
    leader: str | None
    peers: tuple[tuple[str, str, bool], ...]
    views: tuple[GroupView, ...]


def sources(
    node: str,
    cluster: str,
    liveness: LivenessSource,
    informer: Informer,
    views: Iterable[GroupView],
) -> Sources:
    leader = informer.leader()
    return Sources(
        node=node,
        cluster=cluster,
        serving=liveness.serving(),
        leader=leader.node if leader else None,
        peers=tuple(
            (name, s.state, s.lost)
            for name, s in sorted(liveness.liveness().items())
            if name != node
        ),
        views=tuple(sorted(views, key=lambda v: v.name)),
    )


def status_of(source: Sources) -> LocalStatus:
    return LocalStatus(
        node=source.node,
        cluster=source.cluster,
        written=datetime.now(UTC),
        serving=source.serving,
        leader=source.leader,
        peers=[LocalPeer(name=name, state=state, lost=lost) for name, state, lost in source.peers],
        groups=[
            LocalGroup(
                name=view.name,
                mode=view.mode,
                resources=[
                    LocalResource(name=r.name, state=r.state.value, detail=r.detail)
                    for r in view.resources
                ],
            )
            for view in source.views
        ],
    )


def snapshot(
    node: str,
    cluster: str,
    liveness: LivenessSource,
    informer: Informer,
    views: Iterable[GroupView],
) -> LocalStatus:
    return status_of(sources(node, cluster, liveness, informer, views))


def write_local_status(path: Path, status: LocalStatus) -> None:
    """Atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(status.model_dump_json(indent=1))
    os.replace(tmp, path)


class LocalStatusFile:
    """The file, written again only when what it says changed. Otherwise its modification
    time is set to now: readers take the later of `written` and that time as the moment
    the agent last vouched for it (controller/cli/local_view.py), so `ha status` still
    calls a file stale only when the agent stopped keeping it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: Sources | None = None

    def keep(self, source: Sources) -> None:
        if source == self._written:
            try:
                os.utime(self.path)
                return
            except FileNotFoundError:
                pass  # removed under the agent: write it again
        self._written = None
        write_local_status(self.path, status_of(source))
        self._written = source


async def keep_local_status(
    path: Path, read: Callable[[], Sources], changed: asyncio.Event
) -> None:
    file = LocalStatusFile(path)
    while True:
        try:
            file.keep(read())
        except OSError as exc:  # a full or read-only /run must not stop the agent
            log.warning("cannot write %s: %s", path, exc)
        await wait_any([changed], INTERVAL)
