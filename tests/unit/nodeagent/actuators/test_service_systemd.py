"""The systemd actuator against a fake `systemctl` on PATH (this machine has no systemd).

The fake keeps each unit's ActiveState in a file and mimics systemd's behaviour that
matters here: a failed unit stays failed after `stop` until `reset-failed`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.api.group import Resource
from nodeagent.actuators import Actuator, ActuatorContext, ActuatorError, State, default_registry

FAKE = """#!/bin/sh
D="$FAKE_SYSTEMCTL_DIR"
[ "$1" = "--no-ask-password" ] && shift
verb="$1"; shift
echo "$verb $*" >> "$D/calls"
case "$verb" in
  show)
    unit="$3"
    if [ -f "$D/not-found" ]; then echo LoadState=not-found; echo ActiveState=inactive; exit 0; fi
    echo LoadState=loaded
    echo "ActiveState=$(cat "$D/$unit" 2>/dev/null || echo inactive)"
    echo SubState=whatever; echo Result=exit-code; echo ExecMainStatus=2 ;;
  start)
    if [ -f "$D/not-found" ]; then echo "Unit $1 not found." >&2; exit 5; fi
    if [ -f "$D/fail-start" ]; then echo "Job for $1 failed." >&2; exit 1; fi
    echo active > "$D/$1" ;;
  stop)
    [ "$(cat "$D/$1" 2>/dev/null)" = failed ] || echo inactive > "$D/$1" ;;
  reset-failed)
    [ "$(cat "$D/$1" 2>/dev/null)" = failed ] && echo inactive > "$D/$1"; exit 0 ;;
  *) exit 1 ;;
esac
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "systemctl"
    script.write_text(FAKE)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_SYSTEMCTL_DIR", str(tmp_path))
    return tmp_path


def unit(name: str = "pg") -> Actuator:
    resource = Resource.model_validate({"service": {"systemd": name}})
    return default_registry.create(resource, ActuatorContext(resource="g/pg"))


def calls(fake: Path) -> list[str]:
    return (fake / "calls").read_text().splitlines()


async def test_start_observe_stop(fake: Path) -> None:
    svc = unit()
    await svc.start()
    await svc.start()
    assert (await svc.observe()).state is State.RUNNING
    await svc.stop()
    assert (await svc.observe()).state is State.STOPPED
    verbs = [c.split()[0] for c in calls(fake)]
    assert verbs.count("start") == 1 and verbs.count("stop") == 1
    assert "start pg.service" in calls(fake)


async def test_failed_unit_is_reported_and_cleared_by_stop(fake: Path) -> None:
    (fake / "pg.service").write_text("failed\n")
    svc = unit()
    obs = await svc.observe()
    assert obs.state is State.FAILED and "Result=exit-code" in obs.detail
    await svc.stop()
    assert "reset-failed pg.service" in calls(fake)
    assert (await svc.observe()).state is State.STOPPED


async def test_start_failure_points_to_the_journal(fake: Path) -> None:
    (fake / "fail-start").touch()
    with pytest.raises(ActuatorError, match=r"systemctl start exited 1.*journalctl -u pg.service"):
        await unit().start()


async def test_a_unit_not_installed_here_is_stopped_here_and_cannot_start(fake: Path) -> None:
    # A node that does not host the service (a witness) sees it stopped, not failed: there
    # is nothing to stop on every turn. Where it should run, the start says why it cannot.
    (fake / "not-found").touch()
    obs = await unit().observe()
    assert obs.state is State.STOPPED and "not installed on this node" in obs.detail
    await unit().stop()  # already stopped: nothing to do
    assert not [c for c in calls(fake) if c.startswith("stop")]
    with pytest.raises(ActuatorError, match=r"systemctl start exited 5.*not found"):
        await unit().start()


async def test_no_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    obs = await unit().observe()
    assert obs.state is State.UNKNOWN and "systemctl not found" in obs.detail
