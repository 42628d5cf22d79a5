"""A filesystem group through the node reconciler, with a real loop device and mount: it
runs where placed; moved away while a process Vigil must not kill holds it, its stop
fails and the group reports StopFailed naming the holder (what the leader fences on);
once the holder lets go, the next turn stops it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.api.liveness import Liveness
from controller.api.manifest import parse_text
from controller.apply.plan import decode_documents
from controller.apply.run import apply_objects
from controller.store import keys
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from controller.store.records import PlacementRecord
from nodeagent.actuators.mountinfo import mount_at, read_mountinfo
from nodeagent.reconciler.loop import Reconciler
from tests.integration.actuators.fsparts import Parts, image, require_parts
from tests.unit.static_liveness import StaticLiveness

pytestmark = pytest.mark.slow


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    require_parts()
    made = Parts(tmp_path)
    made.share()
    try:
        yield made
    finally:
        made.cleanup()


async def phase_of(store: MemoryStore, group: str) -> tuple[str, str]:
    kv = await store.get(keys.status_key("ResourceGroup", group))
    if kv is None:
        return "", ""
    return str(kv.value.get("phase")), str(kv.value.get("lastAction") or "")


async def until_phase(store: MemoryStore, want: str, within: float = 30) -> str:
    deadline = asyncio.get_running_loop().time() + within
    seen: tuple[str, str] = ("", "")
    while asyncio.get_running_loop().time() < deadline:
        seen = await phase_of(store, "data")
        if seen[0] == want:
            return seen[1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"group never {want}; last {seen}")


async def test_a_stop_held_up_reports_stop_failed_then_stops(tmp_path: Path, parts: Parts) -> None:
    loop = parts.attach(image(tmp_path / "disk.img"))
    mount_point = tmp_path / "data"
    manifest = (
        "apiVersion: ha.vigil.dev/v1alpha1\nkind: ResourceGroup\nmetadata: {name: data}\n"
        "spec:\n  resources:\n"
        f"    - filesystem: {{device: {loop}, mountPoint: {mount_point}}}\n"
        "      timeouts: {stop: 2s}\n"
    )
    store = MemoryStore("lab")
    await apply_objects(store, decode_documents(parse_text(manifest, "g.yaml")), cluster="lab")
    await store.put(keys.placement_key("data"), PlacementRecord("data", "n1", 1, "t").to_dict())
    informer = Informer(store)
    watching = asyncio.create_task(informer.run())
    await informer.ready.wait()
    liveness = StaticLiveness({"n1": Liveness("up", False)})
    reconciler = Reconciler(
        "n1", store, informer, liveness, run_dir=tmp_path / "run", lib_dir=tmp_path / "lib"
    )
    task = asyncio.create_task(reconciler.run())
    try:
        await until_phase(store, "Running")
        assert mount_at(read_mountinfo(), str(mount_point)) is not None
        with (mount_point / "held").open("w"):
            # The leader's first step of a move: no node, n1 to stop it and report.
            moved = PlacementRecord("data", None, 2, "moving", stopping_from="n1")
            await store.put(keys.placement_key("data"), moved.to_dict())
            why = await until_phase(store, "StopFailed")
            assert f"pid {os.getpid()}" in why and "does not kill" in why, why
            assert mount_at(read_mountinfo(), str(mount_point)) is not None
        await until_phase(store, "Stopped")
        assert mount_at(read_mountinfo(), str(mount_point)) is None
    finally:
        for running in (task, watching):
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        await reconciler.stop_all("test over")
