"""ByteBudget: a first-come-first-served byte semaphore (blockrepl.nbd.budget)."""

from __future__ import annotations

import asyncio

import pytest

from blockrepl.nbd.budget import ByteBudget


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_waits_in_order_and_a_big_request_is_not_overtaken() -> None:
    async def go() -> list[str]:
        budget = ByteBudget(100)
        order: list[str] = []

        async def take(name: str, n: int) -> None:
            await budget.acquire(n)
            order.append(name)

        assert await budget.acquire(60) == 60
        big = asyncio.create_task(take("big", 80))
        small = asyncio.create_task(take("small", 10))  # would fit, but queues behind big
        await settle()
        assert order == [] and budget.used == 60
        budget.release(60)
        await settle()
        assert order == ["big", "small"] and budget.used == 90
        await asyncio.gather(big, small)
        return order

    asyncio.run(go())


def test_request_above_the_limit_takes_all_of_it() -> None:
    async def go() -> None:
        budget = ByteBudget(100)
        assert await budget.acquire(500) == 100
        assert budget.used == 100
        budget.release(100)
        assert budget.used == 0

    asyncio.run(go())


def test_cancelled_waiter_gives_way_and_leaks_nothing() -> None:
    async def go() -> None:
        budget = ByteBudget(100)
        await budget.acquire(50)
        big = asyncio.create_task(budget.acquire(90))
        small = asyncio.create_task(budget.acquire(40))
        await settle()
        big.cancel()
        await settle()
        assert small.done() and budget.used == 90  # no longer stuck behind the big one
        with pytest.raises(asyncio.CancelledError):
            await big
        budget.release(50)
        budget.release(40)
        assert budget.used == 0

    asyncio.run(go())


def test_cancelled_as_it_was_granted_returns_its_bytes() -> None:
    async def go() -> None:
        budget = ByteBudget(100)
        await budget.acquire(100)
        waiter = asyncio.create_task(budget.acquire(30))
        await settle()
        budget.release(100)  # grants the waiter, which is cancelled before it runs
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert budget.used == 0

    asyncio.run(go())


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ByteBudget(0)
