"""IPMI 2.0 over LAN (lanplus) through pyghmi.

pyghmi rather than ipmitool: ipmitool takes the password on its command line (or needs
a file or the environment), pyghmi takes it in memory. It negotiates cipher suite 3
(the one `ipmitool -C 3` names), so a BMC without the cipher-suites command does not
cost ipmitool's 10 s probe. pyghmi blocks, so each call runs in a thread; an unreachable
BMC makes it give up after about 5 s even when our timeout ended earlier.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from controller.api.fencing import FenceDevice, PowerState
from nodeagent.fencing.base import FenceError, Power, username, where
from nodeagent.fencing.credentials import Credentials, redact

DEFAULT_PORT = 623
T = TypeVar("T")


class IpmiDriver:
    def __init__(self, device: FenceDevice, target: str, credentials: Credentials) -> None:
        if not device.spec.address:
            raise FenceError(f"{where(device)}: spec.address is required for agent ipmi")
        self._device = device
        self._target = target
        self._address = device.spec.address
        self._port = device.spec.port or DEFAULT_PORT
        self._username = username(device, credentials.username)
        self._password = credentials.password
        self._command: Any = None

    def _error(self, doing: str, exc: BaseException) -> FenceError:
        detail = redact(str(exc) or type(exc).__name__, self._password)
        hint = "check spec.address, spec.port, that the BMC answers IPMI over LAN"
        if "password" in detail.lower() or "unauthorized" in detail.lower():
            hint = (
                f"check the username ({self._username}) and the password in "
                f"{self._device.spec.credentials_file}"
            )
        return FenceError(
            f"{where(self._device)}: {doing} for node {self._target} failed: {detail}; {hint}"
        )

    def _session(self) -> Any:
        if self._command is None:
            # Imported here: pyghmi starts an I/O thread at import, which a node that
            # never fences over IPMI does not need.
            from pyghmi.ipmi import command

            self._command = command.Command(
                bmc=self._address,
                userid=self._username,
                password=self._password,
                port=self._port,
                keepalive=False,
            )
        return self._command

    def _get_power(self) -> PowerState:
        answer = self._session().get_power()
        state = answer.get("powerstate") if isinstance(answer, dict) else None
        return state if state in ("on", "off") else "unknown"

    def _set_power(self, state: Power) -> None:
        # wait=False: the dispatcher verifies by polling, bounded by the device timeout.
        self._session().set_power(state, wait=False)

    def _forget(self) -> None:
        """Drop this BMC's sessions from pyghmi's process-wide cache of sessions being
        set up. pyghmi files a session there under the str password and removes it under
        the bytes one, so it never leaves: the next Command with the same parameters is
        handed the old session (logged out, or whose login failed) and fails. Without
        this, a second action in the same process, or a retry, could never work."""
        try:
            from pyghmi.ipmi.private import session
        except ImportError:
            return
        for key in list(session.Session.initting_sessions):
            if key[0] == self._address and key[3] == self._port:
                session.Session.initting_sessions.pop(key, None)

    async def _call(self, doing: str, func: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(func)
        except asyncio.CancelledError:
            # The device timeout (or the caller) gave up while a thread still waits on
            # the BMC: that session must not be handed to the next attempt, which would
            # queue behind the stuck command. No logout: it would wait the same way.
            command, self._command = self._command, None
            if command is not None:
                _discard(command.ipmi_session)
            self._forget()
            raise
        except Exception as exc:  # pyghmi raises IpmiException, socket errors, ...
            command, self._command = self._command, None
            if command is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(command.ipmi_session.logout)
                _discard(command.ipmi_session)
            self._forget()
            raise self._error(doing, exc) from None

    async def power(self) -> PowerState:
        return await self._call("reading the power state", self._get_power)

    async def set_power(self, state: Power) -> None:
        await self._call(f"power {state}", lambda: self._set_power(state))

    async def close(self) -> None:
        command, self._command = self._command, None
        if command is not None:
            with contextlib.suppress(Exception):  # a broken session has nothing to close
                await asyncio.to_thread(command.ipmi_session.logout)
        self._forget()


def _discard(session: Any) -> None:
    """Make sure pyghmi never hands out this session again. A command that got no answer
    leaves it "logged in" in pyghmi's table of sessions per BMC, and a logout that gets no
    answer either raises before it marks the session out: every later Command for that
    BMC would then get this dead session and fail at once, even with the BMC back."""
    with contextlib.suppress(Exception):
        session.logged = 0
        session.logging = False
        session.broken = True
        table = type(session).bmc_handlers
        for handlers in list(table.values()):
            for key, value in list(handlers.items()):
                if value is session:
                    del handlers[key]
