"""node.yaml: written by init, read by the agent, turned into an EtcdMemberConfig."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.api.cluster import Cluster
from controller.api.errors import InputError
from controller.bootstrap.init import init_cluster, read_cluster
from controller.bootstrap.node_config import (
    format_initial_cluster,
    load_node_config,
    parse_initial_cluster,
    update_client_endpoints,
)

MANIFEST = """\
apiVersion: ha.vigil.dev/v1alpha1
kind: Cluster
metadata: {name: pg-cluster}
spec:
  nodes:
    - {name: host-m, address: 192.168.1.11}
    - {name: host-s, address: 192.168.1.12}
    - {name: witness, address: 192.168.1.13, role: witness}
"""


def _cluster(tmp_path: Path) -> tuple[Cluster, dict[str, object]]:
    f = tmp_path / "cluster.yaml"
    f.write_text(MANIFEST)
    return read_cluster(str(f))


def _init(tmp_path: Path, node: str = "host-m") -> Path:
    cluster, doc = _cluster(tmp_path)
    init_cluster(
        cluster, doc, node,
        node_config=tmp_path / "node.yaml", client_config=tmp_path / "client.yaml",
        pki_dir=tmp_path / "pki", data_dir=tmp_path / "etcd",
    )  # fmt: skip
    return tmp_path / "node.yaml"


def test_init_writes_node_and_client_config(tmp_path: Path) -> None:
    path = _init(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    cfg = load_node_config(path)
    assert (cfg.node, cfg.cluster, cfg.address) == ("host-m", "pg-cluster", "192.168.1.11")
    assert cfg.etcd.initial_cluster == "host-m=https://192.168.1.11:2380"
    assert cfg.etcd.client_urls == ["https://192.168.1.11:2379"]
    assert cfg.join_listen == "192.168.1.11:2378"
    assert cfg.seed_cluster is not None and cfg.seed_cluster["metadata"] == {"name": "pg-cluster"}
    member = cfg.member_config(log_file=tmp_path / "x.log")
    assert member.name == "host-m" and member.initial_cluster_state == "new"
    assert member.tls.client_cert.endswith("node-client.crt")
    client = yaml.safe_load((tmp_path / "client.yaml").read_text())
    assert client["cluster"] == "pg-cluster"
    assert client["tls"]["cert"].endswith("admin.crt")
    # The agent keeps that file's endpoints current: it needs to know where it is.
    assert cfg.client_config == str(tmp_path / "client.yaml")


def test_client_endpoints_are_rewritten_only_when_members_differ(tmp_path: Path) -> None:
    _init(tmp_path)
    client = tmp_path / "client.yaml"
    before = yaml.safe_load(client.read_text())
    assert before["endpoints"] == ["https://192.168.1.11:2379"]
    both = ["https://192.168.1.11:2379", "https://192.168.1.12:2379"]
    assert update_client_endpoints(client, both)
    after = yaml.safe_load(client.read_text())
    assert after == {**before, "endpoints": both}  # cluster and certificates kept
    assert client.stat().st_mode & 0o777 == 0o600
    assert not update_client_endpoints(client, both)
    assert not update_client_endpoints(tmp_path / "absent.yaml", both)
    assert not (tmp_path / "absent.yaml").exists()


def test_init_refuses_unknown_node_and_second_init(tmp_path: Path) -> None:
    cluster, doc = _cluster(tmp_path)
    with pytest.raises(InputError, match="'host-x' is not in Cluster 'pg-cluster'.*host-m"):
        init_cluster(
            cluster, doc, "host-x",
            node_config=tmp_path / "node.yaml", client_config=tmp_path / "client.yaml",
            pki_dir=tmp_path / "pki", data_dir=tmp_path / "etcd",
        )  # fmt: skip
    _init(tmp_path)
    with pytest.raises(InputError, match="already initialised"):
        _init(tmp_path)


def test_read_cluster_needs_exactly_one(tmp_path: Path) -> None:
    f = tmp_path / "two.yaml"
    f.write_text(MANIFEST + "---\n" + MANIFEST)
    with pytest.raises(InputError, match="exactly one `kind: Cluster`"):
        read_cluster(str(f))


def test_load_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="run `ha cluster init`"):
        load_node_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("node: a\ncluster: b\n")
    with pytest.raises(InputError, match="address"):
        load_node_config(bad)


def test_initial_cluster_strings() -> None:
    members = {"b": "https://h2:2380", "a": "https://h1:2380"}
    text = format_initial_cluster(members)
    assert text == "a=https://h1:2380,b=https://h2:2380"
    assert parse_initial_cluster(text) == members
    with pytest.raises(ValueError, match="NAME=PEER_URL"):
        parse_initial_cluster("a")


def test_etcd_elects_within_the_clusters_deadtime(tmp_path: Path) -> None:
    cfg = load_node_config(_init(tmp_path))  # shipped timings: deadtime 900 ms
    assert (cfg.etcd.heartbeat_ms, cfg.etcd.election_ms) == (50, 250)
    fast = tmp_path / "fast"
    fast.mkdir()
    (fast / "cluster.yaml").write_text(
        MANIFEST + "  timing: {keepalive: 50ms, warntime: 150ms, deadtime: 250ms}\n"
    )
    cluster, doc = read_cluster(str(fast / "cluster.yaml"))
    init_cluster(
        cluster, doc, "host-m",
        node_config=fast / "node.yaml", client_config=fast / "client.yaml",
        pki_dir=fast / "pki", data_dir=fast / "etcd",
    )  # fmt: skip
    etcd = load_node_config(fast / "node.yaml").etcd
    # etcd waits up to twice its election timeout before a vote: still under the deadtime.
    assert (etcd.heartbeat_ms, etcd.election_ms) == (25, 125)


def test_metrics_listen_on_loopback_by_default_and_as_configured(tmp_path: Path) -> None:
    path = _init(tmp_path)
    cfg = load_node_config(path)
    assert cfg.metrics.enabled and cfg.metrics.address() == ("127.0.0.1", 9464)
    data = yaml.safe_load(path.read_text())
    data["metrics"] = {"listen": "[::1]:9100", "enabled": False}
    path.write_text(yaml.safe_dump(data))
    cfg = load_node_config(path)
    assert cfg.metrics.address() == ("::1", 9100) and not cfg.metrics.enabled


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"listen": "localhost:9464"}, "metrics.listen: .*not an IP address"),
        ({"listen": "127.0.0.1"}, "metrics.listen: .*HOST:PORT"),
        ({"listen": "127.0.0.1:0"}, "metrics.listen: .*port '0'"),
        ({"listen": "127.0.0.1:70000"}, "metrics.listen: .*port '70000'"),
        ({"listen": ":9464"}, "metrics.listen: .*HOST:PORT"),
        ({"port": 9464}, "metrics.port"),
    ],
)
def test_a_bad_metrics_setting_is_refused_by_name(
    tmp_path: Path, metrics: dict[str, object], message: str
) -> None:
    path = _init(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["metrics"] = metrics
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match=message):
        load_node_config(path)
