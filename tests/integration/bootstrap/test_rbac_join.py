"""A node joining after `ha cluster rbac enable`: the join endpoint makes its agent root.

Two real etcd members with TLS on 127.0.0.x, as test_cluster_bootstrap.py builds them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from controller.bootstrap.etcd_auth import EtcdAuth
from controller.bootstrap.node_config import load_node_config
from controller.store.errors import PermissionDeniedError
from controller.store.etcd import EtcdStore
from nodeagent.bootstrap import bootstrap_first_member, serve_joins, start_member
from nodeagent.etcd_member import EtcdMember
from tests.integration.bootstrap.helpers import (
    NodeDirs,
    cluster_manifest,
    free_port,
    ha,
    loopback_base,
)

pytestmark = [pytest.mark.slow]


async def test_a_node_joining_under_rbac_gets_an_agent_etcd_accepts() -> None:
    base = loopback_base()
    root = Path(tempfile.mkdtemp(prefix="vigil-rbac-", dir="/dev/shm"))
    n1, n2 = (NodeDirs.make(root, f"n{i + 1}", f"127.0.0.{base + i}") for i in range(2))
    join_port = free_port(n1.address)
    manifest = cluster_manifest(root / "cluster.yaml", "boot", [n1, n2])
    members: list[EtcdMember] = []
    join = None
    try:
        r = await ha(
            "cluster", "init", "--config", str(manifest), "--join-port", str(join_port),
            *n1.file_args(),
        )  # fmt: skip
        assert r.code == 0, r.err
        cfg1 = load_node_config(n1.node_config)
        members.append(await bootstrap_first_member(cfg1, n1.node_config, log_file=n1.log_file))
        join = await serve_joins(cfg1)
        assert join is not None
        client = ["--config", str(n1.client_config)]

        r = await ha("cluster", "rbac", "enable", *client)
        assert r.code == 0, r.err
        # As if n2 had been added to the Cluster spec after RBAC was enabled.
        async with EtcdAuth(cfg1.etcd.client_urls, cfg1.client_tls()) as auth:
            assert "root" in (await auth.user_roles("node:n2") or [])
            assert await auth.delete_user("node:n2")

        r = await ha("cluster", "token", "create", *client, "--node-config", str(n1.node_config))
        assert r.code == 0, r.err
        r = await ha("cluster", "join", "--token", r.out.strip(), *n2.file_args())
        assert r.code == 0, r.err
        cfg2 = load_node_config(n2.node_config)
        members.append(await start_member(cfg2, log_file=n2.log_file))

        # n2's agent certificate (CN node:n2) may write anywhere; a stranger's may not.
        p = cfg2.pki
        async with EtcdStore(
            cfg2.etcd.client_urls, "boot", ca_cert=p.ca_cert, cert_key=p.client_key,
            cert_cert=p.client_cert, timeout=10,
        ) as store:  # fmt: skip
            await store.put("leader-probe", {"by": "n2"})
            assert (await store.get("leader-probe")) is not None
        r = await ha("cluster", "user", "add", "eve", "--role", "viewer", *client,
                     "--pki-dir", str(n1.pki_dir), "-o", str(root / "eve"))  # fmt: skip
        assert r.code == 0, r.err
        async with EtcdStore(
            cfg2.etcd.client_urls, "boot", ca_cert=p.ca_cert, cert_key=str(root / "eve/eve.key"),
            cert_cert=str(root / "eve/eve.crt"),
        ) as store:  # fmt: skip
            with pytest.raises(PermissionDeniedError, match="user eve \\(role viewer\\) may not"):
                await store.put("leader-probe", {"by": "eve"})
        # A watch etcd refuses ends with the refusal instead of being retried for ever.
        async with EtcdStore(
            cfg2.etcd.client_urls, "other", ca_cert=p.ca_cert,
            cert_key=str(root / "eve/eve.key"), cert_cert=str(root / "eve/eve.crt"),
        ) as store:  # fmt: skip
            with pytest.raises(
                PermissionDeniedError, match="user eve \\(role viewer\\) may not read"
            ):
                async for _ in store.watch("", 0):
                    pass
        r = await ha("cluster", "rbac", "disable", *client)
        assert r.code == 0, r.err
    finally:
        if join is not None:
            await join.close()
        for m in members:
            await m.stop()
        shutil.rmtree(root, ignore_errors=True)
