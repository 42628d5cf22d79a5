"""What every fence device driver provides, and the errors they raise.

A driver reads and sets the power of one target through one device; the dispatcher
(`dispatch.py`) turns those two operations into the actions off, on, reboot and status
with verification, bounds them by the device's timeout and makes an outcome of them.
"""

from __future__ import annotations

from typing import Literal, Protocol

from controller.api.fencing import FenceDevice, PowerState

Power = Literal["on", "off"]


class FenceError(Exception):
    """Device trouble: the message says what failed, where, and what to do. It never
    carries a credential."""


class PowerDriver(Protocol):
    """One target through one device. Methods may raise FenceError."""

    async def power(self) -> PowerState: ...

    async def set_power(self, state: Power) -> None: ...

    async def close(self) -> None: ...


def where(device: FenceDevice) -> str:
    """How a message names the device: its name, kind and address."""
    spec = device.spec
    at = ""
    if spec.address:
        at = f" at {spec.address}" + (f":{spec.port}" if spec.port else "")
    return f"fence device {device.metadata.name} ({spec.agent}{at})"


def username(device: FenceDevice, from_file: str | None) -> str:
    """The login: spec.username, else the credentials file's `username=` line."""
    name = device.spec.username or from_file
    if not name:
        raise FenceError(
            f"{where(device)}: no username: set spec.username, or a `username=` line in "
            f"{device.spec.credentials_file}"
        )
    return name
