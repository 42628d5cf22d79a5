"""A leader whose turns are long decides again on a lone store change only after a pause
as long as its last turn (a big apply's status writes must not keep its node busy), and
on a liveness change at once (a failover waits for nothing)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from controller.api.liveness import Liveness
from controller.leader.decide import PlacementPlan
from controller.leader.loop import PACE_MAX, Leader
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from tests.unit.static_liveness import StaticLiveness

UP, LOST = Liveness("up", False), Liveness("dead", True)
LONG = 2 * PACE_MAX  # a turn this long is followed by a pause of PACE_MAX


class SlowLeader(Leader):
    """Each turn takes LONG seconds (the first one only: the later ones are recorded)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.started: list[float] = []
        self.first, self.second = asyncio.Event(), asyncio.Event()

    async def turn(self) -> PlacementPlan:
        loop = asyncio.get_running_loop()
        self.started.append(loop.time())
        (self.first if len(self.started) == 1 else self.second).set()
        if len(self.started) == 1:
            await asyncio.sleep(LONG)
        return PlacementPlan([], [], [])


async def _second_turn(leader: SlowLeader, within: float) -> float:
    await asyncio.wait_for(leader.second.wait(), within)
    return leader.started[1]


@contextlib.asynccontextmanager
async def slow_leader() -> AsyncIterator[tuple[SlowLeader, Informer, StaticLiveness]]:
    """A leader whose first turn has just ended."""
    store = MemoryStore("lab")
    informer = Informer(store)
    view = StaticLiveness({"n1": UP, "n2": UP, "n3": UP})
    leader = SlowLeader(store, informer, "n1", view)
    task = asyncio.create_task(leader.run())
    try:
        await asyncio.wait_for(leader.first.wait(), 5)
        await asyncio.sleep(LONG + 0.05)
        yield leader, informer, view
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_lone_store_change_waits_as_long_as_the_last_turn() -> None:
    async with slow_leader() as (leader, informer, _view):
        changed = asyncio.get_running_loop().time()
        informer._notify()  # as a status write landing does
        second = await _second_turn(leader, 3 * PACE_MAX)
        assert second >= changed + PACE_MAX - 0.01, second - changed


async def test_a_liveness_change_is_decided_at_once() -> None:
    async with slow_leader() as (leader, informer, view):
        informer._notify()  # a store change starts the pause ...
        await asyncio.sleep(0.05)
        lost = asyncio.get_running_loop().time()
        view.set("n3", LOST)  # ... and a node lost meanwhile ends it
        second = await _second_turn(leader, PACE_MAX)
        assert second < lost + PACE_MAX / 2, second - lost
