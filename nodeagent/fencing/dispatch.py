"""`run_fence_action`: one action of one fence device on one node, verified and bounded.

Every device type is a driver that reads and sets power (`base.PowerDriver`); here the
actions are built from those two operations the same way for all of them, so that
"verified" means the same thing whatever the hardware: after an off (or the off half of
a reboot), the target was read back as powered off. A Redfish BMC or a slow fence agent
may apply a change seconds later, so the read is polled until the device's timeout.
Nothing here raises for device trouble: failures are outcomes, with what failed, where
and what to do. The device's `delay` is the caller's (the leader waits it before it
asks), so it is not waited here.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback

from controller.api.fencing import FenceAction, FenceDevice, FenceOutcome, PowerState
from nodeagent.fencing import credentials
from nodeagent.fencing.base import FenceError, Power, PowerDriver, where
from nodeagent.fencing.exec import ExecDriver
from nodeagent.fencing.fence_agent import FenceAgentDriver
from nodeagent.fencing.ipmi import IpmiDriver
from nodeagent.fencing.redfish import RedfishDriver

log = logging.getLogger(__name__)

# The first reads come quickly (a BMC that powers off at once is read back off within
# tens of milliseconds: the failover waits for that read), later ones every half second
# (a Redfish BMC may apply the change seconds late; no need to hammer it).
POLL_FIRST = 0.05
POLL_INTERVAL = 0.5
POLL_FAST_FOR = 1.0
CLOSE_TIMEOUT = 1.0


def _credentials(device: FenceDevice) -> credentials.Credentials | None:
    path = device.spec.credentials_file
    if path is None:
        return None
    try:
        return credentials.load(path)
    except credentials.CredentialsError as exc:
        raise FenceError(f"{where(device)}: {exc}") from None


def _required_credentials(device: FenceDevice) -> credentials.Credentials:
    creds = _credentials(device)
    if creds is None:
        raise FenceError(
            f"{where(device)}: spec.credentialsFile is required for agent "
            f"{device.spec.agent} (a root-only file with the password)"
        )
    return creds


def make_driver(device: FenceDevice, target: str) -> PowerDriver:
    """The registry: a driver for the device's agent type. Raises FenceError."""
    agent = device.spec.agent
    if agent == "ipmi":
        return IpmiDriver(device, target, _required_credentials(device))
    if agent == "redfish":
        return RedfishDriver(device, target, _required_credentials(device))
    if agent == "fence-agent":
        return FenceAgentDriver(device, target, _credentials(device))
    if agent == "exec":
        return ExecDriver(device, target)
    raise FenceError(f"{where(device)}: agent {agent} has no remote power control")


class _Progress:
    """What the action saw so far, for an outcome cut short by the timeout."""

    def __init__(self) -> None:
        self.step = "starting"
        self.power: PowerState = "unknown"
        self.verified = False


async def _wait_for(driver: PowerDriver, want: Power, progress: _Progress) -> None:
    """Poll until the target reads `want`; the device timeout bounds it. A read that
    fails is tried again: a BMC busy with the change it was just asked for may miss an
    answer, and the action already went through (its failure would have raised)."""
    progress.step = f"waiting for the target to read as powered {want}"
    began = time.monotonic()
    while True:
        try:
            progress.power = await driver.power()
        except FenceError as exc:
            progress.step = f"waiting for the target to read as powered {want} ({exc})"
            progress.power = "unknown"
        if progress.power == want:
            return
        waited = time.monotonic() - began
        await asyncio.sleep(POLL_FIRST if waited < POLL_FAST_FOR else POLL_INTERVAL)


async def _act(driver: PowerDriver, action: FenceAction, progress: _Progress) -> str:
    if action == "status":
        progress.step = "reading the power state"
        progress.power = await driver.power()
        return f"powered {progress.power}"
    if action in ("off", "reboot"):
        progress.step = "powering off"
        await driver.set_power("off")
        await _wait_for(driver, "off", progress)
        progress.verified = True
        if action == "off":
            return "powered off, verified off"
    progress.step = "powering on"
    await driver.set_power("on")
    await _wait_for(driver, "on", progress)
    return "powered off (verified) and on again" if action == "reboot" else "powered on"


async def _close(driver: PowerDriver) -> None:
    """Close, bounded: a logout must not stretch an action past its timeout by much, and
    its TimeoutError must not pass for the device's."""
    try:
        await asyncio.wait_for(driver.close(), CLOSE_TIMEOUT)
    except (TimeoutError, FenceError):
        log.debug("fence driver %s: close did not finish", type(driver).__name__)


def _watchdog_outcome(device: FenceDevice, target: str, action: FenceAction) -> FenceOutcome:
    return FenceOutcome(
        device=device.metadata.name,
        target=target,
        action=action,
        ok=False,
        verified=False,
        power="unknown",
        message=(
            f"{where(device)}: a watchdog fences its own node, it cannot act on "
            f"{target} from here; wait the watchdog timeout after {target} was lost, "
            "after which it has certainly reset itself"
        ),
        seconds=0.0,
    )


async def run_fence_action(device: FenceDevice, target: str, action: FenceAction) -> FenceOutcome:
    """Do `action` on `target` through `device`; never raises for device trouble."""
    started = time.monotonic()
    name = device.metadata.name
    if device.spec.agent == "watchdog":
        return _watchdog_outcome(device, target, action)
    progress = _Progress()

    def outcome(ok: bool, message: str) -> FenceOutcome:
        return FenceOutcome(
            device=name,
            target=target,
            action=action,
            ok=ok,
            verified=progress.verified,
            power=progress.power,
            message=message,
            seconds=round(time.monotonic() - started, 3),
        )

    if target not in device.spec.targets:
        return outcome(
            False,
            f"{where(device)} does not fence node {target} (spec.targets: "
            f"{', '.join(device.spec.targets)}); add it to targets or use another device",
        )
    timeout = device.spec.timeout.total_seconds()
    driver: PowerDriver | None = None
    try:
        async with asyncio.timeout(timeout):
            driver = make_driver(device, target)
            try:
                done = await _act(driver, action, progress)
            finally:
                await _close(driver)
    except TimeoutError:
        result = outcome(
            False,
            f"{where(device)}: {action} of node {target} timed out after {timeout:g} s "
            f"while {progress.step} (last power read: {progress.power}); check that the "
            "device answers from this node, or raise spec.timeout",
        )
    except FenceError as exc:
        result = outcome(False, str(exc))
    except Exception as exc:  # a library's bug must not end the caller's loop
        # The frames, not the exception's text: a library might quote what it was given.
        log.error(
            "fence device %s: unexpected %s\n%s",
            name, type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__)),
        )  # fmt: skip
        result = outcome(
            False,
            f"{where(device)}: {action} of node {target} failed while {progress.step}: "
            f"unexpected {type(exc).__name__}; see the agent's log",
        )
    else:
        result = outcome(True, f"{where(device)}: node {target} {done}")
    log.info(
        "fence %s %s via %s: ok=%s verified=%s power=%s (%.2f s): %s",
        action, target, name, result.ok, result.verified, result.power, result.seconds,
        result.message,
    )  # fmt: skip
    return result
