"""The agent's own records: what ran (pure), the losses of the serving lease as the book
keeps them (pure), and AgentEvents over the in-memory store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from controller.store.objects import Event, ObjectStore
from nodeagent.actuators import State
from nodeagent.agent_events import (
    LOSSES_FILE,
    AgentEvents,
    Loss,
    LossBook,
    load_losses,
    running_groups,
    save_losses,
    started_message,
    stopping_message,
)
from nodeagent.reconciler.plan import GroupView, ResourceView
from tests.unit.static_liveness import StaticLiveness

T0 = datetime(2026, 12, 5, 19, 0, tzinfo=UTC)


def view(name: str, *states: State) -> GroupView:
    return GroupView(name, "run", tuple(ResourceView(f"r{i}", s) for i, s in enumerate(states)))


def test_a_group_ran_if_any_of_its_resources_was_seen_running() -> None:
    views = [
        view("web", State.RUNNING, State.STOPPED),
        view("db", State.STOPPED),
        view("app", State.FAILED, State.RUNNING),
    ]
    assert running_groups(views) == ["app", "web"]


def test_the_messages() -> None:
    assert started_message("1.0", 7, ["web"]) == (
        "vigil-agent 1.0 (pid 7) started; found running and adopted: web"
    )
    assert started_message("1.0", 7, []).endswith("adopted: nothing")
    assert "did not finish" in started_message("1.0", 7, None)
    assert stopping_message("1.0", 7, "SIGTERM", ["db", "web"]) == (
        "vigil-agent 1.0 (pid 7) stopping (SIGTERM); stopping: db, web"
    )
    loss = Loss(T0, ["web"], T0 + timedelta(seconds=30))
    assert loss.message("n1", T0 + timedelta(seconds=31)) == (
        "n1 lost its serving lease at 2026-12-05T19:00:00Z (no majority heard it) and "
        "stopped: web; served again at 2026-12-05T19:00:30Z; reached the store at "
        "2026-12-05T19:00:31Z"
    )
    assert "not serving yet" in Loss(T0, []).message("n1", T0)


def test_a_loss_is_a_transition_from_serving_and_is_kept_until_recorded() -> None:
    book = LossBook()
    # An agent that starts without a lease has lost nothing.
    assert not book.serving_is(False, T0, [])
    assert book.serving_is(True, T0, []) is False  # nothing to mark as served again
    assert not book.serving_is(True, T0, ["web"])
    assert book.serving_is(False, T0 + timedelta(seconds=1), ["web"])
    assert not book.serving_is(False, T0 + timedelta(seconds=2), [])  # the same loss
    assert book.serving_is(True, T0 + timedelta(seconds=9), [])
    assert book.serving_is(False, T0 + timedelta(seconds=10), [])  # a second one
    assert [(x.groups, x.serving_again) for x in book.losses] == [
        (["web"], T0 + timedelta(seconds=9)),
        ([], None),
    ]
    book.recorded(1)
    assert len(book.losses) == 1 and book.losses[0].lost_at == T0 + timedelta(seconds=10)


def test_the_losses_file_round_trips_and_goes_when_empty(tmp_path: Path) -> None:
    path = tmp_path / LOSSES_FILE
    losses = [Loss(T0, ["web", "db"], T0 + timedelta(seconds=3)), Loss(T0, [])]
    save_losses(path, losses)
    assert load_losses(path) == losses
    save_losses(path, [])
    assert not path.exists() and load_losses(path) == []
    path.write_text("{not json")
    assert load_losses(path) == []


@contextlib.asynccontextmanager
async def informed(store: MemoryStore) -> AsyncIterator[Informer]:
    informer = Informer(store)
    task = asyncio.create_task(informer.run())
    await asyncio.wait_for(informer.ready.wait(), 5)
    try:
        yield informer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def node_events(store: MemoryStore, count: int) -> list[Event]:
    for _ in range(300):
        events = await ObjectStore(store).events("Node", "n1")
        if len(events) >= count:
            return events
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} events on Node n1")


async def test_the_agent_records_its_start_its_stop_and_a_loss_once(tmp_path: Path) -> None:
    store = MemoryStore("lab")
    views = [view("web", State.RUNNING)]
    seen = StaticLiveness({}, serving=True)
    async with informed(store) as informer:
        events = AgentEvents("n1", store, informer, lambda: views, tmp_path, "1.0")
        await events.record_started(lambda: views)
        watch = asyncio.create_task(events.watch_serving(seen))
        await asyncio.sleep(0.05)
        seen.set_serving(False)
        await asyncio.sleep(0.05)
        views = [view("web", State.STOPPED)]
        seen.set_serving(True)
        [started, lost] = await node_events(store, 2)
        await events.record_stopping("SIGTERM")
        [*_, stopping] = await node_events(store, 3)
        await asyncio.sleep(0.1)
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    assert (started.reason, started.type) == ("AgentStarted", "Normal")
    assert started.message.endswith("adopted: web")
    assert started.source["component"] == "agent" and started.source["node"] == "n1"
    assert (lost.reason, lost.type) == ("ServingLost", "Warning")
    assert "and stopped: web;" in lost.message
    assert stopping.reason == "AgentStopping" and stopping.message.endswith("stopping: nothing")
    assert len(await ObjectStore(store).events("Node", "n1")) == 3  # the loss once
    assert not (tmp_path / LOSSES_FILE).exists()


async def test_a_loss_noted_by_an_earlier_agent_is_recorded_by_the_next(tmp_path: Path) -> None:
    save_losses(tmp_path / LOSSES_FILE, [Loss(T0, ["db"])])
    store = MemoryStore("lab")
    async with informed(store) as informer:
        events = AgentEvents("n1", store, informer, list, tmp_path, "1.0")
        watch = asyncio.create_task(events.watch_serving(StaticLiveness({}, serving=False)))
        [lost] = await node_events(store, 1)
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    assert lost.reason == "ServingLost" and "stopped: db; not serving yet" in lost.message
    assert not (tmp_path / LOSSES_FILE).exists()
