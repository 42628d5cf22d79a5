"""drbd.conf of each DRBD major version (0.7, 8.3, 8.4, 9), includes, and malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.importers.check import check_documents
from controller.importers.drbd import import_drbd
from controller.importers.emit import render
from controller.importers.result import ImportFailed
from tests.unit.controller.importers.dryrun import comments, dry_run, fences

CLUSTER = """apiVersion: ha.vigil.dev/v1alpha1
kind: Cluster
metadata: {name: legacy}
spec:
  nodes: [{name: alice, address: 10.1.1.31}, {name: bob, address: 10.1.1.32}]
  quorum: {mode: two-node}
"""

V84 = """
global { usage-count no; }
common {
  net { protocol B; }
  disk { resync-rate 40M; }
}
resource r0 {
  device /dev/drbd1 minor 1;
  disk /dev/vg/data;
  meta-disk internal;
  net {
    after-sb-0pri discard-younger-primary;
    after-sb-1pri consensus;
    allow-two-primaries;
  }
  disk { fencing dont-care; on-io-error pass_on; c-plan-ahead 20; }
  on alice { address 10.1.1.31:7789; }
  on bob { address 10.1.1.32:7789; }
}
"""

V9 = """
resource r0 {
  device /dev/drbd1;
  disk /dev/sdb1;
  meta-disk internal;
  options { quorum majority; }
  on alice { node-id 0; address ipv4 10.1.1.31:7000; }
  on bob { node-id 1; address ipv4 10.1.1.32:7000; }
  connection-mesh { hosts alice bob; net { protocol A; } }
}
resource three {
  device /dev/drbd2; disk /dev/sdc1; meta-disk internal;
  on alice { node-id 0; address 10.1.1.31:7001; }
  on bob { node-id 1; address 10.1.1.32:7001; }
  on carol { node-id 2; address 10.1.1.33:7001; }
  connection-mesh { hosts alice bob carol; }
}
"""

V83 = """
resource data {
  protocol C;
  syncer { rate 100M; verify-alg sha1; al-extents 3389; }
  on alice { device /dev/drbd0; disk /dev/sdb1; address 10.1.1.31:7788; meta-disk internal; }
  on bob { device /dev/drbd0; disk /dev/sdb1; address 10.1.1.32:7788; meta-disk internal; }
}
"""


def _file(tmp: Path, text: str, name: str = "drbd.conf") -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_drbd_84_common_sections_and_minor_devices(tmp_path: Path) -> None:
    out = import_drbd(_file(tmp_path, V84))
    check_documents(out.result)
    volume = out.result.find("ReplicatedVolume", "r0")
    assert volume is not None
    spec = volume.data["spec"]
    assert spec["protocol"] == "B" and spec["resyncRate"] == "40M"
    assert spec["outdatePeer"] == "dont-care" and spec["onIOError"] == "pass_on"
    assert spec["splitBrain"] == {
        "afterSB0Pri": "discard-younger-primary",
        "afterSB1Pri": "consensus",
    }
    assert [r["disk"] for r in spec["replicas"]] == ["/dev/vg/data", "/dev/vg/data"]
    assert out.devices["/dev/drbd1"] == "r0"
    text = render(out.result.documents, out.result.loose)
    assert "allow-two-primaries" in comments(text) and "c-plan-ahead 20" in comments(text)
    dry_run(CLUSTER + "---\n" + text + fences("alice", "bob"))


def test_drbd_9_two_hosts_import_three_hosts_are_dropped_with_a_note(tmp_path: Path) -> None:
    out = import_drbd(_file(tmp_path, V9))
    check_documents(out.result)
    assert [d.name for d in out.result.documents] == ["r0"]
    spec = out.result.documents[0].data["spec"]
    assert spec["protocol"] == "A"
    assert spec["replicas"][1] == {"node": "bob", "disk": "/dev/sdb1", "address": "10.1.1.32:7000"}
    text = render(out.result.documents, out.result.loose)
    assert "DRBD resource three: 3 hosts" in comments(text)
    assert "quorum majority" in comments(text)
    dry_run(CLUSTER + "---\n" + text + fences("alice", "bob"))


def test_drbd_83_rates_in_kib_and_dropped_syncer_options(tmp_path: Path) -> None:
    out = import_drbd(_file(tmp_path, V83.replace("100M", "10240")))
    check_documents(out.result)
    spec = out.result.documents[0].data["spec"]
    assert spec["resyncRate"] == "10240K"
    assert spec["checksumResync"] is False
    text = render(out.result.documents)
    assert "verify-alg sha1" in comments(text) and "al-extents 3389" in comments(text)


def test_includes_are_followed_relative_to_the_including_file(tmp_path: Path) -> None:
    _file(tmp_path, "common { protocol A; }\n", "drbd.d/global_common.conf")
    _file(tmp_path, V83.replace("protocol C;", ""), "drbd.d/data.res")
    main = _file(tmp_path, 'include "drbd.d/global_common.conf";\ninclude "drbd.d/*.res";\n')
    out = import_drbd(main)
    assert out.result.documents[0].data["spec"]["protocol"] == "A"
    assert [p.name for p in out.files] == ["drbd.conf", "global_common.conf", "data.res"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("resource r0 {\n  protocol C;\n", "drbd.conf:1: this section's '{' is never closed"),
        ("resource r0 { protocol C; }\n}\n", "drbd.conf:2: a '}' closes no section"),
        ("resource r0 {\n  protocol C\n}\n", "drbd.conf:2: `protocol C` has no ';'"),
        ('resource r0 { handlers { split-brain "/bin/x; }\n', "a quoted string is not closed"),
        ("resource r0 { protocol D; }\n", "protocol 'D'"),
        ("resource r0 { protocol C on a { } }\n", "not a DRBD section"),
        ("hosts a b;\n", "'hosts' at the top level"),
        ("global { usage-count no; }\n", "no `resource` section"),
        (V83 + V83, "resource data is defined twice"),
        (V83.replace("address 10.1.1.32:7788", "address nowhere"), "'nowhere' is not ip:port"),
        (V83.replace("disk /dev/sdb1; address 10.1.1.32:7788;", ""), "on bob: no `disk`"),
        ("resource r0 { net { after-sb-1pri discard-everything; } }", "after-sb-1pri"),
        ("resource r0 { syncer { rate fast; } }", "rate 'fast'"),
        ('include "drbd.conf";\n', "includes itself"),
    ],
)
def test_malformed_drbd_conf_fails_naming_file_and_line(
    tmp_path: Path, text: str, error: str
) -> None:
    with pytest.raises(ImportFailed) as exc:
        import_drbd(_file(tmp_path, text))
    assert error in str(exc.value)
    assert str(tmp_path) in str(exc.value)


def test_deeply_nested_sections_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportFailed, match=r"drbd.conf:1: sections nested deeper than 16"):
        import_drbd(_file(tmp_path, "resource r0 " + "a { " * 5000 + "} " * 5000))
