"""``ha fence NODE`` (stonith_admin --reboot) and ``ha fence --confirm NODE``
(stonith_admin --confirm, ``fence_ack_manual``).

Both write a request to ``fencing/<node>`` with a compare-and-swap; the controller's leader
performs it (it holds the devices' credentials files and sees the node's heartbeats) and
writes the result there, which this command waits for and prints. Nothing here talks to a
BMC: a fence from a laptop that can reach the store but not the management network would
say "done" for nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import socket
import sys
import time

from controller.api.cluster import Cluster
from controller.api.errors import EXIT_INVALID, InputError, NotFoundError
from controller.api.fencing import FenceDevice
from controller.cli.output import err
from controller.store import keys
from controller.store.base import Put, Store
from controller.store.client_config import ClientConfig
from controller.store.fence_record import FenceRecord
from controller.store.informer import Informer, wait_any
from controller.store.objects import ObjectStore, make_event

CONFIRM_WARNING = """\
WARNING: confirm only a node you have powered off yourself, or cut from its disks and
networks. Vigil then recovers {node}'s groups on other nodes at once. If {node} is in fact
still running them, they run twice: two nodes with the same address, a file system mounted
twice, a database written from two places. That corrupts data.
"""


def _who() -> str:
    return f"{getpass.getuser()} on {socket.gethostname()}"


async def run_fence(args: argparse.Namespace, config: ClientConfig) -> int:
    node = args.node
    async with config.open_store() as store:
        objects = ObjectStore(store)
        cluster = await _cluster(objects)
        if node not in {m.name for m in cluster.spec.nodes}:
            members = ", ".join(m.name for m in cluster.spec.nodes)
            raise NotFoundError(f"{node!r} is not a member of the cluster ({members})")
        if args.confirm:
            _ask_confirmation(node, args.yes)
            record = FenceRecord(node, "confirm", requested_by=f"ha fence --confirm ({_who()})")
            reason = "FenceConfirmRequested"
        else:
            await _check_devices(objects, node)
            record = FenceRecord(
                node,
                "requested",
                reason="requested with ha fence",
                requested_by=f"ha fence ({_who()})",
                requested_at=time.time(),
            )
            reason = "FenceRequested"
        key = keys.fencing_key(node)
        current = await store.get(key)
        if current is not None and FenceRecord.from_dict(dict(current.value)).open:
            print(f"node/{node}: a fencing is under way already; waiting for it")
        else:
            event = make_event("Node", node, reason, f"{record.requested_by} asked")
            expect = current.mod_revision if current else 0
            await objects.commit_with_events(
                [Put(key, record.to_dict(), expect_revision=expect)], [event]
            )
            print(f"node/{node}: {'confirmation' if args.confirm else 'fence'} requested")
        if args.no_wait:
            return 0
        return await _wait(store, node, args.wait, cluster)


async def _cluster(objects: ObjectStore) -> Cluster:
    stored, _ = await objects.list_objects(["Cluster"])
    clusters = [s.obj for s in stored if isinstance(s.obj, Cluster)]
    if not clusters:
        raise NotFoundError("no Cluster object: `ha cluster init` and `ha apply` it first")
    return clusters[0]


async def _check_devices(objects: ObjectStore, node: str) -> None:
    stored, _ = await objects.list_objects(["FenceDevice"])
    devices = [s.obj for s in stored if isinstance(s.obj, FenceDevice)]
    usable = [d for d in devices if node in d.spec.targets and d.spec.agent != "watchdog"]
    if not usable:
        raise InputError(
            f"no FenceDevice can power {node} off: add one whose spec.targets lists {node} "
            f"(`ha explain fencedevice`), or, once you have powered {node} off yourself, "
            f"run `ha fence --confirm {node}`"
        )


def _ask_confirmation(node: str, yes: bool) -> None:
    err(CONFIRM_WARNING.format(node=node))
    if yes:
        return
    if not sys.stdin.isatty():
        raise InputError(f"not confirmed: add --yes to confirm {node} is powered off")
    answer = input(f"Type the node's name ({node}) to confirm it is powered off: ").strip()
    if answer != node:
        raise InputError(f"not confirmed: you typed {answer!r}, not {node!r}; nothing changed")


async def _wait(store: Store, node: str, wait: float | None, cluster: Cluster) -> int:
    limit = wait if wait is not None else cluster.spec.fencing.timeout.total_seconds() + 30
    informer = Informer(store, prefix=keys.fencing_key(node))
    changed = informer.subscribe()
    task = asyncio.create_task(informer.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    said = ""
    try:
        await asyncio.wait_for(informer.ready.wait(), limit)
        while True:
            kv = informer.get(keys.fencing_key(node))
            record = FenceRecord.from_dict(dict(kv.value)) if kv else None
            if record is not None:
                line = f"node/{node}: {record.state}: {record.message or record.reason}"
                if line != said:
                    print(line, flush=True)
                    said = line
                if record.state == "fenced":
                    return 0
                if record.state in ("refused", "rejoined") or (
                    record.state == "failed" and record.retry_at
                ):
                    return EXIT_INVALID
            left = deadline - loop.time()
            if left <= 0:
                err(
                    f"error: node/{node}: no result within {limit:g} s; the controller keeps "
                    f"the request: `ha status` shows its progress"
                )
                return EXIT_INVALID
            await wait_any([changed], min(left, 1.0))
    finally:
        task.cancel()


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "fence",
        parents=[common],
        help="power a node off through its fence devices (STONITH)",
        description="Ask the controller to fence NODE through its FenceDevices (action of "
        "spec.fencing.action), and wait for the verified result. With --confirm, record that "
        "you powered NODE off yourself, so that its groups are recovered without a device.",
    )
    p.add_argument("node", metavar="NODE")
    p.add_argument(
        "--confirm",
        action="store_true",
        help="record a manual power-off of NODE (after a warning); NODE must not be heard",
    )
    p.add_argument("--yes", action="store_true", help="with --confirm: do not ask")
    p.add_argument("--no-wait", action="store_true", help="do not wait for the result")
    p.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="how long to wait for the result (default: spec.fencing.timeout + 30 s)",
    )
    p.set_defaults(run=run_fence)
