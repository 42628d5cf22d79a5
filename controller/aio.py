"""Small asyncio helpers the daemons share."""

from __future__ import annotations

import asyncio


async def wait_any(events: list[asyncio.Event], within: float) -> None:
    """Wait until one of ``events`` is set or ``within`` seconds pass; then clear them all.

    Level-triggered loops use it to sleep until something may have changed: clearing after
    waking is safe because the loop re-reads the whole state on every turn.
    """
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    for event in events:
        event.clear()
