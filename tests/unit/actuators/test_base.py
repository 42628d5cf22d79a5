"""The Actuator template (idempotency, verification, timeouts) and the registry."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from nodeagent.actuators import (
    Actuator,
    ActuatorContext,
    ActuatorError,
    ActuatorRegistry,
    ConfigError,
    Observation,
    State,
    Timeouts,
    default_registry,
)


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


def ctx(**timeouts: float) -> ActuatorContext:
    return ActuatorContext(resource="grp/sw", timeouts=Timeouts(**timeouts))


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


def test_timeouts_from_mapping() -> None:
    assert Timeouts.from_mapping({"start": "90s", "monitor": "500ms"}) == Timeouts(90, 20, 0.5)
    with pytest.raises(ConfigError, match=r"^timeouts: unknown key\(s\) restart"):
        Timeouts.from_mapping({"restart": "1s"})
    with pytest.raises(ConfigError, match=r"timeouts\.stop: must be greater than zero"):
        Timeouts.from_mapping({"stop": 0})


def test_registry_resolves_variants_and_plugs_new_kinds() -> None:
    assert default_registry.resolve("service", {"systemd": "x"}) == "service.systemd"
    assert default_registry.resolve("service", {"exec": {}, "timeouts": {}}) == "service.exec"
    assert default_registry.resolve("ip", {"address": "10.0.0.1/24"}) == "ip"
    with pytest.raises(
        ConfigError, match="exactly one of exec, lsb, ocf, systemd; got lsb, systemd"
    ):
        default_registry.resolve("service", {"systemd": "a", "lsb": "b"})
    with pytest.raises(ConfigError, match="no actuator on this node"):
        default_registry.resolve("volume", {})

    registry = ActuatorRegistry()

    @registry.register("volume")
    def make(spec: Mapping[str, Any], c: ActuatorContext) -> Actuator:
        return Switch(c)

    assert isinstance(registry.create("volume", {}, ctx()), Switch)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("volume")(make)
