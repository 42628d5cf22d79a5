"""Control-plane RBAC on a real 3-node lab: etcd's auth refuses what a role may not do.

`ha cluster rbac enable` turns etcd's auth on; users made by `ha cluster user add` run
`ha` with their own client config (certificate CN = user). A viewer reads, an operator
moves groups, an admin does the rest; the agents (root) keep failing over under auth.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.cluster import HA, Result, VigilLab
from lab.observer import VipObserver

from .conftest import needs_root
from .helpers import wait_until

pytestmark = [pytest.mark.slow, needs_root]

FENCE_DEVICE = """\
apiVersion: ha.vigil.dev/v1alpha1
kind: FenceDevice
metadata: {name: pdu}
spec:
  agent: ipmi
  address: 192.0.2.1
  username: admin
  credentialsFile: /etc/vigil/pdu.cred
  targets: [%s]
"""


def ha_as(vlab: VigilLab, config: Path, *args: str, stdin: str | None = None) -> Result:
    """`ha` from the client namespace with a user's client config."""
    proc = vlab.lab.exec_in(
        "client", [HA, "--config", str(config), *args], timeout=30, input_text=stdin
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def add_user(vlab: VigilLab, tmp: Path, name: str, role: str) -> Path:
    out = tmp / name
    done = vlab.ha(
        "cluster", "user", "add", name, "--role", role,
        "--pki-dir", str(vlab.home / "pki"), "-o", str(out),
    )  # fmt: skip
    assert done.code == 0, done.err
    key = out / f"{name}.key"
    assert key.stat().st_mode & 0o777 == 0o600
    return out / f"{name}.yaml"


def generation(vlab: VigilLab, group: str) -> int:
    got = vlab.ha("get", "resourcegroup", group, "-o", "json")
    assert got.code == 0, got.err
    doc = json.loads(got.out)
    return int(doc["metadata"]["generation"])


def events(vlab: VigilLab, reason: str) -> list[dict[str, object]]:
    got = vlab.ha("events", "--reason", reason, "-o", "json")
    assert got.code == 0, got.err
    found: list[dict[str, object]] = json.loads(got.out)
    return found


def test_roles_are_enforced_by_etcd_and_failover_still_works(
    vlab: VigilLab, observer: VipObserver, tmp_path: Path
) -> None:
    assert vlab.apply(vlab.web_group()).code == 0
    home = vlab.wait_running("web", 30)
    others = [n for n in vlab.nodes if n != home]
    viewer = add_user(vlab, tmp_path, "vera", "viewer")
    operator = add_user(vlab, tmp_path, "otto", "operator")

    enabled = vlab.ha("cluster", "rbac", "enable")
    assert enabled.code == 0, enabled.err
    assert "node:" in enabled.out
    assert events(vlab, "RbacEnabled")

    # The viewer reads; its move is refused by etcd and changes nothing.
    for read in (["status", "-o", "json"], ["get", "rg"], ["describe", "rg", "web"], ["events"]):
        done = ha_as(vlab, viewer, *read)
        assert done.code == 0, (read, done.err)
    # etcd 3.4 asks no role for MemberList and Maintenance.Status: anyone it knows may list.
    members = ha_as(vlab, viewer, "cluster", "members")
    assert members.code == 0, members.err
    before = generation(vlab, "web")
    moved = ha_as(vlab, viewer, "move", "web", others[0])
    assert moved.code != 0
    assert (
        "permission denied: user vera (role viewer) may not write specs/ResourceGroup/web; "
        "an admin can grant it with `ha cluster user add vera --role operator`"
    ) in moved.err, moved.err
    assert generation(vlab, "web") == before
    assert vlab.where("web") == home

    # The operator moves the group; the move's event is written.
    moved = ha_as(vlab, operator, "move", "web", others[0])
    assert moved.code == 0, moved.err
    assert vlab.wait_running("web", 30, not_on=home) == others[0]
    assert generation(vlab, "web") == before + 1
    updated = [e for e in events(vlab, "Updated") if "ha move" in str(e.get("message"))]
    assert updated, "the operator's move wrote no event"

    # Standby and cleanup are the operator's too.
    spare = others[1]
    for command in (["standby", spare], ["unstandby", spare], ["cleanup", "web"]):
        done = ha_as(vlab, operator, *command)
        assert done.code == 0, (command, done.err)

    # ... but may not apply a FenceDevice, fence a node, or change membership and users.
    applied = ha_as(vlab, operator, "apply", "-f", "-", stdin=FENCE_DEVICE % others[1])
    assert applied.code != 0
    assert "permission denied: user otto (role operator) may not write specs/FenceDevice/pdu" in (
        applied.err
    ), applied.err
    fenced = ha_as(vlab, operator, "fence", others[1], "--confirm", "--yes", "--no-wait")
    assert fenced.code != 0
    assert "permission denied: user otto (role operator) may not write fencing/" in fenced.err
    users = ha_as(vlab, operator, "cluster", "user", "list")
    assert users.code != 0 and "permission denied" in users.err, users.err
    got = vlab.ha("get", "fencedevice", "-o", "json")
    assert got.code == 0 and "pdu" not in got.out

    # The admin may do all that; user management is recorded.
    listed = vlab.ha("cluster", "user", "list")
    assert listed.code == 0, listed.err
    assert "vera" in listed.out and "viewer" in listed.out and "node:" in listed.out
    # The refusal's hint works as given: a role change, no new certificate (no CA needed).
    regranted = vlab.ha("cluster", "user", "add", "vera", "--role", "operator")
    assert regranted.code == 0 and "updated: role operator" in regranted.out, regranted.err
    for command in (["standby", spare], ["unstandby", spare]):
        done = ha_as(vlab, viewer, *command)
        assert done.code == 0, (command, done.err)
    assert events(vlab, "UserAdded")

    # The agents run as etcd root: a power loss still fails over under auth.
    active = vlab.where("web")
    assert active is not None
    vlab.lab.kill(active)
    survivor = vlab.wait_running("web", 30, not_on=active)
    assert survivor != active
    wait_until("the VIP answers from the survivor", lambda: vlab.get(vlab.vip()) == survivor, 15)

    # A deleted user's certificate is refused even for reads.
    assert vlab.ha("cluster", "user", "delete", "vera").code == 0
    refused = ha_as(vlab, viewer, "get", "resourcegroup", "web")
    assert refused.code != 0 and "permission denied" in refused.err, refused.err
    assert events(vlab, "UserDeleted")

    # Disable: every certificate of the CA may do anything again.
    disabled = vlab.ha("cluster", "rbac", "disable")
    assert disabled.code == 0, disabled.err
    back = ha_as(vlab, operator, "move", "web", "--clear")
    assert back.code == 0, back.err
    assert events(vlab, "RbacDisabled")


def test_enable_refuses_an_identity_that_would_lock_itself_out(
    vlab: VigilLab, tmp_path: Path
) -> None:
    operator = add_user(vlab, tmp_path, "otto", "operator")
    refused = ha_as(vlab, operator, "cluster", "rbac", "enable")
    assert refused.code != 0
    assert "refusing to enable RBAC" in refused.err and "otto" in refused.err, refused.err
    # Auth stayed off: the operator may still do anything.
    assert ha_as(vlab, operator, "cluster", "user", "list").code == 0
