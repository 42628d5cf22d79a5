"""`service: {exec: {command: [...]}}`: a command the agent supervises as its own child.

The child runs in its own session (so its process group is the unit we signal on
stop), logs to <run_dir>/exec/<instance>.log, and is recorded in
<run_dir>/exec/<instance>.pid as {pid, pgid, starttime, argv}. The record is what
lets a restarted agent recognise a child it started earlier: the same pid with the
same /proc start time is the same process, which it then adopts (observes by polling
/proc, stops by signalling the group). A child that exits unexpectedly is `failed`
until stop() clears the record, so the reconciler sees the crash, not a quiet stop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from controller.api.group import ExecService, Resource
from nodeagent.actuators.base import (
    Actuator,
    ActuatorContext,
    instance_name,
    register,
)
from nodeagent.actuators.commands import netns_prefix
from nodeagent.actuators.procinfo import (
    is_same_live_process,
    kill_group_quietly,
    read_proc_stat,
    signal_group,
)
from nodeagent.observation import Observation

POLL_INTERVAL = 0.05
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class PidRecord:
    pid: int
    pgid: int
    starttime: int
    argv: tuple[str, ...]

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, text: str) -> PidRecord:
        data = json.loads(text)
        return cls(int(data["pid"]), int(data["pgid"]), int(data["starttime"]), tuple(data["argv"]))


def exit_detail(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def list_pid_records(run_dir: Path) -> dict[str, PidRecord]:
    """Instance name -> record, for every exec child recorded under run_dir (after a restart
    the reconciler stops those whose resource is no longer placed here)."""
    records: dict[str, PidRecord] = {}
    for path in sorted((run_dir / "exec").glob("*.pid")):
        try:
            records[path.stem] = PidRecord.loads(path.read_text())
        except (ValueError, KeyError, OSError):
            continue
    return records


class ExecActuator(Actuator):
    def __init__(self, spec: ExecService, ctx: ActuatorContext) -> None:
        super().__init__(ctx)
        self.command = tuple(spec.command)
        self.env = dict(spec.env)
        self.working_dir = spec.working_dir
        self.stop_signal = signal.Signals[spec.stop_signal]
        self.stop_timeout = spec.stop_timeout.total_seconds()
        self.instance = instance_name(ctx.resource)
        self.state_dir = ctx.run_dir / "exec"
        self.pid_file = self.state_dir / f"{self.instance}.pid"
        self.log_file = self.state_dir / f"{self.instance}.log"
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def where(self) -> str:
        record = self._record()
        pid = f"pid {record.pid}, " if record else ""
        return f"{pid}command {self.command[0]}, pid file {self.pid_file}"

    def _record(self) -> PidRecord | None:
        try:
            return PidRecord.loads(self.pid_file.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError) as exc:
            raise self.error(
                f"pid file is corrupt ({exc})",
                "make sure no process of this service runs, then delete the pid file",
            ) from None

    def _live_record(self) -> PidRecord | None:
        record = self._record()
        if record and is_same_live_process(record.pid, record.starttime):
            return record
        return None

    async def _observe(self) -> Observation:
        proc = self._proc
        if proc is not None:
            if proc.returncode is None:
                return Observation.running(f"child pid {proc.pid} is alive")
            return Observation.failed(
                f"child pid {proc.pid} {exit_detail(proc.returncode)}; log: {self.log_file}"
            )
        record = self._record()
        if record is None:
            return Observation.stopped("not started by this agent (no pid file)")
        if is_same_live_process(record.pid, record.starttime):
            return Observation.running(f"pid {record.pid} alive (adopted from {self.pid_file})")
        return Observation.failed(
            f"pid {record.pid} from {self.pid_file} is gone; it ended while no agent watched, "
            f"exit status unknown; log: {self.log_file}"
        )

    async def _start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", DEFAULT_PATH), **self.env}
        argv = [*netns_prefix(self.ctx.netns), *self.command]
        log = os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.working_dir,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise self.error(
                f"cannot execute: {exc}",
                "check service.exec.command[0] and service.exec.workingDir exist on this node",
            ) from None
        except PermissionError as exc:
            raise self.error(f"cannot execute: {exc}", "make the program executable") from None
        finally:
            os.close(log)
        stat = read_proc_stat(proc.pid)
        record = PidRecord(proc.pid, proc.pid, stat.starttime if stat else -1, tuple(argv))
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(record.dumps())
        tmp.replace(self.pid_file)
        self._proc = proc

    async def _stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            await self._terminate(proc.pid, lambda: proc.returncode is not None)
        elif proc is None and (record := self._live_record()) is not None:
            pid, starttime = record.pid, record.starttime
            await self._terminate(record.pgid, lambda: not is_same_live_process(pid, starttime))
        self._proc = None
        self.pid_file.unlink(missing_ok=True)

    async def _terminate(self, pgid: int, gone: Callable[[], bool]) -> None:
        """stopSignal to the group, wait stopTimeout, then SIGKILL; sweep what remains."""
        signal_group(pgid, self.stop_signal)
        if not await self._wait(gone, self.stop_timeout):
            signal_group(pgid, signal.SIGKILL)
            await self._wait(gone, None)
        # Helpers the leader forked stay in its group; "stopped" means all of them.
        kill_group_quietly(pgid)

    @staticmethod
    async def _wait(gone: Callable[[], bool], limit: float | None) -> bool:
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        while not gone():
            if deadline is not None and loop.time() >= deadline:
                return False
            await asyncio.sleep(POLL_INTERVAL)
        return True


@register("service.exec")
def make_exec(resource: Resource, ctx: ActuatorContext) -> Actuator:
    assert resource.service is not None and resource.service.exec is not None
    return ExecActuator(resource.service.exec, ctx)
