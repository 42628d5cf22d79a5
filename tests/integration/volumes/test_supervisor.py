"""The volume supervisor with a real `blockrepl serve` and the in-memory store: it starts
the replica, reports it into the volume's status, starts it again when it dies, restarts
it on a spec change, a new supervisor adopts the running one, and a deleted volume's
replica is stopped. (The peer never answers: a lone replica is enough here.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from controller.api.decode import decode
from controller.api.volume import ReplicatedVolume, ReplicatedVolumeStatus
from controller.store import keys
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from controller.store.objects import spec_document
from nodeagent.actuators.procinfo import read_proc_stat
from nodeagent.volumes.command import ReplicaFiles, pid_file
from nodeagent.volumes.supervisor import VolumeSupervisor

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (as the agent)")
BLOCKREPL = str(Path(sys.executable).parent / "blockrepl")


def volume(disk: Path, protocol: str = "C") -> ReplicatedVolume:
    obj = decode(
        {
            "apiVersion": "ha.vigil.dev/v1alpha1",
            "kind": "ReplicatedVolume",
            "metadata": {"name": "data"},
            "spec": {
                "protocol": protocol,
                "outdatePeer": "dont-care",
                "replicas": [
                    {"node": "n1", "disk": str(disk), "address": "127.0.0.1:17789"},
                    {"node": "n2", "disk": str(disk) + ".peer", "address": "127.0.0.2:17789"},
                ],
            },
        }
    )
    assert isinstance(obj, ReplicatedVolume)
    return obj


@pytest.fixture
async def world() -> AsyncIterator[tuple[Path, MemoryStore, Informer]]:
    with tempfile.TemporaryDirectory(prefix="sup-") as tmp:  # short: unix socket paths
        root = Path(tmp)
        made = await asyncio.create_subprocess_exec(
            BLOCKREPL, "create-md", "--backing", str(root / "disk"), "--size", "16M",
            stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert await made.wait() == 0
        (root / "cluster.key").write_text("k" * 64)
        store = MemoryStore("t")
        informer = Informer(store)
        task = asyncio.create_task(informer.run())
        try:
            yield root, store, informer
        finally:
            task.cancel()
            kill_leftovers(root)


def kill_leftovers(root: Path) -> None:
    for pidfile in root.glob("run/volumes/*/serve.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def cmdline(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def supervisor(root: Path, store: MemoryStore, informer: Informer) -> VolumeSupervisor:
    files = ReplicaFiles(root / "store.json", "/nonexistent", "/nonexistent", "/nonexistent")
    return VolumeSupervisor("n1", store, informer, root / "run", files, str(root / "cluster.key"))


async def put(store: MemoryStore, obj: ReplicatedVolume) -> None:
    key = keys.spec_key("ReplicatedVolume", "data")
    current = await store.get(key)
    data = spec_document(obj)
    data["metadata"].setdefault("generation", 1)
    await store.put(key, data, expect_revision=current.mod_revision if current else 0)


async def until(what: str, check: Callable[[], Any], sup: VolumeSupervisor) -> Any:
    for _ in range(100):
        await sup.turn()
        found = check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def entry(informer: Informer) -> Any:
    kv = informer.get(keys.status_key("ReplicatedVolume", "data"))
    if kv is None:
        return None
    replicas = ReplicatedVolumeStatus.model_validate(kv.value).replicas
    return next((r for r in replicas if r.node == "n1"), None)


def serve_pid(root: Path) -> int:
    return int(pid_file(root / "run", "data").read_text())


def alive(pid: int) -> bool:
    stat = read_proc_stat(pid)
    return stat is not None and stat.alive


async def test_the_supervisor_runs_reports_restarts_adopts_and_retires_a_replica(
    world: tuple[Path, MemoryStore, Informer],
) -> None:
    root, store, informer = world
    await put(store, volume(root / "disk"))
    sup = supervisor(root, store, informer)
    reported = await until(
        "the replica reported",
        lambda: (e := entry(informer)) is not None and e.role == "Secondary" and e,
        sup,
    )
    assert reported.disk_state in ("UpToDate", "Inconsistent", "Outdated", "Consistent")
    assert reported.connection in ("Connecting", "StandAlone")
    first = serve_pid(root)
    secret = (root / "run/volumes/data/secret").stat()
    assert secret.st_mode & 0o077 == 0  # the derived link secret is root-only

    # It dies: started again (after its back-off), and the reason was said.
    os.kill(first, signal.SIGKILL)
    await until("a new replica", lambda: serve_pid(root) != first and alive(serve_pid(root)), sup)
    second = serve_pid(root)

    # A new agent's supervisor adopts it: same process.
    sup2 = supervisor(root, store, informer)
    await sup2.turn()
    assert serve_pid(root) == second and sup2.replicas["data"].pid == second

    # A spec change restarts it with the new command line.
    await put(store, volume(root / "disk", protocol="B"))
    await until("the restart for protocol B", lambda: serve_pid(root) != second, sup2)
    third = serve_pid(root)
    argv = cmdline(third)
    assert argv[argv.index(b"--protocol") + 1] == b"B"
    await until("protocol B reported", lambda: entry(informer) is not None, sup2)

    # Deleted: stopped.
    await store.delete(keys.spec_key("ReplicatedVolume", "data"))
    await until("the replica stopped", lambda: not alive(third), sup2)
    assert "data" not in sup2.replicas


async def test_a_replica_that_cannot_start_says_why_in_the_volume_status(
    world: tuple[Path, MemoryStore, Informer],
) -> None:
    root, store, informer = world
    (root / "blank").write_bytes(b"\0" * (16 << 20))  # no blockrepl metadata on it
    await put(store, volume(root / "blank"))
    sup = supervisor(root, store, informer)
    failed = await until(
        "the reason in the status",
        lambda: (e := entry(informer)) is not None and "ended" in (e.last_error or "") and e,
        sup,
    )
    assert failed.role == "Unknown"
    assert "blockrepl serve ended (exit status 1)" in failed.last_error
    assert "create-md" in failed.last_error or "metadata" in failed.last_error
    assert sup.replicas["data"].failures >= 1  # started again only after a back-off


async def test_the_agent_metrics_show_the_replica_the_supervisor_runs(
    world: tuple[Path, MemoryStore, Informer],
) -> None:
    """/metrics joins the replica's own status (blockrepl's metrics, renamed
    vigil_volume_*) as the supervisor last read it over the control socket."""
    import socket as socketlib

    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from nodeagent.liveness_link import LivenessLink
    from nodeagent.metrics.collector import AgentCollector, Sources

    root, store, informer = world
    await put(store, volume(root / "disk"))
    sup = supervisor(root, store, informer)
    ours, _theirs = socketlib.socketpair(socketlib.AF_UNIX, socketlib.SOCK_SEQPACKET)
    sources = Sources("n1", "0", LivenessLink(ours, 0, None), volumes=lambda: sup.last_status)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(sources))

    def scrape() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        text = generate_latest(registry).decode()
        return {
            f.name: {tuple(sorted(s.labels.items())): s.value for s in f.samples}
            for f in text_string_to_metric_families(text)
        }

    m = await until(
        "the replica in the metrics",
        lambda: (m := scrape())["vigil_volume_status_up"].get((("volume", "data"),)) == 1 and m,
        sup,
    )
    assert m["vigil_volume_role"][(("role", "Secondary"), ("volume", "data"))] == 1
    assert m["vigil_volume_info"] == {(("protocol", "C"), ("volume", "data")): 1}
    connection = {k: v for k, v in m["vigil_volume_connection_state"].items() if v == 1}
    assert (
        connection.keys()
        <= {
            (("state", "Connecting"), ("volume", "data")),
            (("state", "StandAlone"), ("volume", "data")),
        }
        and len(connection) == 1
    )
    assert m["vigil_volume_out_of_sync_bytes"][(("volume", "data"),)] >= 0

    # The replica gone (killed, not yet started again): said, not left as it was.
    os.kill(serve_pid(root), signal.SIGKILL)
    await until(
        "the replica not answering",
        lambda: scrape()["vigil_volume_status_up"].get((("volume", "data"),)) == 0,
        sup,
    )
    # The volume deleted: no series left for it.
    await store.delete(keys.spec_key("ReplicatedVolume", "data"))
    await until("no volume series", lambda: scrape()["vigil_volume_status_up"] == {}, sup)
