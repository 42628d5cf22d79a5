"""The control socket's promote and demote requests: their waits are seconds >= 0, or the
request is refused naming the field and nothing is done."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from blockrepl.replication.control import DEMOTE_WAIT, PEER_ROLE_WAIT, ControlServer
from blockrepl.replication.node import ReplicaNode


class RecordingNode:
    """What the server asked of the replica (the replica itself is tested elsewhere)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def promote(self, **kwargs: Any) -> None:
        self.calls.append(("promote", kwargs))

    async def demote(self, **kwargs: Any) -> None:
        self.calls.append(("demote", kwargs))

    def status(self) -> dict[str, Any]:
        return {"role": "Secondary"}


def server() -> tuple[ControlServer, RecordingNode]:
    node = RecordingNode()
    return ControlServer(cast(ReplicaNode, node), "/nonexistent"), node


async def ask(control: ControlServer, request: str) -> dict[str, Any]:
    return await control.handle(request.encode())


async def test_waits_default_and_pass_through() -> None:
    control, node = server()
    assert (await ask(control, '{"cmd": "promote"}'))["ok"]
    assert (await ask(control, '{"cmd": "promote", "peer_lost": true, "peer_wait": 0}'))["ok"]
    assert (await ask(control, '{"cmd": "demote", "wait": 2.5}'))["ok"]
    assert (await ask(control, '{"cmd": "demote"}'))["ok"]
    assert node.calls == [
        ("promote", {"force": False, "peer_lost": False, "peer_wait": PEER_ROLE_WAIT}),
        ("promote", {"force": False, "peer_lost": True, "peer_wait": 0.0}),
        ("demote", {"wait": 2.5}),
        ("demote", {"wait": DEMOTE_WAIT}),
    ]


@pytest.mark.parametrize("bad", ["-1", "true", '"1"', "null", "NaN", "[1]"])
@pytest.mark.parametrize(("cmd", "field"), [("promote", "peer_wait"), ("demote", "wait")])
async def test_a_bad_wait_is_refused_and_nothing_done(bad: str, cmd: str, field: str) -> None:
    control, node = server()
    answer = await ask(control, json.dumps({"cmd": cmd})[:-1] + f', "{field}": {bad}}}')
    assert answer["ok"] is False
    assert f'{cmd} "{field}" must be seconds >= 0' in answer["error"]
    assert node.calls == []
