"""The volume actuator's decisions, against a stand-in for a replica's control socket:
which refusals it waits out, when it tells the replica its peer is lost, and what fails
at once."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.api.group import Resource, Timeouts
from nodeagent.actuators.base import ActuatorContext, ActuatorError
from nodeagent.actuators.volume import VolumeActuator, volume_actuator
from nodeagent.actuators.volume_paths import control_socket
from nodeagent.observation import State

Answer = Callable[[dict[str, Any]], dict[str, Any]]


class Replica:
    """Answers control requests as `answer` says; records them."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []

    async def serve(self, path: Path) -> asyncio.Server:
        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            request = json.loads(await reader.readline())
            self.requests.append(request)
            writer.write(json.dumps(self.answer(request)).encode() + b"\n")
            await writer.drain()
            writer.close()

        path.parent.mkdir(parents=True, exist_ok=True)
        return await asyncio.start_unix_server(client, path=str(path))


def status(role: str = "Secondary", disk: str = "UpToDate") -> dict[str, Any]:
    return {"role": role, "disk": disk, "connection": "Connected", "peer_id": "n2"}


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # Not tmp_path: a unix socket path is limited to 108 bytes.
    with tempfile.TemporaryDirectory(prefix="vol-") as short:
        yield Path(short)


def actuator(run_dir: Path, dead: set[str]) -> VolumeActuator:
    resource = Resource.model_validate({"volume": {"name": "pg"}})
    ctx = ActuatorContext(
        resource="g.volume-pg",
        run_dir=run_dir,
        timeouts=Timeouts.model_validate({"start": "2s", "stop": "2s", "monitor": "1s"}),
        peer_dead=lambda node: node in dead,
    )
    made = volume_actuator(resource, ctx)
    assert isinstance(made, VolumeActuator)
    return made


async def test_a_peer_still_counted_primary_is_waited_out_until_the_membership_says_dead(
    run_dir: Path,
) -> None:
    role = {"now": "Secondary"}
    dead: set[str] = set()

    def answer(req: dict[str, Any]) -> dict[str, Any]:
        if req["cmd"] == "promote":
            if req.get("peer_lost") or len(replica.requests) > 6:
                role["now"] = "Primary"
                return {"ok": True, "status": status("Primary")}
            if len(replica.requests) > 3:
                dead.add("n2")
            return {"ok": False, "error": "the connected peer is Primary; demote it first"}
        return {"ok": True, "status": status(role["now"])}

    replica = Replica(answer)
    server = await replica.serve(control_socket(run_dir, "pg"))
    async with server:
        vol = actuator(run_dir, dead)
        assert (await vol.observe()).state is State.STOPPED
        await vol.start()
        assert (await vol.observe()).state is State.RUNNING
    promotes = [r for r in replica.requests if r["cmd"] == "promote"]
    assert promotes[-1] == {"cmd": "promote", "peer_lost": True}
    assert all("peer_lost" not in r for r in promotes[:-1])


async def test_outdated_data_fails_the_start_at_once_and_says_why(run_dir: Path) -> None:
    def answer(req: dict[str, Any]) -> dict[str, Any]:
        if req["cmd"] == "promote":
            return {"ok": False, "error": "refusing to promote 'n1': replica 'n1' is Outdated"}
        return {"ok": True, "status": status(disk="Outdated")}

    replica = Replica(answer)
    server = await replica.serve(control_socket(run_dir, "pg"))
    async with server:
        with pytest.raises(ActuatorError, match="promote refused: refusing to promote 'n1'"):
            await actuator(run_dir, {"n2"}).start()
    assert sum(1 for r in replica.requests if r["cmd"] == "promote") == 1


async def test_a_primary_without_up_to_date_data_is_failed_and_no_replica_is_stopped(
    run_dir: Path,
) -> None:
    replica = Replica(lambda req: {"ok": True, "status": status("Primary", "Inconsistent")})
    server = await replica.serve(control_socket(run_dir, "pg"))
    async with server:
        seen = await actuator(run_dir, set()).observe()
        assert seen.state is State.FAILED and "Inconsistent" in seen.detail
    # No replica at all (the supervisor has not started it): nothing is Primary here.
    seen = await actuator(run_dir / "elsewhere", set()).observe()
    assert seen.state is State.STOPPED and "not running" in seen.detail


async def test_demote_is_asked_again_while_a_client_still_holds_the_device(
    run_dir: Path,
) -> None:
    def answer(req: dict[str, Any]) -> dict[str, Any]:
        demotes = sum(1 for r in replica.requests if r["cmd"] == "demote")
        if req["cmd"] == "demote":
            if demotes < 3:
                return {"ok": False, "error": "1 NBD client attached: detach it first"}
            return {"ok": True, "status": status()}
        return {"ok": True, "status": status("Primary" if demotes < 3 else "Secondary")}

    replica = Replica(answer)
    server = await replica.serve(control_socket(run_dir, "pg"))
    async with server:
        await actuator(run_dir, set()).stop()
    assert sum(1 for r in replica.requests if r["cmd"] == "demote") == 3
