"""Writing the agent's own view for `ha status` on this node (controller/api/local_status.py).

Written every second and at once when the heartbeat view changes, so that on the minority
side of a partition, where the store answers nothing, `ha status` still tells what this
node knows: that it has no quorum, what it hears, and what it runs or has stopped.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from controller.api.liveness import LivenessSource
from controller.api.local_status import LocalGroup, LocalPeer, LocalResource, LocalStatus
from controller.store.informer import Informer, wait_any
from nodeagent.reconciler.plan import GroupView

log = logging.getLogger(__name__)

INTERVAL = 1.0  # seconds: `ha status` shows the file's age, so it must stay fresh


def snapshot(
    node: str,
    cluster: str,
    liveness: LivenessSource,
    informer: Informer,
    views: Iterable[GroupView],
) -> LocalStatus:
    seen = liveness.liveness()
    leader = informer.leader()
    return LocalStatus(
        node=node,
        cluster=cluster,
        written=datetime.now(UTC),
        serving=liveness.serving(),
        leader=leader.node if leader else None,
        peers=[
            LocalPeer(name=name, state=s.state, lost=s.lost)
            for name, s in sorted(seen.items())
            if name != node
        ],
        groups=[
            LocalGroup(
                name=view.name,
                mode=view.mode,
                resources=[
                    LocalResource(name=r.name, state=r.state.value, detail=r.detail)
                    for r in view.resources
                ],
            )
            for view in sorted(views, key=lambda v: v.name)
        ],
    )


def write_local_status(path: Path, status: LocalStatus) -> None:
    """Atomically: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(status.model_dump_json(indent=1))
    os.replace(tmp, path)


async def keep_local_status(
    path: Path, build: Callable[[], LocalStatus], changed: asyncio.Event
) -> None:
    while True:
        try:
            write_local_status(path, build())
        except OSError as exc:  # a full or read-only /run must not stop the agent
            log.warning("cannot write %s: %s", path, exc)
        await wait_any([changed], INTERVAL)
