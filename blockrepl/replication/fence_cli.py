"""Command-line parts of resource-level fencing: ``serve --fencing ...`` options.

The store client is built by ``controller.cli.config.resolve`` (the same precedence as
``ha``: flags, then VIGIL_* environment, then the client config file, which is also where
etcd TLS files are given). The store is used only when ``--store-endpoints`` or
``--store-config`` is given.
"""

from __future__ import annotations

import argparse
from typing import Any

from blockrepl.errors import BlockReplError
from blockrepl.fencing import FENCING_MODES, HandlerFencer, PeerFencer, StoreFencer


class FencingConfigError(BlockReplError):
    pass


def add_serve_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--fencing",
        choices=FENCING_MODES,
        help="resource-only: a Primary that loses its peer marks it Outdated before "
        "acknowledging more writes (default when a fencer is configured, else dont-care)",
    )
    group.add_argument(
        "--fence-peer-handler",
        metavar="CMD",
        help="DRBD-style handler run by `sh -c` to outdate the peer; exit 3..7 as DRBD "
        "(env BLOCKREPL_VOLUME, BLOCKREPL_PEER, DRBD_RESOURCE, DRBD_PEER, ...)",
    )
    group.add_argument(
        "--unfence-peer-handler",
        metavar="CMD",
        help="run on this replica after a completed resync as SyncTarget (handler fencing)",
    )
    group.add_argument("--fence-timeout", type=float, default=30.0, help="seconds (default 30)")
    group.add_argument(
        "--peer-id", metavar="NAME", help="the peer's replica id (its --replica-id/--node-name)"
    )
    # Same value as --node-name: one name per replica, for split-brain policy and fencing.
    group.add_argument(
        "--replica-id",
        dest="node_name",
        default=argparse.SUPPRESS,
        help="this replica's id in fencing records (= --node-name; default: hostname)",
    )
    group.add_argument(
        "--store-endpoints",
        metavar="URLS",
        help="Vigil etcd endpoints, comma-separated: keep fencing records in the store",
    )
    group.add_argument(
        "--store-config", metavar="FILE", help="Vigil client config (endpoints, cluster, TLS)"
    )
    group.add_argument("--store-cluster", metavar="NAME", help="Vigil cluster name")
    group.add_argument("--store-timeout", metavar="DURATION", help="store request timeout")


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ReplConfig fields ``fencing`` and ``peer_id``, checked."""
    has_fencer = bool(args.fence_peer_handler or args.store_endpoints or args.store_config)
    fencing = args.fencing or ("resource-only" if has_fencer else "dont-care")
    if fencing == "resource-only":
        if not has_fencer:
            raise FencingConfigError(
                "--fencing resource-only needs a fencer: --fence-peer-handler CMD, or "
                "--store-endpoints URLS / --store-config FILE for records in Vigil's store"
            )
        if not args.peer_id:
            raise FencingConfigError(
                "--fencing resource-only needs --peer-id NAME: the peer's --replica-id, "
                "which the fencing record names"
            )
    if args.fence_peer_handler and (args.store_endpoints or args.store_config):
        raise FencingConfigError(
            "--fence-peer-handler and --store-endpoints/--store-config both given: choose one "
            "fencer"
        )
    return {"fencing": fencing, "peer_id": args.peer_id or ""}


def build_fencer(args: argparse.Namespace, peer_address: str = "") -> PeerFencer | None:
    me = args.node_name
    if args.fence_peer_handler:
        return HandlerFencer(
            args.fence_peer_handler,
            me,
            unfence_command=args.unfence_peer_handler,
            peer_address=peer_address,
            timeout=args.fence_timeout,
        )
    if not (args.store_endpoints or args.store_config):
        return None
    from controller.cli.config import resolve
    from controller.errors import VigilError

    try:
        cfg = resolve(
            config_path=args.store_config,
            endpoints=args.store_endpoints,
            cluster=args.store_cluster,
            timeout=args.store_timeout,
        )
        store = cfg.open_store()
    except (VigilError, ValueError) as exc:
        raise FencingConfigError(f"fencing store: {exc}") from None
    return StoreFencer(store, me, timeout=args.fence_timeout)
