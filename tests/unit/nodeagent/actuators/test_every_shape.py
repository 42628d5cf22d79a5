"""Every resource shape the API accepts is one the node's actuators accept (one schema).

The examples' resources, plus a list that sets every field of every kind the API allows,
go through the API (as `ha apply` decodes them) and then through the actuator registry
and the probe runner, as the reconciler makes them. No actuator may refuse what the API
accepted: there is no second parser left to disagree.
"""

from __future__ import annotations

import ipaddress
import signal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.api.decode import SchemaError, decode
from controller.api.group import NETWORK_FS_TYPES, Resource, ResourceGroup
from controller.api.manifest import load
from nodeagent.actuators import Actuator, ActuatorContext, default_registry
from nodeagent.actuators.filesystem import FilesystemActuator
from nodeagent.actuators.service_exec import ExecActuator
from nodeagent.actuators.service_lsb import LsbActuator
from nodeagent.actuators.service_ocf import OcfActuator
from nodeagent.actuators.service_systemd import SystemdActuator
from nodeagent.actuators.vip import VipActuator
from nodeagent.actuators.volume import VolumeActuator
from nodeagent.probes import ProbeRunner
from tests.paths import EXAMPLES

FULL_PROBE = {"period": "2s", "timeout": "1s", "failureThreshold": 2, "initialDelay": "5s"}
SHAPES: list[dict[str, Any]] = [
    {"ip": {"address": "192.168.1.10/24"}},
    {"ip": {"address": "10.0.0.1/32"}},
    {"ip": {"address": "fd00::10/64", "interface": "eth1"}},
    {
        "name": "vip",
        "ip": {
            "address": "192.168.1.10/24",
            "interface": "eth0",
            "arp": {"count": 1, "interval": "50ms", "refresh": "0s"},
        },
        "timeouts": {"start": "5s", "stop": "5s", "monitor": "2s"},
    },
    {"service": {"systemd": "postgresql"}},
    {"service": {"systemd": "getty@tty1.service"}},
    {"service": {"lsb": "apache2"}, "probe": {"tcp": {"port": 80}}},
    {"service": {"lsb": "/opt/app/init.sh"}, "probe": {"tcp": {"port": 80, "host": "::1"}}},
    {"service": {"ocf": {"agent": "heartbeat:Dummy"}}},
    {"service": {"ocf": {"agent": "ocf:heartbeat:IPaddr2", "params": {"ip": "10.0.0.5"}}}},
    {
        "service": {"exec": {"command": ["/usr/bin/app", "--flag"]}},
        "probe": {"http": {"port": 8080}, **FULL_PROBE},
    },
    {
        "service": {
            "exec": {
                "command": ["app"],
                "env": {"A": "1"},
                "workingDir": "/srv",
                "stopSignal": "SIGQUIT",
                "stopTimeout": "0s",
            }
        },
        "probe": {
            "http": {
                "port": 8443,
                "path": "/health?deep=1",
                "host": "app.example",
                "scheme": "https",
                "expectStatus": "204",
            }
        },
    },
    {
        "service": {"systemd": "postgresql.service"},
        "probe": {"exec": {"command": ["pg_isready", "-h", "127.0.0.1"]}, **FULL_PROBE},
    },
    {"filesystem": {"device": "/dev/sdb1", "mountPoint": "/srv/pg", "options": ["noatime"]}},
    {"filesystem": {"device": "volume:pgdata", "mountPoint": "/srv/pg/", "fsck": "force"}},
    {
        "filesystem": {
            "device": "nfs1:/export/data",
            "mountPoint": "/srv/data",
            "fsType": "nfs4",
            "options": ["hard", "vers=4.2"],
            "fsck": "never",
        },
        "timeouts": {"stop": "60s"},
    },
    {"filesystem": {"device": "//files/share", "mountPoint": "/srv/share", "fsType": "cifs"}},
]


def example_resources() -> list[Resource]:
    out = []
    for document in load([str(d) for d in sorted(EXAMPLES.iterdir()) if d.is_dir()]):
        obj = decode(document.data)
        if isinstance(obj, ResourceGroup):
            out.extend(obj.spec.resources)
    return out


def make(resource: Resource) -> Actuator:
    ctx = ActuatorContext(resource=f"g.{resource.resolved_name()}", timeouts=resource.timeouts)
    return default_registry.create(resource, ctx)


def test_the_examples_hold_ip_and_service_resources() -> None:
    kinds = {r.type for r in example_resources()}
    assert {"ip", "service"} <= kinds


@pytest.mark.parametrize(
    "resource",
    [
        *SHAPES,
        *[
            r.to_dict()
            for r in example_resources()
            if r.type in ("ip", "service", "volume", "filesystem")
        ],
    ],
    ids=lambda r: str(r)[:60],
)
def test_every_accepted_shape_makes_an_actuator(resource: dict[str, Any]) -> None:
    spec = Resource.model_validate(resource)
    actuator = make(spec)
    assert actuator.ctx.timeouts == spec.timeouts
    if spec.ip is not None:
        assert isinstance(actuator, VipActuator)
        assert actuator.address == ipaddress.ip_interface(spec.ip.address)
        assert actuator.refresh_interval == spec.ip.arp.refresh.total_seconds()
    elif spec.volume is not None:
        assert isinstance(actuator, VolumeActuator)
        assert actuator.volume == spec.volume.name
    elif spec.service is not None:
        service = spec.service
        if service.systemd is not None:
            assert isinstance(actuator, SystemdActuator)
            assert actuator.unit.startswith(service.systemd.removesuffix(".service"))
        elif service.lsb is not None:
            assert isinstance(actuator, LsbActuator)
            assert str(actuator.script).endswith(service.lsb)
        elif service.ocf is not None:
            assert isinstance(actuator, OcfActuator)
            assert actuator.script.parts[-2:] == (service.ocf.provider, service.ocf.type)
        else:
            assert isinstance(actuator, ExecActuator) and service.exec is not None
            assert list(actuator.command) == service.exec.command
            assert actuator.stop_signal is signal.Signals[service.exec.stop_signal]
    elif spec.filesystem is not None:
        fs = spec.filesystem
        assert isinstance(actuator, FilesystemActuator)
        assert actuator.mount_point == fs.mount_point.rstrip("/")
        assert actuator.network == (fs.fs_type in NETWORK_FS_TYPES)
        assert (actuator.volume is not None) == fs.device.startswith("volume:")
    if spec.probe is not None:
        runner = ProbeRunner(spec.probe, lambda status: None)
        assert 0 < runner.timeout <= runner.period


def test_no_hand_parser_is_left_on_the_node() -> None:
    # Actuators and probes read the typed models; nothing parses a mapping a second time.
    root = Path(__file__).resolve().parents[4] / "nodeagent"
    offenders = [
        str(path.relative_to(root.parent))
        for path in sorted(root.rglob("*.py"))
        if "def from_spec(" in path.read_text() and "heartbeat" not in path.parts
    ]
    assert offenders == []


@given(
    st.one_of(
        st.ip_addresses(v=4).flatmap(
            lambda a: st.integers(8, 32).map(lambda p, a=a: f"{a}/{p}")  # type: ignore[misc]
        ),
        st.ip_addresses(v=6).flatmap(
            lambda a: st.integers(48, 128).map(lambda p, a=a: f"{a}/{p}")  # type: ignore[misc]
        ),
    )
)
def test_any_address_the_api_takes_the_vip_actuator_takes(address: str) -> None:
    try:
        spec = Resource.model_validate({"ip": {"address": address}})
    except (SchemaError, ValueError):
        return  # refused at `ha apply`, with the field named
    actuator = make(spec)
    assert isinstance(actuator, VipActuator)
    assert actuator.address == ipaddress.ip_interface(address)
