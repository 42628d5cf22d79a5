"""The ``FenceDevice`` kind: how to power off a lost node (stonith device, ``<fencedevice>``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from controller.api.fields import AbsPath, Host, Name, Port
from controller.api.meta import ApiModel, Object, Status, Timestamp
from controller.api.units import Duration

FenceAgentName = Annotated[str, StringConstraints(pattern=r"^fence_[a-z0-9_]+$")]


class FenceDeviceSpec(ApiModel):
    agent: Literal["ipmi", "redfish", "fence-agent", "exec", "watchdog"] = Field(
        description=(
            "How to fence: ipmi (IPMI over LAN), redfish (BMC REST API), fence-agent "
            "(a ClusterLabs fence_* script), exec (your own command), watchdog (self-fencing)."
        )
    )
    targets: list[Name] = Field(
        min_length=1, description="Nodes this device can fence (pcmk_host_list)."
    )
    address: Host | None = Field(
        default=None, description="BMC or device address (required for ipmi and redfish)."
    )
    port: Port | None = Field(
        default=None, description="BMC port when not the protocol's default (623, 443)."
    )
    username: str | None = Field(
        default=None, description="Login; may instead come from credentialsFile."
    )
    credentials_file: AbsPath | None = Field(
        default=None,
        description=(
            "File holding the password (or `username=...` and `password=...` lines), "
            "readable by root only; secrets never go into the store."
        ),
    )
    fence_agent: FenceAgentName | None = Field(
        default=None, description="The fence_* agent to run when agent is fence-agent."
    )
    command: list[str] | None = Field(
        default=None,
        description="argv for agent exec; run with the target node name in VIGIL_FENCE_TARGET.",
    )
    device: AbsPath | None = Field(
        default=None, description="Watchdog device when agent is watchdog (default /dev/watchdog)."
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="Extra key=value options handed to the agent (e.g. lanplus: '1', cipher: '3').",
    )
    host_map: dict[Name, str] = Field(
        default_factory=dict,
        description="Node name -> the device's name for it (plug, port or system id).",
    )
    level: int = Field(
        default=1, ge=1, le=9, description="Fencing topology level: lower levels are tried first."
    )
    delay: Duration = Field(
        default=timedelta(0),
        description=(
            "Wait before fencing through this device, unless it reads the target already "
            "off: set it on the device of the node that should win a fence race (two-node "
            "mode), so that its peer shoots second."
        ),
    )
    timeout: Duration = Field(
        default=timedelta(seconds=60), description="How long one fencing action may take."
    )
    verify_tls: bool = Field(default=True, description="Check the BMC's TLS certificate (redfish).")


class FenceDeviceStatus(Status):
    last_check_time: Timestamp | None = Field(
        default=None, description="When the device last answered a status request."
    )
    last_fence_time: Timestamp | None = Field(
        default=None, description="When the device last fenced a node."
    )


class FenceDevice(Object):
    KIND: ClassVar[str] = "FenceDevice"
    PLURAL: ClassVar[str] = "fencedevices"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("fd",)
    ALIASES: ClassVar[tuple[str, ...]] = ("fence", "fences", "stonith")

    kind: Literal["FenceDevice"] = Field(description="FenceDevice: a way to power off nodes.")
    spec: FenceDeviceSpec = Field(description="The device and the nodes it fences.")
    status: FenceDeviceStatus = Field(
        default_factory=FenceDeviceStatus, description="Observed state, written by Vigil."
    )


# The Linux watchdog API takes whole seconds (WDIOC_SETTIMEOUT's int), and the kernel
# refuses more than 65535 s even for softdog (soft_margin); hardware drivers allow less,
# and `Watchdog.arm` says so when the driver refuses the value.
WATCHDOG_MIN_TIMEOUT = 1
WATCHDOG_MAX_TIMEOUT = 65535
DEFAULT_WATCHDOG_DEVICE = "/dev/watchdog"


def self_fence_device(devices: Iterable[FenceDevice], node: str) -> FenceDevice | None:
    """The watchdog device `node` arms and the leader waits for: of the watchdog devices
    targeting it (validation allows one target each), the lowest level, then by name. Both
    sides choose with this function, so they never disagree on the timeout."""
    mine = [d for d in devices if d.spec.agent == "watchdog" and node in d.spec.targets]
    return min(mine, key=lambda d: (d.spec.level, d.name), default=None)


def watchdog_timeout(device: FenceDevice) -> int:
    """The watchdog timeout a watchdog device's `spec.timeout` asks for, in whole seconds
    (validation refuses fractions)."""
    return int(device.spec.timeout.total_seconds())


# What one device did, as the node that ran it reports it: the leader's fencing turns
# these into `fencing/<node>` records and events. Plain values, no secrets in `message`.
FenceAction = Literal["off", "on", "reboot", "status"]
PowerState = Literal["on", "off", "unknown"]


@dataclass(frozen=True)
class FenceOutcome:
    """The result of one action of one device on one target.

    ``ok``: the device did what was asked. ``verified``: after an off or a reboot, the
    target was seen powered off (a status read after the action, or a self-fencing
    timeout certainly elapsed); fencing counts only when it is verified. ``power``: the
    last power state read. ``message``: what happened, for events and ``ha status``; it
    never carries a credential.
    """

    device: str
    target: str
    action: FenceAction
    ok: bool
    verified: bool
    power: PowerState
    message: str
    seconds: float
