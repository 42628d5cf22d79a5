"""``ha cluster init|join|leave|members|token``: creating and growing the cluster.

``register(sub, common)`` adds the ``cluster`` command group to ``ha``'s subparsers.
init, join and leave work on this node's files (``local`` handlers, no client config
needed); members and token talk to the store through the client config (``run``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from controller.api.errors import InputError, UnavailableError, VigilError
from controller.api.units import parse_duration
from controller.bootstrap import pki, token_store
from controller.bootstrap.etcd_admin import EtcdAdmin, MemberInfo, MemberStatus, statuses
from controller.bootstrap.etcd_config import DEFAULT_DATA_DIR, EtcdStartError
from controller.bootstrap.init import init_cluster, read_cluster
from controller.bootstrap.join_client import JoinError, JoinPaths, join
from controller.bootstrap.leave import LeaveError, leave_cluster
from controller.bootstrap.node_config import (
    CLIENT_PORT,
    DEFAULT_CLIENT_CONFIG,
    DEFAULT_NODE_CONFIG,
    JOIN_PORT,
    PEER_PORT,
    load_node_config,
)
from controller.bootstrap.pki import DEFAULT_PKI_DIR
from controller.bootstrap.token import TokenError, parse_token, split_endpoint
from controller.cli import rbac_cmd
from controller.cli.output import err, table
from controller.store.client_config import ClientConfig, resolve
from controller.store.etcd_channel import TLSFiles

Remote = Callable[[argparse.Namespace, ClientConfig], Coroutine[Any, Any, int]]


def _node_config_path(args: argparse.Namespace) -> Path:
    return Path(args.node_config or os.environ.get("VIGIL_NODE_CONFIG") or DEFAULT_NODE_CONFIG)


def _node_files(p: argparse.ArgumentParser, *, creates: bool) -> None:
    p.add_argument(
        "--node-config",
        metavar="FILE",
        help=f"this node's config (default: $VIGIL_NODE_CONFIG or {DEFAULT_NODE_CONFIG})",
    )
    if creates:
        p.add_argument(
            "--client-config",
            metavar="FILE",
            default=str(DEFAULT_CLIENT_CONFIG),
            help=f"client config written for `ha` (default: {DEFAULT_CLIENT_CONFIG})",
        )
        p.add_argument("--pki-dir", default=str(DEFAULT_PKI_DIR), help="certificates and keys")
        p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="etcd data dir")
        p.add_argument("--client-port", type=int, default=CLIENT_PORT, help="etcd client port")
        p.add_argument("--peer-port", type=int, default=PEER_PORT, help="etcd peer port")


# -- init / join / leave ---------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    cluster, doc = read_cluster(args.cluster_file)
    node = args.node or socket.gethostname()
    path = _node_config_path(args)
    cfg = init_cluster(
        cluster,
        doc,
        node,
        node_config=path,
        client_config=Path(args.client_config),
        pki_dir=Path(args.pki_dir),
        data_dir=Path(args.data_dir),
        cluster_name=args.cluster_name,
        client_port=args.client_port,
        peer_port=args.peer_port,
        join_port=args.join_port,
    )
    fpr = pki.fingerprint(pki.load_cert(cfg.pki.ca_cert))
    print(f"cluster {cfg.cluster} initialised on node {cfg.node} ({cfg.address})")
    print(f"  node config:   {path}")
    print(f"  client config: {args.client_config}")
    print(f"  CA:            {cfg.pki.ca_cert} (sha256 {fpr})")
    print("next: start vigil-agent on this node, then `ha cluster token create` and")
    print("      `ha cluster join --token TOKEN --node NAME` on each other node")
    return 0


def _join(args: argparse.Namespace) -> int:
    try:
        token = parse_token(args.token)
    except TokenError as e:
        raise InputError(f"--token: {e}") from None
    node = args.node or socket.gethostname()
    paths = JoinPaths(
        node_config=_node_config_path(args),
        client_config=Path(args.client_config),
        pki_dir=Path(args.pki_dir),
        data_dir=Path(args.data_dir),
    )
    try:
        cfg = asyncio.run(
            join(
                token,
                node,
                paths,
                client_port=args.client_port,
                peer_port=args.peer_port,
                on_progress=lambda message: err(f"waiting: {message}"),
            )
        )
    except JoinError as e:
        raise UnavailableError(str(e)) from None
    print(f"node {node} joined cluster {cfg.cluster} (initial cluster {cfg.etcd.initial_cluster})")
    print(f"start vigil-agent on this node now: the cluster counts {node} as down until it runs")
    return 0


def _leave(args: argparse.Namespace) -> int:
    path = _node_config_path(args)
    cfg = load_node_config(path)
    try:
        others = resolve(config_path=args.client_config, environ={}).endpoints
    except InputError:
        others = ()
    try:
        print(asyncio.run(leave_cluster(cfg, path, endpoints=list(others))))
    except LeaveError as e:
        raise VigilError(str(e)) from None
    return 0


# -- members ---------------------------------------------------------------------------------


def _tls(config: ClientConfig) -> TLSFiles:
    return TLSFiles(config.tls.ca, config.tls.key, config.tls.cert)


def member_rows(
    members: list[MemberInfo], status: dict[int, MemberStatus]
) -> list[dict[str, object]]:
    leader = next((s.leader for s in status.values() if s.leader), 0)
    rows: list[dict[str, object]] = []
    for m in sorted(members, key=lambda m: (m.name == "", m.name, m.id)):
        s = status.get(m.id)
        rows.append(
            {
                "name": m.name or "(not started)",
                "id": f"{m.id:x}",
                "peerURL": ",".join(m.peer_urls),
                "clientURL": ",".join(m.client_urls),
                "healthy": bool(s and s.healthy),
                "leader": m.id == leader,
                "learner": m.is_learner,
                "version": s.version if s else "",
                "error": s.error if s else "",
            }
        )
    return rows


async def _members(args: argparse.Namespace, config: ClientConfig) -> int:
    tls = _tls(config)
    async with EtcdAdmin(list(config.endpoints), tls, config.timeout) as admin:
        members = await admin.members()
    rows = member_rows(members, await statuses(members, tls))
    if args.output == "json":
        print(json.dumps(rows, indent=2))
    else:
        header = ["NAME", "ID", "PEER", "CLIENT", "HEALTH", "LEADER", "VERSION"]
        body = [
            [
                str(r["name"]),
                str(r["id"]),
                str(r["peerURL"]),
                str(r["clientURL"]),
                "healthy" if r["healthy"] else f"unhealthy: {r['error']}",
                "*" if r["leader"] else "",
                str(r["version"]),
            ]
            for r in rows
        ]
        sys.stdout.write(table(body, header))
    return 0 if all(r["healthy"] for r in rows) else 1


# -- tokens ----------------------------------------------------------------------------------


def _join_endpoint(args: argparse.Namespace) -> str:
    if args.join_endpoint:
        try:
            split_endpoint(args.join_endpoint)
        except TokenError as e:
            raise InputError(f"--join-endpoint: {e}") from None
        return str(args.join_endpoint)
    path = _node_config_path(args)
    cfg = load_node_config(path)
    if cfg.join_listen is None or not cfg.pki.has_ca_key():
        raise InputError(
            f"this node ({cfg.node}) does not serve joins (no CA key or join_listen in {path}); "
            "pass --join-endpoint HOST:PORT of the node that ran `ha cluster init`"
        )
    return cfg.join_listen


async def _token_create(args: argparse.Namespace, config: ClientConfig) -> int:
    if config.tls.ca is None:
        raise InputError(
            f"client config ({config.source}) names no CA certificate (tls.ca): the token "
            "pins the cluster CA, so `ha` must use the TLS client config `ha cluster init` wrote"
        )
    try:
        ttl = parse_duration(args.ttl).total_seconds()
    except ValueError as e:
        raise InputError(f"--ttl: {e}") from None
    fpr = pki.fingerprint(pki.load_cert(config.tls.ca))
    endpoint = _join_endpoint(args)
    async with config.open_store() as store:
        try:
            token = await token_store.create_token(
                store, fpr, endpoint, ttl=ttl, created_by=socket.gethostname()
            )
        except ValueError as e:
            raise InputError(f"--ttl: {e}") from None
    print(token)
    return 0


async def _token_list(args: argparse.Namespace, config: ClientConfig) -> int:
    async with config.open_store() as store:
        tokens = await token_store.list_tokens(store)
    now = time.time()
    rows = [[t.id, f"{t.expires_at - now:.0f}s", t.created_by] for t in tokens]
    sys.stdout.write(table(rows, ["ID", "EXPIRES IN", "CREATED BY"]))
    return 0


async def _token_delete(args: argparse.Namespace, config: ClientConfig) -> int:
    async with config.open_store() as store:
        if not await token_store.delete_token(store, args.id, socket.gethostname()):
            raise InputError(f"no join token {args.id!r} (expired, or never created)")
    print(f"join token {args.id} deleted")
    return 0


# -- wiring ----------------------------------------------------------------------------------

_USER_ERRORS = (pki.PKIError, TokenError, JoinError, LeaveError, EtcdStartError)


def _local(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn this package's errors into VigilError, which `ha` prints without a traceback."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except _USER_ERRORS as e:
            raise VigilError(str(e)) from None

    return wrapped


def _remote(fn: Remote) -> Remote:
    async def wrapped(args: argparse.Namespace, config: ClientConfig) -> int:
        try:
            return await fn(args, config)
        except _USER_ERRORS as e:
            raise VigilError(str(e)) from None

    return wrapped


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    cluster = sub.add_parser(
        "cluster",
        help="create the cluster, join and remove nodes, list store members",
        description="Bootstrap and membership of the cluster's store (etcd).",
    )
    csub = cluster.add_subparsers(dest="cluster_command", metavar="COMMAND", required=True)

    p = csub.add_parser(
        "init",
        help="first node: create the CA, certificates and node config",
        description="Create the cluster CA and this node's certificates, and write the node "
        "config vigil-agent reads. Starts nothing.",
    )
    p.add_argument(
        "-f", "--filename", "--config", dest="cluster_file", required=True, metavar="FILE",
        help="manifest holding the Cluster document",
    )  # fmt: skip
    p.add_argument("--node", help="this node's name in the Cluster spec (default: hostname)")
    p.add_argument("--cluster-name", help="store prefix name (default: the Cluster's name)")
    p.add_argument("--join-port", type=int, default=JOIN_PORT, help="port of the join endpoint")
    _node_files(p, creates=True)
    p.set_defaults(run=None, local=_local(_init))

    p = csub.add_parser(
        "join",
        help="join this node to a cluster with a token",
        description="Fetch certificates and etcd membership from the join endpoint named "
        "in the token, and write this node's config. Start vigil-agent right after.",
    )
    p.add_argument("token_arg", nargs="?", metavar="TOKEN", help="same as --token")
    p.add_argument("--token", help="from `ha cluster token create`")
    p.add_argument("--node", help="this node's name in the Cluster spec (default: hostname)")
    _node_files(p, creates=True)
    p.set_defaults(run=None, local=_local(_join_checked))

    p = csub.add_parser(
        "leave",
        help="remove this node's store member and wipe its data",
        description="etcd member remove of this node (asked through the other members), then "
        "wipe its data dir once its etcd has stopped.",
    )
    _node_files(p, creates=False)
    p.add_argument(
        "--client-config",
        default=str(DEFAULT_CLIENT_CONFIG),
        metavar="FILE",
        help="its endpoints are asked too, should this node's etcd be down",
    )
    p.set_defaults(run=None, local=_local(_leave))

    p = csub.add_parser("members", parents=[common], help="list store members and their health")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.set_defaults(run=_remote(_members))

    tok = csub.add_parser("token", help="manage join tokens")
    tsub = tok.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    p = tsub.add_parser("create", parents=[common], help="create a join token (printed)")
    p.add_argument("--ttl", default="1h", help="lifetime, e.g. 30m (default 1h, at most 24h)")
    p.add_argument("--join-endpoint", metavar="HOST:PORT", help="default: this node's")
    _node_files(p, creates=False)
    p.set_defaults(run=_remote(_token_create))
    p = tsub.add_parser("list", parents=[common], help="list unexpired join tokens")
    p.set_defaults(run=_remote(_token_list))
    p = tsub.add_parser("delete", parents=[common], help="revoke a join token")
    p.add_argument("id", metavar="ID")
    p.set_defaults(run=_remote(_token_delete))

    rbac_cmd.register(csub, common)


def _join_checked(args: argparse.Namespace) -> int:
    text = args.token or args.token_arg
    if not text:
        raise InputError("ha cluster join needs a token: --token ID.SECRET@CA-SHA256@HOST:PORT")
    args.token = text
    return _join(args)
