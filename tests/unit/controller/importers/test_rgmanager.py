"""cluster.conf in the shape of the RHEL 6 article (002), nesting, references, malformed."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.importers.check import check_documents
from controller.importers.emit import render
from controller.importers.result import ImportFailed
from controller.importers.rgmanager import import_rgmanager
from tests.unit.controller.importers.dryrun import comments, dry_run
from tests.unit.controller.importers.mutate import mutated

CONF = Path(__file__).parent / "fixtures" / "rhcs" / "cluster.conf"
NODES = {"node01h": ["192.168.7.1"], "node02h": ["192.168.7.2"]}


def test_rhel6_article_imports_and_applies() -> None:
    result = import_rgmanager(CONF, None, NODES, {"192.168.7.99": 24})
    check_documents(result)
    text = render(result.documents, result.loose)
    created = dry_run(text, cluster="cluster01")
    assert "resourcegroup/service01" in created and "fencedevice/kvmhost01" in created
    group = result.find("ResourceGroup", "service01")
    assert group is not None
    # ip before script (service.sh's start order), the nested script after its parent.
    assert [r.get("name") or next(iter(r)) for r in group.data["spec"]["resources"]] == [
        "ip",
        "glmount",
        "pgsql",
    ]
    assert group.data["spec"]["placement"]["restricted"] is True
    fence = result.find("FenceDevice", "kvmhost01")
    assert fence is not None
    assert fence.data["spec"]["hostMap"] == {
        "node01h": "RHCSvm01-gluster",
        "node02h": "RHCSvm02-gluster",
    }
    for named in ("autostart=0", "monitor_link=on", "totem token=20000", "option=reboot"):
        assert named in comments(text), named


def test_a_floating_ip_without_prefix_is_reported_not_guessed() -> None:
    with pytest.raises(ImportFailed, match=r"cluster.conf:32: .*--prefix 192.168.7.99/LEN"):
        import_rgmanager(CONF, None, NODES, {})


ORDERED = """<cluster name="c"><cman two_node="1"/><clusternodes>
<clusternode name="a.example.com" nodeid="1"><fence><method name="1">
<device name="ipmi-a"/></method><method name="2"><device name="pdu" port="1"/></method>
</fence></clusternode>
<clusternode name="b.example.com" nodeid="2"><fence><method name="1"><device name="ipmi-b"/>
</method></fence></clusternode></clusternodes>
<fencedevices>
<fencedevice name="ipmi-a" agent="fence_ipmilan" ipaddr="10.0.0.101" login="root" passwd="pw-a"/>
<fencedevice name="ipmi-b" agent="fence_ipmilan" ipaddr="10.0.0.102" login="root" passwd="pw-b"/>
<fencedevice name="pdu" agent="fence_apc" ipaddr="10.0.0.200" login="apc" passwd="pw-pdu"/>
</fencedevices>
<rm><failoverdomains><failoverdomain name="d" ordered="1" restricted="0">
<failoverdomainnode name="a.example.com" priority="1"/>
<failoverdomainnode name="b.example.com" priority="2"/></failoverdomain></failoverdomains>
<resources><ip address="10.0.0.50/24"/><fs name="data" device="/dev/vg/data"
mountpoint="/srv/data" fstype="ext4" force_unmount="1"/></resources>
<service name="web" domain="d" recovery="relocate">
<script file="/etc/init.d/httpd" name="httpd"/><ip ref="10.0.0.50/24"/><fs ref="data"/>
</service>
<service name="db" depend="service:web"><netfs name="nfs" host="filer" export="/db"
mountpoint="/db" fstype="nfs"/><postgres-8 name="pg"/><script file="/etc/init.d/pg" name="pg"/>
</service></rm></cluster>
"""


def _conf(tmp: Path, text: str) -> Path:
    path = tmp / "cluster.conf"
    path.write_text(text)
    return path


def test_ordered_domain_levels_references_and_nesting(tmp_path: Path) -> None:
    addresses = {"a.example.com": ["10.0.0.1"], "b.example.com": ["10.0.0.2"]}
    result = import_rgmanager(_conf(tmp_path, ORDERED), "c", addresses, {})
    check_documents(result)
    text = render(result.documents, result.loose)
    dry_run(text, cluster="c")
    web = result.find("ResourceGroup", "web")
    db = result.find("ResourceGroup", "db")
    pdu = result.find("FenceDevice", "pdu")
    assert web is not None and db is not None and pdu is not None
    assert [next(k for k in r if k != "name") for r in web.data["spec"]["resources"]] == [
        "filesystem",
        "ip",
        "service",
    ]
    assert web.data["spec"]["placement"] == {
        "nodes": [{"name": "a", "score": 100}, {"name": "b", "score": 99}],
        "restricted": False,
        "stickiness": 0,
    }
    assert web.data["spec"]["migrationThreshold"] == 1
    assert db.data["spec"]["dependsOn"] == ["web"]
    assert pdu.data["spec"]["level"] == 2 and pdu.data["spec"]["hostMap"] == {"a": "1"}
    assert "pw-" not in text
    assert set(result.secrets) == {
        "fence-ipmi-a.credentials",
        "fence-ipmi-b.credentials",
        "fence-pdu.credentials",
    }
    assert "<postgres-8 name='pg'>" in comments(text)
    assert "force_unmount=1" in comments(text)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (('<device name="ipmi-b"/>', '<device name="ghost"/>'), "'ghost' is not defined"),
        (('<ip ref="10.0.0.50/24"/>', '<ip ref="10.9.9.9/24"/>'), "no such resource"),
        (('domain="d"', 'domain="nowhere"'), "domain 'nowhere' is not defined"),
        (('<postgres-8 name="pg"/>', '<teleport name="x"/>'), "<teleport> is not an rgmanager"),
        (("</cluster>", ""), "not well-formed XML"),
        (('name="db"', 'name="web"'), "service 'web' is defined twice"),
        (('fstype="ext4"', 'fstype=""'), "no fstype"),
    ],
)
def test_malformed_cluster_conf_fails_naming_file_and_line(
    tmp_path: Path, change: tuple[str, str], error: str
) -> None:
    addresses = {"a.example.com": ["10.0.0.1"], "b.example.com": ["10.0.0.2"]}
    path = _conf(tmp_path, ORDERED.replace(*change))
    with pytest.raises(ImportFailed) as exc:
        import_rgmanager(path, "c", addresses, {})
    assert error in str(exc.value) and str(path) in str(exc.value)


_WORDS = [
    '<cluster name="c">',
    "</cluster>",
    "<clusternodes>",
    "</clusternodes>",
    '<clusternode name="a" nodeid="1">',
    '<clusternode name="b" nodeid="2">',
    "</clusternode>",
    "<fence>",
    "</fence>",
    '<method name="1">',
    "</method>",
    '<device name="f" port="p"/>',
    "<fencedevices>",
    "</fencedevices>",
    '<fencedevice name="f" agent="fence_virsh"/>',
    "<rm>",
    "</rm>",
    '<service name="s">',
    "</service>",
    '<ip address="10.0.0.9/24"/>',
    '<script file="/etc/init.d/x" name="x">',
    "</script>",
    '<fs device="/dev/x" mountpoint="/m" fstype="ext4"/>',
    '<cman two_node="1"/>',
    "<failoverdomains>",
    '<failoverdomain name="d" ordered="1">',
    '<failoverdomainnode name="a" priority="x"/>',
    "</failoverdomain>",
    "</failoverdomains>",
    '<ip ref="nope"/>',
    "<!ENTITY x 'y'>",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.one_of(
        mutated(ORDERED.replace(".example.com", ""), _WORDS),
        st.lists(st.one_of(st.sampled_from(_WORDS), st.text(max_size=5)), max_size=30).map("".join),
    )
)
def test_cluster_conf_imports_or_fails_cleanly(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = import_rgmanager(
                _conf(Path(tmp), text), "c", {"a": ["10.0.0.1"], "b": ["10.0.0.2"]}, {}
            )
            check_documents(result)
        except ImportFailed:
            return
        render(result.documents, result.loose)


def test_a_priority_that_is_not_a_number_is_an_error(tmp_path: Path) -> None:
    addresses = {"a.example.com": ["10.0.0.1"], "b.example.com": ["10.0.0.2"]}
    path = _conf(tmp_path, ORDERED.replace('priority="2"', 'priority="second"'))
    with pytest.raises(ImportFailed, match="cluster.conf:14: priority 'second' is not a number"):
        import_rgmanager(path, "c", addresses, {})
