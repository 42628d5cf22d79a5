"""Probe config parsing (pure logic); the probes themselves run in the integration tests."""

from __future__ import annotations

import pytest

from nodeagent.actuators import ConfigError
from nodeagent.probes import (
    ExecCheck,
    HttpCheck,
    ProbeConfig,
    TcpCheck,
    parse_status_range,
)


def test_design_example_exec_as_a_bare_list() -> None:
    cfg = ProbeConfig.from_spec(
        {"exec": ["pg_isready", "-h", "127.0.0.1"], "period": "2s", "timeout": "1s",
         "failureThreshold": 3}
    )  # fmt: skip
    assert cfg == ProbeConfig(ExecCheck(("pg_isready", "-h", "127.0.0.1")), 2.0, 1.0, 3, 0.0)
    assert ProbeConfig.from_spec({"exec": {"command": ["true"]}}).check == ExecCheck(("true",))


def test_tcp_and_http_shapes() -> None:
    assert ProbeConfig.from_spec({"tcp": {"port": 5432}}).check == TcpCheck(5432, "127.0.0.1")
    http = ProbeConfig.from_spec({"http": {"port": 8080, "path": "/health"}}).check
    assert http == HttpCheck("http://127.0.0.1:8080/health", (200, 399))
    https = ProbeConfig.from_spec({"http": {"url": "https://[::1]:8443/h", "expectStatus": 204}})
    assert https.check == HttpCheck("https://[::1]:8443/h", (204, 204))
    v6 = ProbeConfig.from_spec({"http": {"port": 80, "host": "::1"}}).check
    assert v6 == HttpCheck("http://[::1]:80/", (200, 399))


def test_status_ranges() -> None:
    assert parse_status_range("200-399", "f") == (200, 399)
    assert parse_status_range(" 503 ", "f") == (503, 503)
    for bad in ("399-200", "2xx", 42, "200-700"):
        with pytest.raises(ConfigError, match=r"^f: "):
            parse_status_range(bad, "f")


@pytest.mark.parametrize(
    ("spec", "message"),
    [({}, "exactly one of tcp, http, exec; got none"),
     ({"tcp": {"port": 1}, "exec": ["true"]}, "got tcp, exec"),
     ({"tcp": {"port": 70000}}, r"probe\.tcp\.port: 70000 is not a TCP port"),
     ({"tcp": {}}, r"probe\.tcp\.port"),
     ({"http": {"url": "ftp://x/"}}, r"probe\.http\.url"),
     ({"http": {"url": "http://a/", "port": 80}}, "either url, or port"),
     ({"http": {"port": 80, "path": "health"}}, "must start with '/'"),
     ({"exec": "pg_isready -h x"}, "list of arguments"),
     ({"tcp": {"port": 1}, "period": "1s", "timeout": "2s"}, "longer than probe.period"),
     ({"tcp": {"port": 1}, "failureThreshold": 0}, r"probe\.failureThreshold"),
     ({"tcp": {"port": 1}, "perod": "1s"}, r"unknown key\(s\) perod")],
)  # fmt: skip
def test_probe_errors(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ProbeConfig.from_spec(spec)
