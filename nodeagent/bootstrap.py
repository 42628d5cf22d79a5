"""What a node agent does with its node config: run the etcd member, seed the Cluster
spec into a new store, and serve joins where the CA key is (controller/bootstrap/ has
the cluster-wide parts: certificates, tokens, the join protocol, etcd membership)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller.api.cluster import Cluster
from controller.api.decode import decode
from controller.bootstrap.etcd_admin import EtcdAdmin
from controller.bootstrap.join_server import JoinServer
from controller.bootstrap.node_config import NodeConfig, save_node_config
from controller.bootstrap.token import split_endpoint
from controller.store import keys
from controller.store.etcd import EtcdStore
from controller.store.objects import ObjectStore
from nodeagent.etcd_member import EtcdMember

log = logging.getLogger(__name__)


def node_store(cfg: NodeConfig, endpoints: Sequence[str] | None = None) -> EtcdStore:
    p = cfg.pki
    return EtcdStore(
        list(endpoints or cfg.etcd.client_urls),
        cfg.cluster,
        ca_cert=p.ca_cert,
        cert_key=p.client_key,
        cert_cert=p.client_cert,
    )


async def start_member(cfg: NodeConfig, *, within: float = 15.0, **overrides: Any) -> EtcdMember:
    """Start (and supervise) this node's etcd member; return once it is healthy."""
    member = EtcdMember(cfg.member_config(**overrides))
    await member.start()
    try:
        await member.wait_healthy(within)
    except BaseException:
        await member.stop()
        raise
    return member


async def seed_cluster_spec(cfg: NodeConfig) -> bool:
    """Put the init-time Cluster spec into the store unless one is there; True if written."""
    if cfg.seed_cluster is None:
        return False
    obj = decode(dict(cfg.seed_cluster))
    assert isinstance(obj, Cluster)
    async with node_store(cfg) as store:
        existing, _ = await store.list(keys.spec_prefix(Cluster.KIND))
        if existing:
            return False
        # Create only, so that a concurrent `ha apply` is never overwritten.
        if not await ObjectStore(store).create(obj):
            return False
    log.info("seeded Cluster %s into the store", obj.name)
    return True


async def bootstrap_first_member(
    cfg: NodeConfig,
    node_config: Path | None = None,
    *,
    within: float = 15.0,
    **overrides: Any,
) -> EtcdMember:
    """First node: start the one-member cluster, then seed the Cluster spec.

    Once it is up, node_config (if given) is switched to initial_cluster_state
    "existing": should this node's data dir ever be lost, its etcd must then fail to
    start instead of silently founding a second, empty cluster.
    """
    member = await start_member(cfg, within=within, **overrides)
    try:
        await seed_cluster_spec(cfg)
        if node_config is not None and cfg.etcd.initial_cluster_state == "new":
            etcd = cfg.etcd.model_copy(update={"initial_cluster_state": "existing"})
            save_node_config(cfg.model_copy(update={"etcd": etcd}), node_config)
    except BaseException:
        await member.stop()
        raise
    return member


class JoinService:
    """The join endpoint plus the store and admin clients it uses; close() frees all."""

    def __init__(self, server: JoinServer, store: EtcdStore, admin: EtcdAdmin, port: int) -> None:
        self.server = server
        self.store = store
        self.admin = admin
        self.port = port

    async def close(self) -> None:
        await self.server.close()
        await self.admin.close()
        await self.store.close()


async def serve_joins(cfg: NodeConfig, listen: str | None = None) -> JoinService | None:
    """Serve the join endpoint if this node holds the CA key (else None)."""
    where = listen or cfg.join_listen
    if where is None or not cfg.pki.has_ca_key():
        return None
    host, port = split_endpoint(where)
    store = node_store(cfg)
    admin = EtcdAdmin(cfg.etcd.client_urls, cfg.client_tls())
    server = JoinServer(cfg, store, admin)
    bound = await server.start(host, port)
    return JoinService(server, store, admin, bound)
