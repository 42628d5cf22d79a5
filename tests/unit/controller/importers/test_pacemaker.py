"""cib.xml (Heartbeat 2 and Pacemaker) and crm syntax, hostile and malformed XML."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.importers.check import check_documents
from controller.importers.emit import render
from controller.importers.pacemaker import import_pacemaker
from controller.importers.result import ImportFailed, ImportResult
from tests.unit.controller.importers.dryrun import comments, dry_run, fences

FIXTURES = Path(__file__).parent / "fixtures"
PCMK = FIXTURES / "pcmk"
NODES = {"node1": ["192.168.1.11"], "node2": ["192.168.1.12"]}


def _import(paths: list[Path], addresses: dict[str, list[str]] = NODES) -> tuple[ImportResult, str]:
    result = import_pacemaker(paths, "legacy", addresses)
    check_documents(result)
    return result, render(result.documents, result.loose)


def _strip(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


def test_heartbeat2_cib_with_master_slave_drbd_article_000() -> None:
    hb2 = FIXTURES / "drbd07_hb2"
    result, text = _import(
        [hb2 / "cib.xml", hb2 / "ha.cf", hb2 / "authkeys", hb2 / "drbd.conf"],
        {"host_m": ["192.168.1.1"], "host_s": ["192.168.1.2"]},
    )
    group = result.find("ResourceGroup", "fs0")
    assert group is not None
    assert group.data["spec"]["resources"] == [
        {"volume": {"name": "drbd0"}},
        {"filesystem": {"device": "volume:drbd0", "mountPoint": "/drbd", "fsType": "ext3"}},
    ]
    # rsc_location role=Master on the DRBD clone prefers host_m for the group on its master.
    assert group.data["spec"]["placement"]["nodes"][0] == {"name": "host-m", "score": 100}
    assert "Love" not in text
    dry_run(text + fences("host-m", "host-s"))


def test_pacemaker_cib_fencing_groups_constraints() -> None:
    result, text = _import([PCMK / "cib.xml", PCMK / "drbd.conf"])
    dry_run(text)  # its own stonith devices cover both nodes
    pg = result.find("ResourceGroup", "pg")
    mail = result.find("ResourceGroup", "mail")
    assert pg is not None and mail is not None
    assert [next(iter(r)) for r in pg.data["spec"]["resources"]] == [
        "volume",
        "filesystem",
        "ip",
        "service",
    ]
    assert pg.data["spec"]["migrationThreshold"] == 2
    assert pg.data["spec"]["placement"]["stickiness"] == 100  # rsc_defaults
    assert mail.data["spec"]["placement"]["nodes"] == [{"name": "node1", "score": 0}]  # -INF
    assert mail.data["spec"]["dependsOn"] == ["pg"] and mail.data["spec"]["colocate"] == ["pg"]
    ipmi = result.find("FenceDevice", "st-node1")
    virsh = result.find("FenceDevice", "st-node2")
    assert ipmi is not None and virsh is not None
    assert ipmi.data["spec"]["agent"] == "ipmi"
    assert virsh.data["spec"]["hostMap"] == {"node2": "vm-node2"}
    assert result.secrets["fence-st-node1.credentials"] == b"password=ipmi-secret-1\n"
    assert "ipmi-secret-1" not in text and "virsh-secret-2" not in text
    for named in (
        "clone ping-clone",
        "no-quorum-policy=ignore",
        "pg-vip monitor every 10s",
        "drbd-pgdata monitor Master",
    ):
        assert named in comments(text), named


def test_crm_syntax_reads_as_the_cib_does() -> None:
    _, from_cib = _import([PCMK / "cib.xml", PCMK / "drbd.conf"])
    _, from_crm = _import([PCMK / "config.crm", PCMK / "drbd.conf"])
    assert _strip(from_crm) == _strip(from_cib)


CIB_HEAD = '<cib><configuration><nodes><node id="1" uname="a"/><node id="2" uname="b"/></nodes>'


def _cib(resources: str, constraints: str = "") -> str:
    return (
        f"{CIB_HEAD}<resources>{resources}</resources>"
        f"<constraints>{constraints}</constraints></configuration></cib>"
    )


PRIM = '<primitive id="{id}" class="{cls}" provider="heartbeat" type="Dummy"/>'


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (_cib(PRIM.format(id="x", cls="ocf"))[:-20], "cib.xml:1: not well-formed XML"),
        (_cib(PRIM.format(id="x", cls="ocf") * 2), "id 'x' is used twice"),
        (_cib(PRIM.format(id="x", cls="magic")), "unknown agent class 'magic'"),
        (
            _cib(PRIM.format(id="x", cls="ocf"), '<rsc_order id="o" first="x" then="ghost"/>'),
            "order o names 'ghost'",
        ),
        (
            _cib(
                '<group id="g"><primitive id="x" class="ocf" provider="heartbeat" '
                'type="IPaddr2"><instance_attributes id="i"><nvpair id="n" name="ip" '
                'value="10.0.0.9"/></instance_attributes></primitive></group>'
            ),
            "has no cidr_netmask",
        ),
        (
            _cib(
                PRIM.format(id="x", cls="ocf"), '<rsc_location id="l" rsc="x" node="z" score="10"/>'
            ),
            "location l: 'z' is not a node",
        ),
        (
            '<?xml version="1.0"?><!DOCTYPE cib [<!ENTITY a "aaaaaaaaaa"><!ENTITY b '
            '"&a;&a;&a;&a;&a;&a;&a;&a;">]><cib>&b;</cib>',
            "refused: the XML declares",
        ),
        (
            '<?xml version="1.0"?><!DOCTYPE cib [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            "<cib>&x;</cib>",
            "refused: the XML declares",
        ),
        ("<notcib/>", "not a CIB"),
    ],
)
def test_malformed_or_hostile_cib_fails_naming_file_and_line(
    tmp_path: Path, text: str, error: str
) -> None:
    path = tmp_path / "cib.xml"
    path.write_text(text)
    with pytest.raises(ImportFailed) as exc:
        import_pacemaker([path], "legacy", {"a": ["10.0.0.1"], "b": ["10.0.0.2"]})
    assert error in str(exc.value)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "node a\nnode b\nprimitive x ocf:heartbeat:Dummy\nprimitive x lsb:foo\n",
            "config.crm:4: id 'x' is used twice",
        ),
        ("node a\ngroup g x y\n", "config.crm:2: group g names 'x'"),
        ("node a\nprimitive x ocf:heartbeat:Dummy params 'a=1\n", "a quote is not closed"),
        ("node a\nfrobnicate x\n", "'frobnicate' is not a crm configure command"),
        ("node a\nprimitive x Dummy\n", "is not CLASS:[PROVIDER:]TYPE"),
        ("node a\nprimitive x ocf:heartbeat:Dummy\nlocation l x 100 a\n", "SCORE: NODE"),
        ("node a\nprimitive x ocf:heartbeat:Dummy params novalue\n", "expected name=value"),
    ],
)
def test_malformed_crm_fails_naming_file_and_line(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "config.crm"
    path.write_text(text)
    with pytest.raises(ImportFailed) as exc:
        import_pacemaker([path], "legacy", {"a": ["10.0.0.1"], "b": ["10.0.0.2"]})
    assert error in str(exc.value)


def test_a_fence_address_that_is_not_an_address_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "config.crm"
    path.write_text(
        "node a\nnode b\nprimitive st stonith:fence_ipmilan params ipaddr=10.0.0.1x/8 "
        "pcmk_host_list=a\n"
    )
    with pytest.raises(ImportFailed, match=r"config.crm:3: stonith st: invalid host"):
        import_pacemaker([path], "legacy", {"a": ["10.0.0.1"], "b": ["10.0.0.2"]})


def test_deep_nesting_and_huge_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "cib.xml"
    path.write_text("<cib>" + "<a>" * 10_000 + "</a>" * 10_000 + "</cib>")
    with pytest.raises(ImportFailed, match=r"cib.xml:1: elements nested deeper than 64"):
        import_pacemaker([path], "legacy", {})
    path.write_bytes(b"<cib>" + b" " * (5 << 20) + b"</cib>")
    with pytest.raises(ImportFailed, match="larger than 4 MiB"):
        import_pacemaker([path], "legacy", {})
    path.write_bytes(b"<cib>\0</cib>")
    with pytest.raises(ImportFailed, match="a binary file"):
        import_pacemaker([path], "legacy", {})


def test_pacemaker_2_promotable_clone_and_promoted_role(tmp_path: Path) -> None:
    cib = _cib(
        '<clone id="vol-clone"><meta_attributes id="m"><nvpair id="m1" name="promotable" '
        'value="true"/></meta_attributes><primitive id="vol" class="ocf" provider="linbit" '
        'type="drbd"><instance_attributes id="i"><nvpair id="i1" name="drbd_resource" '
        'value="data"/></instance_attributes></primitive></clone>'
        '<primitive id="fs" class="ocf" provider="heartbeat" type="Filesystem">'
        '<instance_attributes id="f">'
        '<nvpair id="f1" name="device" value="/dev/drbd/by-res/data/0"/>'
        '<nvpair id="f2" name="directory" value="/data"/><nvpair id="f3" name="fstype" '
        'value="ext4"/></instance_attributes></primitive>',
        '<rsc_colocation id="c" rsc="fs" with-rsc="vol-clone" with-rsc-role="Promoted" '
        'score="INFINITY"/><rsc_order id="o" first="vol-clone" first-action="promote" '
        'then="fs" then-action="start"/>',
    )
    path = tmp_path / "cib.xml"
    path.write_text(cib)
    result = import_pacemaker([path], "legacy", {"a": ["10.0.0.1"], "b": ["10.0.0.2"]})
    group = result.find("ResourceGroup", "fs")
    assert group is not None
    assert group.data["spec"]["resources"][0] == {"volume": {"name": "data"}}
    assert group.data["spec"]["resources"][1]["filesystem"]["device"] == "volume:data"
