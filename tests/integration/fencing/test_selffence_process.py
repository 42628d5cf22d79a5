"""Self-fencing end to end, against a watchdog we provide (watchdogfs.py: a FUSE file with
the watchdog ioctls and magic close that SIGKILLs a stand-in node process when it fires;
this machine has no /dev/watchdog and no CUSE): a real liveness process of a three-node
loopback cluster arms it once it serves and pets it while it serves; when it loses its
lease, or is frozen (SIGSTOP), petting stops and the watchdog fires within its timeout;
an orderly stop disarms it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent.liveness_link import LivenessLink
from nodeagent.selffence import WatchdogSettings
from tests.integration.heartbeat.test_liveness_process import (  # noqa: F401 - fixture
    configs,
    heartbeat_log,
)
from tests.integration.heartbeat.test_service_loopback import TIMING

from .test_watchdog_device import Rig, rig  # noqa: F401 - the FUSE watchdog fixture

pytestmark = pytest.mark.slow

TIMEOUT = 1  # the watchdog's, in seconds: petted every 0.25 s


@pytest.fixture
def cluster(tmp_path: Path, rig: Rig, heartbeat_log: Path) -> Iterator[list[LivenessLink]]:  # noqa: F811
    """Three liveness processes; node a's arms the FUSE watchdog once it serves."""
    datas = configs(tmp_path / "key")
    datas[0]["watchdog"] = WatchdogSettings("wd-a", rig.device, TIMEOUT).to_dict()
    links = [
        LivenessLink.spawn(data, tmp_path / f"lease-{i}.json", keepalive=TIMING.keepalive)
        for i, data in enumerate(datas)
    ]
    for link in links:
        link.on_lost = lambda: None  # a test closes some of them on purpose
    try:
        yield links
    finally:
        for link in links:
            if not link._gone:
                with _continued(link.pid):
                    link.close()


class _continued:
    """SIGCONT on the way out, whatever the test did to the process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGCONT)


def text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def wait_for(check: object, what: str, seconds: float, log: Path) -> float:
    """Seconds until `check()` holds."""
    began = time.monotonic()
    while not check():  # type: ignore[operator]
        assert time.monotonic() - began < seconds, f"{what}; log:\n{text(log)}"
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def serving(link: LivenessLink, log: Path) -> None:
    link.connect()
    await wait_for(lambda: link.read().serving(time.monotonic()), "a serves", 5.0, log)


async def test_armed_while_serving_petted_and_disarmed_by_an_orderly_stop(
    cluster: list[LivenessLink],
    rig: Rig,  # noqa: F811
    heartbeat_log: Path,  # noqa: F811
) -> None:
    a = cluster[0]
    await serving(a, heartbeat_log)
    await wait_for(lambda: "settimeout 1" in rig.log(), "armed", 3.0, rig.events)
    await asyncio.sleep(4 * TIMEOUT)  # four timeouts: alive only if it is petted
    assert rig.victim_alive(), rig.log()
    assert rig.log().count("keepalive") >= 10, rig.log()
    await a.stop(disarm=True)  # the agent's orderly stop, every resource stopped
    # FUSE sends the release after close() returned (a kernel driver handles it in
    # close itself): the file's log says so a moment later.
    await wait_for(lambda: "release stopped" in rig.log(), "disarmed", 2.0, rig.events)
    await asyncio.sleep(2 * TIMEOUT)
    assert rig.victim_alive() and "fired" not in rig.log(), rig.log()
    assert f"watchdog wd-a ({rig.device}) disarmed" in text(heartbeat_log)


async def test_a_lost_lease_stops_petting_and_the_watchdog_fires(
    cluster: list[LivenessLink],
    rig: Rig,  # noqa: F811
    heartbeat_log: Path,  # noqa: F811
) -> None:
    a, b, c = cluster
    await serving(a, heartbeat_log)
    await wait_for(lambda: "keepalive" in rig.log(), "petted", 3.0, rig.events)
    b.close()
    c.close()  # a majority gone: a's lease ends a deadtime/RHO after their last ack
    lost = await wait_for(
        lambda: not a.read().serving(time.monotonic()), "a's lease ends", 3.0, heartbeat_log
    )
    fired = await wait_for(lambda: not rig.victim_alive(), "fired", 5.0, rig.events)
    # At most one pet interval to notice, then the timeout from the last pet.
    assert fired <= TIMEOUT + TIMEOUT / 4 + 0.3, (lost, fired, rig.log())
    assert "fired killed" in rig.log()
    assert "the serving lease was lost: petting stopped" in text(heartbeat_log)
    # The lease back would not help; and an orderly stop now leaves it armed.
    await a.stop(disarm=True)
    assert "b'V'" not in rig.log(), rig.log()  # no magic close was written


async def test_a_frozen_liveness_process_stops_petting_and_the_watchdog_fires(
    cluster: list[LivenessLink],
    rig: Rig,  # noqa: F811
    heartbeat_log: Path,  # noqa: F811
) -> None:
    a = cluster[0]
    await serving(a, heartbeat_log)
    await wait_for(lambda: "keepalive" in rig.log(), "petted", 3.0, rig.events)
    with _continued(a.pid):
        os.kill(a.pid, signal.SIGSTOP)
        fired = await wait_for(lambda: not rig.victim_alive(), "fired", 5.0, rig.events)
    assert fired <= TIMEOUT + 0.3, rig.log()
    assert "fired killed" in rig.log()


async def test_a_watchdog_that_cannot_be_armed_keeps_the_node_from_serving(
    tmp_path: Path,
    heartbeat_log: Path,  # noqa: F811
) -> None:
    # Without an armed watchdog the leader's wait would prove nothing: a node configured
    # to fence itself does not serve until it has armed one.
    datas = configs(tmp_path / "key")
    missing = str(tmp_path / "no-such-watchdog")
    datas[0]["watchdog"] = WatchdogSettings("wd-a", missing, TIMEOUT).to_dict()
    links = [
        LivenessLink.spawn(data, tmp_path / f"lease-{i}.json", keepalive=TIMING.keepalive)
        for i, data in enumerate(datas)
    ]
    try:
        await serving(links[1], heartbeat_log)  # b and c form a majority with a
        await asyncio.sleep(1.0)
        assert not links[0].read().serving(time.monotonic())
        assert f"watchdog {missing} cannot be opened" in text(heartbeat_log)
        assert "check spec.device" in text(heartbeat_log)
    finally:
        for link in links:
            link.close()
