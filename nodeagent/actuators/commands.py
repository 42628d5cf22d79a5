"""Running a management command (init script, OCF agent, systemctl) with a hard bound.

Output goes to a temporary file, not a pipe: init scripts and agents often leave a
daemon behind that inherits stdout, and reading a pipe to EOF would then wait for
the daemon's death. Each command runs in its own session so that a timeout (the
caller's `asyncio.timeout`) kills the whole process group, not just the shell.
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
from pathlib import Path

OUTPUT_TAIL = 600


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    output: str

    def tail(self, limit: int = OUTPUT_TAIL) -> str:
        text = " ".join(self.output.split())
        return text if len(text) <= limit else "..." + text[-limit:]


def netns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


async def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    netns: str | None = None,
) -> CommandResult:
    """Run argv to completion; on cancellation kill its process group and re-raise.

    Raises FileNotFoundError / PermissionError if the program cannot be executed.
    """
    full = [*netns_prefix(netns), *argv]
    with tempfile.TemporaryFile() as out:
        proc = await asyncio.create_subprocess_exec(
            *full,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
        try:
            returncode = await proc.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise
        out.seek(0)
        text = out.read().decode("utf-8", errors="replace")
    return CommandResult(tuple(full), returncode, text)
