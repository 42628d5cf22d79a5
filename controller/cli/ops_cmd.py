"""Operator commands: ``ha status``, ``ha move``, ``ha standby``/``unstandby``, ``ha cleanup``.

Each change is a spec change through the same all-or-nothing apply path as ``ha apply``
(validation, compare-and-swap, events): nothing is remembered outside the specs, so a
move never leaves an orphaned constraint behind (its expiry is in the spec itself).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime

from controller.api.errors import EXIT_UNAVAILABLE, InputError, NotFoundError
from controller.api.group import MoveTo, ResourceGroup
from controller.api.meta import ObjectMeta
from controller.api.node import Node, NodeSpec
from controller.api.units import parse_duration
from controller.apply.plan import Applied
from controller.apply.run import apply_objects
from controller.cli.local_view import local_status_file, read_local_status, render_local
from controller.cli.output import err, use_colour
from controller.cli.status_view import render, to_json
from controller.store import keys
from controller.store.base import Delete, Store
from controller.store.client_config import ClientConfig
from controller.store.errors import StoreUnavailableError
from controller.store.informer import Informer, wait_any
from controller.store.objects import ObjectStore, make_event
from controller.store.view import ClusterView


def _print_status(cluster_name: str, view: ClusterView, as_json: bool) -> None:
    now = time.time()
    if as_json:
        sys.stdout.write(json.dumps(to_json(cluster_name, view, now), indent=2) + "\n")
    else:
        sys.stdout.write(render(cluster_name, view, now, use_colour(sys.stdout)))
    sys.stdout.flush()


async def run_status(args: argparse.Namespace, config: ClientConfig) -> int:
    try:
        return await _cluster_status(args, config)
    except StoreUnavailableError as exc:
        return _local_status(exc, args.output == "json")


def _local_status(exc: StoreUnavailableError, as_json: bool) -> int:
    """The store does not answer: show what this node's agent knows, if one runs here."""
    err(f"error: {exc}")
    path = local_status_file()
    status = read_local_status(path)
    if status is None:
        err(f"(no local view either: no agent writes {path} on this machine)")
    elif as_json:
        document = {"error": str(exc), "local": status.model_dump(mode="json")}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(render_local(status, datetime.now(UTC)))
    return EXIT_UNAVAILABLE


async def _cluster_status(args: argparse.Namespace, config: ClientConfig) -> int:
    async with config.open_store() as store:
        informer = Informer(store)
        items, revision = await store.list("")
        informer.load(items, revision)
        _print_status(config.cluster, informer.view(), args.output == "json")
        if not args.watch:
            return 0
        changed = informer.subscribe()
        task = asyncio.create_task(informer.run())
        try:
            while True:
                await wait_any([changed], 2.0)
                if args.output != "json":
                    sys.stdout.write("\n")
                _print_status(config.cluster, informer.view(), args.output == "json")
        finally:
            task.cancel()


async def _group(store: Store, name: str) -> ResourceGroup:

    stored = await ObjectStore(store).get("ResourceGroup", name)
    if stored is None or not isinstance(stored.obj, ResourceGroup):
        raise NotFoundError(f"ResourceGroup {name!r} not found; list them with `ha get rg`")
    return stored.obj


def _until(args: argparse.Namespace) -> datetime | None:
    if args.for_ is None:
        return None
    try:
        return datetime.now(UTC) + parse_duration(args.for_)
    except ValueError as exc:
        raise InputError(f"--for: {exc}") from None


async def run_move(args: argparse.Namespace, config: ClientConfig) -> int:
    async with config.open_store() as store:
        group = await _group(store, args.group)
        placement = group.spec.placement
        if args.clear:
            if args.node:
                raise InputError("give a NODE or --clear, not both")
            move = None
        else:
            if not args.node:
                raise InputError("where to? ha move GROUP NODE [--for 1h], or --clear")
            move = MoveTo(node=args.node, until=_until(args))
        new_placement = placement.model_copy(update={"move_to": move})
        spec = group.spec.model_copy(update={"placement": new_placement})
        updated = group.model_copy(update={"spec": spec})
        await apply_objects(store, [Applied(updated)], cluster=config.cluster, actor="ha move")
    if move is None:
        print(f"resourcegroup/{args.group}: move cleared")
    else:
        until = f" until {move.until.isoformat()}" if move.until else ""
        print(f"resourcegroup/{args.group} moving to {args.node}{until}")
    return 0


async def run_standby(args: argparse.Namespace, config: ClientConfig) -> int:

    async with config.open_store() as store:
        stored = await ObjectStore(store).get("Node", args.node)
        if stored is not None and isinstance(stored.obj, Node):
            node = stored.obj.model_copy(
                update={"spec": stored.obj.spec.model_copy(update={"standby": args.standby})}
            )
        else:
            node = Node(
                api_version="ha.vigil.dev/v1alpha1",
                kind="Node",
                metadata=ObjectMeta(name=args.node),
                spec=NodeSpec(standby=args.standby),
            )
        actor = "ha standby" if args.standby else "ha unstandby"
        await apply_objects(store, [Applied(node)], cluster=config.cluster, actor=actor)
    print(f"node/{args.node} {'in standby' if args.standby else 'back in service'}")
    return 0


async def run_cleanup(args: argparse.Namespace, config: ClientConfig) -> int:
    async with config.open_store() as store:
        await _group(store, args.group)
        kvs, _ = await store.list(keys.failure_prefix(args.group))
        if args.node:
            kvs = [kv for kv in kvs if kv.key.endswith("/" + args.node)]
        cleared = ", ".join(kv.key.rsplit("/", 1)[1] for kv in kvs) or "none recorded"
        if kvs:
            event = make_event(
                "ResourceGroup",
                args.group,
                "FailuresCleared",
                f"failures on {cleared} cleared by ha cleanup",
            )
            await ObjectStore(store).commit_with_events(
                [Delete(kv.key, expect_revision=kv.mod_revision) for kv in kvs], [event]
            )
    print(f"resourcegroup/{args.group}: failures cleared ({cleared})")
    return 0


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "status",
        parents=[common],
        help="the cluster at a glance (crm_mon)",
        description="Nodes, leader, groups: where they should run, where "
        "they run, their health and failures.",
    )
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.add_argument("-w", "--watch", action="store_true", help="print again on every change")
    p.set_defaults(run=run_status)

    p = sub.add_parser(
        "move",
        parents=[common],
        help="move a group to a node (clusvcadm -r)",
        description="Prefer NODE for GROUP, for a while or until cleared; "
        "the move lives in the group's spec, so it never lingers.",
    )
    p.add_argument("group", metavar="GROUP")
    p.add_argument("node", nargs="?", metavar="NODE")
    p.add_argument(
        "--for", dest="for_", metavar="DURATION", help="the move expires after this long, e.g. 1h"
    )
    p.add_argument("--clear", action="store_true", help="drop the group's move")
    p.set_defaults(run=run_move)

    for name, standby, text in (
        ("standby", True, "drain a node: its groups move away"),
        ("unstandby", False, "let a node run groups again"),
    ):
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.add_argument("node", metavar="NODE")
        p.set_defaults(run=run_standby, standby=standby)

    p = sub.add_parser(
        "cleanup",
        parents=[common],
        help="forget a group's failures",
        description="Clear failure counts so the group may run there again.",
    )
    p.add_argument("group", metavar="GROUP")
    p.add_argument("--node", help="only the failures on this node")
    p.set_defaults(run=run_cleanup)
