"""The join endpoint's decisions, with an in-memory store and a fake etcd membership."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from controller.api.decode import decode
from controller.bootstrap import pki
from controller.bootstrap.etcd_admin import SETTLE, MemberInfo
from controller.bootstrap.join_server import JoinRefused, JoinServer, member_names
from controller.bootstrap.node_config import EtcdSettings, NodeConfig
from controller.bootstrap.protocol import PROTOCOL_VERSION
from controller.bootstrap.token import TokenError
from controller.bootstrap.token_store import create_token, delete_token
from controller.store import keys
from controller.store.memory import MemoryStore
from controller.store.objects import ObjectStore, spec_document

CLUSTER = {
    "apiVersion": "ha.vigil.dev/v1alpha1",
    "kind": "Cluster",
    "metadata": {"name": "c1"},
    "spec": {"nodes": [{"name": "a", "address": "10.0.0.1"}, {"name": "b", "address": "10.0.0.2"}]},
}


class FakeAdmin:
    timeout = 5.0

    def __init__(self, members: list[MemberInfo]) -> None:
        self.list = members
        self.added: list[str] = []

    async def members(self) -> list[MemberInfo]:
        return list(self.list)

    async def add(self, peer_url: str) -> tuple[MemberInfo, list[MemberInfo]]:
        self.added.append(peer_url)
        new = MemberInfo(0xB, "", (peer_url,), (), False)
        self.list.append(new)
        return new, list(self.list)


A = MemberInfo(0xA, "a", ("https://10.0.0.1:2380",), ("https://10.0.0.1:2379",), False)
C = MemberInfo(0xC, "c", ("https://10.0.0.3:2380",), ("https://10.0.0.3:2379",), False)
NEVER_STARTED = MemberInfo(0xD, "", ("https://10.0.0.4:2380",), (), False)


@pytest.fixture
async def setup(tmp_path: Path) -> Any:
    paths = pki.PKIPaths(tmp_path / "pki")
    pki.init_pki(paths, "c1", "a", ["10.0.0.1"])
    cfg = NodeConfig(
        node="a", cluster="c1", address="10.0.0.1", pki_dir=str(paths.directory),
        etcd=EtcdSettings(client_urls=["https://10.0.0.1:2379"], peer_url="https://10.0.0.1:2380",
                          initial_cluster="a=https://10.0.0.1:2380",
                          initial_cluster_state="new", initial_cluster_token="tok"),
    )  # fmt: skip
    store = MemoryStore("c1")
    obj = decode(CLUSTER)
    await store.put(keys.spec_key("Cluster", "c1"), spec_document(obj))
    admin = FakeAdmin([A])
    server = JoinServer(cfg, store, admin)  # type: ignore[arg-type]
    token = await create_token(store, "f" * 64, "10.0.0.1:2378", ttl=60)
    return server, admin, token


def request(token: Any, node: str = "b", **kw: Any) -> dict[str, Any]:
    csrs = {w: pki.make_csr(pki.new_key(), w).decode() for w in ("server", "client", "admin")}
    return {
        "op": "join", "version": PROTOCOL_VERSION, "token_id": token.id, "secret": token.secret,
        "node": node, "peer_port": 2380, "client_port": 2379, "csrs": csrs, **kw,
    }  # fmt: skip


async def test_join_signs_and_adds_member(setup: Any) -> None:
    server, admin, token = setup
    answer = await server.process(request(token))
    assert answer["ok"] and admin.added == ["https://10.0.0.2:2380"]
    assert answer["initial_cluster"] == "a=https://10.0.0.1:2380,b=https://10.0.0.2:2380"
    server_cert = x509.load_pem_x509_certificate(answer["certs"]["server"].encode())
    server_cert.verify_directly_issued_by(server.ca.cert)
    assert answer["client_url"] == "https://10.0.0.2:2379"


async def test_refusals(setup: Any) -> None:
    server, admin, token = setup
    with pytest.raises(JoinRefused, match="'z' is not in Cluster 'c1'"):
        await server.process(request(token, "z"))
    with pytest.raises(JoinRefused, match="already an etcd member"):
        await server.process(request(token, "a"))
    with pytest.raises(TokenError, match="wrong secret"):
        await server.process(request(token, secret="q" * 16))
    with pytest.raises(JoinRefused, match="version"):
        await server.process(request(token, version=99))
    with pytest.raises(JoinRefused, match="'peer_port' must be a TCP port"):
        await server.process(request(token, peer_port=0))
    with pytest.raises(pki.PKIError, match="server CSR: not a PEM"):
        await server.process(request(token, csrs={"server": "", "client": "", "admin": ""}))
    assert admin.added == []


async def test_retry_reuses_the_unstarted_member(setup: Any) -> None:
    server, admin, token = setup
    admin.list.append(C)  # two members run: the cluster keeps quorum with b added
    await server.process(request(token))
    await server.process(request(token))  # joiner crashed before starting etcd; tries again
    assert admin.added == ["https://10.0.0.2:2380"]


def test_member_names_for_unstarted_members() -> None:
    pending = MemberInfo(0xC, "", ("https://h3:2380",), (), False)
    new = MemberInfo(0xB, "", ("https://h2:2380",), (), False)
    names = member_names([A, pending, new], 0xB, "b")
    assert names == {"a": A.peer_urls[0], "pending-c": "https://h3:2380", "b": "https://h2:2380"}


async def test_ca_request_needs_no_token(setup: Any) -> None:
    server, _, _ = setup
    answer = await server.process({"op": "ca"})
    assert pki.fingerprint_pem(answer["ca"].encode()) == pki.fingerprint(server.ca.cert)


async def test_the_joiner_is_told_what_the_server_waits_for(setup: Any) -> None:
    server, admin, token = setup
    said: list[tuple[str, float]] = []

    async def say(message: str, within: float) -> None:
        said.append((message, within))

    await server.process(request(token), say)
    assert len(said) == 1
    message, within = said[0]
    assert "adding b (https://10.0.0.2:2380) as an etcd member" in message
    assert "connected for 5 s" in message
    assert within == SETTLE + admin.timeout  # the joiner waits that long for the answer


async def test_a_join_while_the_last_joiner_never_started_is_refused_at_once(setup: Any) -> None:
    server, admin, token = setup
    admin.list.append(NEVER_STARTED)  # a then has no quorum: 1 of 2 members run
    with pytest.raises(JoinRefused, match="no quorum: 1 of 2 members run") as refused:
        await server.process(request(token))
    assert "https://10.0.0.4:2380" in str(refused.value)
    assert "Start vigil-agent on that node" in str(refused.value)
    admin.list.insert(1, C)  # quorum again (2 of 3), but one join at a time
    with pytest.raises(JoinRefused, match="never started its etcd"):
        await server.process(request(token))
    assert admin.added == []


async def test_an_admitted_node_is_recorded_and_the_token_by_its_id_only(setup: Any) -> None:
    server, _admin, token = setup
    await server.process(request(token))
    for _ in range(200):
        joined = await ObjectStore(server.store).events("Node", "b")
        if joined:
            break
        await asyncio.sleep(0.01)
    await server.close()
    [event] = joined
    assert event.reason == "MemberJoined"
    assert event.source["component"] == "agent" and event.source["node"] == "a"
    assert event.message == (
        f"b admitted as store member b (https://10.0.0.2:2380) with join token {token.id} "
        "by the join endpoint on a"
    )
    created = await ObjectStore(server.store).events("Cluster", "c1")
    assert [e.reason for e in created] == ["JoinTokenCreated"]
    assert token.id in created[0].message
    assert all(token.secret not in e.message for e in [*created, event])


async def test_a_revoked_token_is_recorded_and_an_unknown_one_is_not(setup: Any) -> None:
    server, _admin, token = setup
    assert await delete_token(server.store, token.id, "admin-host")
    assert not await delete_token(server.store, token.id)
    assert not await delete_token(server.store, "nosuch")
    events = await ObjectStore(server.store).events("Cluster", "c1")
    assert [e.reason for e in events] == ["JoinTokenCreated", "JoinTokenRevoked"]
    assert events[1].message == f"join token {token.id} revoked on admin-host"
    assert events[1].source["component"] == "ha"
