"""Redfish (a BMC's REST API) through the `sushy` client: ComputerSystem.Reset.

The system is `/redfish/v1/Systems/<id>` with <id> from `hostMap` (or the node's name);
a value that starts with `/redfish/` is taken as the whole path. Basic authentication
only: one fence does one or two requests and a poll, a session would only add one more.
`options.scheme: http` talks plain HTTP (an emulator); real BMCs speak HTTPS, and
`verifyTls` decides whether their certificate is checked.
"""

from __future__ import annotations

import asyncio
from typing import Any

from controller.api.fencing import FenceDevice, PowerState
from nodeagent.fencing.base import FenceError, Power, username, where
from nodeagent.fencing.credentials import Credentials, redact

DEFAULT_PORTS = {"https": 443, "http": 80}


def system_path(device: FenceDevice, target: str) -> str:
    ident = device.spec.host_map.get(target, target)
    return ident if ident.startswith("/redfish/") else f"/redfish/v1/Systems/{ident}"


def base_url(device: FenceDevice) -> str:
    scheme = device.spec.options.get("scheme", "https")
    if scheme not in DEFAULT_PORTS:
        raise FenceError(
            f"{where(device)}: options.scheme is {scheme!r}; use https (default) or http"
        )
    port = device.spec.port or DEFAULT_PORTS[scheme]
    host = device.spec.address or ""
    if ":" in host:  # an IPv6 literal goes in brackets in a URL
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


class RedfishDriver:
    def __init__(self, device: FenceDevice, target: str, credentials: Credentials) -> None:
        if not device.spec.address:
            raise FenceError(f"{where(device)}: spec.address is required for agent redfish")
        self._device = device
        self._target = target
        self._url = base_url(device)
        self._path = system_path(device, target)
        self._username = username(device, credentials.username)
        self._password = credentials.password
        self._system: Any = None

    def _error(self, doing: str, exc: BaseException) -> FenceError:
        detail = redact(str(exc) or type(exc).__name__, self._password)
        # By the exception's type, never by digits in its text (a port can hold "403").
        from sushy import exceptions

        hint = "check spec.address, spec.port and options.scheme"
        if isinstance(exc, exceptions.AccessError):
            hint = (
                f"check the username ({self._username}) and the password in "
                f"{self._device.spec.credentials_file}"
            )
        elif isinstance(exc, exceptions.ResourceNotFoundError):
            hint = f"check hostMap: no system {self._path} on this BMC"
        elif "certificate" in detail.lower():
            hint = "the BMC's TLS certificate was refused; install its CA or set verifyTls"
        return FenceError(
            f"{where(self._device)}: {doing} for node {self._target} ({self._path}) "
            f"failed: {detail}; {hint}"
        )

    def _open(self) -> Any:
        if self._system is None:
            import sushy
            from sushy import auth

            timeout = max(1.0, self._device.spec.timeout.total_seconds())
            connection = sushy.Sushy(
                self._url,
                auth=auth.BasicAuth(username=self._username, password=self._password),
                verify=self._device.spec.verify_tls,
                # sushy retries a 5xx ten times, 3 s apart: far past a fence's timeout.
                server_side_retries=1,
                server_side_retries_delay=0.5,
                read_timeout=timeout,
                connect_timeout=min(timeout, 5.0),
            )
            self._system = connection.get_system(self._path)
        return self._system

    def _get_power(self) -> PowerState:
        system = self._open()
        system.refresh(force=True)
        value = getattr(system.power_state, "value", None)
        # PoweringOn / PoweringOff / Paused are not "off": the fence is not done yet.
        if value == "On":
            return "on"
        if value == "Off":
            return "off"
        return "unknown"

    def _set_power(self, state: Power) -> None:
        from sushy import ResetType

        self._open().reset_system(ResetType.FORCE_OFF if state == "off" else ResetType.ON)

    async def power(self) -> PowerState:
        try:
            return await asyncio.to_thread(self._get_power)
        except Exception as exc:  # sushy's errors, requests' errors
            raise self._error("reading the power state", exc) from None

    async def set_power(self, state: Power) -> None:
        try:
            await asyncio.to_thread(self._set_power, state)
        except Exception as exc:
            raise self._error(f"power {state}", exc) from None

    async def close(self) -> None:
        self._system = None
