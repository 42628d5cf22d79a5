"""Command-line parts of peer outdating (DRBD's resource-level fencing): the
``serve --outdate-peer ...`` options.

The store client is built by ``controller.store.client_config.resolve`` (the same precedence as
``ha``: flags, then VIGIL_* environment, then the client config file, which is also where
etcd TLS files are given). The store is used only when ``--store-endpoints`` or
``--store-config`` is given.
"""

from __future__ import annotations

import argparse
from typing import Any

from blockrepl.errors import BlockReplError
from blockrepl.outdate import OUTDATE_PEER_MODES, HandlerOutdater, PeerOutdater, StoreOutdater


class OutdateConfigError(BlockReplError):
    pass


def add_serve_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--outdate-peer",
        choices=OUTDATE_PEER_MODES,
        help="resource-only: a Primary that loses its peer marks it Outdated before "
        "acknowledging more writes (default when an outdater is configured, else dont-care)",
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
        help="run on this replica after a completed resync as SyncTarget (handler outdating)",
    )
    group.add_argument("--outdate-timeout", type=float, default=30.0, help="seconds (default 30)")
    group.add_argument(
        "--peer-id", metavar="NAME", help="the peer's replica id (its --replica-id/--node-name)"
    )
    # Same value as --node-name: one name per replica, for split-brain policy and outdating.
    group.add_argument(
        "--replica-id",
        dest="node_name",
        default=argparse.SUPPRESS,
        help="this replica's id in outdate records (= --node-name; default: hostname)",
    )
    group.add_argument(
        "--store-endpoints",
        metavar="URLS",
        help="Vigil etcd endpoints, comma-separated: keep outdate records in the store",
    )
    group.add_argument(
        "--store-config", metavar="FILE", help="Vigil client config (endpoints, cluster, TLS)"
    )
    group.add_argument("--store-cluster", metavar="NAME", help="Vigil cluster name")
    group.add_argument("--store-timeout", metavar="DURATION", help="store request timeout")


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ReplConfig fields ``outdate_peer`` and ``peer_id``, checked."""
    has_outdater = bool(args.fence_peer_handler or args.store_endpoints or args.store_config)
    outdate_peer = args.outdate_peer or ("resource-only" if has_outdater else "dont-care")
    if outdate_peer == "resource-only":
        if not has_outdater:
            raise OutdateConfigError(
                "--outdate-peer resource-only needs an outdater: --fence-peer-handler CMD, or "
                "--store-endpoints URLS / --store-config FILE for records in Vigil's store"
            )
        if not args.peer_id:
            raise OutdateConfigError(
                "--outdate-peer resource-only needs --peer-id NAME: the peer's --replica-id, "
                "which the outdate records names"
            )
    if args.fence_peer_handler and (args.store_endpoints or args.store_config):
        raise OutdateConfigError(
            "--fence-peer-handler and --store-endpoints/--store-config both given: choose one "
            "outdater"
        )
    return {"outdate_peer": outdate_peer, "peer_id": args.peer_id or ""}


def build_outdater(args: argparse.Namespace, peer_address: str = "") -> PeerOutdater | None:
    me = args.node_name
    if args.fence_peer_handler:
        return HandlerOutdater(
            args.fence_peer_handler,
            me,
            unfence_command=args.unfence_peer_handler,
            peer_address=peer_address,
            timeout=args.outdate_timeout,
        )
    if not (args.store_endpoints or args.store_config):
        return None
    from controller.api.errors import VigilError
    from controller.store.client_config import resolve

    try:
        cfg = resolve(
            config_path=args.store_config,
            endpoints=args.store_endpoints,
            cluster=args.store_cluster,
            timeout=args.store_timeout,
        )
        store = cfg.open_store()
    except (VigilError, ValueError) as exc:
        raise OutdateConfigError(f"outdate store: {exc}") from None
    return StoreOutdater(store, me, timeout=args.outdate_timeout)
