"""`service: {ocf: {agent: heartbeat:Dummy, params: {...}}}`: a real OCF resource agent.

Contract (OCF resource-agent API 1.1): the agent reads its parameters from
OCF_RESKEY_<name>, its identity from OCF_RESOURCE_INSTANCE / _TYPE / _PROVIDER, and
answers start / stop / monitor / validate-all / meta-data with the exit codes in
OCF_CODES. Actions are idempotent by contract, which matches the reconciler.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from controller.api.group import OcfService, Resource
from nodeagent.actuators.base import (
    Actuator,
    ActuatorContext,
    instance_name,
    register,
)
from nodeagent.actuators.commands import CommandResult, run_command
from nodeagent.observation import Observation

OCF_ROOT = Path("/usr/lib/ocf")

OCF_SUCCESS = 0
OCF_NOT_RUNNING = 7

# code -> (name, what the operator should do about it)
OCF_CODES: Mapping[int, tuple[str, str]] = {
    0: ("OCF_SUCCESS", "nothing"),
    1: ("OCF_ERR_GENERIC", "read the agent output and the service's log"),
    2: ("OCF_ERR_ARGS", "fix the agent params in the resource spec"),
    3: ("OCF_ERR_UNIMPLEMENTED", "the agent does not implement this action"),
    4: ("OCF_ERR_PERM", "run the node agent as root or fix file permissions"),
    5: ("OCF_ERR_INSTALLED", "install the software the agent manages on this node"),
    6: ("OCF_ERR_CONFIGURED", "fix the agent params; the configuration is invalid"),
    7: ("OCF_NOT_RUNNING", "nothing; the resource is cleanly stopped"),
    8: ("OCF_RUNNING_PROMOTED", "nothing"),
    9: ("OCF_FAILED_PROMOTED", "stop and restart the resource"),
    190: ("OCF_DEGRADED", "check the service; it runs with reduced function"),
    191: ("OCF_DEGRADED_PROMOTED", "check the service; it runs with reduced function"),
}


def ocf_code_name(code: int) -> str:
    return OCF_CODES.get(code, (f"non-OCF exit code {code}", ""))[0]


def ocf_monitor_observation(code: int, output: str) -> Observation:
    """Map a `monitor` exit code to an observation."""
    said = f": {output}" if output else ""
    name = ocf_code_name(code)
    if code in (0, 8):
        return Observation.running(f"monitor {name}{said}")
    if code in (190, 191):
        return Observation.running(f"monitor {name} (degraded){said}")
    if code == OCF_NOT_RUNNING:
        return Observation.stopped(f"monitor {name}{said}")
    if code in (1, 2, 4, 5, 6, 9):
        return Observation.failed(f"monitor {name} ({OCF_CODES[code][1]}){said}")
    return Observation.unknown(f"monitor {name}{said}")


def check_params_against_metadata(metadata_xml: str, params: Mapping[str, str]) -> list[str]:
    """Problems with `params` per the agent's meta-data: unknown names, missing required ones."""
    try:
        root = ET.fromstring(metadata_xml)
    except ET.ParseError as exc:
        return [f"agent meta-data is not valid XML ({exc})"]
    declared: dict[str, bool] = {}
    for param in root.iterfind("./parameters/parameter"):
        name = param.get("name")
        if name:
            declared[name] = param.get("required", "0") in ("1", "true", "yes")
    problems = [
        f"unknown parameter {name!r} (the agent knows: {', '.join(sorted(declared))})"
        for name in sorted(set(params) - set(declared))
    ]
    problems += [
        f"required parameter {name!r} is missing"
        for name, required in sorted(declared.items())
        if required and name not in params
    ]
    return problems


class OcfActuator(Actuator):
    def __init__(self, spec: OcfService, ctx: ActuatorContext, ocf_root: Path = OCF_ROOT) -> None:
        super().__init__(ctx)
        self.spec = spec
        self.ocf_root = ocf_root
        self.script = ocf_root / "resource.d" / spec.provider / spec.type

    @property
    def where(self) -> str:
        return f"ocf:{self.spec.agent} at {self.script}"

    def environment(self, action_timeout: float) -> dict[str, str]:
        cfg = self.spec
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C",
            "OCF_ROOT": str(self.ocf_root),
            "OCF_RA_VERSION_MAJOR": "1",
            "OCF_RA_VERSION_MINOR": "1",
            "OCF_RESOURCE_INSTANCE": instance_name(self.ctx.resource),
            "OCF_RESOURCE_TYPE": cfg.type,
            "OCF_RESOURCE_PROVIDER": cfg.provider,
            # Agents size their internal waits from the operation timeout, in ms.
            "OCF_RESKEY_CRM_meta_timeout": str(int(action_timeout * 1000)),
        }
        env.update({f"OCF_RESKEY_{name}": value for name, value in cfg.params.items()})
        return env

    async def run_action(self, action: str) -> CommandResult:
        if not os.access(self.script, os.X_OK):
            raise self.error(
                f"{action}: agent missing or not executable",
                "install the resource-agents package (or the provider's agents) on this node",
            )
        limits = self.ctx.timeouts
        limit = {"start": limits.start, "stop": limits.stop}.get(action, limits.monitor)
        return await run_command(
            [str(self.script), action],
            env=self.environment(limit.total_seconds()),
            netns=self.ctx.netns,
        )

    async def _observe(self) -> Observation:
        if not self.script.exists():
            return Observation.stopped(f"OCF agent {self.script} is not installed here")
        result = await self.run_action("monitor")
        return ocf_monitor_observation(result.returncode, result.tail(300))

    async def _checked(self, action: str) -> None:
        result = await self.run_action(action)
        if result.returncode != OCF_SUCCESS:
            name = ocf_code_name(result.returncode)
            fix = OCF_CODES.get(result.returncode, ("", "read the agent output"))[1]
            raise self.error(f"{action} exited {result.returncode} ({name}): {result.tail()}", fix)

    async def _start(self) -> None:
        await self._checked("start")

    async def _stop(self) -> None:
        await self._checked("stop")

    async def meta_data(self) -> str:
        result = await self.run_action("meta-data")
        if result.returncode != OCF_SUCCESS:
            raise self.error(
                f"meta-data exited {result.returncode}: {result.tail()}", "check the agent"
            )
        return result.output

    async def validate(self) -> None:
        """Check params against the agent's meta-data, then run `validate-all`."""
        problems = check_params_against_metadata(await self.meta_data(), self.spec.params)
        if problems:
            raise self.error("; ".join(problems), "fix service.ocf.params in the resource spec")
        await self._checked("validate-all")


@register("service.ocf")
def make_ocf(resource: Resource, ctx: ActuatorContext) -> Actuator:
    assert resource.service is not None and resource.service.ocf is not None
    return OcfActuator(resource.service.ocf, ctx)
