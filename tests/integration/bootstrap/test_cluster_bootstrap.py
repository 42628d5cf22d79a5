"""init, token, join x2, members, leave: three real etcd members with TLS on 127.0.0.x.

One cluster per module (building it is the expensive part); tests run in file order and
the leave test, which shrinks the cluster, comes last.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from controller.bootstrap.etcd_admin import EtcdAdmin
from controller.bootstrap.join_client import JoinError, JoinPaths, join
from controller.bootstrap.node_config import NodeConfig, load_node_config
from controller.bootstrap.token import parse_token
from controller.store.errors import StoreError
from controller.store.etcd import EtcdStore
from nodeagent.bootstrap import (
    JoinService,
    bootstrap_first_member,
    serve_joins,
    start_member,
)
from nodeagent.client_endpoints import refresh_client_endpoints
from nodeagent.etcd_member import EtcdMember, check_health
from tests.integration.bootstrap.helpers import (
    NodeDirs,
    Result,
    cluster_manifest,
    free_port,
    ha,
    loopback_base,
)

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]


@dataclass
class Cluster3:
    root: Path
    nodes: list[NodeDirs]
    outsider: NodeDirs  # in the Cluster spec, never joined: for refusal tests
    late: NodeDirs  # in the Cluster spec: joins after the outsider never started
    join_port: int
    token: str = ""
    members: dict[str, EtcdMember] = field(default_factory=dict)
    configs: dict[str, NodeConfig] = field(default_factory=dict)
    joined: dict[str, Result] = field(default_factory=dict)  # what `ha cluster join` said
    join: JoinService | None = None

    def admin_store(self, endpoint: str) -> EtcdStore:
        pki = self.configs["n1"].pki
        return EtcdStore(
            [endpoint], "boot", ca_cert=pki.ca_cert, cert_key=pki.admin_key,
            cert_cert=pki.admin_cert,
        )  # fmt: skip


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster() -> AsyncIterator[Cluster3]:
    base = loopback_base()
    root = Path(tempfile.mkdtemp(prefix="vigil-boot-", dir="/dev/shm"))
    nodes = [NodeDirs.make(root, f"n{i + 1}", f"127.0.0.{base + i}") for i in range(3)]
    outsider = NodeDirs.make(root, "n4", f"127.0.0.{base + 3}")
    late = NodeDirs.make(root, "n5", f"127.0.0.{base + 4}")
    c = Cluster3(root, nodes, outsider, late, free_port(nodes[0].address))
    manifest = cluster_manifest(root / "cluster.yaml", "boot", [*nodes, outsider, late])
    try:
        n1 = nodes[0]
        r = await ha(
            "cluster", "init", "--config", str(manifest), "--join-port", str(c.join_port),
            *n1.file_args(),
        )  # fmt: skip
        assert r.code == 0, r.err
        c.configs["n1"] = load_node_config(n1.node_config)
        c.members["n1"] = await bootstrap_first_member(
            c.configs["n1"], n1.node_config, log_file=n1.log_file
        )
        c.join = await serve_joins(c.configs["n1"])
        assert c.join is not None and c.join.port == c.join_port
        r = await ha(
            "cluster", "token", "create", "--config", str(n1.client_config),
            "--node-config", str(n1.node_config),
        )  # fmt: skip
        assert r.code == 0, r.err
        c.token = r.out.strip()
        for n in nodes[1:]:
            r = await ha("cluster", "join", "--token", c.token, *n.file_args())
            assert r.code == 0, r.err
            c.joined[n.name] = r
            c.configs[n.name] = load_node_config(n.node_config)
            c.members[n.name] = await start_member(c.configs[n.name], log_file=n.log_file)
        yield c
    finally:
        if c.join is not None:
            await c.join.close()
        for m in c.members.values():
            await m.stop()
        shutil.rmtree(root, ignore_errors=True)


async def members_json(node: NodeDirs) -> tuple[int, list[dict[str, object]]]:
    r = await ha("cluster", "members", "--config", str(node.client_config), "-o", "json")
    return r.code, json.loads(r.out) if r.out else []


async def test_init_wrote_node_config_and_private_keys(cluster: Cluster3) -> None:
    cfg = cluster.configs["n1"]
    assert cfg.etcd.initial_cluster_state == "new"
    # After the first start the node config says "existing": a lost data dir must not
    # found a second cluster.
    assert load_node_config(cluster.nodes[0].node_config).etcd.initial_cluster_state == "existing"
    assert cfg.seed_cluster is not None and cfg.join_listen is not None
    joined = cluster.configs["n2"]
    assert joined.etcd.initial_cluster_state == "existing"
    assert "n1=" in joined.etcd.initial_cluster and "n2=" in joined.etcd.initial_cluster
    # The CA key never leaves the first node; every private key is 0600.
    assert cfg.pki.has_ca_key() and not joined.pki.has_ca_key()
    keys = [
        k for n in ("n1", "n2", "n3") for k in cluster.nodes[0].root.parent.glob(f"{n}/pki/*.key")
    ]
    # ca + heartbeat + three node keys on n1; heartbeat + three node keys on the others.
    assert len(keys) == 5 + 4 + 4
    heartbeat_keys = {k.read_bytes() for k in keys if k.name == "heartbeat.key"}
    assert len(heartbeat_keys) == 1, "every node must hold the same cluster heartbeat key"
    assert all(k.stat().st_mode & 0o777 == 0o600 for k in keys), keys


async def test_a_join_says_what_it_waits_for(cluster: Cluster3) -> None:
    # n3 joined right after n2 started: etcd's health gate held the member add for ~5 s.
    said = cluster.joined["n3"].err
    assert "waiting: adding n3 (https://" in said, said
    assert "once every member has been connected for 5 s" in said


async def test_the_first_nodes_client_config_follows_the_members(cluster: Cluster3) -> None:
    n1 = cluster.nodes[0]
    written = yaml.safe_load(n1.client_config.read_text())["endpoints"]
    assert written == cluster.configs["n1"].etcd.client_urls  # init knew only itself
    async with EtcdAdmin(
        cluster.configs["n1"].etcd.client_urls, cluster.configs["n1"].client_tls()
    ) as admin:
        assert await refresh_client_endpoints(admin, n1.client_config)
    every = sorted(cluster.configs[n].etcd.client_urls[0] for n in ("n1", "n2", "n3"))
    assert yaml.safe_load(n1.client_config.read_text())["endpoints"] == every
    # The rewritten file is one `ha` reads (and, with n1's member away, n2 and n3 remain).
    r = await ha("cluster", "members", "--config", str(n1.client_config), "-o", "json")
    assert r.code == 0, r.err


async def test_members_shows_three_healthy(cluster: Cluster3) -> None:
    code, rows = await members_json(cluster.nodes[2])
    assert code == 0
    assert sorted(str(r["name"]) for r in rows) == ["n1", "n2", "n3"]
    assert all(r["healthy"] for r in rows)
    assert sum(1 for r in rows if r["leader"]) == 1
    r = await ha("cluster", "members", "--config", str(cluster.nodes[0].client_config))
    assert r.code == 0 and r.out.count("healthy") == 3, r.out


async def events_json(node: NodeDirs, reason: str) -> list[dict[str, Any]]:
    r = await ha(
        "events", "--reason", reason, "--config", str(node.client_config), "-o", "json"
    )  # fmt: skip
    assert r.code == 0, r.err
    found: list[dict[str, Any]] = json.loads(r.out)
    return found


async def test_joins_and_tokens_are_events(cluster: Cluster3) -> None:
    n1 = cluster.nodes[0]
    token = parse_token(cluster.token)
    [created] = [e for e in await events_json(n1, "JoinTokenCreated") if token.id in e["message"]]
    assert created["involvedObject"] == {"kind": "Cluster", "name": "boot"}
    assert created["source"]["component"] == "ha"
    joined: list[dict[str, Any]] = []
    for _ in range(50):  # recorded in the background, once the store has its majority
        joined = await events_json(n1, "MemberJoined")
        if len(joined) >= 2:
            break
        await asyncio.sleep(0.2)
    assert [e["involvedObject"]["name"] for e in joined] == ["n2", "n3"]
    assert all(e["source"]["component"] == "agent" for e in joined)
    assert all(e["source"]["node"] == "n1" for e in joined)
    assert all(f"with join token {token.id} by the join endpoint on n1" in e["message"]
               for e in joined)  # fmt: skip
    r = await ha(
        "cluster", "token", "create", "--config", str(n1.client_config),
        "--node-config", str(n1.node_config),
    )  # fmt: skip
    assert r.code == 0, r.err
    spare = parse_token(r.out.strip())
    r = await ha("cluster", "token", "delete", spare.id, "--config", str(n1.client_config))
    assert r.code == 0, r.err
    [revoked] = await events_json(n1, "JoinTokenRevoked")
    assert revoked["message"].startswith(f"join token {spare.id} revoked")
    every = await events_json(n1, "JoinTokenCreated")
    assert {token.id, spare.id} <= {e["message"].split()[2] for e in every}
    for e in [*every, revoked, *joined]:
        assert token.secret not in e["message"] and spare.secret not in e["message"]


async def test_store_with_admin_cert_works_on_every_member(cluster: Cluster3) -> None:
    key = f"probe/{uuid.uuid4().hex[:8]}"
    first = cluster.admin_store(cluster.configs["n1"].etcd.client_urls[0])
    async with first:
        await first.put(key, {"v": 1})
    for n in cluster.nodes:
        async with cluster.admin_store(cluster.configs[n.name].etcd.client_urls[0]) as store:
            kv = await store.get(key)
            assert kv is not None and kv.value == {"v": 1}
            # The seeded Cluster spec is there too.
            specs, _ = await store.list("specs/Cluster/")
            assert [s.key for s in specs] == ["specs/Cluster/boot"]


async def test_client_without_certificate_is_refused(cluster: Cluster3) -> None:
    cfg = cluster.configs["n2"]
    store = EtcdStore(cfg.etcd.client_urls, "boot", timeout=2.0, ca_cert=cfg.pki.ca_cert)
    async with store:
        with pytest.raises(StoreError):
            await store.get("anything")
    # /health over TLS without a client certificate gets no answer; with one it does.
    assert await check_health(cfg.etcd.client_urls[0], cfg.etcd_tls())
    assert await raw_health(cfg.address, cfg, with_cert=False) is None
    assert b'"health":"true"' in (await raw_health(cfg.address, cfg, with_cert=True) or b"")


async def raw_health(host: str, cfg: NodeConfig, *, with_cert: bool) -> bytes | None:
    ctx = ssl.create_default_context(cafile=cfg.pki.ca_cert)
    if with_cert:
        ctx.load_cert_chain(cfg.pki.client_cert, cfg.pki.client_key)
    port = int(cfg.etcd.client_urls[0].rsplit(":", 1)[1])
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        body = await asyncio.wait_for(reader.read(), 3)
        writer.close()
    except (OSError, ssl.SSLError):
        return None
    return body or None


def fresh_paths(cluster: Cluster3, name: str) -> JoinPaths:
    root = cluster.root / f"{name}-{uuid.uuid4().hex[:6]}"
    return JoinPaths(root / "node.yaml", root / "client.yaml", root / "pki", root / "etcd")


async def test_bad_tokens_are_refused_with_clear_messages(cluster: Cluster3) -> None:
    good = parse_token(cluster.token)
    out = cluster.outsider
    cases = {
        "wrong secret": (type(good)(good.id, "a" * 16, good.ca_sha256, good.endpoint), "n4"),
        "unknown or expired": (type(good)("zzzzzz", good.secret, good.ca_sha256, good.endpoint),
                               "n4"),
        "the token pins": (type(good)(good.id, good.secret, "0" * 64, good.endpoint), "n4"),
        "not in Cluster": (good, "stranger"),
        "already an etcd member": (good, "n2"),
    }  # fmt: skip
    for expect, (token, node) in cases.items():
        paths = fresh_paths(cluster, node)
        with pytest.raises(JoinError, match=expect):
            await join(token, node, paths, client_port=out.client_port, peer_port=out.peer_port)
        assert not paths.node_config.exists(), "a refused join must write nothing"
    # Nothing was added to etcd by the refused attempts.
    code, rows = await members_json(cluster.nodes[0])
    assert code == 0 and len(rows) == 3


async def test_expired_token_is_refused(cluster: Cluster3) -> None:
    n1 = cluster.nodes[0]
    r = await ha(
        "cluster", "token", "create", "--ttl", "1s", "--config", str(n1.client_config),
        "--node-config", str(n1.node_config),
    )  # fmt: skip
    assert r.code == 0, r.err
    await asyncio.sleep(1.1)
    out = cluster.outsider
    with pytest.raises(JoinError, match="expired"):
        await join(parse_token(r.out.strip()), "n4", fresh_paths(cluster, "n4"),
                   client_port=out.client_port, peer_port=out.peer_port)  # fmt: skip


async def test_unreachable_endpoint_and_malformed_token(cluster: Cluster3) -> None:
    good = parse_token(cluster.token)
    dead = type(good)(good.id, good.secret, good.ca_sha256, f"{cluster.outsider.address}:9")
    with pytest.raises(JoinError, match="cannot reach the join endpoint"):
        await join(dead, "n4", fresh_paths(cluster, "n4"), within=2.0)
    r = await ha("cluster", "join", "--token", "nonsense", *cluster.outsider.file_args())
    assert r.code != 0 and "malformed join token" in r.err


async def test_leave_removes_member_and_two_stay_healthy(cluster: Cluster3) -> None:
    n3 = cluster.nodes[2]
    r = await ha(
        "cluster", "leave", "--node-config", str(n3.node_config),
        "--client-config", str(n3.client_config),
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "left the cluster" in r.out
    member = cluster.members["n3"]
    # etcd exited by itself on removal, and the supervisor did not restart it.
    assert member.state == "removed" and member.restarts == 0
    assert not n3.data_dir.exists()
    assert load_node_config(n3.node_config).state == "left"
    code, rows = await members_json(cluster.nodes[0])
    assert code == 0
    assert sorted(str(r["name"]) for r in rows) == ["n1", "n2"]
    assert all(r["healthy"] for r in rows)
    async with cluster.admin_store(cluster.configs["n2"].etcd.client_urls[0]) as store:
        await store.put("after-leave", {"ok": True})
    [removed] = await events_json(cluster.nodes[0], "MemberRemoved")
    assert removed["involvedObject"] == {"kind": "Node", "name": "n3"}
    assert removed["source"]["component"] == "ha" and removed["source"]["node"] == "n3"
    assert "removed by `ha cluster leave`" in removed["message"]


async def test_a_join_after_one_that_never_started_is_refused(cluster: Cluster3) -> None:
    out, late = cluster.outsider, cluster.late
    r = await ha("cluster", "join", "--token", cluster.token, *out.file_args())
    assert r.code == 0, r.err  # n4's member is added; its etcd is never started
    r = await ha("cluster", "join", "--token", cluster.token, *late.file_args())
    assert r.code != 0
    assert f"the member at https://{out.address}:{out.peer_port} was added by an earlier" in r.err
    assert "start vigil-agent on that node first" in r.err
    assert not late.node_config.exists(), "a refused join must write nothing"
    code, rows = await members_json(cluster.nodes[0])
    assert code == 1  # n4 is unhealthy: "not started yet"
    assert [r["healthy"] for r in rows].count(True) == 2 and len(rows) == 3  # not n5
