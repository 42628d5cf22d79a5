"""Any ClusterLabs `fence_*` agent through its stdin key=value protocol.

Arguments go on stdin, never on the command line, where every user of the node could
read the password in /proc. The status convention is the agents': exit 0 powered on,
2 powered off, anything else an error.
"""

from __future__ import annotations

import os
import shutil

from controller.api.fencing import FenceDevice
from nodeagent.fencing.base import FenceError, where
from nodeagent.fencing.credentials import Credentials, redact
from nodeagent.fencing.process import ProgramDriver, ProgramResult, run_program

# Fence agents live in /usr/sbin, which a service's PATH may lack.
AGENT_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def stdin_lines(
    device: FenceDevice, target: str, action: str, credentials: Credentials | None
) -> list[str]:
    """The agent's input: one key=value per line (pure). Options come last so that a
    site can override what Vigil derived (e.g. `ipport`)."""
    spec = device.spec
    pairs: dict[str, str] = {"action": action}
    if spec.address:
        pairs["ip"] = spec.address
    if spec.port:
        pairs["ipport"] = str(spec.port)
    username = spec.username or (credentials.username if credentials else None)
    if username:
        pairs["username"] = username
    if credentials is not None:
        pairs["password"] = credentials.password
    plug = spec.host_map.get(target)
    if plug:
        pairs["plug"] = plug
    for key, value in spec.options.items():
        pairs[key] = value
    for key, value in pairs.items():
        # A newline would start another key of the agent's protocol.
        if "\n" in key or "\n" in value or "=" in key:
            field = "credentialsFile" if key == "password" else f"options.{key}"
            raise FenceError(f"{where(device)}: {field} holds a newline or '=' in its name")
    return [f"{k}={v}" for k, v in pairs.items()]


def find_agent(name: str) -> str:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(AGENT_DIRS)
    found = shutil.which(name, path=path)
    if found is None:
        raise FenceError(
            f"fence agent {name} is not installed on this node (not in PATH or "
            f"{', '.join(AGENT_DIRS)}); install fence-agents"
        )
    return found


class FenceAgentDriver(ProgramDriver):
    def __init__(self, device: FenceDevice, target: str, credentials: Credentials | None) -> None:
        if not device.spec.fence_agent:
            raise FenceError(
                f"{where(device)}: spec.fenceAgent is required for agent fence-agent "
                "(e.g. fence_ipmilan)"
            )
        self._device = device
        self._target = target
        self._credentials = credentials
        self._program = find_agent(device.spec.fence_agent)

    async def _run(self, action: str) -> ProgramResult:
        lines = stdin_lines(self._device, self._target, action, self._credentials)
        try:
            return await run_program([self._program], stdin=("\n".join(lines) + "\n").encode())
        except OSError as exc:
            raise FenceError(
                f"{where(self._device)}: cannot run {self._program}: {exc.strerror}"
            ) from None

    def _failed(self, action: str, result: ProgramResult) -> FenceError:
        secret = self._credentials.password if self._credentials else None
        return FenceError(
            f"{where(self._device)}: {self._device.spec.fence_agent} action={action} for "
            f"node {self._target} exited {result.returncode}: "
            f"{redact(result.tail(), secret) or 'no output'}; run the agent by hand with "
            "the same options to see why"
        )
