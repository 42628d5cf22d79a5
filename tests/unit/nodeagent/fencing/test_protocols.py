"""The fence agents' stdin protocol, their status convention, output tails."""

from __future__ import annotations

import pytest

from nodeagent.fencing.base import FenceError
from nodeagent.fencing.credentials import Credentials
from nodeagent.fencing.fence_agent import stdin_lines
from nodeagent.fencing.process import ProgramResult, status_from_exit
from nodeagent.fencing.redfish import base_url, system_path
from tests.unit.nodeagent.fencing.devices import device


def test_stdin_lines_for_fence_ipmilan() -> None:
    dev = device(
        agent="fence-agent",
        fenceAgent="fence_ipmilan",
        targets=["n1", "n2"],
        address="10.0.0.5",
        port=6231,
        hostMap={"n2": "plug-2"},
        options={"lanplus": "1", "cipher": "3"},
    )
    creds = Credentials(username="admin", password="pw")
    assert stdin_lines(dev, "n2", "off", creds) == [
        "action=off",
        "ip=10.0.0.5",
        "ipport=6231",
        "username=admin",
        "password=pw",
        "plug=plug-2",
        "lanplus=1",
        "cipher=3",
    ]
    # No plug for a node without a host_map entry; the spec's username wins.
    lines = stdin_lines(dev.model_copy(), "n1", "status", creds)
    assert "plug=plug-2" not in lines
    assert lines[0] == "action=status"


def test_options_override_and_no_credentials() -> None:
    dev = device(agent="fence-agent", fenceAgent="fence_x", options={"ipport": "9"}, port=1)
    assert stdin_lines(dev, "n1", "on", None) == ["action=on", "ipport=9"]


def test_a_newline_in_an_option_is_refused() -> None:
    dev = device(agent="fence-agent", fenceAgent="fence_x", options={"x": "1\npassword=2"})
    with pytest.raises(FenceError, match=r"options\.x"):
        stdin_lines(dev, "n1", "on", None)


def test_status_convention() -> None:
    assert status_from_exit(0) == "on"
    assert status_from_exit(2) == "off"
    assert status_from_exit(1) is None
    assert status_from_exit(-9) is None


def test_output_tail_drops_the_pipes_warning() -> None:
    out = (
        "/usr/sbin/fence_ipmilan:9: DeprecationWarning: 'pipes' is deprecated\n"
        "  import pipes\nFailed: Unable to obtain correct plug status or plug is not available\n"
    )
    assert ProgramResult(1, out).tail() == (
        "Failed: Unable to obtain correct plug status or plug is not available"
    )


def test_redfish_urls() -> None:
    dev = device(agent="redfish", address="10.0.0.9", hostMap={"n1": "abc"})
    assert base_url(dev) == "https://10.0.0.9:443"
    assert system_path(dev, "n1") == "/redfish/v1/Systems/abc"
    assert system_path(dev, "n2") == "/redfish/v1/Systems/n2"
    dev = device(agent="redfish", address="fd00::1", port=8000, options={"scheme": "http"})
    assert base_url(dev) == "http://[fd00::1]:8000"
    with pytest.raises(FenceError, match="options.scheme"):
        base_url(device(agent="redfish", address="h", options={"scheme": "ftp"}))
