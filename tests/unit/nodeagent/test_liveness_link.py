"""The control plane's copy of the membership wakes its listeners when what they act on
changes: a peer, the incarnation, and the serving lease, also when the lease runs out
between two messages of the liveness process (the lease guard must stop everything at
once, not at the next reconcile turn)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator

import pytest

from nodeagent.liveness_link import LivenessLink

UP = {"state": "up", "lost": False, "incarnation": "02", "links": {"main": True}}
DEAD = {"state": "dead", "lost": True, "incarnation": "02", "links": {"main": False}}


@pytest.fixture
def pair() -> Iterator[tuple[LivenessLink, socket.socket]]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    link = LivenessLink(ours, 0, None)
    link.on_lost = lambda: None
    try:
        yield link, theirs
    finally:
        theirs.close()
        ours.close()


def state(expiry: float, peer: dict[str, object]) -> bytes:
    message = {"op": "state", "incarnation": "01", "expiry": expiry, "margin": 0.1,
               "peers": {"b": peer}}  # fmt: skip
    return json.dumps(message).encode()


async def test_a_lease_that_runs_out_between_messages_wakes_the_listeners(
    pair: tuple[LivenessLink, socket.socket],
) -> None:
    link, theirs = pair
    link.connect()
    told: list[bool] = []
    link.add_listener(lambda: told.append(link.read().serving(time.monotonic())))
    theirs.send(state(time.monotonic() + 0.4, UP))
    await asyncio.sleep(0.1)
    assert told == [True]
    # No further message (a liveness process that has nothing new to say, or is late):
    # the lease as known here ends 0.1 s before its expiry, and the listeners hear it.
    await asyncio.sleep(0.5)
    assert told == [True, False]


async def test_a_longer_lease_alone_wakes_nobody_and_a_peer_change_does(
    pair: tuple[LivenessLink, socket.socket],
) -> None:
    link, theirs = pair
    link.connect()
    told: list[str] = []
    link.add_listener(lambda: told.append(link.read().peers["b"].state))
    theirs.send(state(time.monotonic() + 5, UP))
    await asyncio.sleep(0.05)
    theirs.send(state(time.monotonic() + 6, UP))
    await asyncio.sleep(0.05)
    assert told == ["up"]
    theirs.send(state(time.monotonic() + 6, DEAD))
    await asyncio.sleep(0.05)
    assert told == ["up", "dead"]
    assert link.read().peers["b"].lost


async def test_link_ages_and_counters_alone_wake_nobody_a_silent_link_does(
    pair: tuple[LivenessLink, socket.socket],
) -> None:
    """Every message carries fresh link ages (and counters change under line noise):
    waking the listeners for those would have the reconciler look at every group several
    times a second. A link going silent is a change of peers."""
    link, theirs = pair
    link.connect()
    told: list[dict[str, bool]] = []
    link.add_listener(lambda: told.append(link.read().peers["b"].links))
    two = {**UP, "links": {"main": True, "serial0": True}}
    for i in range(3):
        message = json.loads(state(time.monotonic() + 5, {**two, "ages": {"serial0": i / 10}}))
        message["link_stats"] = {"serial0": {"dropped_bytes": i}}
        theirs.send(json.dumps(message).encode())
        await asyncio.sleep(0.05)
    assert told == [{"main": True, "serial0": True}]
    assert link.read().link_stats == {"serial0": {"dropped_bytes": 2}}
    assert link.read().peers["b"].ages == {"serial0": 0.2}
    silent = {**UP, "links": {"main": True, "serial0": False}, "ages": {"serial0": 1.0}}
    theirs.send(state(time.monotonic() + 5, silent))
    await asyncio.sleep(0.05)
    assert told[-1] == {"main": True, "serial0": False} and len(told) == 2
