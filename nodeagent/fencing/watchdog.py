"""Self-fencing through the Linux watchdog ioctl interface (as SBD does).

A node arms its watchdog with a timeout and pets it while it may run resources; if it
stops petting (frozen, cut off, killed), the hardware resets it within the timeout.
Nobody else can power such a node off, so a watchdog device fences no other node: the
leader waits the timeout instead, after which the node has certainly reset itself.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import os

DEFAULT_DEVICE = "/dev/watchdog"


def _ioc(direction: int, kind: str, number: int, size: int) -> int:
    """_IOC from <asm-generic/ioctl.h> (pure)."""
    return (direction << 30) | (size << 16) | (ord(kind) << 8) | number


_READ, _READ_WRITE = 2, 3
_INT = 4
WDIOC_KEEPALIVE = _ioc(_READ, "W", 5, _INT)
WDIOC_SETTIMEOUT = _ioc(_READ_WRITE, "W", 6, _INT)
WDIOC_GETTIMEOUT = _ioc(_READ, "W", 7, _INT)
MAGIC_CLOSE = b"V"


class WatchdogError(Exception):
    """The watchdog cannot be armed; the message names the device and the fix."""


class Watchdog:
    """Arm a watchdog device with a timeout, pet it, disarm it on an orderly stop.

    Disarming writes the magic 'V' before closing: a driver with "magic close" stops
    the timer only then, so a crash (a close without 'V') still resets the node.
    """

    def __init__(self, device: str = DEFAULT_DEVICE, timeout: int = 10) -> None:
        if timeout < 1:
            raise WatchdogError(f"watchdog timeout must be at least 1 s, got {timeout}")
        self.device = device
        self.requested = timeout
        self.timeout: int | None = None  # what the driver granted
        self._fd: int | None = None

    @property
    def armed(self) -> bool:
        return self._fd is not None

    def arm(self) -> int:
        """Open the device (which starts the timer) and set the timeout; returns the
        timeout the driver granted, which may differ from the one asked for."""
        if self._fd is not None:
            return self.timeout or self.requested
        try:
            fd = os.open(self.device, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise WatchdogError(
                f"watchdog {self.device} cannot be opened ({exc.strerror}); load the "
                "driver (e.g. softdog) and check spec.device"
            ) from None
        self._fd = fd
        try:
            value = array.array("i", [self.requested])
            fcntl.ioctl(fd, WDIOC_SETTIMEOUT, value, True)
            self.timeout = value[0]
        except OSError as exc:
            self.disarm()
            raise WatchdogError(
                f"watchdog {self.device} refused timeout {self.requested} s "
                f"({exc.strerror}); choose a timeout the driver supports"
            ) from None
        return self.timeout

    def pet(self) -> None:
        if self._fd is None:
            raise WatchdogError(f"watchdog {self.device} is not armed")
        try:
            fcntl.ioctl(self._fd, WDIOC_KEEPALIVE, array.array("i", [0]), True)
        except OSError:
            # Drivers without the ioctl accept any write as a keepalive.
            os.write(self._fd, b"\0")

    def disarm(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.write(fd, MAGIC_CLOSE)
        finally:
            os.close(fd)

    async def run(self, interval: float | None = None) -> None:
        """Arm, then pet every `interval` (a third of the timeout by default) until
        cancelled; an orderly cancellation disarms."""
        granted = await asyncio.to_thread(self.arm)
        period = interval if interval is not None else max(granted / 3, 0.1)
        try:
            while True:
                self.pet()
                await asyncio.sleep(period)
        finally:
            self.disarm()
