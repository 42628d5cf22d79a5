"""Legacy names, times and lines as Vigil spells them."""

from __future__ import annotations

import pytest

from controller.importers.durations import heartbeat_time, tenths
from controller.importers.names import to_name, unique
from controller.importers.pcmk_durations import duration, to_ms
from controller.importers.pcmk_model import INFINITY, parse_score
from controller.importers.result import ImportFailed, Where
from controller.importers.sources import logical_lines

W = Where("f", 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2", "2s"), ("500ms", "500ms"), ("1.5", "1500ms"), ("30s", "30s"), ("0.2", "200ms")],
)
def test_heartbeat_times(value: str, expected: str) -> None:
    assert heartbeat_time(value, W, "keepalive") == expected


@pytest.mark.parametrize("value", ["soon", "-1", "1.0001", "2m"])
def test_heartbeat_times_refused(value: str) -> None:
    with pytest.raises(ImportFailed, match="f:1: keepalive"):
        heartbeat_time(value, W, "keepalive")


def test_drbd_tenths_and_pacemaker_times() -> None:
    assert tenths("60", W, "timeout") == "6s" and tenths("5", W, "timeout") == "500ms"
    assert [to_ms(v, W, "t") for v in ("20s", "60", "1min", "500ms", "PT1M30S", "2h")] == [
        20_000,
        60_000,
        60_000,
        500,
        90_000,
        7_200_000,
    ]
    assert duration(90_000) == "90s" and duration(1500) == "1500ms"
    with pytest.raises(ImportFailed, match="is not a time"):
        to_ms("forever", W, "timeout")


def test_scores() -> None:
    assert parse_score("INFINITY", W) == INFINITY and parse_score("-inf", W) == -INFINITY
    assert parse_score("+100", W) == 100 and parse_score("99999999", W) == INFINITY
    with pytest.raises(ImportFailed, match="score 'high'"):
        parse_score("high", W)


def test_names() -> None:
    assert to_name("host_M.example") == "host-m-example"
    assert to_name("___") is None
    taken = {"web"}
    assert unique("web", taken) == "web-2" and unique("web", taken) == "web-3"


def test_logical_lines_join_continuations_and_keep_the_first_line_number() -> None:
    text = "# comment\nnode a \\\n  b\n\nkeepalive 2 # why\n"
    lines = logical_lines(text, "ha.cf")
    assert [(str(line.where), line.text) for line in lines] == [
        ("ha.cf:2", "node a b"),
        ("ha.cf:5", "keepalive 2"),
    ]
    crm = logical_lines("# c\nlocation l x rule 10: #uname eq a\n", "c", inline_comments=False)
    assert [line.text for line in crm] == ["location l x rule 10: #uname eq a"]
