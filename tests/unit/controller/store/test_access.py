"""The roles' key ranges come from the store layout; the refusal message says who/what."""

from __future__ import annotations

import pytest
from aetcd import rpc

from controller.store import access, keys
from controller.store.errors import PermissionDeniedError
from controller.store.etcd_channel import EtcdConnection, translate


def test_viewer_reads_the_cluster_prefix_only() -> None:
    [perm] = access.permissions("prod", "viewer")
    assert perm == access.Permission(access.READ, b"/vigil/prod/", b"/vigil/prod0")


def test_operator_writes_exactly_what_move_standby_and_cleanup_write() -> None:
    perms = access.permissions("prod", "operator")
    assert perms[0] == access.Permission(access.READ, b"/vigil/prod/", b"/vigil/prod0")
    writes = {(p.key, p.range_end) for p in perms[1:]}
    assert all(p.perm_type == access.READWRITE for p in perms[1:])
    assert writes == {
        (b"/vigil/prod/specs/ResourceGroup/", b"/vigil/prod/specs/ResourceGroup0"),
        (b"/vigil/prod/specs/Node/", b"/vigil/prod/specs/Node0"),
        (b"/vigil/prod/specs-guard", b""),  # the one key, not specs-guardX
        (b"/vigil/prod/events/", b"/vigil/prod/events0"),
        (b"/vigil/prod/failures/", b"/vigil/prod/failures0"),
    }


def test_admin_is_etcd_root_and_needs_no_ranges() -> None:
    assert access.ETCD_ROLE["admin"] == "root"
    assert access.permissions("prod", "admin") == []


@pytest.mark.parametrize(
    ("key", "write", "role"),
    [
        (keys.spec_key("ResourceGroup", "web"), True, "operator"),
        (keys.spec_key("Node", "n1"), True, "operator"),
        (keys.SPECS_GUARD, True, "operator"),
        (keys.failure_key("web", "n1"), True, "operator"),
        (keys.event_prefix("Node", "n1") + "x", True, "operator"),
        (keys.spec_key("FenceDevice", "pdu"), True, "admin"),
        (keys.fencing_key("n1"), True, "admin"),
        (keys.status_key("ResourceGroup", "web"), True, "admin"),
        ("tokens/abc123", True, "admin"),
        ("specs-guardian", True, "admin"),
        (keys.spec_key("FenceDevice", "pdu"), False, "viewer"),
    ],
)
def test_needed_role(key: str, write: bool, role: str) -> None:
    assert access.needed_role(key, write=write) == role


def test_the_refused_key_is_the_one_needing_most() -> None:
    touched = [keys.SPECS_GUARD, keys.spec_key("FenceDevice", "pdu"), "events/FenceDevice/pdu/1"]
    assert access.most_needed(touched, write=True) == ("specs/FenceDevice/pdu", "admin")
    move = [keys.spec_key("ResourceGroup", "web"), keys.SPECS_GUARD, "events/x/y/1"]
    assert access.most_needed(move, write=True) == ("specs/ResourceGroup/web", "operator")
    assert access.most_needed([], write=False) == (None, "viewer")


def test_role_of_etcd_roles() -> None:
    assert access.role_of(["vigil-viewer"]) == "viewer"
    assert access.role_of(["vigil-viewer", "vigil-operator"]) == "operator"
    assert access.role_of(["root", "vigil-viewer"]) == "admin"
    assert access.role_of(["someone-elses"]) is None


def test_denied_message() -> None:
    text = access.denied_message(
        "alice", "viewer", "specs/ResourceGroup/web", write=True, needs="operator"
    )
    assert text == (
        "permission denied: user alice (role viewer) may not write specs/ResourceGroup/web; "
        "an admin can grant it with `ha cluster user add alice --role operator`"
    )
    agent = access.denied_message("node:n2", None, "leader", write=True, needs="admin")
    assert agent.endswith(
        "grant it with `ha cluster rbac enable` (run again, it makes every node's identity root)"
    )
    unknown = access.denied_message(None, None, None, write=False, needs="viewer")
    assert unknown.startswith("permission denied: this client certificate's user may not read")


class _Denied(rpc.AioRpcError):  # type: ignore[misc]
    def __init__(self, code: rpc.StatusCode, details: str) -> None:
        self._c, self._d = code, details

    def code(self) -> rpc.StatusCode:
        return self._c

    def details(self) -> str:
        return self._d

    def __str__(self) -> str:
        return self._d


def test_etcd_refusals_translate_to_permission_denied() -> None:
    conn = EtcdConnection(["http://127.0.0.1:1"], 1.0, None)
    err = translate(
        _Denied(rpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied"), conn
    )
    assert isinstance(err, PermissionDeniedError)
    missing = _Denied(rpc.StatusCode.FAILED_PRECONDITION, "etcdserver: user name not found")
    assert isinstance(translate(missing, conn), PermissionDeniedError)
    other = _Denied(rpc.StatusCode.FAILED_PRECONDITION, "etcdserver: something else")
    assert not isinstance(translate(other, conn), PermissionDeniedError)
