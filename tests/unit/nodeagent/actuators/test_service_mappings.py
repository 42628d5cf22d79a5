"""Exit-code and status mappings of the LSB, OCF and systemd actuators, and how each reads
its typed spec."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from controller.api.group import ExecService, OcfService
from nodeagent.actuators import ActuatorContext, State
from nodeagent.actuators.base import instance_name
from nodeagent.actuators.service_exec import ExecActuator, PidRecord, exit_detail
from nodeagent.actuators.service_lsb import LsbActuator, lsb_script_path, lsb_status_observation
from nodeagent.actuators.service_ocf import (
    OcfActuator,
    check_params_against_metadata,
    ocf_monitor_observation,
)
from nodeagent.actuators.service_systemd import parse_show, systemd_observation, unit_name


@pytest.mark.parametrize(
    ("code", "state", "words"),
    [(0, State.RUNNING, "running"), (3, State.STOPPED, "not running"),
     (1, State.FAILED, "pid file"), (2, State.FAILED, "lock file"),
     (4, State.UNKNOWN, "unknown"), (150, State.UNKNOWN, "not an LSB")],
)  # fmt: skip
def test_lsb_status_mapping(code: int, state: State, words: str) -> None:
    obs = lsb_status_observation(code, "")
    assert obs.state is state and words in obs.detail


def test_lsb_script_paths() -> None:
    assert lsb_script_path("apache2") == Path("/etc/init.d/apache2")
    assert lsb_script_path("/opt/x/init") == Path("/opt/x/init")


@pytest.mark.parametrize(
    ("code", "state", "name"),
    [(0, State.RUNNING, "OCF_SUCCESS"), (7, State.STOPPED, "OCF_NOT_RUNNING"),
     (8, State.RUNNING, "OCF_RUNNING_PROMOTED"), (190, State.RUNNING, "OCF_DEGRADED"),
     (1, State.FAILED, "OCF_ERR_GENERIC"), (2, State.FAILED, "OCF_ERR_ARGS"),
     (4, State.FAILED, "OCF_ERR_PERM"), (5, State.FAILED, "OCF_ERR_INSTALLED"),
     (6, State.FAILED, "OCF_ERR_CONFIGURED"), (9, State.FAILED, "OCF_FAILED_PROMOTED"),
     (3, State.UNKNOWN, "OCF_ERR_UNIMPLEMENTED"), (42, State.UNKNOWN, "non-OCF exit code 42")],
)  # fmt: skip
def test_ocf_monitor_mapping(code: int, state: State, name: str) -> None:
    obs = ocf_monitor_observation(code, "agent said so")
    assert obs.state is state and name in obs.detail and "agent said so" in obs.detail


def test_ocf_environment() -> None:
    spec = OcfService(agent="heartbeat:Dummy", params={"state": "/x"})
    actuator = OcfActuator(spec, ActuatorContext(resource="pg/dummy 1"))
    assert actuator.script == Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")
    env = actuator.environment(20)
    assert env["OCF_ROOT"] == "/usr/lib/ocf"
    assert env["OCF_RESKEY_state"] == "/x"
    assert env["OCF_RESOURCE_INSTANCE"] == "pg_dummy_1" == instance_name("pg/dummy 1")
    assert (env["OCF_RESOURCE_TYPE"], env["OCF_RESOURCE_PROVIDER"]) == ("Dummy", "heartbeat")
    assert env["OCF_RESKEY_CRM_meta_timeout"] == "20000"


META = """<?xml version="1.0"?>
<resource-agent name="X"><parameters>
  <parameter name="ip" required="1"><content type="string"/></parameter>
  <parameter name="nic"><content type="string"/></parameter>
</parameters></resource-agent>"""


def test_params_checked_against_meta_data() -> None:
    assert check_params_against_metadata(META, {"ip": "1.2.3.4", "nic": "eth0"}) == []
    problems = check_params_against_metadata(META, {"nik": "eth0"})
    assert problems == [
        "unknown parameter 'nik' (the agent knows: ip, nic)",
        "required parameter 'ip' is missing",
    ]
    assert "not valid XML" in check_params_against_metadata("<oops", {})[0]


@pytest.mark.parametrize(
    ("props", "state"),
    [({"LoadState": "loaded", "ActiveState": "active", "SubState": "running"}, State.RUNNING),
     ({"LoadState": "loaded", "ActiveState": "reloading"}, State.RUNNING),
     ({"LoadState": "loaded", "ActiveState": "inactive", "SubState": "dead"}, State.STOPPED),
     ({"LoadState": "loaded", "ActiveState": "failed", "Result": "exit-code"}, State.FAILED),
     ({"LoadState": "not-found", "ActiveState": "inactive"}, State.STOPPED),
     ({"LoadState": "masked", "ActiveState": "inactive"}, State.FAILED),
     ({"LoadState": "loaded", "ActiveState": "activating"}, State.UNKNOWN)],
)  # fmt: skip
def test_systemd_mapping(props: dict[str, str], state: State) -> None:
    assert systemd_observation(props).state is state


def test_systemd_unit_names_and_show_output() -> None:
    assert unit_name("postgresql") == "postgresql.service"
    assert unit_name("getty@tty1.service") == "getty@tty1.service"
    assert unit_name("srv.mount") == "srv.mount"
    assert parse_show("ActiveState=active\nSubState=running\njunk\n") == {
        "ActiveState": "active",
        "SubState": "running",
    }


def test_exec_reads_its_spec() -> None:
    spec = ExecService.model_validate(
        {"command": ["app", "-v"], "stopSignal": "SIGINT", "stopTimeout": "2s"}
    )
    actuator = ExecActuator(spec, ActuatorContext(resource="g/app"))
    assert actuator.command == ("app", "-v")
    assert actuator.stop_signal is signal.SIGINT and actuator.stop_timeout == 2.0


def test_exec_exit_details_and_pid_record() -> None:
    assert exit_detail(3) == "exited with code 3"
    assert exit_detail(-9) == "killed by signal SIGKILL"
    record = PidRecord(10, 10, 12345, ("sleep", "1"))
    assert PidRecord.loads(record.dumps()) == record


async def test_scripts_and_agents_not_installed_here_are_stopped_here(tmp_path: Path) -> None:
    ctx = ActuatorContext(resource="g/svc", run_dir=tmp_path)
    lsb = LsbActuator(tmp_path / "no-such-script", ctx)
    seen = await lsb.observe()
    assert seen.state is State.STOPPED and "is not installed here" in seen.detail
    ocf = OcfActuator(OcfService(agent="heartbeat:Nope"), ctx, ocf_root=tmp_path)
    seen = await ocf.observe()
    assert seen.state is State.STOPPED and "OCF agent" in seen.detail
