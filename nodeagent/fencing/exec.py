"""`exec` devices: the site's own fence command.

It is run with the node in VIGIL_FENCE_TARGET and the action (off, on, status) in
VIGIL_FENCE_ACTION, and answers as a fence agent does: exit 0 done (for status:
powered on), 2 powered off (status only), anything else an error.
"""

from __future__ import annotations

import os

from controller.api.fencing import FenceDevice
from nodeagent.fencing.base import FenceError, where
from nodeagent.fencing.process import ProgramDriver, ProgramResult, run_program


class ExecDriver(ProgramDriver):
    def __init__(self, device: FenceDevice, target: str) -> None:
        if not device.spec.command:
            raise FenceError(f"{where(device)}: spec.command is required for agent exec")
        self._device = device
        self._target = target
        self._argv = list(device.spec.command)

    async def _run(self, action: str) -> ProgramResult:
        env = dict(os.environ)
        env.update(
            VIGIL_FENCE_TARGET=self._target,
            VIGIL_FENCE_ACTION=action,
            VIGIL_FENCE_DEVICE=self._device.metadata.name,
        )
        if self._device.spec.credentials_file:
            # The file's path, not its content: the command reads it itself.
            env["VIGIL_FENCE_CREDENTIALS_FILE"] = self._device.spec.credentials_file
        try:
            return await run_program(self._argv, env=env)
        except OSError as exc:
            raise FenceError(
                f"{where(self._device)}: cannot run {self._argv[0]}: {exc.strerror}; "
                "check spec.command (an absolute path to an executable)"
            ) from None

    def _failed(self, action: str, result: ProgramResult) -> FenceError:
        return FenceError(
            f"{where(self._device)}: {self._argv[0]} with VIGIL_FENCE_ACTION={action} for "
            f"node {self._target} exited {result.returncode}: {result.tail() or 'no output'}"
        )
