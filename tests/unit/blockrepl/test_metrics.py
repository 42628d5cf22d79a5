"""Prometheus exposition of replica status, resync speed window, /metrics endpoint."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from prometheus_client import parser  # a dev dependency

from blockrepl.metrics import CONTENT_TYPE, escape_label, format_value, render
from blockrepl.metrics_http import MetricsServer, respond
from blockrepl.replication.syncrate import RateWindow


def status(**over: Any) -> dict[str, Any]:
    st: dict[str, Any] = {
        "volume": "vol0",
        "role": "Primary",
        "connection": "SyncSource",
        "disk": "UpToDate",
        "peer_role": "Secondary",
        "peer_disk": "Inconsistent",
        "protocol": "C",
        "resync_rate": 8 * 1024 * 1024,
        "sync": {
            "kind": "SyncSource",
            "total_bytes": 1000,
            "done_bytes": 250,
            "percent": 25,
            "rate_bytes_per_s": 125,
            "eta_seconds": 6.0,
        },
        "last_sync": {
            "kind": "SyncSource",
            "total_bytes": 4096,
            "payload_bytes": 4096,
            "wire_bytes_out": 5000,
            "wire_bytes_in": 100,
            "seconds": 0.25,
        },
        "out_of_sync_bytes": 750,
        "generation": "ignored",
        "wire": {"bytes_in": 10, "bytes_out": 20, "connections": 2},
        "repl_port": 7788,
        "last_error": "",
    }
    st.update(over)
    return st


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted({"volume": "vol0", **labels}.items())))]


def test_every_family_has_help_and_type_and_parses() -> None:
    text = render(status())
    fams = list(parser.text_string_to_metric_families(text))
    names = {f.name for f in fams}
    assert {"blockrepl_role", "blockrepl_connection_state", "blockrepl_out_of_sync_bytes"} <= names
    for line in text.splitlines():
        if not line.startswith("#"):
            name = line.split("{", 1)[0]
            assert f"# TYPE {name} " in text, name
            float(line.rsplit(" ", 1)[1])
    counters = {f.name for f in fams if f.type == "counter"}
    # the client library strips _total from the family name of a counter
    assert counters == {
        "blockrepl_wire_received_bytes",
        "blockrepl_wire_sent_bytes",
        "blockrepl_connections",
    }


def test_states_are_one_hot_with_all_known_states_listed() -> None:
    text = render(status())
    assert value(text, "blockrepl_role", role="Primary") == 1
    assert value(text, "blockrepl_role", role="Secondary") == 0
    conn = {k: v for k, v in samples(text).items() if k[0] == "blockrepl_connection_state"}
    assert len(conn) >= 5 and sum(conn.values()) == 1
    assert value(text, "blockrepl_connection_state", state="SyncSource") == 1
    assert value(text, "blockrepl_disk_state", state="UpToDate") == 1
    assert value(text, "blockrepl_disk_state", state="Diskless") == 0
    assert value(text, "blockrepl_peer_disk_state", state="Inconsistent") == 1


def test_unknown_state_gets_its_own_sample() -> None:
    text = render(status(connection="Disconnecting"))
    assert value(text, "blockrepl_connection_state", state="Disconnecting") == 1
    assert value(text, "blockrepl_connection_state", state="Connected") == 0


def test_numbers() -> None:
    text = render(status())
    assert value(text, "blockrepl_out_of_sync_bytes") == 750
    assert value(text, "blockrepl_sync_done_bytes") == 250
    assert value(text, "blockrepl_sync_rate_bytes_per_second") == 125
    assert value(text, "blockrepl_sync_eta_seconds") == 6.0
    assert value(text, "blockrepl_wire_sent_bytes_total") == 20
    assert value(text, "blockrepl_connections_total") == 2
    assert value(text, "blockrepl_last_sync_wire_bytes") == 5100
    assert value(text, "blockrepl_last_sync_duration_seconds") == 0.25
    assert value(text, "blockrepl_resync_rate_limit_bytes_per_second") == 8 * 1024 * 1024


def test_disconnected_no_sync_yet() -> None:
    text = render(
        status(connection="Connecting", peer_role=None, peer_disk=None, sync=None, last_sync=None)
    )
    assert value(text, "blockrepl_peer_role", role="Unknown") == 1
    assert value(text, "blockrepl_peer_disk_state", state="DUnknown") == 1
    assert value(text, "blockrepl_sync_active") == 0
    assert value(text, "blockrepl_sync_rate_bytes_per_second") == 0
    assert math.isnan(value(text, "blockrepl_last_sync_payload_bytes"))


def test_sync_not_measured_yet_is_nan_not_zero() -> None:
    sync = {"kind": "SyncTarget", "total_bytes": 10, "done_bytes": 0, "percent": 0}
    text = render(status(sync=dict(sync, rate_bytes_per_s=None, eta_seconds=None)))
    assert math.isnan(value(text, "blockrepl_sync_eta_seconds"))
    assert 'blockrepl_sync_eta_seconds{volume="vol0"} NaN' in text


def test_label_escaping() -> None:
    name = 'we"ird\\vol\nx'
    text = render(status(volume=name))
    assert escape_label(name) == 'we\\"ird\\\\vol\\nx'
    got = {k[1] for k in samples(text) if k[0] == "blockrepl_out_of_sync_bytes"}
    assert got == {(("volume", name),)}


def test_two_volumes_share_family_blocks() -> None:
    text = render(status(), status(volume="vol1", role="Secondary"))
    assert text.count("# TYPE blockrepl_role gauge") == 1
    assert value(text, "blockrepl_role", role="Secondary") == 0
    assert samples(text)[("blockrepl_role", (("role", "Secondary"), ("volume", "vol1")))] == 1


def test_bad_number_is_named() -> None:
    with pytest.raises(TypeError, match="'lots'"):
        render(status(out_of_sync_bytes="lots"))


def test_format_value() -> None:
    assert format_value(3.0) == "3"
    assert format_value(0.5) == "0.5"
    assert format_value(math.nan) == "NaN"
    assert format_value(-math.inf) == "-Inf"


def test_rate_window_tracks_recent_speed_and_stalls() -> None:
    w = RateWindow(100.0, window=10.0, min_span=1.0)
    w.add(100.01, 1_000_000)  # the opening burst is not a speed
    assert w.rate(100.5) is None
    w = RateWindow(100.0, window=10.0)
    for i in range(1, 21):  # 1000 B/s for 20 s
        w.add(100.0 + i, 1000 * i)
    assert w.rate(120.0) == pytest.approx(1000)
    assert w.eta(120.0, 5000) == pytest.approx(5.0)
    for i in range(21, 26):  # then 5000 B/s: the window forgets the slow start
        w.add(100.0 + i, 20000 + 5000 * (i - 20))
    assert w.rate(125.0) == pytest.approx((45000 - 15000) / 10)
    assert w.rate(200.0) == 0.0  # stalled for a long time
    assert w.eta(200.0, 1) is None
    assert w.eta(200.0, 0) == 0.0
    with pytest.raises(ValueError, match="window"):
        RateWindow(0.0, window=0)
    with pytest.raises(ValueError, match="min_span"):
        RateWindow(0.0, window=1, min_span=2)


def test_respond_routes() -> None:
    def body() -> str:
        return "x 1\n"

    assert respond(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", body) == (200, b"x 1\n", True)
    assert respond(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", body)[0] == 200
    assert respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", body)[2] is False
    assert respond(b"GET / HTTP/1.1\r\n\r\n", body)[0] == 404
    assert respond(b"POST /metrics HTTP/1.1\r\n\r\n", body)[0] == 405
    assert respond(b"garbage\r\n\r\n", body)[0] == 400


async def test_metrics_server_over_loopback() -> None:
    srv = MetricsServer(lambda: render(status()))
    port = await srv.start("127.0.0.1", 0)
    try:

        async def get(path: str) -> tuple[bytes, bytes]:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = await r.read()
            w.close()
            head, _, body = data.partition(b"\r\n\r\n")
            return head, body

        head, body = await get("/metrics")
        assert head.startswith(b"HTTP/1.1 200 ") and CONTENT_TYPE.encode() in head
        assert value(body.decode(), "blockrepl_out_of_sync_bytes") == 750
        head, _ = await get("/nope")
        assert head.startswith(b"HTTP/1.1 404 ")
    finally:
        await srv.stop()
