"""Self-fencing (SBD's watchdog mode): the liveness process keeps this node's watchdog
armed and pets it only while the node may serve.

The node holds its watchdog open from the moment it first serves (holds its serving
lease and its control loop runs) and pets it every timeout/4 while that stays true. Once
the lease is lost or the control loop is stuck it stops petting for good, and never
disarms: the hardware resets the node within the watchdog timeout, whatever else is
stuck (a umount in D state, a frozen agent). If the liveness process itself dies or is
frozen, nobody pets either, and the driver resets the node the same way: the process that
pets is the one whose failure means "this node may run unsupervised". The leader, for its
part, counts a node that fences itself as fenced once the timeout has certainly elapsed
since it saw the node lost (controller/leader/fencing_plan.py, docs/safety.md).

Only an orderly agent stop disarms (the magic 'V'), after its resources are stopped and
only if petting never stopped: a node that stopped petting is committed to its reset.

`SelfFence` is the decision, driven by the liveness process's loop with what it knows
(serving, control loop alive); the device is handed in so that tests drive it with a fake.
Standard library only: this runs in the liveness process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from nodeagent.fencing.watchdog import DEFAULT_DEVICE, Watchdog, WatchdogError

log = logging.getLogger(__name__)

# Pets per watchdog timeout: three pets may be missed (a loop stall, a slow ioctl) before
# the node resets; the leader's wait adds one interval for the last pet's lateness.
PETS_PER_TIMEOUT = 4

SelfFenceState = Literal["idle", "armed", "stopped", "disarmed"]
# idle: not armed yet (never served under this configuration); armed: petting while
# serving; stopped: petting stopped for good (lease lost, control loop stuck), the node
# resets within the timeout; disarmed: an orderly stop closed it with the magic 'V'.


@dataclass(frozen=True)
class WatchdogSettings:
    """The watchdog this node arms: the FenceDevice (agent: watchdog) that targets it."""

    name: str  # the FenceDevice's name, for logs and the leader's record
    device: str = DEFAULT_DEVICE
    timeout: int = 10  # seconds, as spec.timeout asks

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "device": self.device, "timeout": self.timeout}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> WatchdogSettings | None:
        if not data:
            return None
        return cls(name=str(data["name"]), device=str(data["device"]), timeout=int(data["timeout"]))


class Device(Protocol):
    """What SelfFence needs of a watchdog (nodeagent.fencing.watchdog.Watchdog)."""

    @property
    def armed(self) -> bool: ...

    def arm(self) -> int: ...

    def pet(self) -> None: ...

    def disarm(self) -> None: ...


def nowayout(device: str, sysfs: Path = Path("/sys/class/watchdog")) -> bool:
    """Whether the driver of `device` (/dev/watchdogN; /dev/watchdog is watchdog0) refuses
    the magic close (CONFIG_WATCHDOG_NOWAYOUT, softdog's nowayout=1); False if unknown."""
    name = Path(device).name
    name = "watchdog0" if name == "watchdog" else name
    try:
        return (sysfs / name / "nowayout").read_text().strip() == "1"
    except OSError:
        return False


class SelfFence:
    """Arm, pet, stop petting, disarm: the self-fencing rule of one watchdog."""

    def __init__(self, settings: WatchdogSettings, device: Device | None = None) -> None:
        self.settings = settings
        self.device: Device = device or Watchdog(settings.device, settings.timeout)
        self.state: SelfFenceState = "idle"
        self.granted: int | None = None  # the timeout the driver granted
        self.error: str | None = None  # why it could not be armed, for the logs
        self.why_stopped = ""

    @property
    def interval(self) -> float:
        """Seconds between pets (and between checks): a quarter of the timeout, the shorter
        of the one asked for (the leader's wait counts with it) and the one granted."""
        timeout = min(self.granted or self.settings.timeout, self.settings.timeout)
        return max(timeout / PETS_PER_TIMEOUT, 0.05)

    def tick(self, serving: bool, control_alive: bool) -> None:
        """One check, every `interval`: pet if the node may serve, else stop for good."""
        if self.state in ("stopped", "disarmed"):
            return  # committed to the reset, or orderly closed: never petted again
        if not serving or not control_alive:
            if self.state == "armed":
                self.state = "stopped"
                self.why_stopped = (
                    "the serving lease was lost" if not serving else "the control loop is stuck"
                )
                log.critical(
                    "watchdog %s (%s): %s: petting stopped, the node resets within %d s",
                    self.settings.name,
                    self.settings.device,
                    self.why_stopped,
                    self.granted or self.settings.timeout,
                )
            return  # not armed yet: a node that never served has nothing to fence
        if self.state == "idle" and not self._arm():
            return
        try:
            self.device.pet()
        except OSError as exc:
            # Nothing better to do than what a dead petter does: the node resets. Said, so
            # that the reset is explained.
            self.state = "stopped"
            self.why_stopped = f"petting failed ({exc.strerror or exc})"
            log.critical(
                "watchdog %s (%s): %s: the node resets within %d s",
                self.settings.name,
                self.settings.device,
                self.why_stopped,
                self.granted or self.settings.timeout,
            )

    def _arm(self) -> bool:
        try:
            granted = self.device.arm()
        except WatchdogError as exc:
            if self.error != str(exc):
                # Said once, tried again at each tick: the driver may be loaded later.
                log.error(
                    "watchdog %s: %s (FenceDevice %s: spec.device, spec.timeout); this node "
                    "does not serve until it is armed",
                    self.settings.name,
                    exc,
                    self.settings.name,
                )
            self.error = str(exc)
            return False
        self.error = None
        self.granted = granted
        self.state = "armed"
        if granted > self.settings.timeout:
            # The leader waits for spec.timeout: a node that resets later than that could
            # still run its groups when they are recovered elsewhere. Kept armed (a late
            # reset is better than none), and said as loudly as we can.
            log.critical(
                "watchdog %s: %s granted a timeout of %d s for spec.timeout %d s: the "
                "leader would recover this node's groups before it has certainly reset. "
                "Set spec.timeout of FenceDevice %s to %d s",
                self.settings.name,
                self.settings.device,
                granted,
                self.settings.timeout,
                self.settings.name,
                granted,
            )
        else:
            log.info(
                "watchdog %s (%s) armed: timeout %d s, petted every %g s while serving",
                self.settings.name,
                self.settings.device,
                granted,
                self.interval,
            )
        if nowayout(self.settings.device):
            log.warning(
                "watchdog %s: its driver has nowayout set: even an orderly stop cannot "
                "disarm it, so this node resets unless its agent is back within %d s",
                self.settings.device,
                granted,
            )
        return True

    def disarm(self) -> bool:
        """An orderly stop, its resources stopped: close with the magic 'V'. Refused (and
        False) once petting stopped: that node must reset, the leader counts on it."""
        if self.state == "stopped":
            log.warning(
                "watchdog %s: not disarmed on stop: petting stopped (%s), the reset stands",
                self.settings.name,
                self.why_stopped,
            )
            return False
        if self.state == "armed":
            self.device.disarm()
            log.info("watchdog %s (%s) disarmed", self.settings.name, self.settings.device)
        self.state = "disarmed"
        return True
