"""EtcdMember with a real etcd: supervision, refusals, force-new-cluster."""

from __future__ import annotations

import asyncio
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from controller.bootstrap import pki
from controller.bootstrap.etcd_admin import EtcdAdmin
from controller.bootstrap.etcd_config import (
    EtcdMemberConfig,
    EtcdStartError,
    EtcdTLS,
    host_port,
    port_in_use,
)
from controller.store.errors import StoreError
from controller.store.etcd import EtcdStore
from controller.store.etcd_channel import TLSFiles
from nodeagent.etcd_member import Backoff, EtcdMember
from tests.integration.bootstrap.helpers import free_port, loopback_base

pytestmark = pytest.mark.slow


@pytest.fixture
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="vigil-member-", dir="/dev/shm"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def member_configs(root: Path, count: int) -> list[EtcdMemberConfig]:
    """count members on consecutive 127.0.0.x addresses, all certificates from one CA."""
    base = loopback_base()
    ca = pki.create_ca("member-test")
    nodes = [(f"m{i}", f"127.0.0.{base + i}") for i in range(count)]
    peers = {name: f"https://{addr}:{free_port(addr)}" for name, addr in nodes}
    initial = ",".join(f"{n}={u}" for n, u in peers.items())
    token = f"t-{uuid.uuid4().hex}"
    out = []
    for name, addr in nodes:
        paths = pki.PKIPaths(root / name / "pki")
        pki.write_pair(paths.ca_cert, paths.ca_key, ca.cert, ca.key)
        pki.issue_local(ca, paths, name, [addr])
        tls = EtcdTLS(
            paths.ca_cert, paths.server_cert, paths.server_key, paths.client_cert, paths.client_key
        )
        out.append(
            EtcdMemberConfig(
                name=name,
                client_urls=(f"https://{addr}:{free_port(addr)}",),
                peer_url=peers[name],
                tls=tls,
                initial_cluster=initial,
                initial_cluster_token=token,
                data_dir=root / name / "etcd",
            )
        )
    return out


def node_store(cfg: EtcdMemberConfig, cluster: str) -> EtcdStore:
    t = cfg.tls
    return EtcdStore(
        cfg.client_urls, cluster, ca_cert=t.ca_cert, cert_key=t.client_key, cert_cert=t.client_cert
    )


def admin_tls(cfg: EtcdMemberConfig) -> TLSFiles:
    return TLSFiles(cfg.tls.ca_cert, cfg.tls.client_key, cfg.tls.client_cert)


async def test_sigkilled_etcd_is_restarted_and_counted(workdir: Path) -> None:
    (cfg,) = member_configs(workdir, 1)
    exits: list[tuple[int, str]] = []
    member = EtcdMember(
        cfg, backoff=Backoff(initial=0.2), on_exit=lambda rc, st: exits.append((rc, st))
    )
    await member.start()
    try:
        await member.wait_healthy(10)
        async with node_store(cfg, "sup") as store:
            await store.put("k", {"v": 1})
            first_pid = member.pid
            assert first_pid is not None
            os.kill(first_pid, signal.SIGKILL)
            t0 = time.monotonic()
            while member.restarts == 0:
                assert time.monotonic() - t0 < 5, "etcd was not restarted"
                await asyncio.sleep(0.02)
            await member.wait_healthy(10)
            assert member.pid not in (None, first_pid)
            assert member.last_exit == -signal.SIGKILL
            assert exits == [(-signal.SIGKILL, "backoff")]
            assert member.status()["restarts"] == 1
            kv = await store.get("k")  # data survived, the client reconnected
            assert kv is not None and kv.value == {"v": 1}
    finally:
        await member.stop()
    assert member.state == "stopped" and member.pid is None


_ORPHANING_AGENT = """
import asyncio, os, pickle, sys
from nodeagent.etcd_member import EtcdMember

async def main():
    member = EtcdMember(pickle.loads(sys.stdin.buffer.read()))
    await member.start()
    await member.wait_healthy(10)
    print(member.pid, flush=True)
    os._exit(0)  # the agent dies without stopping its etcd

asyncio.run(main())
"""


def test_etcd_does_not_outlive_its_agent(workdir: Path) -> None:
    (cfg,) = member_configs(workdir, 1)
    agent = subprocess.run(
        [sys.executable, "-c", _ORPHANING_AGENT],
        input=pickle.dumps(cfg),
        capture_output=True,
        timeout=30,
        check=True,
    )
    pid = int(agent.stdout.split()[0])
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and "etcd" in Path(f"/proc/{pid}/comm").read_text():
        assert time.monotonic() < deadline, f"etcd pid {pid} outlived its agent"
        time.sleep(0.05)
    host, port = host_port(cfg.client_urls[0])
    assert not port_in_use(host, port)


async def test_a_frozen_etcd_is_reported_as_frozen_not_as_a_certificate_problem(
    workdir: Path,
) -> None:
    (cfg,) = member_configs(workdir, 1)
    member = EtcdMember(cfg)
    await member.start()
    try:
        await member.wait_healthy(10)
        assert member.pid is not None
        os.kill(member.pid, signal.SIGSTOP)
        try:
            t = cfg.tls
            fresh = EtcdStore(
                list(cfg.client_urls),
                "frozen",
                timeout=2,
                ca_cert=t.ca_cert,
                cert_key=t.client_key,
                cert_cert=t.client_cert,
            )
            async with fresh as store:
                with pytest.raises(StoreError) as info:
                    await store.get("k")
        finally:
            os.kill(member.pid, signal.SIGCONT)
        assert "certificate" not in str(info.value).replace("certificates are not", "")
        assert "frozen" in str(info.value) or "no answer within" in str(info.value)
    finally:
        await member.stop()


async def test_refuses_to_start_with_clear_errors(workdir: Path) -> None:
    (cfg,) = member_configs(workdir, 1)
    with pytest.raises(EtcdStartError, match="apt-get install etcd-server"):
        await EtcdMember(replace(cfg, binary="etcd-not-installed-here")).start()
    blocker = workdir / "a-file"
    blocker.write_text("")
    with pytest.raises(EtcdStartError, match="cannot create etcd data dir"):
        await EtcdMember(replace(cfg, data_dir=blocker / "etcd")).start()
    host, port = cfg.client_urls[0].removeprefix("https://").rsplit(":", 1)
    with socket.socket() as s:
        s.bind((host, int(port)))
        s.listen()
        with pytest.raises(EtcdStartError, match="already in use"):
            await EtcdMember(cfg).start()


async def test_startup_failure_is_reported_not_retried(workdir: Path) -> None:
    (cfg,) = member_configs(workdir, 1)
    # etcd itself rejects this (bad flag): the member must fail once, with the log tail.
    member = EtcdMember(replace(cfg, extra_args=("--no-such-flag",)))
    await member.start()
    with pytest.raises(EtcdStartError, match="exited with status") as exc:
        await member.wait_healthy(5)
    assert "no-such-flag" in str(exc.value)  # etcd's own complaint, from its log
    assert member.state == "failed" and member.restarts == 0
    await member.stop()


async def test_force_new_cluster_makes_the_survivor_a_one_member_cluster(workdir: Path) -> None:
    cfgs = member_configs(workdir, 2)
    members = [EtcdMember(c) for c in cfgs]
    try:
        await asyncio.gather(*(m.start() for m in members))
        await asyncio.gather(*(m.wait_healthy(15) for m in members))
        survivor, peer = members
        async with node_store(cfgs[0], "fnc") as store:
            await store.put("before", {"v": 1})
        await peer.stop()
        assert not await survivor.healthy(0.5)  # 1 of 2: no quorum
        t0 = time.monotonic()
        await survivor.force_new_cluster(10)
        took = time.monotonic() - t0
        async with EtcdAdmin(cfgs[0].client_urls, admin_tls(cfgs[0])) as admin:
            names = [m.name for m in await admin.members()]
        assert names == ["m0"]
        async with node_store(cfgs[0], "fnc") as store:
            kv = await store.get("before")
            assert kv is not None and kv.value == {"v": 1}
            await store.put("after", {"v": 2})
        assert took < 5, f"force-new-cluster took {took:.2f}s"
    finally:
        for m in members:
            await m.stop()
