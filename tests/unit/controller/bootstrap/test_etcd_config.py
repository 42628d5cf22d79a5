"""The etcd member's settings: its command line and the checks of its config."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from controller.bootstrap.etcd_config import (
    EtcdMemberConfig,
    EtcdStartError,
    EtcdTLS,
    check_config,
    etcd_args,
    etcd_timing,
)

TLS = EtcdTLS("/p/ca.crt", "/p/s.crt", "/p/s.key", "/p/c.crt", "/p/c.key")


def cfg(**kw: object) -> EtcdMemberConfig:
    base: dict[str, object] = dict(
        name="a",
        client_urls=("https://10.0.0.1:2379",),
        peer_url="https://10.0.0.1:2380",
        tls=TLS,
        initial_cluster="a=https://10.0.0.1:2380",
        initial_cluster_token="tok",
    )
    base.update(kw)
    return EtcdMemberConfig(**base)  # type: ignore[arg-type]


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_args_use_tls_everywhere_and_fast_timing() -> None:
    args = etcd_args(cfg(), "/usr/bin/etcd")
    assert args[0] == "/usr/bin/etcd"
    assert "--client-cert-auth" in args and "--peer-client-cert-auth" in args
    assert flag(args, "--peer-trusted-ca-file") == "/p/ca.crt"
    assert flag(args, "--heartbeat-interval") == "50"
    assert flag(args, "--election-timeout") == "250"
    assert flag(args, "--max-txn-ops") == "20000"
    assert flag(args, "--max-request-bytes") == str(16 * 1024 * 1024)
    assert flag(args, "--data-dir") == "/var/lib/vigil/etcd"
    assert flag(args, "--initial-cluster-state") == "new"
    assert "--force-new-cluster" not in args


def test_force_new_cluster_drops_initial_flags() -> None:
    args = etcd_args(cfg(), "etcd", force_new_cluster=True)
    assert "--force-new-cluster" in args
    assert not any(a.startswith("--initial-cluster") for a in args)


def test_log_beside_data_dir() -> None:
    assert cfg(data_dir=Path("/d/etcd")).log_path == Path("/d/etcd.log")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"election_ms": 100}, "at least 5x"),
        ({"client_urls": ("http://10.0.0.1:2379",)}, "https://HOST:PORT"),
        ({"peer_url": "https://10.0.0.1"}, "https://HOST:PORT"),
        ({"initial_cluster": "b=https://x:2380"}, "does not name this member"),
        ({"client_urls": ()}, "at least one client URL"),
    ],
)
def test_bad_config(kw: dict[str, object], match: str) -> None:
    with pytest.raises(EtcdStartError, match=match):
        check_config(cfg(**kw))


@pytest.mark.parametrize(
    ("deadtime_ms", "expected"),
    [(900, (50, 250)), (5000, (50, 250)), (400, (40, 200)), (250, (25, 125)), (100, (20, 100))],
)
def test_etcd_timing_follows_the_deadtime_within_bounds(
    deadtime_ms: int, expected: tuple[int, int]
) -> None:
    heartbeat, election = etcd_timing(timedelta(milliseconds=deadtime_ms))
    assert (heartbeat, election) == expected
    check_config(cfg(heartbeat_ms=heartbeat, election_ms=election))  # etcd accepts it
