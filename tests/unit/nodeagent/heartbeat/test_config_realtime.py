from __future__ import annotations

import subprocess
import sys

import pytest

from controller.api.cluster import ClusterSpec
from nodeagent.heartbeat.config import HeartbeatConfig, PeerAddress, from_cluster_spec
from nodeagent.heartbeat.timing import HeartbeatTiming

SPEC = ClusterSpec.model_validate(
    {
        "nodes": [
            {
                "name": "host-m",
                "address": "192.168.1.11",
                "heartbeat": [
                    {"udp": {"interface": "eth1", "peer": "192.168.2.12"}},
                    {"serial": {"device": "/dev/ttyS0"}},
                ],
            },
            {"name": "host-s", "address": "192.168.1.12"},
            {"name": "witness", "address": "192.168.1.13", "role": "witness"},
        ],
        "timing": {"keepalive": "50ms", "warntime": "150ms", "deadtime": "250ms", "initdead": "5s"},
    }
)


def test_config_from_cluster_spec() -> None:
    cfg = from_cluster_spec(SPEC, "host-m", "pg-cluster", b"key")
    assert cfg.timing == HeartbeatTiming(0.05, 0.15, 0.25, 5.0)
    assert cfg.members == ["host-m", "host-s", "witness"]
    main, extra = cfg.link_configs()
    assert (main.bind, main.port) == ("192.168.1.11", 694)
    assert main.destinations == (("192.168.1.12", 694), ("192.168.1.13", 694))
    assert extra.interface == "eth1" and extra.destinations == (("192.168.2.12", 694),)
    assert extra.bind == "0.0.0.0"
    assert [(s.name, s.device, s.baud) for s in cfg.serial_links] == [
        ("serial0", "/dev/ttyS0", 115200)
    ]
    assert from_cluster_spec(SPEC, "host-s", "pg-cluster", b"key").serial_links == ()
    with pytest.raises(ValueError, match="not in the Cluster spec"):
        from_cluster_spec(SPEC, "nobody", "pg-cluster", b"key")


def test_config_rejects_self_as_peer_and_empty_key() -> None:
    t = HeartbeatTiming(0.05, 0.15, 0.25, 5.0)
    with pytest.raises(ValueError, match="not this node"):
        HeartbeatConfig("a", "c", b"k", t, "10.0.0.1", (PeerAddress("a", "10.0.0.1"),))
    with pytest.raises(ValueError, match="key is empty"):
        HeartbeatConfig("a", "c", b"", t, "10.0.0.1", (PeerAddress("b", "10.0.0.2"),))


def test_make_realtime_reports_what_it_did() -> None:
    # In a child process: the test runner itself must not become real-time.
    code = (
        "import os, subprocess, sys; from nodeagent.realtime import make_realtime\n"
        "print(make_realtime(5))\n"
        "policy = os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK\n"
        "print(policy == os.SCHED_RR, os.getpriority(os.PRIO_PROCESS, 0))\n"
        "child = subprocess.run([sys.executable, '-c', 'import os; "
        "print(os.sched_getscheduler(0))'], capture_output=True, text=True).stdout\n"
        "print(int(child) == os.SCHED_OTHER)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    sentence, state, child_normal = out.stdout.strip().splitlines()
    assert sentence.startswith("scheduling: ")
    is_rr, _nice = state.split()
    if "SCHED_RR priority 5" in sentence:
        assert is_rr == "True"
        # What the agent starts (services, etcd) must not inherit real-time priority.
        assert child_normal == "True"
    else:
        assert "nice" in sentence and is_rr == "False"


def test_make_realtime_falls_back_to_nice_when_refused() -> None:
    code = (
        "import os; from nodeagent.realtime import make_realtime\n"
        "def refuse(*a): raise PermissionError(1, 'Operation not permitted')\n"
        "os.sched_setscheduler = refuse\n"
        "print(make_realtime()); print(os.getpriority(os.PRIO_PROCESS, 0))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    sentence, nice = out.stdout.strip().splitlines()
    assert "SCHED_RR refused (Operation not permitted)" in sentence
    assert int(nice) <= -10 or "refused too" in sentence
