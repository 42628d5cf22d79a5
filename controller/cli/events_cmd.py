"""``ha events``: the last hour of events, filtered, and ``--watch`` to follow new ones.

Events are written in the same transaction as the change they record (placement, fence
record, spec), so following them through the store's watch shows each change once, in
commit order, as it lands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from controller.api.errors import InputError
from controller.api.events import REASONS, unknown_reasons
from controller.api.registry import resolve_kind
from controller.cli.output import age, table, use_colour
from controller.store import keys
from controller.store.base import Store
from controller.store.client_config import ClientConfig
from controller.store.objects import Event

# A watch whose store stays unreachable this long ends (exit 3) instead of hanging mute.
WATCH_GIVE_UP = 30.0


def split_list(values: Iterable[str] | None) -> list[str]:
    """`--reason A --reason B,C` -> [A, B, C]."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


@dataclass(frozen=True)
class EventFilter:
    """Which events to show; an empty field lets every event through."""

    kind: str | None = None
    name: str | None = None
    reasons: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    type: str | None = None

    def matches(self, event: Event) -> bool:
        if self.kind and event.kind != self.kind:
            return False
        if self.name and event.name != self.name:
            return False
        if self.reasons and event.reason not in self.reasons:
            return False
        if self.type and event.type != self.type:
            return False
        if self.sources:
            # A source is named by its component (ha, controller, agent), its node, or both
            # as `ha events` prints them (agent/n1).
            names = {event.source_label, event.source.get("component", "")}
            if node := event.source.get("node"):
                names.add(node)
            if not names & self.sources:
                return False
        return True

    @property
    def prefix(self) -> str:
        """The narrowest store prefix holding every event this filter can match."""
        if self.kind and self.name:
            return keys.event_prefix(self.kind, self.name)
        if self.kind:
            return f"{keys.EVENTS}{self.kind}/"
        return keys.EVENTS


def build_filter(args: argparse.Namespace) -> EventFilter:
    """The filter from `ha events`'s arguments; bad input named by its flag."""
    kind = resolve_kind(args.kind).KIND if args.kind else None
    if args.name and not kind:
        raise InputError("give the kind with the name: ha events rg pg")
    reasons = split_list(args.reason)
    unknown = unknown_reasons(reasons)
    if unknown:
        raise InputError(
            f"--reason: unknown reason {', '.join(repr(r) for r in unknown)}; the reasons "
            f"are: {', '.join(sorted(REASONS))} (docs/events.md)"
        )
    sources = split_list(args.source)
    return EventFilter(kind, args.name, frozenset(reasons), frozenset(sources), args.type)


def stream_line(event: Event) -> str:
    """One event as `--watch` prints it in a table: a line of its own, fixed columns so
    that lines printed apart still line up."""
    stamp = event.time.strftime("%H:%M:%S.%f")[:-3]
    return (
        f"{stamp}  {event.type:<7}  {event.reason:<21}  "
        f"{event.kind.lower() + '/' + event.name:<28}  {event.source_label:<16}  "
        f"{event.message}"
    )


STREAM_HEADER = (
    f"{'TIME':<12}  {'TYPE':<7}  {'REASON':<21}  {'OBJECT':<28}  {'SOURCE':<16}  MESSAGE"
)


def events_table(events: Sequence[Event], with_object: bool, colour: bool = False) -> str:
    header = [
        "AGE",
        "TYPE",
        "REASON",
        *(["OBJECT"] if with_object else []),
        "SOURCE",
        "MESSAGE",
    ]
    rows = [
        [
            age(e.time),
            e.type,
            e.reason,
            *([f"{e.kind.lower()}/{e.name}"] if with_object else []),
            e.source_label,
            e.message,
        ]
        for e in events
    ]
    return table(rows, header, colour)


async def _list(store: Store, selected: EventFilter) -> tuple[list[Event], int]:
    kvs, revision = await store.list(selected.prefix)
    events = [Event.from_dict(kv.value) for kv in kvs]
    events.sort(key=lambda e: e.time)
    return [e for e in events if selected.matches(e)], revision


async def run_events(args: argparse.Namespace, config: ClientConfig) -> int:
    selected = build_filter(args)
    async with config.open_store() as store:
        events, revision = await _list(store, selected)
        if args.watch:
            return await _watch(store, selected, events, revision, args.output == "json")
    if args.output == "json":
        sys.stdout.write(json.dumps([e.to_dict() for e in events], indent=2) + "\n")
    elif events:
        sys.stdout.write(events_table(events, True, use_colour(sys.stdout)))
    else:
        sys.stderr.write("No events in the last hour.\n")
    return 0


def _emit(event: Event, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")
    else:
        sys.stdout.write(stream_line(event) + "\n")
    sys.stdout.flush()


async def _watch(
    store: Store, selected: EventFilter, past: list[Event], revision: int, as_json: bool
) -> int:
    """The past hour's events, then each new one as it is committed, until Ctrl-C or
    SIGTERM (exit 0: the operator ended it)."""
    if not as_json:
        sys.stdout.write(STREAM_HEADER + "\n")
    for event in past:
        _emit(event, as_json)
    follow = asyncio.create_task(_follow(store, selected, revision, as_json))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, follow.cancel)
    try:
        await follow
    except asyncio.CancelledError:
        # Ours (a signal), unless the caller is being cancelled too; then pass it on.
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        with contextlib.suppress(BrokenPipeError):
            sys.stdout.flush()
    return 0


async def _follow(store: Store, selected: EventFilter, revision: int, as_json: bool) -> None:
    async for change in store.watch(selected.prefix, revision + 1, give_up_after=WATCH_GIVE_UP):
        # DELETEs are events expiring with their lease: nothing happened.
        if change.type != "PUT" or change.value is None:
            continue
        event = Event.from_dict(change.value)
        if selected.matches(event):
            _emit(event, as_json)


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "events",
        parents=[common],
        help="recent events (last hour); --watch follows new ones",
        description="Events of the last hour, oldest first: placements, the agents' "
        "actions, failures, fencing, elections, agents starting and stopping, lost serving "
        "leases, store membership, operator commands, each with its source. Reasons are "
        "listed in docs/events.md.",
    )
    p.add_argument("kind", nargs="?", metavar="KIND", help="only events of this kind")
    p.add_argument("name", nargs="?", metavar="NAME", help="only events of this object")
    p.add_argument(
        "-o",
        "--output",
        choices=("table", "json"),
        default="table",
        help="table, or json (with --watch: one JSON object per line)",
    )
    p.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="after the past hour's events, print each new one as it is written; Ctrl-C ends",
    )
    p.add_argument(
        "--reason",
        action="append",
        metavar="REASON",
        help="only these reasons (repeatable or comma-separated), e.g. Placed,FenceVerified",
    )
    p.add_argument(
        "--source",
        action="append",
        metavar="SOURCE",
        help="only events written by this component (ha, controller, agent), node "
        "(n1), or both (agent/n1); repeatable or comma-separated",
    )
    p.add_argument("--type", choices=("Normal", "Warning"), help="only events of this type")
    p.set_defaults(run=run_events)
