"""The Actuator template (idempotency, verification, timeouts) and the registry."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from controller.api.group import Resource, Timeouts
from nodeagent.actuators import (
    Actuator,
    ActuatorContext,
    ActuatorError,
    ActuatorRegistry,
    NoActuatorError,
    Observation,
    State,
)
from nodeagent.actuators.base import actuator_kind


class Switch(Actuator):
    """In-memory resource: pure logic of the template, no I/O."""

    def __init__(self, ctx: ActuatorContext, *, sticky: bool = False, delay: float = 0.0):
        super().__init__(ctx)
        self.on = False
        self.calls: list[str] = []
        self.sticky = sticky  # start "succeeds" but nothing changes
        self.delay = delay

    @property
    def where(self) -> str:
        return "switch #1"

    async def _observe(self) -> Observation:
        await asyncio.sleep(self.delay)
        return Observation.running("on") if self.on else Observation.stopped("off")

    async def _start(self) -> None:
        self.calls.append("start")
        self.on = not self.sticky

    async def _stop(self) -> None:
        self.calls.append("stop")
        self.on = False


def ctx(**seconds: float) -> ActuatorContext:
    limits = {name: timedelta(seconds=value) for name, value in seconds.items()}
    return ActuatorContext(resource="grp/sw", timeouts=Timeouts(**limits))


async def test_start_and_stop_are_idempotent() -> None:
    sw = Switch(ctx())
    await sw.start()
    await sw.start()
    await sw.stop()
    await sw.stop()
    assert sw.calls == ["start", "stop"]


async def test_start_without_effect_is_an_error_naming_resource_and_place() -> None:
    sw = Switch(ctx(), sticky=True)
    with pytest.raises(ActuatorError) as info:
        await sw.start()
    message = str(info.value)
    assert "grp/sw" in message and "switch #1" in message and "stopped" in message


async def test_actions_and_observe_are_bounded() -> None:
    sw = Switch(ctx(start=0.05, monitor=0.05), delay=0.2)
    with pytest.raises(ActuatorError, match=r"start did not finish within 0.05s.*timeouts.start"):
        await sw.start()
    obs = await sw.observe()
    assert obs.state is State.UNKNOWN and "0.05s" in obs.detail


def resource(data: dict[str, object]) -> Resource:
    return Resource.model_validate(data)


def test_registry_finds_kinds_and_service_variants_and_plugs_new_kinds() -> None:
    assert actuator_kind(resource({"service": {"systemd": "x"}})) == "service.systemd"
    assert actuator_kind(resource({"service": {"exec": {"command": ["a"]}}})) == "service.exec"
    assert actuator_kind(resource({"ip": {"address": "10.0.0.1/24"}})) == "ip"
    volume = resource({"volume": {"name": "pgdata"}})
    registry = ActuatorRegistry()
    with pytest.raises(NoActuatorError, match="grp/sw: volume resources have no actuator on this"):
        registry.create(volume, ctx())

    @registry.register("volume")
    def make(r: Resource, c: ActuatorContext) -> Actuator:
        assert r.volume is not None and r.volume.name == "pgdata"
        return Switch(c)

    assert isinstance(registry.create(volume, ctx()), Switch)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("volume")(make)


async def test_tend_does_nothing_unless_an_actuator_has_work_while_running() -> None:
    sw = Switch(ctx())
    await asyncio.wait_for(sw.tend(), 1.0)
