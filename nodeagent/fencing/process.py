"""Running a fence program (a fence_* agent, an exec device) with a bound and a secret
on stdin.

The program runs in its own session so that cancelling (the device's timeout) kills its
whole process group by PID, including an ipmitool a fence agent started. Output goes to
a temporary file, so a helper left behind holding stdout cannot make us wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.api.fencing import PowerState
from nodeagent.fencing.base import FenceError, Power

OUTPUT_TAIL = 400


@dataclass(frozen=True)
class ProgramResult:
    returncode: int
    output: str

    def tail(self, limit: int = OUTPUT_TAIL) -> str:
        # Every fence agent on Debian 12 prints a DeprecationWarning about `pipes`:
        # noise that would push the real error out of the tail.
        lines = [
            ln
            for ln in self.output.splitlines()
            if "DeprecationWarning" not in ln and not ln.strip().startswith("import pipes")
        ]
        text = " ".join(" ".join(lines).split())
        return text if len(text) <= limit else "..." + text[-limit:]


async def run_program(
    argv: Sequence[str], *, stdin: bytes | None = None, env: Mapping[str, str] | None = None
) -> ProgramResult:
    """Run argv to completion; on cancellation kill its process group and re-raise.

    Raises OSError (FileNotFoundError, PermissionError) if argv[0] cannot be executed.
    """
    with tempfile.TemporaryFile() as out:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd="/",
            start_new_session=True,
        )
        try:
            if proc.stdin is not None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    proc.stdin.write(stdin or b"")
                    await proc.stdin.drain()
                proc.stdin.close()
            returncode = await proc.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise
        out.seek(0)
        text = out.read().decode("utf-8", errors="replace")
    return ProgramResult(returncode, text)


def status_from_exit(code: int) -> str | None:
    """The fence agents' status convention (exec devices follow it): 0 on, 2 off,
    anything else: the status is unknown (pure)."""
    return {0: "on", 2: "off"}.get(code)


class ProgramDriver:
    """Power through a program that answers as fence agents do (exec devices, fence_*
    agents): `_run(action)` runs it, `_failed` words its failure."""

    async def _run(self, action: str) -> ProgramResult:
        raise NotImplementedError

    def _failed(self, action: str, result: ProgramResult) -> FenceError:
        raise NotImplementedError

    async def power(self) -> PowerState:
        result = await self._run("status")
        state = status_from_exit(result.returncode)
        if state == "on":
            return "on"
        if state == "off":
            return "off"
        raise self._failed("status", result)

    async def set_power(self, state: Power) -> None:
        result = await self._run(state)
        if result.returncode != 0:
            raise self._failed(state, result)

    async def close(self) -> None:
        return None
