"""``ha cluster init``: the first node's CA, certificates, node config and client config.

Init starts nothing: ``vigil-agent`` reads the node config and runs the etcd member
(``bootstrap_first_member``), then puts the Cluster spec given here into the store.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from controller.api.availability import unavailable
from controller.api.cluster import Cluster
from controller.api.decode import SchemaError, decode
from controller.api.errors import InputError
from controller.api.manifest import load
from controller.bootstrap import pki
from controller.bootstrap.etcd_config import etcd_timing
from controller.bootstrap.node_config import (
    CLIENT_PORT,
    JOIN_PORT,
    PEER_PORT,
    EtcdSettings,
    NodeConfig,
    save_client_config,
    save_node_config,
    url,
)


def read_cluster(path: str) -> tuple[Cluster, dict[str, Any]]:
    """The one Cluster document of a manifest file, decoded, and as written."""
    found = []
    for doc in load([path]):
        for item in doc.items():
            if isinstance(item.data, dict) and item.data.get("kind") == Cluster.KIND:
                found.append(item)
    if len(found) != 1:
        raise InputError(
            f"{path}: expected exactly one `kind: Cluster` document, found {len(found)}"
        )
    try:
        obj = decode(found[0].data)
    except SchemaError as e:
        raise InputError(f"{found[0].where()}: invalid Cluster: {e}") from None
    assert isinstance(obj, Cluster)
    refused = [f"{found[0].where(p.path)}: {p.dotted}: {p.message}" for p in unavailable(obj)]
    if refused:
        raise InputError(f"{path}: Cluster {obj.name} asks for what Vigil cannot do yet", refused)
    return obj, found[0].data


def init_cluster(
    cluster: Cluster,
    cluster_doc: dict[str, Any],
    node: str,
    *,
    node_config: Path,
    client_config: Path,
    pki_dir: Path,
    data_dir: Path,
    cluster_name: str | None = None,
    client_port: int = CLIENT_PORT,
    peer_port: int = PEER_PORT,
    join_port: int = JOIN_PORT,
) -> NodeConfig:
    names = [n.name for n in cluster.spec.nodes]
    spec_node = next((n for n in cluster.spec.nodes if n.name == node), None)
    if spec_node is None:
        raise InputError(
            f"node {node!r} is not in Cluster {cluster.name!r} spec.nodes "
            f"(known: {', '.join(names)}); pass --node with one of them"
        )
    if node_config.exists():
        raise InputError(
            f"{node_config} exists: this node was already initialised or joined; run "
            "`ha cluster leave` or remove it to start over"
        )
    if data_dir.exists() and any(data_dir.iterdir()):
        raise InputError(f"etcd data dir {data_dir} is not empty; remove it to start over")
    name = cluster_name or cluster.name
    address = str(spec_node.address)
    try:
        pki.init_pki(pki.PKIPaths(pki_dir), name, node, [address])
    except pki.PKIError as e:
        raise InputError(str(e)) from None
    peer = url(address, peer_port)
    host = f"[{address}]" if ":" in address else address
    heartbeat_ms, election_ms = etcd_timing(cluster.spec.timing.deadtime)  # joiners get it too
    cfg = NodeConfig(
        node=node,
        cluster=name,
        address=address,
        data_dir=str(data_dir),
        pki_dir=str(pki_dir),
        etcd=EtcdSettings(
            client_urls=[url(address, client_port)],
            peer_url=peer,
            initial_cluster=f"{node}={peer}",
            initial_cluster_state="new",
            # Unique per cluster so members of another cluster can never be mistaken for ours.
            initial_cluster_token=f"vigil-{name}-{secrets.token_hex(6)}",
            heartbeat_ms=heartbeat_ms,
            election_ms=election_ms,
        ),
        join_listen=f"{host}:{join_port}",
        seed_cluster=cluster_doc,
        client_config=str(client_config.absolute()),
    )
    save_node_config(cfg, node_config)
    save_client_config(cfg, cfg.etcd.client_urls, client_config)
    return cfg
