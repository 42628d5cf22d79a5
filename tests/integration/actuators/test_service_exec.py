"""The exec service actuator supervising real child processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeagent.actuators import ActuatorContext, State
from nodeagent.actuators.procinfo import read_proc_stat
from nodeagent.actuators.service_exec import ExecActuator, PidRecord, list_pid_records
from tests.integration.actuators.specs import create, limits

pytestmark = pytest.mark.slow

IGNORE_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ignoring TERM', flush=True); time.sleep(60)"
)


def make(run_dir: Path, command: list[str], **extra: object) -> ExecActuator:
    spec = {"exec": {"command": command, **extra}}
    ctx = ActuatorContext(
        resource="grp/svc", run_dir=run_dir, timeouts=limits(start=5, stop=5, monitor=2)
    )
    actuator = create({"service": spec}, ctx)
    assert isinstance(actuator, ExecActuator)
    return actuator


def alive(pid: int) -> bool:
    stat = read_proc_stat(pid)
    return stat is not None and stat.alive


async def wait_until(cond: object, limit: float = 5.0) -> None:
    assert callable(cond)
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """Pids a test started outside the actuator; killed at the end whatever happens."""
    started: list[int] = []
    yield started
    for pid in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


async def test_start_observe_stop_is_idempotent(tmp_path: Path) -> None:
    svc = make(tmp_path, ["sleep", "60"], env={"GREETING": "hi"})
    assert (await svc.observe()).state is State.STOPPED
    await svc.start()
    record = PidRecord.loads(svc.pid_file.read_text())
    await svc.start()  # no-op: same process
    assert PidRecord.loads(svc.pid_file.read_text()) == record
    stat = read_proc_stat(record.pid)
    assert stat is not None and stat.pgid == record.pid and stat.sid == record.pid
    assert (await svc.observe()).state is State.RUNNING
    await svc.stop()
    assert not alive(record.pid)
    assert not svc.pid_file.exists()
    await svc.stop()  # no-op
    assert (await svc.observe()).state is State.STOPPED


async def test_stop_escalates_to_sigkill_after_stop_timeout(tmp_path: Path) -> None:
    svc = make(tmp_path, [sys.executable, "-c", IGNORE_TERM], stopTimeout="400ms")
    await svc.start()
    await wait_until(lambda: "ignoring TERM" in svc.log_file.read_text())
    pid = PidRecord.loads(svc.pid_file.read_text()).pid
    began = time.monotonic()
    await svc.stop()
    took = time.monotonic() - began
    assert not alive(pid)
    assert 0.4 <= took < 2.0, took


async def test_stop_signal_is_sent_to_the_whole_group(tmp_path: Path) -> None:
    # The shell's child `sleep` must die too, not only the shell. A process started in
    # the background (nohup, `&`) ignores SIGINT and its children inherit that: the shell
    # would then never stop (fresh-clone CI runs launched that way failed here). The agent
    # catches SIGINT, so what it starts gets the default; so does this test.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    svc = make(tmp_path, ["sh", "-c", "sleep 60 & echo $! > child.pid; wait"],
               workingDir=str(tmp_path), stopSignal="SIGINT")  # fmt: skip
    await svc.start()
    child_file = tmp_path / "child.pid"
    await wait_until(child_file.exists)
    await wait_until(lambda: child_file.read_text().strip() != "")
    child = int(child_file.read_text())
    assert alive(child)
    await svc.stop()
    await wait_until(lambda: not alive(child), 2.0)


async def test_crash_is_reported_as_failed_with_exit_code(tmp_path: Path) -> None:
    svc = make(tmp_path, ["sh", "-c", "sleep 0.2; exit 3"])
    await svc.start()
    await wait_until(lambda: svc._proc is not None and svc._proc.returncode is not None)
    obs = await svc.observe()
    assert obs.state is State.FAILED and "exited with code 3" in obs.detail
    assert (await svc.observe()).state is State.FAILED  # asking again is fine
    await svc.stop()  # clears the failure
    assert (await svc.observe()).state is State.STOPPED
    await svc.start()  # and it can run again
    assert (await svc.observe()).state is State.RUNNING
    await svc.stop()


async def test_killed_child_reports_the_signal(tmp_path: Path) -> None:
    svc = make(tmp_path, ["sleep", "60"])
    await svc.start()
    os.kill(PidRecord.loads(svc.pid_file.read_text()).pid, signal.SIGKILL)
    await wait_until(lambda: svc._proc is not None and svc._proc.returncode is not None)
    obs = await svc.observe()
    assert obs.state is State.FAILED and "SIGKILL" in obs.detail
    await svc.stop()


async def test_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    svc = make(tmp_path, ["/nonexistent/bin/app"])
    with pytest.raises(Exception, match=r"cannot execute.*service.exec.command\[0\]"):
        await svc.start()


AGENT = textwrap.dedent(
    """
    import asyncio, os, sys
    from pathlib import Path
    from controller.api.group import Resource
    from nodeagent.actuators import ActuatorContext, default_registry

    async def main():
        spec = Resource.model_validate({"service": {"exec": {"command": ["sleep", "60"]}}})
        ctx = ActuatorContext(resource="grp/svc", run_dir=Path(sys.argv[1]))
        svc = default_registry.create(spec, ctx)
        await svc.start()
        os._exit(0)  # the agent dies without stopping its child

    asyncio.run(main())
    """
)


async def test_restarted_agent_adopts_and_stops_its_child(tmp_path: Path, pids: list[int]) -> None:
    agent = await asyncio.create_subprocess_exec(sys.executable, "-c", AGENT, str(tmp_path))
    assert await asyncio.wait_for(agent.wait(), 30) == 0
    record = list_pid_records(tmp_path)["grp_svc"]
    pids.append(record.pgid)
    assert alive(record.pid)

    svc = make(tmp_path, ["sleep", "60"])  # the restarted agent
    obs = await svc.observe()
    assert obs.state is State.RUNNING and "adopted" in obs.detail
    await svc.start()  # already running: must not spawn a second copy
    assert PidRecord.loads(svc.pid_file.read_text()) == record
    await svc.stop()
    assert not alive(record.pid)
    assert list_pid_records(tmp_path) == {}


async def test_reused_pid_is_not_adopted_nor_killed(tmp_path: Path, pids: list[int]) -> None:
    stranger = await asyncio.create_subprocess_exec("sleep", "60", start_new_session=True)
    pids.append(stranger.pid)
    stat = read_proc_stat(stranger.pid)
    assert stat is not None
    svc = make(tmp_path, ["sleep", "60"])
    svc.state_dir.mkdir(parents=True)
    # Same pid, different start time: what a recycled pid looks like.
    forged = PidRecord(stranger.pid, stranger.pid, stat.starttime + 1, ("sleep", "60"))
    svc.pid_file.write_text(forged.dumps())
    obs = await svc.observe()
    assert obs.state is State.FAILED and "is gone" in obs.detail
    await svc.stop()
    assert alive(stranger.pid)
    assert not svc.pid_file.exists()
    stranger.kill()
    await stranger.wait()
