"""`service: {ocf: {agent: heartbeat:Dummy, params: {...}}}`: a real OCF resource agent.

Contract (OCF resource-agent API 1.1): the agent reads its parameters from
OCF_RESKEY_<name>, its identity from OCF_RESOURCE_INSTANCE / _TYPE / _PROVIDER, and
answers start / stop / monitor / validate-all / meta-data with the exit codes in
OCF_CODES. Actions are idempotent by contract, which matches the reconciler.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeagent.actuators.base import (
    Actuator,
    ActuatorContext,
    ConfigError,
    Observation,
    instance_name,
    register,
)
from nodeagent.actuators.commands import CommandResult, run_command
from nodeagent.actuators.parsing import (
    reject_unknown,
    require_mapping,
    require_str,
    require_str_map,
)

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

_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_AGENT = re.compile(r"^(?:ocf:)?([A-Za-z0-9_.-]+):([A-Za-z0-9_.-]+)$")


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


def parse_agent(value: object, field_name: str = "service.ocf.agent") -> tuple[str, str]:
    text = require_str(value, field_name)
    match = _AGENT.match(text)
    if match is None:
        raise ConfigError(
            f"{field_name}: {text!r} is not provider:type; write e.g. 'heartbeat:IPaddr2'"
        )
    return match.group(1), match.group(2)


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


@dataclass(frozen=True)
class OcfConfig:
    provider: str
    type: str
    params: Mapping[str, str] = field(default_factory=dict)
    ocf_root: Path = OCF_ROOT

    @property
    def script(self) -> Path:
        return self.ocf_root / "resource.d" / self.provider / self.type

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], ocf_root: Path = OCF_ROOT) -> OcfConfig:
        ocf = require_mapping(spec.get("ocf"), "service.ocf")
        reject_unknown(ocf, {"agent", "params"}, "service.ocf")
        provider, type_ = parse_agent(ocf.get("agent"))
        params = require_str_map(ocf.get("params", {}), "service.ocf.params")
        for name in params:
            if not _PARAM_NAME.match(name):
                raise ConfigError(
                    f"service.ocf.params.{name}: parameter names must be shell identifiers "
                    "(letters, digits, underscore), because they become OCF_RESKEY_<name>"
                )
        return cls(provider=provider, type=type_, params=params, ocf_root=ocf_root)


class OcfActuator(Actuator):
    def __init__(self, config: OcfConfig, ctx: ActuatorContext) -> None:
        super().__init__(ctx)
        self.config = config

    @property
    def where(self) -> str:
        return f"ocf:{self.config.provider}:{self.config.type} at {self.config.script}"

    def environment(self, action_timeout: float) -> dict[str, str]:
        cfg = self.config
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "LANG": "C",
            "OCF_ROOT": str(cfg.ocf_root),
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
        if not os.access(self.config.script, os.X_OK):
            raise self.error(
                f"{action}: agent missing or not executable",
                "install the resource-agents package (or the provider's agents) on this node",
            )
        limits = self.ctx.timeouts
        limit = {"start": limits.start, "stop": limits.stop}.get(action, limits.monitor)
        return await run_command(
            [str(self.config.script), action],
            env=self.environment(limit),
            netns=self.ctx.netns,
        )

    async def _observe(self) -> Observation:
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
        problems = check_params_against_metadata(await self.meta_data(), self.config.params)
        if problems:
            raise self.error("; ".join(problems), "fix service.ocf.params in the resource spec")
        await self._checked("validate-all")


@register("service.ocf")
def make_ocf(spec: Mapping[str, Any], ctx: ActuatorContext) -> Actuator:
    return OcfActuator(OcfConfig.from_spec(spec), ctx)
