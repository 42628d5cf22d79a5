"""ha.cf + haresources + authkeys, in the shapes of the legacy articles."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.api.errors import InputError
from controller.importers.check import check_documents
from controller.importers.emit import render
from controller.importers.heartbeat import import_heartbeat
from controller.importers.result import ImportFailed, ImportResult
from tests.unit.controller.importers.dryrun import comments, dry_run, fences

FIXTURES = Path(__file__).parent / "fixtures"
SCHOOL = {"serv-a": ["130.66.201.1"], "serv-b": ["130.66.201.2"]}
PG = {"pg1": ["192.168.1.11", "10.0.0.1"], "pg2": ["192.168.1.12", "10.0.0.2"]}


def _import(paths: list[Path], addresses: dict[str, list[str]]) -> tuple[ImportResult, str]:
    result = import_heartbeat(paths, "legacy", addresses)
    check_documents(result)
    return result, render(result.documents, result.loose)


def test_school_article_heartbeat_and_drbd_07_import_and_apply() -> None:
    school = FIXTURES / "school"
    result, text = _import([school, school / "drbd.conf"], SCHOOL)
    created = dry_run(text + fences("serv-a", "serv-b"))
    assert "resourcegroup/cyrus" in created and "replicatedvolume/user" in created
    group = result.find("ResourceGroup", "cyrus")
    assert group is not None
    resources = group.data["spec"]["resources"]
    assert [next(iter(r)) for r in resources] == [
        "volume",
        "filesystem",
        "ip",
        "service",
        "service",
    ]
    assert resources[1]["filesystem"]["device"] == "volume:user"
    assert group.data["spec"]["placement"]["stickiness"] == 0  # auto_failback on
    cluster = result.find("Cluster", "legacy")
    assert cluster is not None
    assert cluster.data["spec"]["nodes"][0]["heartbeat"] == [
        {"serial": {"device": "/dev/ttyS0", "baud": 19200}}
    ]
    # Every element not carried over exactly is named in a comment.
    for named in (
        "wartime 6",
        "MailTo::root",
        "eth0:0",
        "logfile local0",
        "incon-degr-cmd",
        "on-io-error panic",
        "al-extents 257",
        "bcast eth0",
        "crc",
    ):
        assert named in comments(text), named


def test_postgresql_article_two_paths_secret_kept_out_of_yaml() -> None:
    pg = FIXTURES / "pg"
    result, text = _import(
        [pg / "ha.cf", pg / "haresources", pg / "authkeys", pg / "drbd.conf"], PG
    )
    dry_run(text + fences("pg1", "pg2"))
    assert "s3cret-pg-cluster-key" not in text and "drbd-link-secret" not in text
    assert result.secrets["authkeys.key"] == b"s3cret-pg-cluster-key\n"  # key 2: `auth 2`
    assert result.secrets["pgdata.shared-secret"] == b"drbd-link-secret\n"
    cluster = result.find("Cluster", "legacy")
    assert cluster is not None
    assert cluster.data["spec"]["nodes"][0]["heartbeat"] == [
        {"udp": {"interface": "eth1", "peer": "10.0.0.2"}}
    ]
    volume = result.find("ReplicatedVolume", "pgdata")
    assert volume is not None
    assert volume.data["spec"]["splitBrain"]["afterSB1Pri"] == "discard-secondary"
    assert volume.data["spec"]["network"] == {"timeout": "6s", "keepalive": "10s"}


def test_heartbeat2_with_crm_imports_the_cluster_and_points_at_the_cib() -> None:
    result, text = _import(
        [FIXTURES / "crm_v2"], {"host_m": ["192.168.1.1"], "host-s": ["192.168.1.2"]}
    )
    assert [d.kind for d in result.documents] == ["Cluster"]
    assert "ha import pacemaker" in text and "renamed host-m" in text
    assert "Love" not in text
    dry_run(text + fences("host-m", "host-s"))


def _write(
    tmp: Path, hacf: str, haresources: str | None = None, authkeys: str | None = None
) -> Path:
    (tmp / "ha.cf").write_text(hacf)
    if haresources is not None:
        (tmp / "haresources").write_text(haresources)
    if authkeys is not None:
        (tmp / "authkeys").write_text(authkeys)
    return tmp


HACF = "keepalive 1\ndeadtime 5\nnode a\nnode b\n"
AB = {"a": ["10.1.0.1"], "b": ["10.1.0.2"]}


@pytest.mark.parametrize(
    ("hacf", "haresources", "authkeys", "error"),
    [
        (HACF, "c 10.1.0.9/24\n", None, "haresources:1: 'c' is not a node of ha.cf"),
        (HACF, "a 10.1.0.9\n", None, "has no prefix length"),
        (HACF, "a IPaddr::not-an-ip/24\n", None, "is not an IP address"),
        (HACF, "a 10.1.0.9/24 \\\n", None, "ends inside a line continued"),
        (HACF, "a drbddisk ::r0\n", None, "name the DRBD resource"),
        (HACF, "a Filesystem::/dev/sdb1::/srv\n", None, "does not guess the filesystem type"),
        (HACF, "a Filesystem::/dev/drbd0::/srv::ext4\n", None, "which DRBD resource"),
        (HACF, "a 10.1.0.9/24 $(reboot)\n", None, "is not a script name"),
        ("keepalive soon\nnode a\n", None, None, "ha.cf:1: keepalive 'soon' is not a time"),
        ("keepalive 1\n", None, None, "no `node` line"),
        ("node a\nnode b\nucast eth0 999.1.1.1\n", None, None, "ha.cf:3: ucast address"),
        ("node a\nnode b\nauto_failback maybe\n", None, None, "expected on, off or legacy"),
        (HACF, None, "auth 3\n1 sha1 x\n", "authkeys:1: auth 3: no key 3"),
        (HACF, None, "auth 1\n1 sha1\n", "sha1 needs a key"),
        (HACF, None, "1 md5 x\n", "no `auth N` line"),
        (HACF, None, "auth 1\n1 rot13 x\n", "method 'rot13'"),
    ],
)
def test_malformed_heartbeat_files_fail_naming_file_and_line(
    tmp_path: Path, hacf: str, haresources: str | None, authkeys: str | None, error: str
) -> None:
    _write(tmp_path, hacf, haresources, authkeys)
    with pytest.raises(ImportFailed) as exc:
        import_heartbeat([tmp_path], "legacy", AB)
    assert error in str(exc.value)
    assert str(tmp_path) in str(exc.value)


def test_a_node_without_address_is_reported_not_guessed(tmp_path: Path) -> None:
    _write(tmp_path, HACF)
    with pytest.raises(
        ImportFailed,
        match=r"ha.cf:4: ha.cf gives no address for node 'b'.*"
        r"--address b=IP",
    ):
        import_heartbeat([tmp_path], "legacy", {"a": ["10.1.0.1"]})
    with pytest.raises(InputError, match="'nowhere' is not an IP address"):
        import_heartbeat([tmp_path], "legacy", {"a": ["10.1.0.1"], "b": ["nowhere"]})


def test_timings_keep_heartbeats_defaults_when_unset(tmp_path: Path) -> None:
    _write(tmp_path, "node a\nnode b\nnode c\n", "a 10.1.0.9/24 apache2\n")
    result = import_heartbeat([tmp_path], "legacy", {**AB, "c": ["10.1.0.3"]})
    cluster = result.find("Cluster", "legacy")
    assert cluster is not None
    spec = cluster.data["spec"]
    assert spec["timing"] == {
        "keepalive": "2s",
        "warntime": "16s",
        "deadtime": "30s",
        "initdead": "30s",
    }
    assert spec["quorum"] == {"mode": "majority"}
    # Three nodes need no fencing note to apply... but Vigil's fencing is on by default.
    dry_run(render(result.documents) + fences("a", "b", "c"))


def test_lsb_arguments_and_resource_d_wrappers_are_named(tmp_path: Path) -> None:
    _write(
        tmp_path,
        HACF,
        "a 10.1.0.9/24/eth0 apache::/etc/apache/httpd.conf portblock::tcp::80::unblock "
        "WAS::/opt/was.conf myapp::fast\n",
    )
    result = import_heartbeat([tmp_path], "legacy", AB)
    check_documents(result)
    text = render(result.documents, result.loose)
    group = result.find("ResourceGroup", "apache")
    assert group is not None
    services = [r["service"] for r in group.data["spec"]["resources"] if "service" in r]
    assert services == [
        {"ocf": {"agent": "heartbeat:apache", "params": {"configfile": "/etc/apache/httpd.conf"}}},
        {
            "ocf": {
                "agent": "heartbeat:portblock",
                "params": {"protocol": "tcp", "portno": "80", "action": "unblock"},
            }
        },
        {"lsb": "myapp"},
    ]
    assert "resource.d/WAS passes positional arguments" in comments(text)
    assert "without the arguments fast" in comments(text)
    assert result.count("dropped") == 1


def test_a_udpport_other_than_694_is_named(tmp_path: Path) -> None:
    _write(tmp_path, HACF + "udpport 695\n", "a 10.1.0.9/24 apache2\n")
    result = import_heartbeat([tmp_path], "legacy", AB)
    assert "udpport 695" in comments(render(result.documents, result.loose))


def test_stonith_host_ipmi_lines_become_fence_devices_and_the_import_applies_alone(
    tmp_path: Path,
) -> None:
    _write(
        tmp_path,
        HACF
        + "stonith_host * external/ipmi a 10.9.0.1 admin s3cret-a lanplus\n"
        + "stonith_host b external/ipmi b 10.9.0.2 admin s3cret-b lanplus\n"
        + "stonith_host * baytech 10.9.0.3 login pw\n",
        "a 10.1.0.9/24 apache2\n",
    )
    result = import_heartbeat([tmp_path], "legacy", AB)
    check_documents(result)
    text = render(result.documents, result.loose)
    created = dry_run(text)  # no FenceDevice to add: the import covers both nodes
    assert "fencedevice/ipmi-a" in created and "fencedevice/ipmi-b" in created
    assert "s3cret" not in text
    assert result.secrets["fence-ipmi-a.credentials"] == b"password=s3cret-a\n"
    cluster = result.find("Cluster", "legacy")
    assert cluster is not None and "fencing" not in cluster.data["spec"]  # reboot, as Heartbeat
    assert "baytech" in comments(text) and "without STONITH" not in comments(text)
    assert "stonith_host b: any node may fence" in comments(text)


def test_bcast_with_second_addresses_becomes_unicast_links(tmp_path: Path) -> None:
    _write(tmp_path, HACF + "bcast eth1\n", "a 10.1.0.9/24 apache2\n")
    addresses = {"a": ["10.1.0.1", "10.2.0.1"], "b": ["10.1.0.2", "10.2.0.2"]}
    result = import_heartbeat([tmp_path], "legacy", addresses)
    cluster = result.find("Cluster", "legacy")
    assert cluster is not None
    assert [n["heartbeat"] for n in cluster.data["spec"]["nodes"]] == [
        [{"udp": {"peer": "10.2.0.2"}}],
        [{"udp": {"peer": "10.2.0.1"}}],
    ]
    dry_run(render(result.documents) + fences("a", "b"))
