"""``ha apply``, ``ha diff`` and ``ha delete``."""

from __future__ import annotations

import argparse
import sys
import time

from controller.api.errors import EXIT_USAGE, InputError
from controller.api.manifest import load
from controller.api.registry import resolve_kind
from controller.apply.diff import plan_diff
from controller.apply.plan import Plan, decode_documents, resulting_state
from controller.apply.run import apply_objects, delete_objects
from controller.apply.simulate import placement_changes
from controller.apply.validation import ObjectKey
from controller.cli.selectors import parse_selector
from controller.store.base import Store
from controller.store.client_config import ClientConfig
from controller.store.informer import Informer
from controller.store.objects import ObjectStore

_PAST = {
    "create": "created",
    "configure": "configured",
    "unchanged": "unchanged",
    "delete": "deleted",
}


def _print_plan(plan: Plan, dry_run: bool) -> None:
    suffix = " (dry run)" if dry_run else ""
    for change in plan.changes:
        kept = f" (kept: {'; '.join(change.kept)})" if change.kept else ""
        print(f"{change.ref} {_PAST[change.action]}{kept}{suffix}")


async def _placement_changes(store: Store, plan: Plan) -> list[str]:
    """What the change would do to placements, given what the cluster last published."""
    current_items, _ = await ObjectStore(store).list_objects()
    current = {item.key: item for item in current_items}
    informer = Informer(store)
    informer.load(*await store.list(""))
    after = resulting_state(plan, current).values()
    changes = placement_changes(informer.view(), after, time.time())
    return [f"placement: {change}" for change in changes]


async def run_apply(args: argparse.Namespace, config: ClientConfig) -> int:
    applied = decode_documents(load(args.filename))
    if not applied:
        raise InputError(f"no objects found in {', '.join(args.filename)}")
    async with config.open_store() as store:
        outcome = await apply_objects(store, applied, cluster=config.cluster, dry_run=args.dry_run)
        simulated = await _placement_changes(store, outcome.plan) if args.dry_run else []
    if args.output == "diff":
        sys.stdout.write(plan_diff(outcome.plan))
    else:
        _print_plan(outcome.plan, args.dry_run)
    for line in simulated:
        print(line)
    return 0


class CannotDiffError(InputError):
    """`ha diff` exits as diff(1) and kubectl diff do: 1 means "there are differences", so
    input it cannot compare is 2."""

    exit_code = EXIT_USAGE


async def run_diff(args: argparse.Namespace, config: ClientConfig) -> int:
    try:
        applied = decode_documents(load(args.filename))
        async with config.open_store() as store:
            outcome = await apply_objects(store, applied, cluster=config.cluster, dry_run=True)
    except InputError as exc:
        raise CannotDiffError(exc.message, exc.details) from None
    text = plan_diff(outcome.plan)
    sys.stdout.write(text)
    return 1 if text else 0


async def run_delete(args: argparse.Namespace, config: ClientConfig) -> int:
    targets: list[ObjectKey] = []
    if args.filename:
        if args.kind or args.selector:
            raise InputError("give either -f FILE or KIND NAME..., not both")
        targets = [(a.obj.KIND, a.obj.name) for a in decode_documents(load(args.filename))]
    elif args.kind:
        model = resolve_kind(args.kind)
        if not args.names and not args.selector and not args.all:
            raise InputError(
                f"name the {model.KIND} objects to delete, or use -l SELECTOR or --all"
            )
        targets = [(model.KIND, name) for name in args.names]
    else:
        raise InputError("what to delete? ha delete KIND NAME... or ha delete -f FILE")
    async with config.open_store() as store:
        if args.selector or args.all:
            model = resolve_kind(args.kind)
            match = parse_selector(args.selector) if args.selector else (lambda _labels: True)
            stored, _ = await ObjectStore(store).list_objects([model.KIND])
            targets += [s.key for s in stored if match(s.obj.metadata.labels)]
            if not targets:
                print(f"no {model.KIND} objects match")
                return 0
        outcome = await delete_objects(
            store, targets, dry_run=args.dry_run, missing_ok=args.ignore_not_found
        )
    _print_plan(outcome.plan, args.dry_run)
    return 0
