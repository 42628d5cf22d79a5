"""The agent's loops end only when it stops: one that ends otherwise stops the agent with a
non-zero exit, so that its supervisor restarts it whole instead of leaving a node that
runs with a dead loop (a watch that grpc cancelled left a node with a frozen store copy)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from controller.bootstrap.node_config import EtcdSettings, NodeConfig
from nodeagent.agent import Agent
from nodeagent.liveness_link import LivenessLink


def _agent(tmp_path: Path) -> Agent:
    cfg = NodeConfig(
        node="a", cluster="c1", address="10.0.0.1", pki_dir=str(tmp_path),
        etcd=EtcdSettings(client_urls=["https://10.0.0.1:2379"], peer_url="https://10.0.0.1:2380",
                          initial_cluster="a=https://10.0.0.1:2380",
                          initial_cluster_state="new", initial_cluster_token="tok"),
    )  # fmt: skip
    # No liveness process behind the link: these tests need no heartbeats.
    ours, _theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return Agent(cfg, tmp_path / "node.yaml", run_dir=tmp_path, lib_dir=tmp_path,
                 liveness=LivenessLink(ours, 0, None))  # fmt: skip


async def test_a_loop_cancelled_while_the_agent_runs_stops_it_as_failed(tmp_path: Path) -> None:
    agent = _agent(tmp_path)

    async def cancelled_by_a_library() -> None:
        raise asyncio.CancelledError  # as grpc does for a call on a closed channel

    agent._spawn(cancelled_by_a_library(), "informer")
    await asyncio.wait_for(agent._stopping.wait(), 2)
    assert agent._failed


async def test_a_loop_that_returns_is_not_a_failure(tmp_path: Path) -> None:
    agent = _agent(tmp_path)

    async def done() -> None:
        return None

    agent._spawn(done(), "node-object")
    await asyncio.sleep(0.05)
    assert not agent._stopping.is_set() and not agent._failed


async def test_the_shutdown_cancelling_loops_is_not_a_failure(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    agent._spawn(asyncio.sleep(60), "reconciler")
    agent._stopping.set()
    agent._tasks[0].cancel()
    await asyncio.sleep(0.05)
    assert not agent._failed
