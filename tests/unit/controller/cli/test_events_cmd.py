"""`ha events`: the filters (pure), bad flags named, and `--watch` over the in-memory
store: past events, then each new one, one JSON object per line, ended by SIGINT (exit 0)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

import pytest

from controller.api.errors import InputError
from controller.cli.events_cmd import EventFilter, _watch, build_filter, split_list, stream_line
from controller.cli.main import build_parser
from controller.store.memory import MemoryStore
from controller.store.objects import Event, ObjectStore, make_event
from tests.unit.nodeagent.test_control_flow import until

PLACED = make_event(
    "ResourceGroup", "web", "Placed", "epoch 2: n2", component="controller", node="n3"
)
STARTED = make_event(
    "ResourceGroup", "web", "Started", "ip vip started on n2", component="agent", node="n2"
)
APPLIED = make_event("ResourceGroup", "db", "Updated", "by ha apply")
FENCED = make_event("Node", "n1", "FenceVerified", "n1 is off", component="controller", node="n3")


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["events", *argv])


def shown(selected: EventFilter) -> list[str]:
    return [e.reason for e in (PLACED, STARTED, APPLIED, FENCED) if selected.matches(e)]


def test_split_list_takes_repeats_and_commas() -> None:
    assert split_list(["Placed,Started", " FenceDone ", ""]) == ["Placed", "Started", "FenceDone"]
    assert split_list(None) == []


def test_filters_by_object_reason_source_and_type() -> None:
    assert shown(build_filter(parse())) == ["Placed", "Started", "Updated", "FenceVerified"]
    assert shown(build_filter(parse("rg", "web"))) == ["Placed", "Started"]
    assert shown(build_filter(parse("node"))) == ["FenceVerified"]
    assert shown(build_filter(parse("--reason", "Placed", "--reason", "Updated,Started"))) == [
        "Placed",
        "Started",
        "Updated",
    ]
    assert shown(build_filter(parse("--source", "controller"))) == ["Placed", "FenceVerified"]
    assert shown(build_filter(parse("--source", "n2"))) == ["Started"]
    assert shown(build_filter(parse("--source", "agent/n2,ha"))) == ["Started", "Updated"]
    assert shown(build_filter(parse("--source", "n1"))) == []  # n1 is the subject, not the source
    assert shown(build_filter(parse("--type", "Warning"))) == []


def test_an_unknown_reason_names_the_flag_and_the_known_reasons() -> None:
    with pytest.raises(InputError) as caught:
        build_filter(parse("--reason", "Placed,Moved"))
    message = caught.value.message
    assert message.startswith("--reason: unknown reason 'Moved'")
    assert "FenceVerified" in message and "docs/events.md" in message


def test_a_name_without_a_kind_is_refused() -> None:
    args = parse()
    args.name = "web"
    with pytest.raises(InputError, match="give the kind with the name"):
        build_filter(args)


def test_the_stream_line_names_object_source_and_reason() -> None:
    line = stream_line(STARTED)
    assert "Started" in line and "resourcegroup/web" in line and "agent/n2" in line
    assert line.endswith("ip vip started on n2")


async def test_watch_prints_the_past_then_each_new_event_and_ends_on_sigint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = MemoryStore("c")
    objects = ObjectStore(store)
    await objects.commit_with_events([], [PLACED])
    kvs, revision = await store.list("events/")
    selected = build_filter(parse("--source", "agent,controller"))
    past = [Event.from_dict(kv.value) for kv in kvs]
    watching = asyncio.create_task(_watch(store, selected, past, revision, as_json=True))

    printed: list[dict[str, object]] = []

    def lines() -> list[dict[str, object]]:
        out = capsys.readouterr().out
        printed.extend(json.loads(line) for line in out.splitlines())
        return printed

    async def both() -> bool:
        return len(lines()) >= 2

    await objects.commit_with_events([], [APPLIED])  # from ha: filtered out
    await objects.commit_with_events([], [STARTED])
    await until(both)
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C
    assert await watching == 0
    assert [p["reason"] for p in lines()] == ["Placed", "Started"]
    assert printed[1]["source"] == STARTED.source
    assert printed[1]["involvedObject"] == {"kind": "ResourceGroup", "name": "web"}
