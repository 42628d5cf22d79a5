"""``ha get`` and ``ha describe``: reading the cluster's objects."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from controller.api.cluster import Cluster
from controller.api.errors import InputError, NotFoundError
from controller.api.fencing import FenceDevice
from controller.api.group import ResourceGroup
from controller.api.meta import Object, format_timestamp
from controller.api.registry import KINDS, resolve_kind
from controller.api.volume import ReplicatedVolume
from controller.cli.events_cmd import events_table
from controller.cli.output import NONE, age, render, table, to_yaml, use_colour
from controller.cli.selectors import parse_selector
from controller.cli.status_volumes import describe_lines
from controller.status.document import active_failures
from controller.status.protection import protection
from controller.store import keys
from controller.store.base import Store
from controller.store.client_config import ClientConfig
from controller.store.informer import Informer
from controller.store.objects import Event, ObjectStore, StoredObject
from controller.store.records import FailureRecord, LeaderRecord
from controller.store.view import ClusterView


def _kinds(text: str) -> list[str]:
    if text.lower() == "all":
        return [m.KIND for m in KINDS]
    return [resolve_kind(part).KIND for part in text.split(",") if part]


def _select(items: Sequence[StoredObject], args: argparse.Namespace) -> list[Object]:
    objects = [s.obj for s in items]
    if args.names:
        wanted = set(args.names)
        missing = sorted(wanted - {o.name for o in objects})
        if missing:
            raise NotFoundError(f"{args.kind} not found: {', '.join(missing)}")
        objects = [o for o in objects if o.name in wanted]
    if args.selector:
        match = parse_selector(args.selector)
        objects = [o for o in objects if match(o.metadata.labels)]
    return objects


async def _with_leader(store: Store, objects: list[Object]) -> list[Object]:
    """A Cluster's status.leader read from the leader record, which holds the truth now."""
    if not any(isinstance(o, Cluster) for o in objects):
        return objects
    kv = await store.get(keys.LEADER)
    leader = LeaderRecord.from_dict(kv.value).node if kv else None
    return [
        o.model_copy(update={"status": o.status.model_copy(update={"leader": leader})})
        if isinstance(o, Cluster)
        else o
        for o in objects
    ]


async def run_get(args: argparse.Namespace, config: ClientConfig) -> int:
    kinds = _kinds(args.kind)
    if args.names and len(kinds) != 1:
        raise InputError("names can only be given with a single kind: ha get rg pg")
    async with config.open_store() as store:
        objects_store = ObjectStore(store)
        items, revision = await objects_store.list_objects(kinds)
        objects = await _with_leader(store, _select(items, args))
        if objects or args.output not in ("table", "wide"):
            single = len(args.names) == 1
            render(objects, args.output, sys.stdout, single=single)
        elif not args.watch:
            sys.stderr.write(
                f"No {' or '.join(kinds)} objects found in cluster {config.cluster}.\n"
            )
        sys.stdout.flush()
        if args.watch:
            await _watch(store, objects_store, kinds, args, revision)
    return 0


async def _watch(
    store: Store,
    objects_store: ObjectStore,
    kinds: list[str],
    args: argparse.Namespace,
    revision: int,
) -> None:
    """Print each object again when its spec or status changes, from the listed revision on."""
    match = parse_selector(args.selector) if args.selector else None
    async for event in store.watch("", revision + 1):
        for section in (keys.SPECS, keys.STATUS):
            if event.key.startswith(section):
                kind, _, name = event.key[len(section) :].partition("/")
                break
        else:
            continue
        if kind not in kinds or (args.names and name not in args.names):
            continue
        if event.type == "DELETE" and event.key.startswith(keys.SPECS):
            print(f"{kind.lower()}/{name} deleted", flush=True)
            continue
        stored = await objects_store.get(kind, name)
        if stored is None or (match and not match(stored.obj.metadata.labels)):
            continue
        if args.output in ("table", "wide"):
            from controller.cli.output import object_rows

            header, rows = object_rows([stored.obj], args.output == "wide")
            # Rows only: the header was printed with the first listing.
            sys.stdout.write(table(rows, header).split("\n", 1)[1])
        elif args.output == "json":
            sys.stdout.write(json.dumps(stored.obj.to_dict()) + "\n")
        else:
            render(await _with_leader(store, [stored.obj]), args.output, sys.stdout, single=True)
            if args.output == "yaml":
                sys.stdout.write("---\n")
        sys.stdout.flush()


def _describe_one(stored: StoredObject, events: Sequence[Event], extra: Sequence[str] = ()) -> str:
    obj = stored.obj
    meta = obj.metadata
    labels = ",".join(f"{k}={v}" for k, v in meta.labels.items()) or NONE
    annotations = ",".join(f"{k}={v}" for k, v in meta.annotations.items()) or NONE
    created = meta.creation_timestamp
    lines = [
        f"Name:              {obj.name}",
        f"Kind:              {obj.KIND}",
        f"Labels:            {labels}",
        f"Annotations:       {annotations}",
        f"UID:               {meta.uid or NONE}",
        f"Generation:        {meta.generation}",
        f"Resource Version:  {meta.resource_version}",
        f"Created:           {format_timestamp(created) if created else NONE} ({age(created)} ago)",
        "Spec:",
    ]
    data = obj.to_dict()
    lines += ["  " + line for line in to_yaml(data["spec"]).splitlines()]
    status = dict(data.get("status", {}))
    conditions = status.pop("conditions", [])
    lines.append("Status:")
    lines += ["  " + line for line in to_yaml(status).splitlines()] if status else ["  <none>"]
    lines.append("Conditions:")
    if conditions:
        rows = [
            [c["type"], c["status"], c.get("reason", ""), c.get("message", "")] for c in conditions
        ]
        lines += [
            "  " + line
            for line in table(rows, ["TYPE", "STATUS", "REASON", "MESSAGE"]).splitlines()
        ]
    else:
        lines.append("  <none>")
    lines.extend(extra)
    lines.append("Events:")
    if events:
        shown = events_table(events[-20:], False, use_colour(sys.stdout))
        lines += ["  " + line for line in shown.splitlines()]
    else:
        lines.append("  <none>")
    return "\n".join(lines) + "\n"


async def _protection_lines(objects: ObjectStore) -> list[str]:
    """What protects the cluster today (controller/status/protection.py), for describe."""
    stored, _ = await objects.list_objects([Cluster.KIND, FenceDevice.KIND, ResourceGroup.KIND])
    items = [s.obj for s in stored]
    cluster = next((o for o in items if isinstance(o, Cluster)), None)
    fences = {o.name: o for o in items if isinstance(o, FenceDevice)}
    groups = {o.name: o for o in items if isinstance(o, ResourceGroup)}
    return ["Protection:", *("  " + line for line in protection(cluster, fences, groups).lines())]


async def _failure_lines(store: Store, group: ResourceGroup) -> list[str]:
    """The failures that count, as `ha status` shows them (one rule: status/document.py)."""
    kvs, _ = await store.list(keys.failure_prefix(group.name))
    records = [FailureRecord.from_dict(kv.value) for kv in kvs]
    counts = active_failures({group.name: group}, records, time.time()).get(group.name, {})
    lines = ["Failures:"]
    for record in records:
        if record.node in counts:
            when = datetime.fromtimestamp(record.last_failure, UTC)
            lines.append(
                f"  {record.node}: {counts[record.node]} (last {age(when)} ago: {record.message})"
            )
    return lines if len(lines) > 1 else [*lines, "  <none>"]


async def _cluster_view(store: Store) -> ClusterView:
    """The cluster as `ha status` reads it: for a volume, each replica's entry, the outdate
    record, which agents are connected and where its group is placed."""
    informer = Informer(store)
    informer.load(*await store.list(""))
    return informer.view()


async def run_describe(args: argparse.Namespace, config: ClientConfig) -> int:
    model = resolve_kind(args.kind)
    async with config.open_store() as store:
        objects_store = ObjectStore(store)
        if args.names:
            found = []
            for name in args.names:
                stored = await objects_store.get(model.KIND, name)
                if stored is None:
                    raise NotFoundError(
                        f"{model.KIND} {name!r} not found in cluster {config.cluster}; "
                        f"list them with `ha get {model.KIND.lower()}`"
                    )
                found.append(stored)
        else:
            found, _ = await objects_store.list_objects([model.KIND])
        if args.selector:
            match = parse_selector(args.selector)
            found = [s for s in found if match(s.obj.metadata.labels)]
        protection_lines = await _protection_lines(objects_store) if model is Cluster else []
        view = await _cluster_view(store) if model is ReplicatedVolume else None
        for i, stored in enumerate(found):
            events = await objects_store.events(model.KIND, stored.obj.name)
            extra = protection_lines
            if isinstance(stored.obj, ResourceGroup):
                extra = await _failure_lines(store, stored.obj)
            if isinstance(stored.obj, ReplicatedVolume) and view is not None:
                extra = describe_lines(view, stored.obj.name, time.time())
            sys.stdout.write(("\n" if i else "") + _describe_one(stored, events, extra))
    return 0
