"""The agent finds its node's self-fencing watchdog among the FenceDevices, as the leader
does, and arms none with fencing off."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from controller.api.cluster import Cluster
from controller.api.manifest import parse_text
from controller.apply.plan import decode_documents
from controller.apply.run import apply_objects
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from nodeagent.selffence import WatchdogSettings
from tests.unit.nodeagent.test_agent_tasks import _agent

SPEC = """
apiVersion: ha.vigil.dev/v1alpha1
kind: Cluster
metadata: {name: c1}
spec:
  nodes:
    - {name: a, address: 10.0.0.1}
    - {name: b, address: 10.0.0.2}
    - {name: c, address: 10.0.0.3}
  fencing: {enabled: %(enabled)s}
---
apiVersion: ha.vigil.dev/v1alpha1
kind: FenceDevice
metadata: {name: wd-a}
spec: {agent: watchdog, targets: [a], device: /dev/watchdog1, timeout: 12s}
---
apiVersion: ha.vigil.dev/v1alpha1
kind: FenceDevice
metadata: {name: wd-b}
spec: {agent: watchdog, targets: [b]}
---
apiVersion: ha.vigil.dev/v1alpha1
kind: FenceDevice
metadata: {name: bmc}
spec: {agent: exec, command: [/bin/true], targets: [a, b, c]}
"""


async def settings(tmp_path: Path, node: str, enabled: str) -> WatchdogSettings | None:
    store = MemoryStore("c1")
    docs = decode_documents(parse_text(SPEC % {"enabled": enabled}, "spec.yaml"))
    await apply_objects(store, docs, cluster="c1")
    agent = _agent(tmp_path)
    agent.node = node
    agent.informer = Informer(store)
    task = asyncio.create_task(agent.informer.run())
    try:
        await asyncio.wait_for(agent.informer.ready.wait(), 5)
        [cluster] = agent.informer.objects("Cluster").values()
        assert isinstance(cluster, Cluster)
        return agent._watchdog(cluster)
    finally:
        task.cancel()


async def test_the_watchdog_of_this_node(tmp_path: Path) -> None:
    assert await settings(tmp_path, "a", "true") == WatchdogSettings("wd-a", "/dev/watchdog1", 12)
    # spec.device defaults to /dev/watchdog; spec.timeout to 60 s.
    assert await settings(tmp_path, "b", "true") == WatchdogSettings("wd-b", "/dev/watchdog", 60)
    assert await settings(tmp_path, "c", "true") is None


async def test_none_with_fencing_off(tmp_path: Path) -> None:
    assert await settings(tmp_path, "a", "false") is None


async def test_a_new_or_removed_watchdog_reaches_the_liveness_process_at_once(
    tmp_path: Path,
) -> None:
    from controller.store import keys
    from nodeagent.heartbeat.config import HeartbeatConfig
    from nodeagent.heartbeat.timing import HeartbeatTiming

    store = MemoryStore("c1")
    text = SPEC % {"enabled": "true"}
    docs = decode_documents(parse_text(text, "spec.yaml"))
    cluster_only = [d for d in docs if d.obj.name not in ("wd-a", "wd-b")]
    await apply_objects(store, cluster_only, cluster="c1")
    agent = _agent(tmp_path)
    agent.informer = Informer(store)
    heartbeats = HeartbeatConfig(
        "a", "c1", b"k" * 32, HeartbeatTiming(0.1, 0.3, 0.5, 1.0), "10.0.0.1", ()
    )
    agent.link.config = heartbeats
    agent._heartbeat_config = lambda cluster: heartbeats  # type: ignore[method-assign]
    started: list[WatchdogSettings | None] = []

    async def start(
        config: HeartbeatConfig, key_file: str, watchdog: WatchdogSettings | None = None
    ) -> None:
        assert config == heartbeats  # the same heartbeats: not restarted there
        started.append(watchdog)
        agent.link.watchdog = watchdog

    agent.link.start = start  # type: ignore[method-assign]
    tasks = [asyncio.create_task(agent.informer.run())]
    try:
        await asyncio.wait_for(agent.informer.ready.wait(), 5)
        tasks.append(asyncio.create_task(agent._watch_cluster_spec()))
        await asyncio.sleep(0.05)
        assert started == []
        wd = [d for d in docs if d.obj.name == "wd-a"]
        await apply_objects(store, wd, cluster="c1")
        for _ in range(100):
            if started:
                break
            await asyncio.sleep(0.02)
        assert started == [WatchdogSettings("wd-a", "/dev/watchdog1", 12)]
        cached = json.loads((tmp_path / "heartbeat.json").read_text())
        assert cached["watchdog"]["name"] == "wd-a"  # a restarted agent arms it early
        await store.delete(keys.spec_key("FenceDevice", "wd-a"))
        for _ in range(100):
            if len(started) == 2:
                break
            await asyncio.sleep(0.02)
        assert started[-1] is None
    finally:
        for task in tasks:
            task.cancel()
