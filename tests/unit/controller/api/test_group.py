"""ResourceGroup resources: the rules a node needs to run them, checked by the API.

Each rule here was once checked only by an actuator's own parser on the node, after
`ha apply` had accepted the spec (the group then sat Blocked). Now the API refuses it,
so `ha apply` refuses exactly what a node would refuse.
"""

from __future__ import annotations

from typing import Any

import pytest

from controller.api.decode import SchemaError, decode
from controller.api.group import Probe, ResourceGroup

API = "ha.vigil.dev/v1alpha1"


def group(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ResourceGroup",
        "metadata": {"name": "g"},
        "spec": {"resources": list(resources)},
    }


def problems(resource: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SchemaError) as info:
        decode(group(resource))
    return {p.dotted: p.message for p in info.value.problems}


IP = {"ip": {"address": "10.0.0.10/24"}}
SVC = {"service": {"lsb": "apache2"}}


@pytest.mark.parametrize(
    ("resource", "path", "fragment"),
    [
        # The two disagreements of the layering issue: the node refused both.
        (
            {"ip": {"address": "10.0.0.10/24", "arp": {"count": 0}}},
            "ip.arp.count",
            "greater than or equal to 1",
        ),
        ({"ip": {"address": "10.0.0.0/31"}}, "ip.address", "network's own or broadcast"),
        ({"ip": {"address": "10.0.0.1/31"}}, "ip.address", "network's own or broadcast"),
        ({"ip": {"address": "10.0.0.255/24"}}, "ip.address", "network's own or broadcast"),
        ({"ip": {"address": "127.0.0.5/8"}}, "ip.address", "loopback, multicast"),
        ({"ip": {"address": "224.0.0.5/24"}}, "ip.address", "loopback, multicast"),
        ({"ip": {"address": "::/64"}}, "ip.address", "unspecified"),
        ({"ip": {"address": "10.0.0.10/24", "netmask": 24}}, "ip.netmask", "unknown field"),
        ({**IP, "timeouts": {"stop": "0s"}}, "timeouts.stop", "longer than 0s"),
        ({**IP, "timeouts": {"start": 5}}, "timeouts.start", "needs a unit"),
        ({"service": {"lsb": "bin/init"}}, "service.lsb", "neither a script name"),
        (
            {"service": {"ocf": {"agent": "heartbeat:Dummy", "params": {"bad-name": "1"}}}},
            "service.ocf.params",
            "not a shell identifier",
        ),
        ({"service": {"ocf": {"agent": "heartbeat:../../sh"}}}, "service.ocf.agent", "pattern"),
        ({"service": {"ocf": {"agent": "IPaddr2"}}}, "service.ocf.agent", "pattern"),
        ({"service": {"systemd": "rm -rf"}}, "service.systemd", "pattern"),
        (
            {"service": {"exec": {"command": ["a"], "stopSignal": "SIGFOO"}}},
            "service.exec.stopSignal",
            "SIGTERM",
        ),
        (
            {"service": {"exec": {"command": ["a"], "workingDir": "rel"}}},
            "service.exec.workingDir",
            "absolute path",
        ),
        ({"service": {"exec": {"command": "sleep 10"}}}, "service.exec.command", "list"),
        ({**SVC, "probe": {}}, "probe", "exactly one of tcp, http, exec"),
        (
            {**SVC, "probe": {"tcp": {"port": 1}, "exec": {"command": ["true"]}}},
            "probe",
            "found tcp, exec",
        ),
        ({**SVC, "probe": {"tcp": {"port": 70000}}}, "probe.tcp.port", "65535"),
        ({**SVC, "probe": {"http": {"port": 80, "path": "health"}}}, "probe.http.path", "pattern"),
        ({**SVC, "probe": {"http": {"url": "http://a/"}}}, "probe.http.url", "unknown field"),
        (
            {**SVC, "probe": {"http": {"port": 80, "expectStatus": "399-200"}}},
            "probe.http.expectStatus",
            "empty range",
        ),
        ({**SVC, "probe": {"exec": "pg_isready -h x"}}, "probe", "{command: [pg_isready, -h, x]}"),
        (
            {**SVC, "probe": {"tcp": {"port": 1}, "period": "1s", "timeout": "2s"}},
            "probe",
            "timeout (2s) is longer than period (1s)",
        ),
        ({**SVC, "probe": {"tcp": {"port": 1}, "period": "0s"}}, "probe.period", "longer than 0s"),
        ({**SVC, "probe": {"tcp": {"port": 1}, "period": "3"}}, "probe.period", "with a unit"),
        (
            {**SVC, "probe": {"tcp": {"port": 1}, "failureThreshold": 0}},
            "probe.failureThreshold",
            "greater than or equal to 1",
        ),
        ({**SVC, "probe": {"tcp": {"port": 1}, "perod": "1s"}}, "probe.perod", "did you mean"),
        # A network source needs a network fsType, and the other way round.
        (
            {"filesystem": {"device": "nfs1:/export", "mountPoint": "/srv"}},
            "filesystem",
            "device 'nfs1:/export' is a network source, which fsType 'ext4' cannot mount",
        ),
        (
            {"filesystem": {"device": "/dev/sdb1", "mountPoint": "/srv", "fsType": "nfs4"}},
            "filesystem",
            "so device must be host:/export",
        ),
        (
            {
                "filesystem": {
                    "device": "//h/s",
                    "mountPoint": "/srv",
                    "fsType": "cifs",
                    "fsck": "force",
                }
            },
            "filesystem",
            "fsck: force cannot check a network filesystem",
        ),
        (
            {"filesystem": {"device": "disk.img", "mountPoint": "/srv"}},
            "filesystem.device",
            "expected an absolute path (/dev/sdb1)",
        ),
        (
            {"filesystem": {"device": "/dev/sdb1", "mountPoint": "/srv", "fsck": "always"}},
            "filesystem.fsck",
            "'auto', 'force' or 'never'",
        ),
    ],
)
def test_refused_with_the_field_and_the_fix(
    resource: dict[str, Any], path: str, fragment: str
) -> None:
    found = problems(resource)
    message = found.get(f"spec.resources[0].{path}", "")
    assert fragment in message, found


def test_a_bare_argv_probe_is_refused_with_the_form_to_write() -> None:
    # The design brief writes `exec: [pg_isready, ...]`; a CRD cannot take both shapes.
    found = problems({**SVC, "probe": {"exec": ["pg_isready", "-h", "127.0.0.1"]}})
    assert "{command: [pg_isready, -h, 127.0.0.1]}" in found["spec.resources[0].probe"]


def test_http_probe_url_and_status_range() -> None:
    probe = Probe.model_validate({"http": {"port": 8443, "host": "::1", "scheme": "https"}})
    assert probe.http is not None
    assert probe.http.url == "https://[::1]:8443/"
    assert probe.http.status_range == (200, 399)
    single = Probe.model_validate({"http": {"port": 80, "path": "/h?x=1", "expectStatus": "204"}})
    assert single.http is not None
    assert (single.http.url, single.http.status_range) == ("http://127.0.0.1:80/h?x=1", (204, 204))


def test_service_variant_and_ocf_agent_parts() -> None:
    obj = decode(group({"service": {"ocf": {"agent": "heartbeat:IPaddr2"}}}))
    assert isinstance(obj, ResourceGroup)
    service = obj.spec.resources[0].service
    assert service is not None and service.variant == "ocf" and service.ocf is not None
    assert (service.ocf.provider, service.ocf.type) == ("heartbeat", "IPaddr2")
    pacemaker = decode(group({"service": {"ocf": {"agent": "ocf:pacemaker:Stateful"}}}))
    assert isinstance(pacemaker, ResourceGroup)
    ocf = pacemaker.spec.resources[0].service.ocf  # type: ignore[union-attr]
    assert ocf is not None and (ocf.provider, ocf.type) == ("pacemaker", "Stateful")
