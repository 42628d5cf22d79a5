"""`service: {systemd: postgresql.service}`: a unit driven through `systemctl`.

Observation reads `systemctl show` properties rather than `is-active`, because the
extra properties (LoadState, SubState, Result, ExecMainStatus) turn a bare "failed"
into a sentence that says why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from controller.api.group import Resource
from nodeagent.actuators.base import Actuator, ActuatorContext, register
from nodeagent.actuators.commands import CommandResult, run_command
from nodeagent.observation import Observation

SHOW_PROPERTIES = ("LoadState", "ActiveState", "SubState", "Result", "ExecMainStatus")
_UNIT_SUFFIXES = (".service", ".socket", ".target", ".mount", ".timer", ".path", ".scope")


def unit_name(systemd: str) -> str:
    """``service.systemd`` (the API checked it) as systemctl names it: `postgresql` is
    `postgresql.service`."""
    return systemd if systemd.endswith(_UNIT_SUFFIXES) else systemd + ".service"


def parse_show(output: str) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return props


def systemd_observation(props: Mapping[str, str]) -> Observation:
    """Map `systemctl show` properties to an observation."""
    load = props.get("LoadState", "")
    active = props.get("ActiveState", "")
    sub = props.get("SubState", "")
    summary = f"ActiveState={active} SubState={sub}"
    if load == "not-found":
        # No such unit here, so it is not running here; a start says why it cannot.
        return Observation.stopped("unit LoadState=not-found: not installed on this node")
    if load in ("bad-setting", "error", "masked"):
        return Observation.failed(f"unit LoadState={load}; install or fix the unit file")
    if active in ("active", "reloading"):
        return Observation.running(summary)
    if active == "inactive":
        return Observation.stopped(summary)
    if active == "failed":
        why = props.get("Result", "")
        code = props.get("ExecMainStatus", "")
        return Observation.failed(f"{summary} Result={why} ExecMainStatus={code}")
    # activating / deactivating / maintenance: in transition, not yet decidable.
    return Observation.unknown(summary or "systemctl show returned no ActiveState")


class SystemdActuator(Actuator):
    def __init__(self, unit: str, ctx: ActuatorContext) -> None:
        super().__init__(ctx)
        self.unit = unit

    @property
    def where(self) -> str:
        return f"systemd unit {self.unit}"

    async def _systemctl(self, *args: str) -> CommandResult:
        # PATH is read per call so a test can put a fake systemctl in front.
        try:
            return await run_command(
                ["systemctl", "--no-ask-password", *args], env=dict(os.environ)
            )
        except FileNotFoundError:
            raise self.error(
                "systemctl not found", "this node has no systemd; use an lsb or exec service"
            ) from None

    async def _observe(self) -> Observation:
        result = await self._systemctl("show", "-p", ",".join(SHOW_PROPERTIES), self.unit)
        if result.returncode != 0:
            return Observation.unknown(
                f"systemctl show exited {result.returncode}: {result.tail()}"
            )
        return systemd_observation(parse_show(result.output))

    async def _action(self, verb: str) -> None:
        result = await self._systemctl(verb, self.unit)
        if result.returncode != 0:
            raise self.error(
                f"systemctl {verb} exited {result.returncode}: {result.tail()}",
                f"see 'journalctl -u {self.unit}' on this node",
            )

    async def _start(self) -> None:
        await self._action("start")

    async def _stop(self) -> None:
        await self._action("stop")
        # A unit that crashed stays "failed" after stop; clear it so stopped reads as stopped.
        await self._systemctl("reset-failed", self.unit)


@register("service.systemd")
def make_systemd(resource: Resource, ctx: ActuatorContext) -> Actuator:
    assert resource.service is not None and resource.service.systemd is not None
    return SystemdActuator(unit_name(resource.service.systemd), ctx)
