"""`service: {lsb: apache2}`: an /etc/init.d script driven with start / stop / status.

Exit codes follow the LSB Core spec ("Init Script Actions"): `status` answers 0
running, 1 dead with a pid file, 2 dead with a lock file, 3 not running, 4 unknown;
the other actions answer 0 on success (also when already in the goal state) and
1-7 with the meanings in LSB_ACTION_ERRORS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from controller.api.group import Resource
from nodeagent.actuators.base import Actuator, ActuatorContext, register
from nodeagent.actuators.commands import CommandResult, run_command
from nodeagent.observation import Observation

INIT_DIR = Path("/etc/init.d")

LSB_ACTION_ERRORS: Mapping[int, tuple[str, str]] = {
    1: ("generic or unspecified error", "read the script output and its log"),
    2: ("invalid or excess argument(s)", "the script does not accept this action"),
    3: ("unimplemented feature", "the script does not implement this action"),
    4: ("user had insufficient privilege", "run the node agent as root"),
    5: ("program is not installed", "install the package that provides the program"),
    6: ("program is not configured", "fix the service's configuration files"),
    7: ("program is not running", "start it first or check its log"),
}


def lsb_status_observation(returncode: int, output: str) -> Observation:
    """Map an LSB `status` exit code to an observation."""
    said = f": {output}" if output else ""
    if returncode == 0:
        return Observation.running(f"status exit 0 (running){said}")
    if returncode == 3:
        return Observation.stopped(f"status exit 3 (not running){said}")
    if returncode == 1:
        return Observation.failed(f"status exit 1 (dead but pid file exists){said}")
    if returncode == 2:
        return Observation.failed(f"status exit 2 (dead but lock file exists){said}")
    if returncode == 4:
        return Observation.unknown(f"status exit 4 (status unknown){said}")
    return Observation.unknown(f"status exit {returncode} (not an LSB status code){said}")


def lsb_script_path(name: str) -> Path:
    """``service.lsb`` (the API checked it): a name in /etc/init.d, or an absolute path."""
    path = Path(name)
    return path if path.is_absolute() else INIT_DIR / name


class LsbActuator(Actuator):
    def __init__(self, script: Path, ctx: ActuatorContext) -> None:
        super().__init__(ctx)
        self.script = script

    @property
    def where(self) -> str:
        return f"init script {self.script}"

    async def _run(self, action: str) -> CommandResult:
        if not os.access(self.script, os.X_OK):
            raise self.error(
                f"{action}: script missing or not executable",
                "install the package that provides it, or chmod +x the script",
            )
        # LSB scripts must run with a minimal, predictable environment.
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
        return await run_command([str(self.script), action], env=env, netns=self.ctx.netns)

    async def _observe(self) -> Observation:
        if not self.script.exists():
            # Nothing can run from a script that is not there: on a node that does not host
            # the service (a witness, say) that is simply "stopped", not an error to retry.
            return Observation.stopped(f"init script {self.script} is not installed here")
        result = await self._run("status")
        return lsb_status_observation(result.returncode, result.tail(200))

    async def _action(self, action: str) -> None:
        result = await self._run(action)
        if result.returncode != 0:
            meaning, fix = LSB_ACTION_ERRORS.get(
                result.returncode, ("non-LSB exit code", "read the script output")
            )
            raise self.error(
                f"{action} exited {result.returncode} ({meaning}): {result.tail()}", fix
            )

    async def _start(self) -> None:
        await self._action("start")

    async def _stop(self) -> None:
        await self._action("stop")


@register("service.lsb")
def make_lsb(resource: Resource, ctx: ActuatorContext) -> Actuator:
    assert resource.service is not None and resource.service.lsb is not None
    return LsbActuator(lsb_script_path(resource.service.lsb), ctx)
