"""User names, roles, lock-out check, the user's files and the RBAC commands' parsing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from controller.bootstrap import pki, users
from controller.cli.main import build_parser
from controller.store.denied import certificate_user


@pytest.mark.parametrize("name", ["alice", "ops.bob", "c-3po", "x_y"])
def test_good_names(name: str) -> None:
    assert users.check_user_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("root", "reserved"),
        ("admin", "reserved"),
        ("node:n1", "lowercase"),
        ("etcd:n1", "lowercase"),
        ("Alice", "lowercase"),
        ("", "lowercase"),
        ("1abc", "starting with a letter"),
        ("a" * 64, "1-63"),
    ],
)
def test_bad_names(name: str, why: str) -> None:
    with pytest.raises(users.UserError, match=why):
        users.check_user_name(name)


def test_roles() -> None:
    assert users.check_role("operator") == "operator"
    with pytest.raises(users.UserError, match="viewer, operator, admin"):
        users.check_role("root")


def test_agents_and_admin_are_root_users() -> None:
    assert users.root_users(["n2", "n1"]) == ["admin", "node:n1", "node:n2"]


def test_lock_out_is_refused() -> None:
    users.check_not_locked_out("admin", ["root"])
    with pytest.raises(users.UserError, match="refusing to enable RBAC.*'otto'"):
        users.check_not_locked_out("otto", ["vigil-operator"])
    with pytest.raises(users.UserError, match="refusing"):
        users.check_not_locked_out("ghost", None)
    with pytest.raises(users.UserError, match="no client certificate"):
        users.check_not_locked_out(None, None)


def test_user_files(tmp_path: Path) -> None:
    ca = pki.create_ca("c1")
    files = users.write_user_files(ca, "alice", tmp_path / "out", ["https://10.0.0.1:2379"], "prod")
    assert files.key.stat().st_mode & 0o777 == 0o600
    assert files.config.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    assert certificate_user(str(files.cert)) == "alice"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.verify_directly_issued_by(ca.cert)
    config = yaml.safe_load(files.config.read_text())
    assert config == {
        "endpoints": ["https://10.0.0.1:2379"],
        "cluster": "prod",
        "tls": {"ca": str(files.ca), "cert": str(files.cert), "key": str(files.key)},
    }


def test_events_are_in_the_vocabulary() -> None:
    assert users.user_added("c", "alice", "viewer", "admin", new=True).reason == "UserAdded"
    assert users.user_deleted("c", "alice", "admin").reason == "UserDeleted"
    assert users.rbac_changed("c", True, "admin").reason == "RbacEnabled"
    assert users.rbac_changed("c", False, "admin").reason == "RbacDisabled"


def test_cli_arguments() -> None:
    parser = build_parser()
    args = parser.parse_args(["cluster", "user", "add", "alice", "--role", "viewer", "-o", "d"])
    assert (args.name, args.role, args.output_dir) == ("alice", "viewer", "d")
    with pytest.raises(SystemExit):
        parser.parse_args(["cluster", "user", "add", "alice", "--role", "root"])
    with pytest.raises(SystemExit):
        parser.parse_args(["cluster", "user", "add", "alice"])
    assert parser.parse_args(["cluster", "rbac", "enable"]).run is not None
    assert parser.parse_args(["cluster", "user", "delete", "alice"]).name == "alice"
