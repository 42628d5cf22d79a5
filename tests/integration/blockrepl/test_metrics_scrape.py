"""Prometheus metrics of two real replicas: scraped over HTTP inside each namespace.

The scrape runs ``python -c urllib...`` through ``ip netns exec`` because each replica's
``--metrics-listen`` is the loopback of its own namespace. The exposition is checked with
a small parser that enforces the text-format rules the test relies on (HELP/TYPE before
samples, every sample typed, label syntax, float values), not with the library it tests.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .nbdclient import NbdClient
from .replicas import Replica, replica_pair, shm_dir, synced, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root + ip"),
]
METRICS_PORT = 9469
MiB = 1024 * 1024
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"(,|$)')


def parse_exposition(text: str) -> Samples:
    assert text.endswith("\n"), "exposition must end with a newline"
    types: dict[str, str] = {}
    helped: set[str] = set()
    out: Samples = {}
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# HELP "):
            helped.add(line.split(" ", 3)[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter", "untyped"), f"line {n}: type {kind}"
            assert name not in types, f"line {n}: second TYPE for {name}"
            assert name in helped, f"line {n}: TYPE for {name} without HELP before it"
            types[name] = kind
            continue
        assert line and not line.startswith("#"), f"line {n}: unexpected {line!r}"
        m = _SAMPLE.match(line)
        assert m, f"line {n}: not a sample: {line!r}"
        name, labels_text, value = m.group(1), m.group(3) or "", m.group(4)
        assert name in types, f"line {n}: sample {name} has no TYPE line"
        if types[name] == "counter":
            assert name.endswith("_total"), f"line {n}: counter {name} without _total"
        labels = []
        pos = 0
        while pos < len(labels_text):
            lm = _LABEL.match(labels_text, pos)
            assert lm, f"line {n}: bad labels at {labels_text[pos:]!r}"
            raw = lm.group(2)
            unescaped = re.sub(r"\\(.)", lambda x: "\n" if x.group(1) == "n" else x.group(1), raw)
            labels.append((lm.group(1), unescaped))
            pos = lm.end()
        key = (name, frozenset(labels))
        assert key not in out, f"line {n}: duplicate series {key}"
        out[key] = float(value)  # NaN/+Inf/-Inf parse too
    return out


def scrape(r: Replica, path: str = "/metrics") -> tuple[int, str]:
    code = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n"
        f"    resp = urllib.request.urlopen('http://127.0.0.1:{METRICS_PORT}{path}', timeout=5)\n"
        "    print(resp.status, resp.headers['Content-Type'], sep='|')\n"
        "    sys.stdout.write(resp.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code, e.headers['Content-Type'], sep='|')\n"
    )
    res = subprocess.run(
        ["ip", "netns", "exec", r.ns, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    head, _, body = res.stdout.partition("\n")
    status, ctype = head.split("|")
    if status == "200":
        assert ctype == "text/plain; version=0.0.4; charset=utf-8", ctype
    return int(status), body


def metrics(r: Replica) -> Samples:
    status, body = scrape(r)
    assert status == 200
    return parse_exposition(body)


def get(s: Samples, name: str, **labels: str) -> float:
    return s[("blockrepl_" + name, frozenset({"volume": "blockrepl", **labels}.items()))]


def state(s: Samples, name: str, label: str) -> str:
    on = [dict(k[1])[label] for k, v in s.items() if k[0] == "blockrepl_" + name and v == 1]
    assert len(on) == 1, (name, on)
    return on[0]


async def write_blocks(sock: str, offsets: list[int], length: int) -> None:
    client = await NbdClient.connect(unix=sock)
    try:
        await asyncio.gather(*(client.write(o, os.urandom(length)) for o in offsets))
        await client.flush()
    finally:
        await client.close()


def test_metrics_follow_disconnect_writes_and_resync(tmp_path: Path) -> None:
    extra = ("--metrics-listen", f"127.0.0.1:{METRICS_PORT}")
    with shm_dir() as shm, replica_pair(shm, "64M", extra=extra) as (net, a, b, _s):
        sa, sb = metrics(a), metrics(b)
        assert state(sa, "role", "role") == "Primary" and state(sb, "role", "role") == "Secondary"
        assert state(sa, "connection_state", "state") == "Connected"
        assert state(sb, "disk_state", "state") == "UpToDate"
        assert state(sa, "peer_role", "role") == "Secondary"
        assert get(sa, "out_of_sync_bytes") == 0
        assert get(sa, "connections_total") == 1
        # the initial full sync went A -> B
        assert get(sa, "last_sync_payload_bytes") > 32 * MiB
        assert get(sb, "wire_received_bytes_total") >= get(sa, "last_sync_payload_bytes")
        sent_before = get(sa, "wire_sent_bytes_total")
        assert scrape(a, "/")[0] == 404 and scrape(a, "/metricsx")[0] == 404

        # The CLI prints the same exposition from the control socket.
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "blockrepl.cli",
                "status",
                "--control",
                a.ctl,
                "-o",
                "prometheus",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        assert state(parse_exposition(cli.stdout), "role", "role") == "Primary"

        net.link(0, False)
        wait_for(
            lambda: state(metrics(a), "connection_state", "state") != "Connected", 15, "A: lost"
        )
        down = metrics(a)
        assert state(down, "peer_role", "role") == "Unknown"
        assert state(down, "peer_disk_state", "state") == "DUnknown"

        first = [i * 64 * 1024 for i in range(0, 128, 2)]  # 64 x 64 KiB = 4 MiB
        second = [i * 64 * 1024 for i in range(1, 128, 2)]
        asyncio.run(write_blocks(a.sock, first, 64 * 1024))
        after_first = get(metrics(a), "out_of_sync_bytes")
        assert after_first == 4 * MiB
        asyncio.run(write_blocks(a.sock, second, 64 * 1024))
        assert get(metrics(a), "out_of_sync_bytes") == 8 * MiB

        # Slow the resync so it can be watched: 8 MiB at 4 MiB/s.
        assert a.control("set-resync-rate", rate=4 * MiB)["ok"]
        assert get(metrics(a), "resync_rate_limit_bytes_per_second") == 4 * MiB
        net.link(0, True)
        seen: list[Samples] = []

        def syncing_measured() -> bool:
            s = metrics(a)
            if get(s, "sync_active") == 1:
                seen.append(s)
            return get(s, "sync_active") == 1 and get(s, "sync_rate_bytes_per_second") > 0

        wait_for(syncing_measured, 30, "a measured resync in the metrics")
        mid = seen[-1]
        assert state(mid, "connection_state", "state") == "SyncSource"
        assert get(mid, "sync_total_bytes") == 8 * MiB
        assert 0 < get(mid, "sync_done_bytes") <= 8 * MiB
        rate, eta = get(mid, "sync_rate_bytes_per_second"), get(mid, "sync_eta_seconds")
        print(f"mid-resync: rate {rate / MiB:.2f} MiB/s, eta {eta} s")
        assert rate <= 7 * MiB  # limit 4 MiB/s + the 1 MiB opening burst; not the burst alone
        assert not math.isnan(eta) and 0 <= eta < 30
        tb = metrics(b)
        assert state(tb, "connection_state", "state") == "SyncTarget"

        wait_for(lambda: synced(a) and synced(b), 60, "resync")
        end = metrics(a)
        assert get(end, "out_of_sync_bytes") == 0
        assert get(end, "sync_active") == 0 and get(end, "sync_eta_seconds") == 0
        assert get(end, "connections_total") == 2
        assert get(end, "last_sync_payload_bytes") == 8 * MiB
        assert get(end, "last_sync_duration_seconds") >= 1.0  # rate limited
        assert get(end, "wire_sent_bytes_total") - sent_before >= 8 * MiB
        assert state(metrics(b), "disk_state", "state") == "UpToDate"
