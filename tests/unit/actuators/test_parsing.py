from __future__ import annotations

from datetime import timedelta

import pytest

from nodeagent.actuators.parsing import (
    ConfigError,
    parse_duration,
    require_argv,
    require_str_map,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("200ms", 0.2), ("10s", 10.0), ("1.5m", 90.0), ("1h", 3600.0), ("3", 3.0), (2, 2.0),
     (timedelta(milliseconds=250), 0.25)],
)  # fmt: skip
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "f") == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["10 parsecs", "-1s", "", True, None, [1]])
def test_bad_durations_name_the_field(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"^ip\.arp\.interval: "):
        parse_duration(bad, "ip.arp.interval")


def test_argv_refuses_a_shell_string() -> None:
    with pytest.raises(ConfigError, match="list of arguments"):
        require_argv("sleep 10", "service.exec.command")
    with pytest.raises(ConfigError, match=r"service.exec.command\[1\]"):
        require_argv(["sleep", 10], "service.exec.command")
    assert require_argv(["sleep", "10"], "c") == ("sleep", "10")


def test_str_map_stringifies_scalars() -> None:
    assert require_str_map({"a": 1, "b": True, "c": "x"}, "p") == {"a": "1", "b": "true", "c": "x"}
    with pytest.raises(ConfigError, match=r"p\.a: expected a scalar"):
        require_str_map({"a": [1]}, "p")
