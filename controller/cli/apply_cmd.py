"""``ha apply``, ``ha diff`` and ``ha delete``."""

from __future__ import annotations

import argparse
import sys

from controller.api.registry import resolve_kind
from controller.apply.diff import plan_diff
from controller.apply.plan import Plan, decode_documents
from controller.apply.run import apply_objects, delete_objects
from controller.cli.config import ClientConfig
from controller.cli.selectors import parse_selector
from controller.errors import InputError
from controller.manifest import load
from controller.objectstore import ObjectStore
from controller.validation import ObjectKey

_PAST = {
    "create": "created",
    "configure": "configured",
    "unchanged": "unchanged",
    "delete": "deleted",
}


def _print_plan(plan: Plan, dry_run: bool) -> None:
    suffix = " (dry run)" if dry_run else ""
    for change in plan.changes:
        print(f"{change.ref} {_PAST[change.action]}{suffix}")


async def run_apply(args: argparse.Namespace, config: ClientConfig) -> int:
    applied = decode_documents(load(args.filename))
    if not applied:
        raise InputError(f"no objects found in {', '.join(args.filename)}")
    async with config.open_store() as store:
        outcome = await apply_objects(store, applied, cluster=config.cluster, dry_run=args.dry_run)
    if args.output == "diff":
        sys.stdout.write(plan_diff(outcome.plan))
    else:
        _print_plan(outcome.plan, args.dry_run)
    return 0


async def run_diff(args: argparse.Namespace, config: ClientConfig) -> int:
    applied = decode_documents(load(args.filename))
    async with config.open_store() as store:
        outcome = await apply_objects(store, applied, cluster=config.cluster, dry_run=True)
    text = plan_diff(outcome.plan)
    sys.stdout.write(text)
    return 1 if text and args.exit_code else 0


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
